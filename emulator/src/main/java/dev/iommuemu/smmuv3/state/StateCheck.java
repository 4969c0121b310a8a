package dev.iommuemu.smmuv3.state;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;

import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.field.Register;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.cmdq.CommandQueue;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.queue.QueueGeometry;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Whether a saved {@link Smmuv3State} can be restored into an SMMU of a given profile: it must be
 * that profile's, and a state this model could have produced. Every rule names what the model
 * guarantees and where the architecture says so. The answer is a sentence (or {@code null}: the
 * state is acceptable); nothing is changed here.
 */
public final class StateCheck {
    private StateCheck() {}

    /** The fault types the stall model can hold a transaction for (IHI 0070 §3.12.2). */
    private static final Set<EventType> STALLABLE = EnumSet.of(EventType.F_TRANSLATION, EventType.F_ADDR_SIZE,
            EventType.F_ACCESS, EventType.F_PERMISSION);

    /** The GERROR errors this model raises (§6.3 SMMU_GERROR), those of absent features excluded. */
    private static long raisableErrors(Smmuv3Profile p) {
        long m = GERROR_CMDQ_ERR.mask() | GERROR_EVENTQ_ABT_ERR.mask() | GERROR_SFM_ERR.mask();
        if (p.pri()) {
            m |= GERROR_PRIQ_ABT_ERR.mask();
        }
        if (p.msi()) {
            // Any MSI_*_ABT_ERR: the VMM reports aborted MSIs by source (Interrupts.msiAborted).
            m |= GERROR_MSI_CMDQ_ABT_ERR.mask() | GERROR_MSI_EVENTQ_ABT_ERR.mask() | GERROR_MSI_GERROR_ABT_ERR.mask()
                    | GERROR_MSI_PRIQ_ABT_ERR.mask();
        }
        // CMDQP_ERR needs Enhanced Command queues (IDR1.ECMDQ), which no profile has.
        return m;
    }

    /** The saved value of every register the state holds, by register. */
    public static Map<Register, Long> registers(Smmuv3State s) {
        Map<Register, Long> m = new LinkedHashMap<>();
        Smmuv3State.Controls c = s.controls();
        m.put(CR0, c.cr0());
        m.put(CR0ACK, c.cr0ack());
        m.put(CR1, c.cr1());
        m.put(CR2, c.cr2());
        m.put(GBPA, c.gbpa());
        m.put(IRQ_CTRL, c.irqCtrl());
        m.put(IRQ_CTRLACK, c.irqCtrlAck());
        m.put(GERROR, s.errors().gerror());
        m.put(GERRORN, s.errors().gerrorn());
        m.put(GERROR_IRQ_CFG0, s.gerrorIrq().cfg0());
        m.put(GERROR_IRQ_CFG1, s.gerrorIrq().cfg1());
        m.put(GERROR_IRQ_CFG2, s.gerrorIrq().cfg2());
        m.put(STRTAB_BASE, s.streamTable().base());
        m.put(STRTAB_BASE_CFG, s.streamTable().cfg());
        m.put(CMDQ_BASE, s.cmdq().base());
        m.put(CMDQ_PROD, s.cmdq().prod());
        m.put(CMDQ_CONS, s.cmdq().cons());
        m.put(EVENTQ_BASE, s.eventq().base());
        m.put(EVENTQ_PROD, s.eventq().prod());
        m.put(EVENTQ_CONS, s.eventq().cons());
        m.put(EVENTQ_IRQ_CFG0, s.eventqIrq().cfg0());
        m.put(EVENTQ_IRQ_CFG1, s.eventqIrq().cfg1());
        m.put(EVENTQ_IRQ_CFG2, s.eventqIrq().cfg2());
        m.put(PRIQ_BASE, s.priq().base());
        m.put(PRIQ_PROD, s.priq().prod());
        m.put(PRIQ_CONS, s.priq().cons());
        m.put(PRIQ_IRQ_CFG0, s.priqIrq().cfg0());
        m.put(PRIQ_IRQ_CFG1, s.priqIrq().cfg1());
        m.put(PRIQ_IRQ_CFG2, s.priqIrq().cfg2());
        return m;
    }

