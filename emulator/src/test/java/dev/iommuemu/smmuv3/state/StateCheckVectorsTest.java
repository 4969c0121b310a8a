package dev.iommuemu.smmuv3.state;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * {@link StateCheck}'s rules as vectors: a state a real SMMU of the profile saved, one change that
 * no SMMU of this model could have made, and the sentence that refuses it (docs/device-state.md).
 */
class StateCheckVectorsTest {
    private record Vector(Smmuv3Profile profile, UnaryOperator<Smmuv3State> change, String refusal) {}

    private static final Smmuv3Profile MAX = Smmuv3Profile.MAX;
    private static final Smmuv3Profile DEF = Smmuv3Profile.DEFAULT;
    private static final EventRecord STALL_RECORD = new EventRecord(EventType.F_TRANSLATION, 1, false, 0, 0, true,
            true, false, false, false, EventRecord.CLASS_IN, 0x10_0000, 0, 0);

    private static Smmuv3State with(Smmuv3State s, Smmuv3State.Controls c, Smmuv3State.GlobalErrors e,
            Smmuv3State.IrqConfig priqIrq, Smmuv3State.QueueRegs cmdq, Smmuv3State.QueueRegs eventq,
            Smmuv3State.QueueRegs priq, List<Smmuv3State.HeldStall> stalls, int cursor, List<EventRecord> pending,
            boolean sfm) {
        return new Smmuv3State(s.profile(), c, e, s.gerrorIrq(), s.eventqIrq(), priqIrq, s.streamTable(), cmdq, eventq,
                priq, stalls, cursor, pending, sfm);
    }

    private static UnaryOperator<Smmuv3State> controls(UnaryOperator<Smmuv3State.Controls> f) {
        return s -> with(s, f.apply(s.controls()), s.errors(), s.priqIrq(), s.cmdq(), s.eventq(), s.priq(), s.stalls(),
                s.stagCursor(), s.pendingStallRecords(), s.serviceFailure());
    }

    private static UnaryOperator<Smmuv3State> cr0(long cr0) {
        return controls(c -> new Smmuv3State.Controls(cr0, cr0, c.cr1(), c.cr2(), c.gbpa(), c.irqCtrl(), c.irqCtrlAck()));
    }

    private static UnaryOperator<Smmuv3State> gerror(long g) {
        return s -> with(s, s.controls(), new Smmuv3State.GlobalErrors(g, s.errors().gerrorn()), s.priqIrq(), s.cmdq(),
                s.eventq(), s.priq(), s.stalls(), s.stagCursor(), s.pendingStallRecords(), s.serviceFailure());
    }

    private static UnaryOperator<Smmuv3State> stalls(List<Smmuv3State.HeldStall> h, int cursor) {
        return s -> with(s, s.controls(), s.errors(), s.priqIrq(), s.cmdq(), s.eventq(), s.priq(), h, cursor,
                s.pendingStallRecords(), s.serviceFailure());
    }

    private static UnaryOperator<Smmuv3State> pending(List<EventRecord> p) {
        return s -> with(s, s.controls(), s.errors(), s.priqIrq(), s.cmdq(), s.eventq(), s.priq(), s.stalls(),
                s.stagCursor(), p, s.serviceFailure());
    }

    private static UnaryOperator<Smmuv3State> sfm() {
        return s -> with(s, s.controls(), s.errors(), s.priqIrq(), s.cmdq(), s.eventq(), s.priq(), s.stalls(),
                s.stagCursor(), s.pendingStallRecords(), true);
    }

    private static Smmuv3State.HeldStall stall(int sid, int ssid, int stag) {
        return new Smmuv3State.HeldStall(sid, ssid, stag, 0x10_0000, DmaAccess.READ);
    }

    private static final long ENABLED = CR0_SMMUEN.mask() | CR0_CMDQEN.mask() | CR0_EVENTQEN.mask();

