package dev.iommuemu.smmuv3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.FaultClass;
import dev.iommuemu.pagetable.FaultType;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.smmuv3.cache.CoherencyViolation;
import dev.iommuemu.smmuv3.cache.Remedies;
import dev.iommuemu.smmuv3.cache.ReportedEntries;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.tlb.Regime;
import dev.iommuemu.tlb.TlbEntry;
import dev.iommuemu.tlb.TlbInvalidation;
import dev.iommuemu.tlb.TlbTag;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Strict mode's findings (IHI 0070 §3.21 structure ownership, §4.3 CFGI, §4.4 TLBI): each missed
 * invalidation is one finding, handed to the listener as it is made, naming the exact invalidation
 * that would have removed the stale entry.
 */
class StrictFindingsTest {
    static final int SID = 3;
    static final long CD0 = Harness.CDS;
    static final long VA = 0x4000_0000L;

    private static Harness strict(List<CoherencyViolation> seen) {
        Harness h = new Harness(Smmuv3Profile.DEFAULT, Smmuv3.Options.DEFAULT.withStrict(true)).enable();
        h.smmu.setViolationListener(seen::add);
        return h;
    }

    private static long read(Harness h, long va) {
        return ((DmaResult.Translated) h.smmu.translate(SID, -1, va, DmaAccess.READ)).entry().translate(va);
    }