    /** Why {@code s} cannot be restored into an SMMU of profile {@code p}, or {@code null}. */
    public static String refusal(Smmuv3State s, Smmuv3Profile p) {
        String why = profile(s.profile(), p);
        if (why == null) {
            why = registerValues(s, p);
        }
        if (why == null) {
            why = controls(s.controls(), p);
        }
        if (why == null) {
            why = commandQueue(s, p);
        }
        if (why == null) {
            why = stalls(s, p);
        }
        if (why == null) {
            why = pendingRecords(s, p);
        }
        return why;
    }

    private static String profile(Smmuv3State.ProfileId id, Smmuv3Profile p) {
        if (!id.name().equals(p.name())) {
            return "the saved state is for SMMUv3 profile '" + id.name() + "' but this session's profile is '"
                    + p.name() + "'; restore it into a session started with --profile " + id.name();
        }
        int[] saved = {id.idr0(), id.idr1(), id.idr2(), id.idr3(), id.idr4(), id.idr5(), id.iidr(), id.aidr()};
        int[] here = {p.idr0(), p.idr1(), p.idr2(), p.idr3(), p.idr4(), p.idr5(), p.iidr(), p.aidr()};
        Register[] regs = {IDR0, IDR1, IDR2, IDR3, IDR4, IDR5, IIDR, AIDR};
        for (int i = 0; i < regs.length; i++) {
            if (saved[i] != here[i]) {
                return String.format("the saved state is for SMMUv3 profile '%s' with %s 0x%x but this session's %s"
                        + " is 0x%x (the VMM's properties, such as arm-smmuv3 stage=, differ); restore it into a"
                        + " session with the same profile and properties", id.name(), regs[i].name(), saved[i],
                        regs[i].name(), here[i]);
            }
        }
        return null;
    }

    private static String registerValues(Smmuv3State s, Smmuv3Profile p) {
        for (Map.Entry<Register, Long> e : registers(s).entrySet()) {
            Register r = e.getKey();
            long v = e.getValue();
            long stray = r.layout().undeclaredBits(new long[] {v}, 0);
            if (stray != 0) {
                // §6.3: bits outside a register's fields are RES0; the model never stores them.
                return String.format("the saved %s (0x%x) sets bits 0x%x outside its fields, which the SMMU never"
                        + " holds (IHI 0070 §6.3: RES0)", r.name(), v, stray);
            }
            if (!p.hasRegister(r) && v != r.reset()) {
                return String.format("the saved %s is 0x%x but profile '%s' does not have that register"
                        + " (IHI 0070 §6.3: RES0 without the feature)", r.name(), v, p.name());
            }
        }
        long gerror = s.errors().gerror();
        long impossible = gerror & ~raisableErrors(p);
        if (impossible != 0) {
            return String.format("the saved SMMU_GERROR (0x%x) has errors 0x%x that an SMMU of profile '%s' never"
                    + " raises (IHI 0070 §6.3 SMMU_GERROR)", gerror, impossible, p.name());
        }
        int err = CMDQ_CONS_ERR.getInt(s.cmdq().cons());
        if (err > CommandQueue.CERROR_ATC_INV_SYNC) {
            return String.format("the saved SMMU_CMDQ_CONS.ERR is %d, which is no command error code"
                    + " (IHI 0070 §4.1.1: 0 to 3)", err);
        }
        return null;
    }