    private static final List<Vector> VECTORS = List.of(
            new Vector(DEF, s -> with(s, s.controls(), s.errors(), s.priqIrq(), s.cmdq(), s.eventq(),
                    new Smmuv3State.QueueRegs(0x38_0002, 0, 0), s.stalls(), 0, List.of(), false),
                    "the saved SMMU_PRIQ_BASE is 0x380002 but profile 'default' does not have that register"
                            + " (IHI 0070 §6.3: RES0 without the feature)"),
            new Vector(MAX, s -> with(s, s.controls(), s.errors(), new Smmuv3State.IrqConfig(3, 0, 0), s.cmdq(),
                    s.eventq(), s.priq(), s.stalls(), 0, List.of(), false),
                    "the saved SMMU_PRIQ_IRQ_CFG0 (0x3) sets bits 0x3 outside its fields, which the SMMU never holds"
                            + " (IHI 0070 §6.3: RES0)"),
            new Vector(DEF, gerror(GERROR_MSI_GERROR_ABT_ERR.mask()),
                    "the saved SMMU_GERROR (0x80) has errors 0x80 that an SMMU of profile 'default' never raises"
                            + " (IHI 0070 §6.3 SMMU_GERROR)"),
            new Vector(MAX, gerror(GERROR_CMDQP_ERR.mask()),
                    "the saved SMMU_GERROR (0x200) has errors 0x200 that an SMMU of profile 'max' never raises"
                            + " (IHI 0070 §6.3 SMMU_GERROR)"),
            new Vector(MAX, s -> with(s, s.controls(), s.errors(), s.priqIrq(),
                    new Smmuv3State.QueueRegs(s.cmdq().base(), 0, CMDQ_CONS_ERR.insert(0, 5)), s.eventq(), s.priq(),
                    s.stalls(), 0, List.of(), false),
                    "the saved SMMU_CMDQ_CONS.ERR is 5, which is no command error code (IHI 0070 §4.1.1: 0 to 3)"),
            new Vector(MAX, controls(c -> new Smmuv3State.Controls(c.cr0(), c.cr0ack(), c.cr1(), c.cr2(), c.gbpa(), 4, 0)),
                    "the saved SMMU_IRQ_CTRLACK (0x0) differs from SMMU_IRQ_CTRL (0x4), but this model acknowledges"
                            + " every IRQ_CTRL write at once (IHI 0070 §6.3 SMMU_IRQ_CTRLACK)"),
            new Vector(DEF, cr0(ENABLED | CR0_PRIQEN.mask()),
                    "the saved state enables the PRI queue but profile 'default' has no PRI (IHI 0070 §6.3 SMMU_IDR0.PRI)"),
            new Vector(DEF, cr0(ENABLED | CR0_ATSCHK.mask()),
                    "the saved SMMU_CR0 sets ATSCHK but profile 'default' has no ATS (IHI 0070 §6.3 SMMU_CR0)"),
            new Vector(MAX, cr0(ENABLED | CR0_VMW.insert(0, 1)),
                    "the saved SMMU_CR0 sets VMW but this SMMU has no VMID wildcards (IHI 0070 §6.3 SMMU_IDR0.VMW)"),
            new Vector(DEF, controls(c -> new Smmuv3State.Controls(c.cr0(), c.cr0ack(), c.cr1(), 1, c.gbpa(), c.irqCtrl(),
                    c.irqCtrlAck())),
                    "the saved SMMU_CR2 sets E2H but profile 'default' has no Hyp (IHI 0070 §6.3 SMMU_CR2)"),
            new Vector(MAX, controls(c -> new Smmuv3State.Controls(c.cr0(), c.cr0ack(), c.cr1(), c.cr2(),
                    c.gbpa() | GBPA_UPDATE.mask(), c.irqCtrl(), c.irqCtrlAck())),
                    "the saved SMMU_GBPA has Update set, but an update completes at once here (IHI 0070 §6.3 SMMU_GBPA)"),
            new Vector(DEF, stalls(List.of(stall(1, -1, 0)), 1),
                    "the saved state holds stalled transactions but profile 'default' has no stall model"
                            + " (IHI 0070 §6.3 SMMU_IDR0.STALL_MODEL)"),
            new Vector(MAX, s -> cr0(CR0_CMDQEN.mask()).apply(stalls(List.of(stall(1, -1, 0)), 1).apply(s)),
                    "the saved state holds stalled transactions with the SMMU disabled or in service failure mode,"
                            + " where every stall is terminated (IHI 0070 §3.12.2, §12.3)"),
            new Vector(MAX, s -> sfm().apply(stalls(List.of(stall(1, -1, 0)), 1).apply(s)),
                    "the saved state holds stalled transactions with the SMMU disabled or in service failure mode,"
                            + " where every stall is terminated (IHI 0070 §3.12.2, §12.3)"),
            new Vector(MAX, stalls(List.of(stall(1, -1, 4), stall(1, 3, 4)), 5),
                    "the saved state holds two stalled transactions of StreamID 0x1 with STAG 4, but a STAG is unique"
                            + " among a stream's stalls (IHI 0070 §4.7.1)"),
            new Vector(MAX, stalls(List.of(stall(1 << 20, -1, 0)), 1),
                    "the saved stalled transaction with STAG 0 has StreamID 0x100000, beyond the 20 bits of"
                            + " SMMU_IDR1.SIDSIZE"),
            new Vector(MAX, stalls(List.of(), 0x10001), "the saved STAG cursor 65537 is outside 0 to 65536"),
            new Vector(MAX, s -> cr0(ENABLED & ~CR0_EVENTQEN.mask()).apply(pending(List.of(new EventRecord(
                    EventType.C_BAD_STE, 1, false, 0, 0, true, false, false, false, false, 0, 0, 0, 0))).apply(s)),
                    "a saved stall record waiting for the Event queue is a C_BAD_STE record, which never waits"
                            + " (IHI 0070 §7.2.1, §3.12.2)"),
            new Vector(MAX, s -> cr0(ENABLED & ~CR0_EVENTQEN.mask()).apply(pending(List.of(new EventRecord(
                    EventType.F_TRANSLATION, 1, false, 0, 0, true, false, false, false, false, 3, 0, 0, 0))).apply(s)),
                    "a saved stall record waiting for the Event queue has CLASS 3, which is none of CD, TT and IN"
                            + " (IHI 0070 §7.3.13)"),
            new Vector(MAX, pending(List.of(STALL_RECORD)),
                    "the saved state holds 1 stall record waiting for an Event queue that is writable, but this SMMU"
                            + " writes it as soon as it is (IHI 0070 §7.2.1)"));

