package dev.iommuemu.smmuv3.state;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.smmuv3.Smmuv3;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Save and restore of the SMMUv3's architectural state (docs/device-state.md): random state ->
 * save -> restore into a fresh model on the same memory -> the same behaviour as the model that
 * kept running, and refusals of states that are another profile's or could not have been produced.
 * {@code -Diommuemu.state.iterations=N} runs more seeds than the default 200.
 */
class StateRoundTripTest {
    private static final int ITERATIONS = Integer.getInteger("iommuemu.state.iterations", 200);
    /** Every profile, max and default most often. */
    private static final Smmuv3Profile[] PROFILES = {Smmuv3Profile.MAX, Smmuv3Profile.DEFAULT, Smmuv3Profile.MAX,
            Smmuv3Profile.DEFAULT, Smmuv3Profile.MAX52, Smmuv3Profile.S1_ONLY, Smmuv3Profile.S2_ONLY,
            Smmuv3Profile.NESTING_HOST};

    @Test
    void aRestoredSmmuAnswersTheNextOperationsAsTheOriginalDoes() {
        int stalls = 0;
        int pendingRecords = 0;
        int pri = 0;
        for (long seed = 0; seed < ITERATIONS; seed++) {
            Smmuv3Profile p = PROFILES[(int) (seed % PROFILES.length)];
            try {
                Smmuv3State s = roundTrip(seed, p);
                stalls += s.stalls().size();
                pendingRecords += s.pendingStallRecords().size();
                pri += Q_PTR.get(s.priq().prod()) != 0 ? 1 : 0;
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError("seed " + seed + " (profile " + p.name() + ", rerun with this seed): "
                        + e.getMessage(), e);
            }
        }
        // The random guests reached the interesting states (or this test would prove little).
        assertTrue(stalls > 0 && pendingRecords > 0 && pri > 0,
                "stalls " + stalls + ", waiting stall records " + pendingRecords + ", PRI states " + pri);
    }

    /** One seed: a prefix of random actions, save, restore, then the same suffix on both models. */
    private static Smmuv3State roundTrip(long seed, Smmuv3Profile p) {
        SmmuWorld original = new SmmuWorld(p);
        SmmuWorld twin = new SmmuWorld(p); // the same guest on its own memory, to restore into
        Random a = new Random(seed);
        Random b = new Random(seed);
        int prefix = 10 + a.nextInt(120);
        b.nextInt(120);
        for (int i = 0; i < prefix; i++) {
            assertEquals(original.step(a), twin.step(b), "prefix step " + i);
        }
        Smmuv3State saved = twin.smmu.saveState();
        assertEquals(original.smmu.saveState(), saved, "the two runs diverged before the save");

        Smmuv3 restored = twin.replaceModel();
        restored.restoreState(saved);
        assertEquals(saved, restored.saveState());
        assertEquals(original.registerReads(), twin.registerReads());
        original.host.irqs.clear();
        original.host.msis.clear();
        original.host.invalidations.clear();
        original.endpoints.calls.clear();
        twin.host.invalidations.clear(); // the restore told the VMM to drop its cached translations

        // Each saved stall can be resumed on the restored SMMU (CMD_RESUME, §4.7.1).
        for (Smmuv3State.HeldStall h : saved.stalls()) {
            long[] resume = Command.build(Command.Op.CMD_RESUME).set(Command.SID, h.streamId())
                    .set(Command.RESUME_STAG, h.stag()).set(Command.RESUME_AC, Command.RESUME_RETRY).words();
            assertEquals(original.publish(resume), twin.publish(resume));
            if (!saved.serviceFailure() && !GERROR_CMDQ_ERR.isSet(saved.errors().gerror() ^ saved.errors().gerrorn())
                    && CR0_CMDQEN.isSet(saved.controls().cr0ack())) {
                String call = "stall sid=" + h.streamId() + " stag=" + h.stag() + " retry=true";
                assertTrue(twin.endpoints.calls.contains(call), call + " in " + twin.endpoints.calls);
            }
        }
        Random c = new Random(~seed);
        Random d = new Random(~seed);
        for (int i = 0; i < 60; i++) {
            assertEquals(original.step(c), twin.step(d), "step " + i + " after the restore");
        }
        assertEquals(original.registerReads(), twin.registerReads());
        assertEquals(original.writtenMemory(), twin.writtenMemory());
        assertEquals(original.host.irqs, twin.host.irqs);
        assertEquals(msis(original), msis(twin));
        assertEquals(original.host.invalidations, twin.host.invalidations);
        assertEquals(original.endpoints.calls, twin.endpoints.calls);
        assertEquals(original.smmu.saveState(), twin.smmu.saveState());
        return saved;
    }

