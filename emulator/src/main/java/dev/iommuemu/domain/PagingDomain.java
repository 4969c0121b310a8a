package dev.iommuemu.domain;

/**
 * A paging domain (IOMMU_DOMAIN_PAGING) over a host-owned {@link HostPageTable}: stage 1 (a CD
 * with an ASID) or stage 2 (an STE with a VMID). A nest parent (iommufd IOMMU_HWPT_ALLOC_NEST_PARENT)
 * is a stage 2 domain that nested domains may be built on. As in arm-smmu-v3, the ASID/VMID is
 * taken when the domain is first attached ("finalised"), so running out is an attach error
 * ({@link Errno#ENOSPC}).
 */
public final class PagingDomain implements Domain {
    private final IommuCore owner;
    private final int stage;
    private final boolean nestParent;
    private final HostPageTable table;
    /** The ASID (stage 1) or VMID (stage 2); 0 until finalised. */
    int tag;

    PagingDomain(IommuCore owner, int stage, boolean nestParent, HostPageTable table) {
        this.owner = owner;
        this.stage = stage;
        this.nestParent = nestParent;
        this.table = table;
    }

    @Override
    public Type type() {
        return Type.PAGING;
    }

    @Override
    public IommuCore owner() {
        return owner;
    }

    /** 1 or 2. */
    public int stage() {
        return stage;
    }

    public boolean nestParent() {
        return nestParent;
    }

    public HostPageTable table() {
        return table;
    }

    /** The ASID (stage 1) or VMID (stage 2), 0 before the first attach. */
    public int tag() {
        return tag;
    }

    /** iommu_map(): {@code null} on success, else the errno ({@link HostPageTable#map}). */
    public Errno map(long iova, long pa, long size, int prot) {
        return table.map(iova, pa, size, prot);
    }

    /**
     * iommu_unmap(): clears the pages and invalidates the TLBs that may hold them (stage 1:
     * CMD_TLBI_NH_ASID; stage 2: CMD_TLBI_S12_VMALL for this VMID and for every nested domain's
     * VMID built on it), then CMD_SYNC. Returns the bytes unmapped.
     */
    public long unmap(long iova, long size) {
        long n = table.unmap(iova, size);
        if (n > 0) {
            owner.flushDomain(this);
        }
        return n;
    }

    @Override
    public String toString() {
        return "paging(s" + stage + (nestParent ? ",nest-parent" : "") + ",tag=" + tag + ")";
    }
}
