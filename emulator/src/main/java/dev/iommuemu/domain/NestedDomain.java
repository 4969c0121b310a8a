package dev.iommuemu.domain;

/**
 * A nested domain (IOMMU_DOMAIN_NESTED): the guest's stage 1 configuration (the validated STE
 * words 0-1 of struct iommu_hwpt_arm_smmuv3) over a host stage 2 nest parent, tagged with its
 * vIOMMU's VMID. The guest's {@code Config} decides the physical STE: abort, bypass (stage 2
 * only) or nested (IHI 0070 §5.2 Config 0b111).
 */
public final class NestedDomain implements Domain {
    private final IommuCore owner;
    private final PagingDomain parent;
    private final int vmid;
    private final long[] vste;
    private final Object context;

    NestedDomain(IommuCore owner, PagingDomain parent, int vmid, long[] vste, Object context) {
        this.owner = owner;
        this.parent = parent;
        this.vmid = vmid;
        this.vste = vste.clone();
        this.context = context;
    }

    @Override
    public Type type() {
        return Type.NESTED;
    }

    @Override
    public IommuCore owner() {
        return owner;
    }

    public PagingDomain parent() {
        return parent;
    }

    /** The vIOMMU's VMID, which tags every translation of this domain. */
    public int vmid() {
        return vmid;
    }

    /** The guest STE words 0 and 1, as validated (a copy). */
    public long[] vste() {
        return vste.clone();
    }

    /** What the allocator attached (iommufd: the hwpt's vIOMMU and fault queue). */
    public Object context() {
        return context;
    }
}
