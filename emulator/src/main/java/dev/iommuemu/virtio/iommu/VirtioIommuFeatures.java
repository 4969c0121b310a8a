package dev.iommuemu.virtio.iommu;

/** virtio-iommu feature bits (virtio spec, IOMMU device, "Feature bits"). */
public final class VirtioIommuFeatures {
    /** VIRTIO_IOMMU_F_INPUT_RANGE: input_range is valid. */
    public static final int INPUT_RANGE = 0;
    /** VIRTIO_IOMMU_F_DOMAIN_RANGE: domain_range is valid. */
    public static final int DOMAIN_RANGE = 1;
    /** VIRTIO_IOMMU_F_MAP_UNMAP: MAP and UNMAP requests are available. */
    public static final int MAP_UNMAP = 2;
    /** VIRTIO_IOMMU_F_BYPASS: unattached endpoints bypass (superseded by BYPASS_CONFIG). */
    public static final int BYPASS = 3;
    /** VIRTIO_IOMMU_F_PROBE: the PROBE request is available. */
    public static final int PROBE = 4;
    /** VIRTIO_IOMMU_F_MMIO: the VIRTIO_IOMMU_MAP_F_MMIO flag is available. */
    public static final int MMIO = 5;
    /** VIRTIO_IOMMU_F_BYPASS_CONFIG: config field bypass and ATTACH_F_BYPASS. */
    public static final int BYPASS_CONFIG = 6;
    /**
     * VIRTIO_IOMMU_F_NESTING_SMMUV3 (experimental; docs/nesting.md §6): the SMMUV3_NESTING probe
     * property, ATTACH_TABLE, INVALIDATE, PAGE_RESP and 32-byte fault records. Requires PROBE.
     */
    public static final int NESTING_SMMUV3 = 7;

    private VirtioIommuFeatures() {}

    public static long bit(int feature) {
        return 1L << feature;
    }

    public static boolean has(long features, int feature) {
        return (features & (1L << feature)) != 0;
    }
}
