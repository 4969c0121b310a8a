package dev.iommuemu.dma;

/** The outcome of translating one DMA access through a device model. */
public sealed interface DmaResult permits DmaResult.Translated, DmaResult.Aborted, DmaResult.Stalled {

    /** The access may proceed; the entry may be cached by the VMM until invalidated. */
    record Translated(IotlbEntry entry) implements DmaResult {}

    /**
     * The access is terminated (the endpoint sees an abort). {@code reason} names the fault the
     * model recorded (e.g. "F_TRANSLATION", "C_BAD_STE", "VIRTIO_IOMMU_FAULT_R_MAPPING") for logs
     * and the control API; the architected record itself has gone to the model's event queue.
     */
    record Aborted(String reason) implements DmaResult {}

    /**
     * The access is held (IHI 0070 §3.12.2 stall model) until software resumes or terminates it;
     * {@code stag} identifies it in CMD_RESUME / CMD_STALL_TERM.
     */
    record Stalled(int streamId, int stag) implements DmaResult {}
}