    @Test
    void aStaleTlbEntryIsOneFindingUntilItIsInvalidatedAndRefilled() {
        List<CoherencyViolation> seen = new ArrayList<>();
        Harness h = strict(seen);
        long root = h.tables.s1Root();
        h.tables.map(root, VA, 0x9000_0000L, PageTables.S1_RW);
        h.cd(CD0, Harness.cd(root, 5));
        h.ste(SID, Harness.s1Ste(CD0, 0));
        assertEquals(0x9000_0010L, read(h, VA + 0x10));
        h.mem.put64(h.tables.leaf(root, VA, 3), 0xa000_0000L | PageTables.S1_RW | PageTables.PAGE);
        for (int i = 0; i < 5; i++) {
            assertEquals(0x9000_0020L, read(h, VA + 0x20)); // the stale entry is used, as hardware would (§3.17)
        }
        assertEquals(1, seen.size(), "one missed TLBI, one finding: " + seen);
        CoherencyViolation v = seen.get(0);
        assertEquals(CoherencyViolation.Kind.TLB, v.kind());
        assertEquals(SID, v.streamId());
        assertEquals(-1, v.ssid());
        assertEquals(VA + 0x20, v.address());
        assertEquals("0x90000020 " + Perm.toString(Perm.UR | Perm.UW | Perm.UX | Perm.PR | Perm.PW), v.stale());
        assertTrue(v.inMemory().startsWith("Translation[0x40000020 -> 0xa0000020,"), v.inMemory());
        assertEquals("CMD_TLBI_NH_VA VMID 0x0 ASID 0x5 VA 0x40000000 (or CMD_TLBI_NH_ASID VMID 0x0 ASID 0x5) then CMD_SYNC",
                v.remedy());
        assertEquals(List.of(v), h.smmu.coherencyViolations());

        // The remedy, carried out, removes the entry; the next miss refills it from the tables.
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 5).set(Command.TLBI_ADDR, VA >>> 12).command());
        h.sync();
        assertEquals(0xa000_0020L, read(h, VA + 0x20));
        assertEquals(1, seen.size());
        // A second missed TLBI on the refilled entry is a new finding.
        h.mem.put64(h.tables.leaf(root, VA, 3), 0xb000_0000L | PageTables.S1_RW | PageTables.PAGE);
        read(h, VA);
        read(h, VA);
        assertEquals(2, seen.size());
        assertEquals(2, h.smmu.coherencyViolationCount());
    }

    @Test
    void staleCdAndSteNameTheirCfgi() {
        List<CoherencyViolation> seen = new ArrayList<>();
        Harness h = strict(seen);
        long root = h.tables.s1Root();
        h.tables.map(root, VA, 0x9000_0000L, PageTables.S1_RW);
        h.cd(CD0, Harness.cd(root, 5));
        h.ste(SID, Harness.s1Ste(CD0, 0));
        read(h, VA);
        // The CD's ASID changes without CMD_CFGI_CD: the cached CD (ASID 5) goes on being used.
        long[] cd = Harness.cd(root, 6);
        h.cd(CD0, cd);
        read(h, VA);
        read(h, VA);
        assertEquals(1, seen.size(), seen.toString());
        CoherencyViolation c = seen.get(0);
        assertEquals(CoherencyViolation.Kind.CD, c.kind());
        assertEquals(0, c.ssid(), "CD index 0: the stream's only CD (S1CDMax 0)");
        assertEquals(CD0, c.address());
        assertEquals("CMD_CFGI_CD SID 0x3 SSID 0x0 (or CMD_CFGI_CD_ALL SID 0x3) then CMD_SYNC", c.remedy());
        assertEquals("CD{T0SZ=0x10, EPD1=0x1, V=0x1, IPS=0x5, AA64=0x1, R=0x1, A=0x1, ASID=0x5, TTB0=0x100000}", c.stale());
        assertEquals("CD{T0SZ=0x10, EPD1=0x1, V=0x1, IPS=0x5, AA64=0x1, R=0x1, A=0x1, ASID=0x6, TTB0=0x100000}", c.inMemory());
        assertEquals("CD at SID 0x3 SSID 0x0 address 0x400000: the SMMU holds " + c.stale() + ", memory holds "
                + c.inMemory() + "; " + c.remedy(), c.detail());

        // The STE points at another CD table without CMD_CFGI_STE.
        h.ste(SID, Harness.s1Ste(CD0 + 0x1000, 0));
        read(h, VA);
        read(h, VA);
        assertEquals(2, seen.size(), seen.toString());
        CoherencyViolation s = seen.get(1);
        assertEquals(CoherencyViolation.Kind.STE, s.kind());
        assertEquals(-1, s.ssid());
        assertEquals(Harness.STRTAB + SID * 64L, s.address());
        assertEquals("CMD_CFGI_STE SID 0x3 (or a CMD_CFGI_STE_RANGE / CMD_CFGI_ALL covering it) then CMD_SYNC", s.remedy());
        // CMD_CFGI_STE removes the STE and the stream's CDs (§4.3.1): nothing is stale any more.
        h.cfgiSte(SID);
        h.cd(CD0 + 0x1000, Harness.cd(root, 6));
        read(h, VA);
        assertEquals(2, seen.size());
    }

    @Test
    void aDriverThatInvalidatesHasNoFindings() {
        List<CoherencyViolation> seen = new ArrayList<>();
        Harness h = strict(seen);
        long root = h.tables.s1Root();
        h.tables.map(root, VA, 0x9000_0000L, PageTables.S1_RW);
        h.cd(CD0, Harness.cd(root, 5));
        h.ste(SID, Harness.s1Ste(CD0, 0));
        read(h, VA);
        h.mem.put64(h.tables.leaf(root, VA, 3), 0xa000_0000L | PageTables.S1_RW | PageTables.PAGE);
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 5).set(Command.TLBI_ADDR, VA >>> 12).command());
        h.sync();
        assertEquals(0xa000_0000L, read(h, VA));
        h.cd(CD0, Harness.cd(root, 6));
        h.cmd(Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, SID).command());
        h.sync();
        read(h, VA);
        h.ste(SID, Harness.s1Ste(CD0, 0));
        h.cfgiSte(SID);
        read(h, VA);
        assertEquals(List.of(), seen);
        assertEquals(0, h.smmu.coherencyViolationCount());
    }

    @Test
    void aStaleStage2EntryNamesS2Ipa() {
        List<CoherencyViolation> seen = new ArrayList<>();
        Harness h = strict(seen);
        long s2root = h.tables.s2Root(24, 1);
        h.tables.map(s2root, 0x1234_5000L, 0x5555_5000L, PageTables.S2_RW);
        h.ste(SID, Harness.s2Ste(s2root, 9));
        assertEquals(0x5555_5abcL, read(h, 0x1234_5abcL));
        h.tables.map(s2root, 0x1234_5000L, 0x6666_6000L, PageTables.S2_RW); // no CMD_TLBI_S2_IPA
        assertEquals(0x5555_5abcL, read(h, 0x1234_5abcL));
        assertEquals(1, seen.size());
        assertEquals("CMD_TLBI_S2_IPA VMID 0x9 IPA 0x12345000 (or CMD_TLBI_S12_VMALL VMID 0x9) then CMD_SYNC",
                seen.get(0).remedy());
        h.cmd(Command.build(Command.Op.CMD_TLBI_S2_IPA).set(Command.TLBI_VMID, 9)
                .set(Command.TLBI_ADDR, 0x1234_5000L >>> 12).command());
        h.sync();
        assertEquals(0x6666_6abcL, read(h, 0x1234_5abcL), "the remedy removed it");
        assertEquals(1, seen.size());
    }

    /**
     * Nested (STE.Config 0b111): a stage 2 change names S2_IPA of the IPA then NH_ALL (§4.4.3.1); a
     * stage 1 change names NH_VA; each, carried out, removes the stale combined entry.
     */
    @Test
    void aStaleNestedEntryNamesTheStageThatChanged() {
        List<CoherencyViolation> seen = new ArrayList<>();
        Harness h = strict(seen);
        long s2root = h.tables.s2Root(24, 1);
        long s1root = h.tables.s1Root();
        h.tables.map(s1root, VA, 0x3000_0000L, PageTables.S1_RW);
        // Stage 2: the CD and the stage 1 tables at the same IPAs as PAs (2MB blocks), the output page.
        h.tables.map(s2root, CD0 & ~0x1f_ffffL, CD0 & ~0x1f_ffffL, PageTables.S2_RW, 2);
        h.tables.map(s2root, Harness.TABLES, Harness.TABLES, PageTables.S2_RW, 2);
        h.tables.map(s2root, 0x3000_0000L, 0x5000_0000L, PageTables.S2_RW);
        h.cd(CD0, Harness.cd(s1root, 5));
        long[] ste = Harness.s2Ste(s2root, 9);
        Ste.CONFIG.set(ste, Ste.CONFIG_NESTED);
        Ste.S1CONTEXTPTR.set(ste, CD0 >>> 6);
        h.ste(SID, ste);
        assertEquals(0x5000_0010L, read(h, VA + 0x10));

        h.tables.map(s2root, 0x3000_0000L, 0x5100_0000L, PageTables.S2_RW); // stage 2 changes, no TLBI
        assertEquals(0x5000_0010L, read(h, VA + 0x10));
        assertEquals(1, seen.size(), seen.toString());
        assertEquals("CMD_TLBI_S2_IPA VMID 0x9 IPA 0x30000000 then CMD_TLBI_NH_ALL VMID 0x9 "
                + "(or CMD_TLBI_S12_VMALL VMID 0x9) then CMD_SYNC", seen.get(0).remedy());
        h.cmd(Command.build(Command.Op.CMD_TLBI_S2_IPA).set(Command.TLBI_VMID, 9)
                .set(Command.TLBI_ADDR, 0x3000_0000L >>> 12).command());
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_ALL).set(Command.TLBI_VMID, 9).command());
        h.sync();
        assertEquals(0x5100_0010L, read(h, VA + 0x10));

        h.tables.map(s2root, 0x3000_1000L, 0x5200_0000L, PageTables.S2_RW);
        h.tables.map(s1root, VA, 0x3000_1000L, PageTables.S1_RW); // stage 1 changes, no TLBI
        assertEquals(0x5100_0010L, read(h, VA + 0x10));
        assertEquals(2, seen.size(), seen.toString());
        assertEquals("CMD_TLBI_NH_VA VMID 0x9 ASID 0x5 VA 0x40000000 (or CMD_TLBI_NH_ASID VMID 0x9 ASID 0x5) then CMD_SYNC",
                seen.get(1).remedy());
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_VMID, 9).set(Command.TLBI_ASID, 5)
                .set(Command.TLBI_ADDR, VA >>> 12).command());
        h.sync();
        assertEquals(0x5200_0010L, read(h, VA + 0x10));
        assertEquals(2, seen.size());
    }

    // ---- the TLB remedy of each regime (§3.17 tags, §4.4 command scope), checked against the TLB's own matching

    private static Translation s1(long va, long pa, boolean global) {
        return new Translation(va, pa, 12, 12, Perm.ALL, 0, global, 3, Translation.NO_LEVEL, pa, 0, Granule.G4K, null,
                pa | 0x403, 0);
    }

    private static Translation nested(long va, long ipa, long pa) {
        return new Translation(va, pa, 12, 12, Perm.ALL, 0, false, 3, 3, ipa, 12, Granule.G4K, Granule.G4K,
                ipa | 0xc03, pa | 0x7c3);
    }

    private static void assertRemedy(TlbEntry e, long input, WalkResult now, String text) {
        assertEquals(text, Remedies.tlb(e, input, now));
        for (TlbInvalidation i : Remedies.tlbCommands(e, input, now)) {
            assertTrue(i.matches(e), Remedies.command(i) + " must remove " + e);
        }
    }

    @Test
    void tlbRemediesNameTheExactCommandForEachRegime() {
        long va = 0x7f00_1234L;
        Translation moved = s1(va, 0x9999_9234L, false);
        assertRemedy(new TlbEntry(new TlbTag(Regime.NH, 2, 0x1e), s1(va, 0x8000_1234L, false)), va, moved,
                "CMD_TLBI_NH_VA VMID 0x2 ASID 0x1e VA 0x7f001000 (or CMD_TLBI_NH_ASID VMID 0x2 ASID 0x1e) then CMD_SYNC");
        // nG == 0: NH_ASID would not remove it (§4.4.2.2); NH_VAA / NH_ALL do.
        TlbEntry global = new TlbEntry(new TlbTag(Regime.NH, 2, 0x1e), s1(va, 0x8000_1234L, true));
        assertFalse(TlbInvalidation.nhAsid(2, 0x1e).matches(global));
        assertRemedy(global, va, moved, "CMD_TLBI_NH_VAA VMID 0x2 VA 0x7f001000 (or CMD_TLBI_NH_ALL VMID 0x2) then CMD_SYNC");
        assertRemedy(new TlbEntry(new TlbTag(Regime.EL2, 0, 0x7), s1(va, 0x8000_1234L, false)), va, moved,
                "CMD_TLBI_EL2_VA ASID 0x7 VA 0x7f001000 (or CMD_TLBI_EL2_ASID ASID 0x7) then CMD_SYNC");
        // EL2 without E2H has no ASIDs: every entry is global.
        assertRemedy(new TlbEntry(new TlbTag(Regime.EL2, 0, TlbTag.NO_ASID), s1(va, 0x8000_1234L, false)), va, moved,
                "CMD_TLBI_EL2_VAA VA 0x7f001000 (or CMD_TLBI_EL2_ALL) then CMD_SYNC");
        Translation s2 = new Translation(va, 0x8000_1234L, 12, 12, Perm.ALL, 0, true, Translation.NO_LEVEL, 3, va, 12,
                null, Granule.G4K, 0, 0x8000_17c3L);
        assertRemedy(new TlbEntry(new TlbTag(Regime.S2, 9, 0), s2), va, moved,
                "CMD_TLBI_S2_IPA VMID 0x9 IPA 0x7f001000 (or CMD_TLBI_S12_VMALL VMID 0x9) then CMD_SYNC");

        TlbEntry n = new TlbEntry(new TlbTag(Regime.NESTED, 4, 0x1e), nested(va, 0x5000_1234L, 0x8000_1234L));
        // stage 1 now gives another IPA: the NH form
        assertRemedy(n, va, nested(va, 0x5100_1234L, 0x8100_1234L),
                "CMD_TLBI_NH_VA VMID 0x4 ASID 0x1e VA 0x7f001000 (or CMD_TLBI_NH_ASID VMID 0x4 ASID 0x1e) then CMD_SYNC");
        // the same IPA now maps elsewhere at stage 2: S2_IPA, then a stage 1 invalidation of the VMID (§4.4.3.1)
        assertRemedy(n, va, nested(va, 0x5000_1234L, 0x8200_1234L),
                "CMD_TLBI_S2_IPA VMID 0x4 IPA 0x50001000 then CMD_TLBI_NH_ALL VMID 0x4 (or CMD_TLBI_S12_VMALL VMID 0x4) then CMD_SYNC");
        assertRemedy(n, va, new TranslationFault(FaultType.TRANSLATION, 2, 3, FaultClass.IN, va, 0x5000_1234L, 0,
                DmaAccess.READ), "CMD_TLBI_S2_IPA VMID 0x4 IPA 0x50001000 then CMD_TLBI_NH_ALL VMID 0x4 "
                + "(or CMD_TLBI_S12_VMALL VMID 0x4) then CMD_SYNC");
        assertRemedy(n, va, new TranslationFault(FaultType.TRANSLATION, 1, 3, FaultClass.IN, va, 0, 0, DmaAccess.READ),
                "CMD_TLBI_NH_VA VMID 0x4 ASID 0x1e VA 0x7f001000 (or CMD_TLBI_NH_ASID VMID 0x4 ASID 0x1e) then CMD_SYNC");
    }

    @Test
    void reportedEntriesAreByIdentityAndForgetWhatTheCachesDropped() throws Exception {
        ReportedEntries r = new ReportedEntries();
        String a = new String("entry");
        String b = new String("entry"); // equal, not the same entry
        assertTrue(r.firstReport(a));
        assertFalse(r.firstReport(a));
        assertTrue(r.firstReport(b));
        assertEquals(2, r.size());
        for (int i = 0; i < 10_000; i++) {
            r.firstReport(new Object()); // entries a cache dropped at once
        }
        b = null;
        for (int i = 0; i < 50 && r.size() > 1; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertEquals(1, r.size(), "only the entry still held is remembered");
        assertFalse(r.firstReport(a));
    }

    @Test
    void theListenerCanBeRemoved() {
        List<CoherencyViolation> seen = new ArrayList<>();
        Harness h = strict(seen);
        h.smmu.setViolationListener(null);
        h.ste(SID, Harness.words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS));
        h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        h.ste(SID, Harness.words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT));
        h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        assertEquals(List.of(), seen);
        assertEquals(1, h.smmu.coherencyViolationCount(), "still found and kept, only not handed out");
    }
}
