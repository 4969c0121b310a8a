package dev.iommuemu.dma;

/**
 * Which interrupt source of a model sent an MSI, so that the VMM can report the write's abort back
 * (docs/protocol.md §5 IOMMU_MSI, §4 IOMMU_MSI_ABORTED). The codes are the protocol's. For an
 * SMMUv3 each source has its own GERROR bit for an aborted MSI (IHI 0070 §6.3 SMMU_GERROR
 * MSI_CMDQ_ABT_ERR, MSI_EVENTQ_ABT_ERR, MSI_PRIQ_ABT_ERR, MSI_GERROR_ABT_ERR).
 */
public enum MsiSource {
    /** Not one of the sources below (a model without per-source abort reporting). */
    OTHER(0),
    /** CMD_SYNC completion with CS == SIG_IRQ (IHI 0070 §4.7.3). */
    CMD_SYNC(1),
    /** The Event queue interrupt (IHI 0070 §3.18, SMMU_EVENTQ_IRQ_CFG0-2). */
    EVENT_QUEUE(2),
    /** The PRI queue interrupt (SMMU_PRIQ_IRQ_CFG0-2). */
    PRI_QUEUE(3),
    /** The GERROR interrupt (SMMU_GERROR_IRQ_CFG0-2). */
    GERROR(4);

    private final int code;

    MsiSource(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    /** The source with this protocol code, or {@code null}. */
    public static MsiSource of(int code) {
        for (MsiSource s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        return null;
    }
}