    @Test
    void eachImpossibleChangeIsRefusedWithItsSentence() {
        for (Vector v : VECTORS) {
            Smmuv3State good = new SmmuWorld(v.profile()).smmu.saveState();
            assertNull(StateCheck.refusal(good, v.profile()));
            assertEquals(v.refusal(), StateCheck.refusal(v.change().apply(good), v.profile()));
        }
    }

    @Test
    void theWaitingStallRecordOfADisabledEventQueueAndAFullOneAreAccepted() {
        Smmuv3State good = new SmmuWorld(MAX).smmu.saveState();
        assertNull(StateCheck.refusal(cr0(ENABLED & ~CR0_EVENTQEN.mask()).apply(pending(List.of(STALL_RECORD)).apply(good)),
                MAX));
        // EVENTQ_PROD and _CONS with the same index and opposite wrap: full (§3.5).
        long full = 1L << SmmuWorld.EVTQ_LOG2;
        Smmuv3State fullQueue = with(good, good.controls(), good.errors(), good.priqIrq(), good.cmdq(),
                new Smmuv3State.QueueRegs(good.eventq().base(), full, 0), good.priq(), good.stalls(), 0,
                List.of(STALL_RECORD), false);
        assertNull(StateCheck.refusal(fullQueue, MAX));
    }
}
