package dev.iommuemu.virtqueue;

/**
 * Offsets and flags of the split-virtqueue available and used rings (virtio 1.2 §2.7.6,
 * §2.7.8), and the transport-independent feature bits that change how a queue is processed
 * (virtio 1.2 §6 "Reserved Feature Bits").
 */
public final class VirtqRing {
    // struct virtq_avail { le16 flags; le16 idx; le16 ring[size]; le16 used_event; } (§2.7.6)
    public static final int AVAIL_FLAGS = 0;
    public static final int AVAIL_IDX = 2;
    public static final int AVAIL_RING = 4;
    /** VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7). */
    public static final int AVAIL_F_NO_INTERRUPT = 1;

    // struct virtq_used { le16 flags; le16 idx; struct virtq_used_elem { le32 id; le32 len; } ring[size];
    //                     le16 avail_event; } (§2.7.8)
    public static final int USED_FLAGS = 0;
    public static final int USED_IDX = 2;
    public static final int USED_RING = 4;
    public static final int USED_ELEM_SIZE = 8;
    /** VIRTQ_USED_F_NO_NOTIFY (§2.7.10). */
    public static final int USED_F_NO_NOTIFY = 1;

    /** Alignments of the three parts (§2.7, table of alignment and size). */
    public static final int DESC_ALIGN = 16;
    public static final int AVAIL_ALIGN = 2;
    public static final int USED_ALIGN = 4;

    /** The largest queue size (§2.7: "The maximum Queue Size value is 32768"). */
    public static final int MAX_SIZE = 32768;

    /** VIRTIO_F_INDIRECT_DESC (§6). */
    public static final int F_INDIRECT_DESC = 28;
    /** VIRTIO_F_EVENT_IDX (§6). */
    public static final int F_EVENT_IDX = 29;
    /** VIRTIO_F_VERSION_1 (§6). */
    public static final int F_VERSION_1 = 32;
    /** VIRTIO_F_ACCESS_PLATFORM (§6). */
    public static final int F_ACCESS_PLATFORM = 33;

    private VirtqRing() {}

    /** Offset of {@code used_event} in the available ring of a queue of {@code size}. */
    public static long usedEventOffset(int size) {
        return AVAIL_RING + 2L * size;
    }

    /** Offset of {@code avail_event} in the used ring of a queue of {@code size}. */
    public static long availEventOffset(int size) {
        return USED_RING + (long) USED_ELEM_SIZE * size;
    }

    /** Bytes of each part for a queue of {@code size} (§2.7 table; with the EVENT_IDX words). */
    public static long descTableBytes(int size) {
        return (long) VirtqDesc.SIZE * size;
    }

    public static long availBytes(int size) {
        return 6 + 2L * size;
    }

    public static long usedBytes(int size) {
        return 6 + (long) USED_ELEM_SIZE * size;
    }

    /**
     * vring_need_event (§2.7.7, §2.7.10): whether moving an index from {@code oldIdx} to
     * {@code newIdx} crossed {@code event}, all modulo 2^16.
     */
    public static boolean needEvent(int event, int newIdx, int oldIdx) {
        return ((newIdx - event - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }
}