    private static String controls(Smmuv3State.Controls c, Smmuv3Profile p) {
        // §6.3 SMMU_CR0ACK, SMMU_IRQ_CTRLACK: this model completes every update at once.
        if (c.cr0ack() != c.cr0()) {
            return String.format("the saved SMMU_CR0ACK (0x%x) differs from SMMU_CR0 (0x%x), but this model"
                    + " acknowledges every CR0 write at once (IHI 0070 §6.3 SMMU_CR0ACK)", c.cr0ack(), c.cr0());
        }
        if (c.irqCtrlAck() != c.irqCtrl()) {
            return String.format("the saved SMMU_IRQ_CTRLACK (0x%x) differs from SMMU_IRQ_CTRL (0x%x), but this"
                    + " model acknowledges every IRQ_CTRL write at once (IHI 0070 §6.3 SMMU_IRQ_CTRLACK)",
                    c.irqCtrlAck(), c.irqCtrl());
        }
        if (!p.pri() && (CR0_PRIQEN.isSet(c.cr0()) || IRQ_CTRL_PRIQ_IRQEN.isSet(c.irqCtrl()))) {
            return "the saved state enables the PRI queue but profile '" + p.name() + "' has no PRI"
                    + " (IHI 0070 §6.3 SMMU_IDR0.PRI)";
        }
        if (!p.ats() && CR0_ATSCHK.isSet(c.cr0())) {
            return "the saved SMMU_CR0 sets ATSCHK but profile '" + p.name() + "' has no ATS (IHI 0070 §6.3 SMMU_CR0)";
        }
        if (CR0_VMW.get(c.cr0()) != 0) {
            return "the saved SMMU_CR0 sets VMW but this SMMU has no VMID wildcards (IHI 0070 §6.3 SMMU_IDR0.VMW)";
        }
        if (!p.hyp() && CR2_E2H.isSet(c.cr2())) {
            return "the saved SMMU_CR2 sets E2H but profile '" + p.name() + "' has no Hyp (IHI 0070 §6.3 SMMU_CR2)";
        }
        if (GBPA_UPDATE.isSet(c.gbpa())) {
            return "the saved SMMU_GBPA has Update set, but an update completes at once here (IHI 0070 §6.3 SMMU_GBPA)";
        }
        return null;
    }

    /**
     * The model consumes commands as CMDQ_PROD is written (§3.5): an enabled command queue that is
     * not halted by CMDQ_ERR, outside service failure mode, is always empty between accesses.
     */
    private static String commandQueue(Smmuv3State s, Smmuv3Profile p) {
        boolean enabled = CR0_CMDQEN.isSet(s.controls().cr0ack());
        boolean halted = GERROR_CMDQ_ERR.isSet(s.errors().gerror()) != GERROR_CMDQ_ERR.isSet(s.errors().gerrorn());
        if (!enabled || halted || s.serviceFailure()) {
            return null;
        }
        QueueGeometry q = QueueGeometry.of(s.cmdq().base(), p.cmdqs(), Command.SIZE);
        int prod = (int) Q_PTR.get(s.cmdq().prod());
        int cons = (int) Q_PTR.get(s.cmdq().cons());
        if (!q.empty(prod, cons)) {
            return String.format("the saved SMMU_CMDQ_PROD (0x%x) and SMMU_CMDQ_CONS (0x%x) leave commands"
                    + " unconsumed on an enabled command queue without CMDQ_ERR, which this SMMU never does: it"
                    + " consumes commands as they are published (IHI 0070 §3.5)", prod, cons);
        }
        return null;
    }

    private static String stalls(Smmuv3State s, Smmuv3Profile p) {
        if (s.stagCursor() < 0 || s.stagCursor() > dev.iommuemu.smmuv3.evtq.EventRecord.STAG.valueMask() + 1) {
            return "the saved STAG cursor " + s.stagCursor() + " is outside 0 to 65536";
        }
        if (s.stalls().isEmpty()) {
            return null;
        }
        if (!p.stall()) {
            return "the saved state holds stalled transactions but profile '" + p.name()
                    + "' has no stall model (IHI 0070 §6.3 SMMU_IDR0.STALL_MODEL)";
        }
        if (!CR0_SMMUEN.isSet(s.controls().cr0ack()) || s.serviceFailure()) {
            return "the saved state holds stalled transactions with the SMMU disabled or in service failure mode,"
                    + " where every stall is terminated (IHI 0070 §3.12.2, §12.3)";
        }
        int capacity = Math.max(p.stallMax(), 1);
        if (s.stalls().size() > capacity) {
            return "the saved state holds " + s.stalls().size() + " stalled transactions but profile '" + p.name()
                    + "' holds at most " + capacity + " (IHI 0070 §6.3 SMMU_IDR5.STALL_MAX)";
        }
        Set<Long> seen = new HashSet<>();
        for (Smmuv3State.HeldStall h : s.stalls()) {
            if (h.stag() < 0 || h.stag() > dev.iommuemu.smmuv3.evtq.EventRecord.STAG.valueMask()) { // §7.3 STAG: 16 bits
                return "the saved stalled transaction of StreamID 0x" + Integer.toHexString(h.streamId())
                        + " has STAG " + h.stag() + ", beyond the 16 bits of a STAG (IHI 0070 §4.7.1)";
            }
            String ids = ids(h.streamId(), h.substreamId(), p);
            if (ids != null) {
                return "the saved stalled transaction with STAG " + h.stag() + " has " + ids;
            }
            if (!seen.add(((long) h.streamId() << 16) | h.stag())) {
                return "the saved state holds two stalled transactions of StreamID 0x"
                        + Integer.toHexString(h.streamId()) + " with STAG " + h.stag()
                        + ", but a STAG is unique among a stream's stalls (IHI 0070 §4.7.1)";
            }
        }
        return null;
    }

