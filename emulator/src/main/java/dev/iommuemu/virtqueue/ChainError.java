package dev.iommuemu.virtqueue;

/**
 * Why a descriptor chain made available by the driver is malformed. The device answers what it
 * can (a device-specific error status when the chain still has a usable device-writable part);
 * the queue counts each kind.
 */
public enum ChainError {
    /** The available ring names a head index {@code >= size}: nothing can be returned for it. */
    HEAD_OUT_OF_RANGE,
    /** A {@code next} index is outside its descriptor table (§2.7.5). */
    NEXT_OUT_OF_RANGE,
    /** More descriptors than the queue size: a loop or an over-long chain (§2.7.5.3.1, §2.7.5.1). */
    TOO_LONG,
    /** A descriptor (or indirect table entry) could not be read from guest memory. */
    DESC_FETCH_ABORT,
    /** A buffer lies (partly) outside guest memory. */
    BUFFER_ABORT,
    /** A device-readable descriptor follows a device-writable one (§2.7.4.2). */
    READABLE_AFTER_WRITABLE,
    /** VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated (§2.7.5.3.1). */
    INDIRECT_NOT_NEGOTIATED,
    /** VIRTQ_DESC_F_INDIRECT inside an indirect table (§2.7.5.3.1). */
    NESTED_INDIRECT,
    /** VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT (§2.7.5.3.1). */
    INDIRECT_WITH_NEXT,
    /** An indirect table whose length is zero or not a multiple of 16 (§2.7.5.3). */
    INDIRECT_BAD_LENGTH
}
