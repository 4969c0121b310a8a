package dev.iommuemu.smmuv3.state;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import java.util.List;

/**
 * A snapshot of an SMMUv3's architectural state (IHI 0070 §6 registers, §3.12.2 stalled
 * transactions, §12.3 service failure mode), as {@link dev.iommuemu.smmuv3.Smmuv3#saveState()}
 * takes it. Register values are the architected encodings (§6.3), as a guest would read them.
 *
 * <p>Not part of it, deliberately:
 * <ul>
 *   <li>the configuration cache and the TLB: IHI 0070 §3.21 lets an SMMU evict cached structures
 *       and translations at any time, and a guest that invalidates correctly cannot tell; a
 *       restored SMMU behaves as if every cache had just been invalidated;</li>
 *   <li>the ID registers (IDR0-5, IIDR, AIDR), STATUSR and AGBPA: constants of the profile, kept
 *       only as {@link #profile()} to check that the state is restored into the same SMMU;</li>
 *   <li>counters (commands consumed, events written and lost, TLB hits), strict mode's findings:
 *       diagnostics no guest can read;</li>
 *   <li>the invalidations held for the VMM until the next CMD_SYNC: always sent at the end of the
 *       batch of commands, so none is pending between two MMIO accesses.</li>
 * </ul>
 *
 * @param profile             the SMMU the state belongs to (its ID registers)
 * @param controls            CR0, CR0ACK, CR1, CR2, GBPA, IRQ_CTRL, IRQ_CTRLACK
 * @param errors              GERROR and GERRORN
 * @param gerrorIrq           SMMU_GERROR_IRQ_CFG0-2
 * @param eventqIrq           SMMU_EVENTQ_IRQ_CFG0-2
 * @param priqIrq             SMMU_PRIQ_IRQ_CFG0-2
 * @param streamTable         SMMU_STRTAB_BASE and SMMU_STRTAB_BASE_CFG
 * @param cmdq                SMMU_CMDQ_BASE, _PROD, _CONS (with CONS.ERR)
 * @param eventq              SMMU_EVENTQ_BASE, _PROD (with OVFLG), _CONS (with OVACKFLG)
 * @param priq                SMMU_PRIQ_BASE, _PROD (with OVFLG), _CONS (with OVACKFLG)
 * @param stalls              the stalled transactions waiting for CMD_RESUME or CMD_STALL_TERM, oldest first
 * @param stagCursor          where the next STAG is looked for (decides the STAG of the next stall)
 * @param pendingStallRecords stall event records waiting for the Event queue to become writable (§7.2.1), oldest first
 * @param serviceFailure      service failure mode (§12.3), left only by a reset
 */
public record Smmuv3State(
        ProfileId profile,
        Controls controls,
        GlobalErrors errors,
        IrqConfig gerrorIrq,
        IrqConfig eventqIrq,
        IrqConfig priqIrq,
        StreamTableBase streamTable,
        QueueRegs cmdq,
        QueueRegs eventq,
        QueueRegs priq,
        List<HeldStall> stalls,
        int stagCursor,
        List<EventRecord> pendingStallRecords,
        boolean serviceFailure) {

    public Smmuv3State {
        stalls = List.copyOf(stalls);
        pendingStallRecords = List.copyOf(pendingStallRecords);
    }

    /** The profile's name and ID register values (§6.3 SMMU_IDR0-5, SMMU_IIDR, SMMU_AIDR). */
    public record ProfileId(String name, int idr0, int idr1, int idr2, int idr3, int idr4, int idr5, int iidr,
            int aidr) {}

    /** §6.3 SMMU_CR0, CR0ACK, CR1, CR2, GBPA, IRQ_CTRL, IRQ_CTRLACK (32-bit values). */
    public record Controls(long cr0, long cr0ack, long cr1, long cr2, long gbpa, long irqCtrl, long irqCtrlAck) {}

    /** §6.3 SMMU_GERROR and SMMU_GERRORN: an error is active while their bits differ. */
    public record GlobalErrors(long gerror, long gerrorn) {}

    /** An interrupt's MSI configuration: §6.3 SMMU_*_IRQ_CFG0 (address), CFG1 (data), CFG2 (attributes). */
    public record IrqConfig(long cfg0, long cfg1, long cfg2) {}

    /** §6.3 SMMU_STRTAB_BASE and SMMU_STRTAB_BASE_CFG. */
    public record StreamTableBase(long base, long cfg) {}

    /** A queue's §6.3 SMMU_*Q_BASE, _PROD and _CONS: index, wrap and the error / overflow fields. */
    public record QueueRegs(long base, long prod, long cons) {}

    /**
     * A transaction held by the stall fault model (§3.12.2) until CMD_RESUME or CMD_STALL_TERM:
     * StreamID, SubstreamID ({@link dev.iommuemu.dma.IommuModel#NO_SUBSTREAM} without one), STAG,
     * the input address and the access.
     */
    public record HeldStall(int streamId, int substreamId, int stag, long iova, DmaAccess access) {}
}
