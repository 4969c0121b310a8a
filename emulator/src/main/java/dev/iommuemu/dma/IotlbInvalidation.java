package dev.iommuemu.dma;

/**
 * What a model tells the VMM to drop from its cached translations before a guest's invalidation
 * completes (IHI 0070 §4.6.3 CMD_SYNC completes only after earlier invalidations are complete;
 * virtio-iommu UNMAP is complete only when no device can use the mapping). Addresses are input
 * addresses (IOVA) of the endpoint; {@code endpoint} is a StreamID / virtio endpoint ID or
 * {@link #ALL_ENDPOINTS}.
 */
public record IotlbInvalidation(int endpoint, long iova, long size) {
    public static final int ALL_ENDPOINTS = -1;

    /** Drop every cached translation of every endpoint. */
    public static IotlbInvalidation all() {
        return new IotlbInvalidation(ALL_ENDPOINTS, 0, -1L);
    }

    /** Whether {@code size} covers the whole input address space. */
    public boolean everything() {
        return size == -1L;
    }
}
