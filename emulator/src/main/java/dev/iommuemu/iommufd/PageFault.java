package dev.iommuemu.iommufd;

/**
 * A recoverable I/O page fault as a fault queue delivers it (struct iommu_hwpt_pgfault {flags,
 * dev_id, pasid, grpid, perm, __reserved, addr, length, cookie}). On SMMUv3 a stalled transaction
 * (IHI 0070 §3.12.2) is one page: LAST_PAGE is set and {@code grpid} is its STAG.
 */
public record PageFault(int flags, int devId, int pasid, int grpid, int perm, long addr, int length, int cookie) {
    /** IOMMU_PGFAULT_FLAGS_PASID_VALID. */
    public static final int PASID_VALID = 1;
    /** IOMMU_PGFAULT_FLAGS_LAST_PAGE. */
    public static final int LAST_PAGE = 2;
    /** IOMMU_PGFAULT_PERM_READ / WRITE / EXEC / PRIV. */
    public static final int PERM_READ = 1;
    public static final int PERM_WRITE = 2;
    public static final int PERM_EXEC = 4;
    public static final int PERM_PRIV = 8;
}