    private static String ids(int sid, int ssid, Smmuv3Profile p) {
        if (p.sidBits() < 32 && Integer.toUnsignedLong(sid) >= 1L << p.sidBits()) {
            return "StreamID 0x" + Integer.toHexString(sid) + ", beyond the " + p.sidBits()
                    + " bits of SMMU_IDR1.SIDSIZE";
        }
        if (ssid != IommuModel.NO_SUBSTREAM && (ssid < 0 || ssid >= 1L << p.ssidBits())) {
            return "SubstreamID 0x" + Integer.toHexString(ssid) + ", beyond the " + p.ssidBits()
                    + " bits of SMMU_IDR1.SSIDSIZE";
        }
        return null;
    }

    private static String pendingRecords(Smmuv3State s, Smmuv3Profile p) {
        if (s.pendingStallRecords().isEmpty()) {
            return null;
        }
        if (!CR0_SMMUEN.isSet(s.controls().cr0ack()) || s.serviceFailure()) {
            return "the saved state holds stall records waiting for the Event queue with the SMMU disabled or in"
                    + " service failure mode, where they are dropped with their stalls (IHI 0070 §3.12.2, §12.3)";
        }
        for (EventRecord e : s.pendingStallRecords()) {
            if (!e.stall() || !STALLABLE.contains(e.type())) {
                return "a saved stall record waiting for the Event queue is a " + e.type() + " record"
                        + (e.stall() ? "" : " without Stall") + ", which never waits (IHI 0070 §7.2.1, §3.12.2)";
            }
            if (e.faultClass() < EventRecord.CLASS_CD || e.faultClass() > EventRecord.CLASS_IN) {
                return "a saved stall record waiting for the Event queue has CLASS " + e.faultClass()
                        + ", which is none of CD, TT and IN (IHI 0070 §7.3.13)";
            }
            if (e.stag() < 0 || e.stag() > dev.iommuemu.smmuv3.evtq.EventRecord.STAG.valueMask()) {
                return "a saved stall record waiting for the Event queue has STAG " + e.stag()
                        + ", beyond the 16 bits of a STAG (IHI 0070 §7.3.13)";
            }
            String ids = ids(e.streamId(), e.ssv() ? e.substreamId() : IommuModel.NO_SUBSTREAM, p);
            if (ids != null) {
                return "a saved stall record waiting for the Event queue has " + ids;
            }
        }
        // §7.2.1: held records are written as soon as the Event queue is writable; the model
        // writes them in the access that makes it so.
        long ack = s.controls().cr0ack();
        boolean abt = GERROR_EVENTQ_ABT_ERR.isSet(s.errors().gerror())
                != GERROR_EVENTQ_ABT_ERR.isSet(s.errors().gerrorn());
        QueueGeometry q = QueueGeometry.of(s.eventq().base(), p.eventqs(), EventRecord.SIZE);
        boolean writable = CR0_EVENTQEN.isSet(ack) && !abt
                && !q.full((int) Q_PTR.get(s.eventq().prod()), (int) Q_PTR.get(s.eventq().cons()));
        if (writable) {
            int n = s.pendingStallRecords().size();
            return "the saved state holds " + n + " stall record" + (n == 1 ? "" : "s") + " waiting for an Event"
                    + " queue that is writable, but this SMMU writes " + (n == 1 ? "it" : "them")
                    + " as soon as it is (IHI 0070 §7.2.1)";
        }
        return null;
    }
}