    private static List<String> msis(SmmuWorld w) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < w.host.msis.size(); i++) {
            out.add(Long.toHexString(w.host.msis.get(i)[0]) + "=" + w.host.msis.get(i)[1] + " " + w.host.msiSources.get(i));
        }
        return out;
    }

    @Test
    void aStallSavedWhileTheEventQueueWasDisabledIsRecordedAndResumedAfterTheRestore() {
        SmmuWorld w = new SmmuWorld(Smmuv3Profile.MAX);
        w.smmu.mmioWrite(CR0.offset(), 4, CR0_SMMUEN.mask() | CR0_CMDQEN.mask()); // EVENTQEN == 0
        DmaResult.Stalled st = (DmaResult.Stalled) w.smmu.translate(1, -1, 0x10_0000, DmaAccess.WRITE);
        Smmuv3State saved = w.smmu.saveState();
        assertEquals(List.of(new Smmuv3State.HeldStall(1, -1, st.stag(), 0x10_0000, DmaAccess.WRITE)), saved.stalls());
        assertEquals(1, saved.pendingStallRecords().size());

        Smmuv3 fresh = w.replaceModel();
        fresh.restoreState(saved);
        // §7.2.1: enabling the Event queue writes the held record: F_TRANSLATION, Stall, the STAG.
        fresh.mmioWrite(CR0.offset(), 4, CR0_SMMUEN.mask() | CR0_CMDQEN.mask() | CR0_EVENTQEN.mask());
        byte[] rec = new byte[32];
        w.mem.read(SmmuWorld.EVTQ, rec, 0, 32);
        EventRecord want = new EventRecord(EventType.F_TRANSLATION, 1, false, 0, st.stag(), true, false, false, false,
                false, EventRecord.CLASS_IN, 0x10_0000, 0, 0);
        assertEquals(java.util.HexFormat.of().formatHex(want.bytes()), java.util.HexFormat.of().formatHex(rec));
        assertEquals(1, Q_PTR.get(fresh.mmioRead(EVENTQ_PROD.offset(), 4)));
        w.publish(Command.build(Command.Op.CMD_RESUME).set(Command.SID, 1).set(Command.RESUME_STAG, st.stag())
                .set(Command.RESUME_AC, Command.RESUME_RETRY).words());
        assertEquals(List.of("stall sid=1 stag=" + st.stag() + " retry=true"), w.endpoints.calls);
        assertEquals(0, fresh.saveState().stalls().size());
    }

    @Test
    void aStateOfAnotherProfileIsRefusedAndChangesNothing() {
        Smmuv3State saved = new SmmuWorld(Smmuv3Profile.MAX).smmu.saveState();
        SmmuWorld other = new SmmuWorld(Smmuv3Profile.DEFAULT);
        Smmuv3State before = other.smmu.saveState();
        StateRefusedException e = assertThrows(StateRefusedException.class, () -> other.smmu.restoreState(saved));
        assertEquals("the saved state is for SMMUv3 profile 'max' but this session's profile is 'default'; restore it"
                + " into a session started with --profile max", e.getMessage());
        assertEquals(before, other.smmu.saveState());

        // The same name with other ID registers (arm-smmuv3 stage=1 clears S2P).
        Smmuv3Profile s1 = Smmuv3Profile.MAX.withStages(true, false);
        Smmuv3 narrowed = new Smmuv3(other.mem, other.host, s1);
        e = assertThrows(StateRefusedException.class, () -> narrowed.restoreState(saved));
        assertEquals(String.format("the saved state is for SMMUv3 profile 'max' with SMMU_IDR0 0x%x but this session's"
                + " SMMU_IDR0 is 0x%x (the VMM's properties, such as arm-smmuv3 stage=, differ); restore it into a"
                + " session with the same profile and properties", Smmuv3Profile.MAX.idr0(), s1.idr0()), e.getMessage());
    }

    @Test
    void impossibleStatesAreRefusedWithASentenceAndTheModelIsUnchanged() {
        SmmuWorld w = new SmmuWorld(Smmuv3Profile.MAX);
        w.smmu.translate(1, -1, 0x10_0000, DmaAccess.READ); // a stall, so that there is state to lose
        Smmuv3State good = w.smmu.saveState();
        List<String> reads = w.registerReads();

        // An enabled, healthy command queue with commands the SMMU has not consumed.
        Smmuv3State unconsumed = withCmdq(good, new Smmuv3State.QueueRegs(good.cmdq().base(), 5, 3));
        refused(w, unconsumed, "the saved SMMU_CMDQ_PROD (0x5) and SMMU_CMDQ_CONS (0x3) leave commands unconsumed on an"
                + " enabled command queue without CMDQ_ERR, which this SMMU never does: it consumes commands as they"
                + " are published (IHI 0070 §3.5)", good, reads);
        // An Event queue index beyond the 20-bit pointer field.
        Smmuv3State beyond = new Smmuv3State(good.profile(), good.controls(), good.errors(), good.gerrorIrq(),
                good.eventqIrq(), good.priqIrq(), good.streamTable(), good.cmdq(),
                new Smmuv3State.QueueRegs(good.eventq().base(), 1L << 22, good.eventq().cons()), good.priq(),
                good.stalls(), good.stagCursor(), good.pendingStallRecords(), good.serviceFailure());
        refused(w, beyond, "the saved SMMU_EVENTQ_PROD (0x400000) sets bits 0x400000 outside its fields, which the"
                + " SMMU never holds (IHI 0070 §6.3: RES0)", good, reads);
        // A STAG beyond 16 bits, and more stalls than STALL_MAX.
        List<Smmuv3State.HeldStall> bad = List.of(new Smmuv3State.HeldStall(1, -1, 0x10000, 0, DmaAccess.READ));
        refused(w, withStalls(good, bad), "the saved stalled transaction of StreamID 0x1 has STAG 65536, beyond the 16"
                + " bits of a STAG (IHI 0070 §4.7.1)", good, reads);
        List<Smmuv3State.HeldStall> many = new ArrayList<>();
        for (int i = 0; i < 257; i++) {
            many.add(new Smmuv3State.HeldStall(1, -1, i, 0, DmaAccess.READ));
        }
        refused(w, withStalls(good, many), "the saved state holds 257 stalled transactions but profile 'max' holds at"
                + " most 256 (IHI 0070 §6.3 SMMU_IDR5.STALL_MAX)", good, reads);
        // CR0ACK that does not acknowledge CR0.
        Smmuv3State.Controls c = good.controls();
        Smmuv3State ack = new Smmuv3State(good.profile(), new Smmuv3State.Controls(c.cr0(), 0, c.cr1(), c.cr2(),
                c.gbpa(), c.irqCtrl(), c.irqCtrlAck()), good.errors(), good.gerrorIrq(), good.eventqIrq(),
                good.priqIrq(), good.streamTable(), good.cmdq(), good.eventq(), good.priq(), good.stalls(),
                good.stagCursor(), good.pendingStallRecords(), good.serviceFailure());
        refused(w, ack, "the saved SMMU_CR0ACK (0x0) differs from SMMU_CR0 (0xf), but this model acknowledges every"
                + " CR0 write at once (IHI 0070 §6.3 SMMU_CR0ACK)", good, reads);
    }

    private static void refused(SmmuWorld w, Smmuv3State s, String message, Smmuv3State before, List<String> reads) {
        StateRefusedException e = assertThrows(StateRefusedException.class, () -> w.smmu.restoreState(s));
        assertEquals(message, e.getMessage());
        assertEquals(before, w.smmu.saveState());
        assertEquals(reads, w.registerReads());
    }

    private static Smmuv3State withCmdq(Smmuv3State g, Smmuv3State.QueueRegs q) {
        return new Smmuv3State(g.profile(), g.controls(), g.errors(), g.gerrorIrq(), g.eventqIrq(), g.priqIrq(),
                g.streamTable(), q, g.eventq(), g.priq(), g.stalls(), g.stagCursor(), g.pendingStallRecords(),
                g.serviceFailure());
    }

    private static Smmuv3State withStalls(Smmuv3State g, List<Smmuv3State.HeldStall> stalls) {
        return new Smmuv3State(g.profile(), g.controls(), g.errors(), g.gerrorIrq(), g.eventqIrq(), g.priqIrq(),
                g.streamTable(), g.cmdq(), g.eventq(), g.priq(), stalls, g.stagCursor(), g.pendingStallRecords(),
                g.serviceFailure());
    }
}
