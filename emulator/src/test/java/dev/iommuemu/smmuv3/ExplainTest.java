package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.pagetable.FaultClass;
import dev.iommuemu.pagetable.WalkObserver;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.inspect.WalkExplanation;
import dev.iommuemu.smmuv3.inspect.WalkExplanation.DecidedBy;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Smmuv3#explain: the device's own decisions, explained without changing anything the guest sees. */
class ExplainTest {
    private static final int SID = 3;
    private static final long CD0 = Harness.CDS;

    private static long s1Setup(Harness h, long[] cd) {
        long root = h.tables.s1Root();
        h.tables.map(root, 0x7f00_1000L, 0x8000_5000L, PageTables.S1_RW);
        h.tables.map(root, 0x7f00_2000L, 0x8000_6000L, PageTables.AF | PageTables.SH_INNER | PageTables.S1_AP_RO_ALL);
        h.tables.map(root, 0x7f00_3000L, 0x8000_7000L, PageTables.SH_INNER | PageTables.S1_AP_RW_ALL); // AF == 0
        Cd.TTB0.set(cd, root >>> 4);
        h.cd(CD0, cd);
        h.ste(SID, Harness.s1Ste(CD0, 0));
        return root;
    }

    private static byte[] bytes(Harness h, long addr, int len) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i += 8) {
            long v = h.mem.get64(addr + i);
            for (int j = 0; j < 8; j++) {
                b[i + j] = (byte) (v >>> (8 * j));
            }
        }
        return b;
    }

    @Test
    void explainingFaultsRecordsNothingFillsNothingWritesNothing() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable(); // MAX: IDR0.HTTU == 2
        long[] cd = Harness.cd(0, 7);
        Cd.HA.set(cd, 1); // hardware Access flag updates (IHI 0070 §3.13): an explained walk must not make them
        long root = s1Setup(h, cd);
        long afLeaf = h.tables.leaf(root, 0x7f00_3000L, 3);
        long prod = h.read(EVENTQ_PROD.offset());
        byte[] queue = bytes(h, Harness.EVTQ, 32 << Harness.EVTQ_LOG2);
        byte[] tables = bytes(h, Harness.TABLES, 0x8000);
        Smmuv3.Stats before = h.smmu.stats();

        WalkExplanation unmapped = h.smmu.explain(SID, -1, 0x7f00_9000L, DmaAccess.READ);
        WalkExplanation readOnly = h.smmu.explain(SID, -1, 0x7f00_2000L, DmaAccess.WRITE);
        WalkExplanation af = h.smmu.explain(SID, -1, 0x7f00_3010L, DmaAccess.READ);

        assertEquals(prod, h.read(EVENTQ_PROD.offset()), "EVENTQ_PROD unchanged");
        assertArrayEquals(queue, bytes(h, Harness.EVTQ, 32 << Harness.EVTQ_LOG2), "queue memory unchanged");
        assertArrayEquals(tables, bytes(h, Harness.TABLES, 0x8000), "no descriptor written (AF stays 0)");
        assertEquals(before, h.smmu.stats(), "no event, no cache fill, no TLB hit/miss counted");
        assertEquals(List.of(), h.events());

        WalkExplanation.Fault f = unmapped.result().fault();
        assertEquals("F_TRANSLATION", f.type());
        assertEquals(1, f.stage());
        assertEquals(3, f.level());
        assertEquals(FaultClass.IN, f.faultClass());
        assertEquals(h.tables.leaf(root, 0x7f00_9000L, 3), f.descriptorAddress());
        assertTrue(f.recorded()); // CD.R == 1
        // The record the SMMU would write, word for word (§7.3.13): type 0x10, StreamID 3, RnW, CLASS IN, InputAddr.
        assertArrayEquals(new long[] {0x10 | ((long) SID << 32), (1L << 35) | (2L << 40), 0x7f00_9000L, 0},
                f.event().encode());
        assertEquals(DecidedBy.TRANSLATION_TABLES, unmapped.decidedBy());
        assertEquals(4, unmapped.steps().size());
        assertEquals(WalkObserver.Kind.TABLE, unmapped.steps().get(0).kind());
        assertEquals(root, unmapped.steps().get(0).read().tableBase());
        assertEquals(0, unmapped.steps().get(0).read().index());
        assertEquals(WalkObserver.Kind.INVALID, unmapped.steps().get(3).kind());
        assertEquals((0x7f00_9000L >>> 12) & 511, unmapped.steps().get(3).read().index());

        assertEquals("F_PERMISSION", readOnly.result().fault().type());
        assertEquals(3, readOnly.result().fault().level());

        // The AF update is shown, not made; the walk goes on with the value it would write.
        WalkExplanation.Step leaf = af.steps().get(3);
        assertEquals(afLeaf, leaf.read().physical());
        assertTrue(leaf.updated());
        assertEquals(h.mem.get64(afLeaf) | PageTables.AF, leaf.update());
        assertEquals(0x8000_7010L, af.result().entry().translate(0x7f00_3010L));
        assertEquals(0, h.mem.get64(afLeaf) & PageTables.AF);
        assertFalse(af.steCached());
    }

    @Test
    void aTlbHitSaysSoAndShowsWhatTheTablesGiveNow() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long root = s1Setup(h, Harness.cd(0, 7));
        h.smmu.translate(SID, -1, 0x7f00_1000L, DmaAccess.READ); // fills the configuration cache and the TLB
        h.mem.put64(h.tables.leaf(root, 0x7f00_1000L, 3), 0); // unmapped without a TLBI
        WalkExplanation e = h.smmu.explain(SID, -1, 0x7f00_1234L, DmaAccess.READ);
        assertEquals(DecidedBy.TLB, e.decidedBy());
        assertEquals(0x8000_5234L, e.result().entry().translate(0x7f00_1234L));
        assertEquals("F_TRANSLATION", e.tables().fault().type());
        assertEquals(3, e.tables().fault().level());
        assertTrue(e.steCached());
        assertTrue(e.cdCached());
        assertEquals(WalkObserver.Kind.INVALID, e.steps().get(3).kind());
        // after the TLBI the tables decide
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, 7).command());
        h.sync();
        WalkExplanation after = h.smmu.explain(SID, -1, 0x7f00_1234L, DmaAccess.READ);
        assertEquals(DecidedBy.TRANSLATION_TABLES, after.decidedBy());
        assertEquals("F_TRANSLATION", after.result().fault().type());
        assertNull(after.tables());
    }

    @Test
    void withSmmuenZeroGbpaDecides() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT);
        WalkExplanation e = h.smmu.explain(SID, -1, 0x1234_5678L, DmaAccess.READ);
        assertFalse(e.smmuEnabled());
        assertEquals(DecidedBy.GBPA, e.decidedBy());
        assertTrue(e.result().bypass());
        assertEquals(0x1234_5678L, e.result().entry().translate(0x1234_5678L));
        assertEquals(List.of(), e.steps());
        h.smmu.mmioWrite(GBPA.offset(), 4, GBPA_UPDATE.mask() | GBPA_ABORT.mask());
        WalkExplanation a = h.smmu.explain(SID, -1, 0x1234_5678L, DmaAccess.READ);
        assertEquals("GBPA.ABORT", a.result().fault().type());
        assertNull(a.result().fault().event());
        assertEquals(GBPA_ABORT.mask(), a.gbpa());
    }

    @Test
    void nestedStage2FaultOnAStage1TableFetchNamesClassTtTheIpaAndTheStage2Walk() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long ipaBase = 0x4000_0000L;
        long paBase = 0x8000_0000L;
        long shift = paBase - ipaBase;
        long s2root = h.tables.s2Root(24, 1);
        h.tables.map(s2root, ipaBase, paBase, PageTables.S2_RW, 2); // the first 2 MiB of IPA space only
        PageTables guest = new PageTables(h.mem, paBase + 0x10000);
        long s1root = guest.newTable();
        long va = 0x1_2345_6000L;
        long l1 = guest.newTable();
        h.mem.put64(s1root + ((va >>> 39) & 511) * 8, (l1 - shift) | 3);
        long l2Ipa = 0x4100_0000L; // not mapped by stage 2
        h.mem.put64(l1 + ((va >>> 30) & 511) * 8, l2Ipa | 3);
        long cdIpa = ipaBase + 0x1000;
        h.cd(cdIpa + shift, Harness.cd(s1root - shift, 3));
        long[] ste = Harness.s2Ste(s2root, 4);
        Ste.CONFIG.set(ste, Ste.CONFIG_NESTED);
        Ste.S1CONTEXTPTR.set(ste, cdIpa >>> 6);
        h.ste(SID, ste);

        WalkExplanation e = h.smmu.explain(SID, -1, va, DmaAccess.READ);
        WalkExplanation.Fault f = e.result().fault();
        assertEquals("F_TRANSLATION", f.type());
        assertEquals(2, f.stage());
        assertEquals(FaultClass.TT, f.faultClass());
        assertEquals(l2Ipa + ((va >>> 21) & 511) * 8, f.ipa());
        assertEquals(2, f.level()); // stage 2 starts at level 1 here; the 2 MiB slot at level 2 is invalid
        EventRecord ev = f.event();
        assertEquals(EventType.F_TRANSLATION, ev.type());
        assertTrue(ev.s2());
        assertEquals(EventRecord.CLASS_TT, ev.faultClass());
        assertEquals(Ste.CONFIG_NESTED, e.steConfig());
        // steps: the CD fetch's stage 2 walk (CLASS CD), then stage 1 levels 0 and 1, each with its stage 2 walk
        List<WalkExplanation.Step> s = e.steps();
        assertEquals(FaultClass.CD, s.get(0).read().purpose());
        WalkExplanation.Step s1l0 = s.stream().filter(x -> x.read().stage() == 1).findFirst().orElseThrow();
        assertEquals(0, s1l0.read().level());
        assertEquals(s1root - shift, s1l0.read().tableBase());
        assertEquals(s1root, s1l0.read().physical());
        assertEquals(2, s1l0.stage2().size()); // stage 2 levels 1 and 2 for the table's IPA
        assertEquals(s1root - shift, s1l0.stage2().get(0).read().input());
        assertEquals(WalkObserver.Kind.BLOCK, s1l0.stage2().get(1).kind());
        assertEquals(l1 - shift, s1l0.next());
        // the trailing stage 2 walk of the level 2 table's IPA ends on the invalid descriptor
        WalkExplanation.Step last = s.get(s.size() - 1);
        assertEquals(2, last.read().stage());
        assertEquals(FaultClass.TT, last.read().purpose());
        assertEquals(WalkObserver.Kind.INVALID, last.kind());
        assertEquals(f.descriptorAddress(), last.read().physical());
        assertEquals(List.of(), h.events());
        assertTrue(h.smmu.translate(SID, -1, va, DmaAccess.READ) instanceof DmaResult.Aborted);
        assertArrayEquals(ev.encode(), h.rawEvents().get(0), "the explained record is the one a transaction writes");
    }
}
