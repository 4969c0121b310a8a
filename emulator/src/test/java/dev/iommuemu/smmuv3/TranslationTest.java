package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.Harness.words;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.smmuv3.cache.CoherencyViolation;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cd.CdTable;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.smmuv3.streamtable.StreamTable;
import java.util.List;
import org.junit.jupiter.api.Test;

/** IHI 0070 §3.2-§3.3 configuration and translation, with event records checked word for word. */
class TranslationTest {
    private static final int SID = 3;
    private static final long CD0 = Harness.CDS;

    private static DmaResult.Translated translated(DmaResult r) {
        return assertInstanceOf(DmaResult.Translated.class, r);
    }

    @Test
    void disabledSmmuFollowsGbpa() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT);
        IotlbEntry e = translated(h.smmu.translate(SID, IommuModel.NO_SUBSTREAM, 0x1234_5678L, DmaAccess.WRITE)).entry();
        assertEquals(0x1234_5678L, e.translate(0x1234_5678L));
        // one entry over the whole input space, not a page: the VMM asks once (issue 12)
        assertEquals(new IotlbEntry(0, 0, -1L, dev.iommuemu.dma.Perm.ALL), e);
        h.write(GBPA.offset(), GBPA_UPDATE.mask() | GBPA_ABORT.mask());
        assertEquals(new DmaResult.Aborted("GBPA.ABORT"), h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        // a GBPA write, and leaving the GBPA bypass, invalidate everything the VMM cached (§6.3.9, §6.3.14)
        assertTrue(h.host.invalidations.contains(dev.iommuemu.dma.IotlbInvalidation.all()), h.host.invalidations.toString());
        h.host.invalidations.clear();
        h.enable();
        assertTrue(h.host.invalidations.contains(dev.iommuemu.dma.IotlbInvalidation.all()), h.host.invalidations.toString());
    }

    @Test
    void steAbortAndBypass() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        h.ste(SID, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT));
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        assertEquals(List.of(), h.rawEvents()); // §5.2: Config abort records nothing
        h.ste(SID + 1, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS));
        IotlbEntry bypass = translated(h.smmu.translate(SID + 1, -1, 0xabc_d123L, DmaAccess.READ)).entry();
        assertEquals(0xabc_d123L, bypass.translate(0xabc_d123L));
        // the identity's real extent, the OAS (44 bits on DEFAULT), as one entry (issue 12)
        assertEquals(new IotlbEntry(0, 0, (1L << 44) - 1, dev.iommuemu.dma.Perm.ALL), bypass);
        // CMD_CFGI_STE drops the StreamID's whole range from the VMM's cache
        h.host.invalidations.clear();
        h.cfgiSte(SID + 1);
        assertEquals(List.of(new dev.iommuemu.dma.IotlbInvalidation(SID + 1, 0, -1L)), h.host.invalidations);
        // Bypassing beyond the OAS (44 bits here) is a stage 1 Address Size fault (§7.3.14).
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID + 1, -1, 1L << 44, DmaAccess.READ));
        assertArrayEquals(new long[] {0x11 | ((long) (SID + 1) << 32), (1L << 35) | (2L << 40), 1L << 44, 0},
                h.rawEvents().get(0));
    }

    @Test
    void badStreamIdBadSteAndSteFetchRecords() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        int outOfRange = 1 << Harness.STRTAB_LOG2;
        h.smmu.translate(outOfRange, -1, 0x1000, DmaAccess.READ);
        assertArrayEquals(new long[] {0x02 | ((long) outOfRange << 32), 0, 0, 0}, h.rawEvents().get(0));
        h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ); // STE all zero: V == 0
        assertArrayEquals(new long[] {0x04 | ((long) SID << 32), 0, 0, 0}, h.rawEvents().get(0));
        h.ste(SID, words(8, Ste.V, 1, Ste.CONFIG, 0b010)); // reserved Config: behaves as abort (§5.2)
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        assertEquals(List.of(), h.rawEvents());
        long[] stalld = Harness.s1Ste(CD0, 0);
        Ste.S1STALLD.set(stalld, 1); // ILLEGAL when STALL_MODEL != 0b00 (§5.2 S1STALLD)
        h.ste(SID, stalld);
        h.cfgiSte(SID); // the abort STE was valid, so it was cached
        h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        assertEquals(EventType.C_BAD_STE, h.events().get(0).type());
        // Stream table moved outside memory: F_STE_FETCH with the STE's address.
        h.write(CR0.offset(), CR0_CMDQEN.mask() | CR0_EVENTQEN.mask());
        h.write64(STRTAB_BASE.offset(), 0x1_0000_0000L);
        h.write(CR0.offset(), CR0_CMDQEN.mask() | CR0_EVENTQEN.mask() | CR0_SMMUEN.mask());
        h.smmu.translate(5, -1, 0x1000, DmaAccess.READ);
        assertArrayEquals(new long[] {0x03 | (5L << 32), 0, 0, 0x1_0000_0000L + 5 * 64}, h.rawEvents().get(0));
    }

    @Test
    void stagesTheProfileLacksMakeTheSteIllegal() {
        Harness h = new Harness(Smmuv3Profile.S1_ONLY).enable();
        h.ste(SID, Harness.s2Ste(Harness.TABLES, 1));
        h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        assertEquals(EventType.C_BAD_STE, h.events().get(0).type());
        Harness s2 = new Harness(Smmuv3Profile.S2_ONLY).enable();
        s2.ste(SID, Harness.s1Ste(CD0, 0));
        s2.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        assertEquals(EventType.C_BAD_STE, s2.events().get(0).type());
    }

    private static long s1Setup(Harness h, int asid, long va, long pa) {
        long root = h.tables.s1Root();
        h.tables.map(root, va, pa, PageTables.S1_RW);
        h.cd(CD0, Harness.cd(root, asid));
        h.ste(SID, Harness.s1Ste(CD0, 0));
        return root;
    }

    @Test
    void stage1TranslationAndFTranslationRecord() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long root = s1Setup(h, 7, 0x7f00_1000L, 0x8000_5000L);
        IotlbEntry e = translated(h.smmu.translate(SID, -1, 0x7f00_1234L, DmaAccess.WRITE)).entry();
        assertEquals(0x7f00_1000L, e.iova());
        assertEquals(0x8000_5000L, e.translatedAddr());
        assertEquals(0xfff, e.addrMask());
        assertTrue(Perm.allows(e.perm(), DmaAccess.WRITE) && Perm.allows(e.perm(), DmaAccess.READ));
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, 0x7f00_3010L, DmaAccess.PRIV_READ));
        // F_TRANSLATION (§7.3.13): StreamID, RnW (bit 99), PnU (bit 97), CLASS IN (bits 105:104), InputAddr.
        long w1 = (1L << 35) | (1L << 33) | (2L << 40);
        assertArrayEquals(new long[] {0x10 | ((long) SID << 32), w1, 0x7f00_3010L, 0}, h.rawEvents().get(0));
        // CD.R == 0: the fault is not recorded (§5.4 CD.R).
        long[] quiet = Harness.cd(root, 7);
        Cd.R.set(quiet, 0);
        h.cd(CD0, quiet);
        h.cmd(Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, SID).command());
        h.sync();
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, 0x7f00_3010L, DmaAccess.READ));
        assertEquals(List.of(), h.rawEvents());
    }

    /**
     * §4.2 prefetch semantics of IommuModel#prefetch: the pages after an address as transactions
     * would see them, into the TLB; a fault ends the run and records nothing; AF is never written;
     * nothing with SMMUEN == 0.
     */
    @Test
    void prefetchWalksAheadWithoutEventsOrTableWrites() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable(); // IDR0.HTTU for CD.HA below
        long root = s1Setup(h, 7, 0x7f00_0000L, 0x8000_0000L);
        h.tables.map(root, 0x7f00_1000L, 0x8123_4000L, PageTables.S1_RW);
        h.tables.map(root, 0x7f00_2000L, 0x8000_2000L, PageTables.S1_RW & ~PageTables.AF); // AF == 0, HA == 0
        int rw = translated(h.smmu.translate(SID, -1, 0x7f00_0000L, DmaAccess.WRITE)).entry().perm();
        assertEquals(List.of(new IotlbEntry(0x7f00_1000L, 0x8123_4000L, 0xfff, rw)),
                h.smmu.prefetch(SID, -1, 0x7f00_1000L, DmaAccess.WRITE, 64), "stops at the Access flag fault");
        assertEquals(List.of(), h.rawEvents(), "§4.2: a prefetch that faults records nothing");
        long leaf = h.tables.leaf(root, 0x7f00_2000L, 3);
        long before = h.mem.get64(leaf);
        // With CD.HA the walk would set AF: a prefetch does not write the table, so it stops there too.
        long[] ha = Harness.cd(root, 7);
        Cd.HA.set(ha, 1);
        h.cd(CD0, ha);
        h.cmd(Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, SID).command());
        h.sync();
        assertEquals(1, h.smmu.prefetch(SID, -1, 0x7f00_1000L, DmaAccess.READ, 64).size());
        assertEquals(before, h.mem.get64(leaf), "AF untouched by the prefetch");
        // The prefetched page is now a TLB hit: the table may change, the TLB keeps the entry (§3.17).
        long hits = h.smmu.stats().tlbHits();
        h.mem.put64(h.tables.leaf(root, 0x7f00_1000L, 3), 0);
        assertEquals(0x8123_4abcL, translated(h.smmu.translate(SID, -1, 0x7f00_1abcL, DmaAccess.READ)).entry()
                .translate(0x7f00_1abcL));
        assertEquals(hits + 1, h.smmu.stats().tlbHits());
        // A transaction to the AF == 0 page sets AF (HA) where the prefetch did not.
        translated(h.smmu.translate(SID, -1, 0x7f00_2000L, DmaAccess.READ));
        assertEquals(before | PageTables.AF, h.mem.get64(leaf));
        // Unknown stream, and SMMUEN == 0: nothing, and no C_BAD_STE record.
        assertEquals(List.of(), h.smmu.prefetch(SID + 1, -1, 0x7f00_0000L, DmaAccess.READ, 64));
        assertEquals(List.of(), h.rawEvents());
        h.write(CR0.offset(), CR0_CMDQEN.mask() | CR0_EVENTQEN.mask());
        assertEquals(List.of(), h.smmu.prefetch(SID, -1, 0x7f00_0000L, DmaAccess.READ, 64));
    }

    @Test
    void inspectorDecodesFromMemoryNotFromTheCaches() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        s1Setup(h, 7, 0x7f00_1000L, 0x8000_5000L);
        assertEquals(Ste.CONFIG_S1, Ste.CONFIG.get(h.smmu.inspectSte(SID).words()));
        assertEquals(Harness.STRTAB + SID * 64L, h.smmu.inspectSte(SID).address());
        assertEquals(7, Cd.ASID.get(h.smmu.inspectCd(SID, -1).words()));
        var walk = h.smmu.explain(SID, -1, 0x7f00_1234L, DmaAccess.READ);
        assertEquals(4, walk.steps().size()); // four descriptor reads
        assertEquals(0x8000_5234L, walk.result().entry().translate(0x7f00_1234L));
        // The CD leaves MAIR 0: Attr0 0x00 is Device-nGnRnE (Arm ARM MAIR_ELx), no stage 2.
        assertEquals("Device-nGnRnE", walk.attributes().toString());
        assertEquals("C_BAD_STE: V == 0", h.smmu.inspectSte(SID + 1).error());
    }

    @Test
    void staleTlbUntilTlbiAndStrictModeReportsIt() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT, Smmuv3.Options.DEFAULT.withStrict(true)).enable();
        long root = s1Setup(h, 7, 0x4000_0000L, 0x9000_0000L);
        assertEquals(0x9000_0000L, translated(h.smmu.translate(SID, -1, 0x4000_0000L, DmaAccess.READ)).entry()
                .translatedAddr());
        long leaf = h.tables.leaf(root, 0x4000_0000L, 3);
        h.mem.put64(leaf, 0xa000_0000L | PageTables.S1_RW | PageTables.PAGE);
        // No TLBI yet: the TLB still holds the old page (§3.17), and strict mode reports it.
        assertEquals(0x9000_0000L, translated(h.smmu.translate(SID, -1, 0x4000_0000L, DmaAccess.READ)).entry()
                .translatedAddr());
        assertEquals(CoherencyViolation.Kind.TLB, h.smmu.coherencyViolations().get(0).kind());
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 7)
                .set(Command.TLBI_ADDR, 0x4000_0000L >>> 12).command());
        h.sync();
        assertEquals(0xa000_0000L, translated(h.smmu.translate(SID, -1, 0x4000_0000L, DmaAccess.READ)).entry()
                .translatedAddr());
        // The VMM was told to drop the page too.
        assertTrue(h.host.invalidations.stream().anyMatch(i -> i.iova() == 0x4000_0000L && i.size() == 4096));
    }

    @Test
    void topByteIgnoreSharesTlbEntriesAndInvalidations() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long root = h.tables.s1Root();
        h.tables.map(root, 0x4000_0000L, 0x9000_0000L, PageTables.S1_RW);
        long[] cd = Harness.cd(root, 7);
        Cd.TBI0.set(cd, 1);
        h.cd(CD0, cd);
        h.ste(SID, Harness.s1Ste(CD0, 0));
        long tagged = 0xab00_0000_4000_0010L;
        IotlbEntry e = translated(h.smmu.translate(SID, -1, tagged, DmaAccess.READ)).entry();
        assertEquals(0xab00_0000_4000_0000L, e.iova()); // the VMM's entry is for the address it asked
        assertEquals(0x9000_0010L, e.translate(tagged));
        h.tables.map(root, 0x4000_0000L, 0xa000_0000L, PageTables.S1_RW);
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 7)
                .set(Command.TLBI_ADDR, 0x4000_0000L >>> 12).command());
        assertEquals(0xa000_0010L, translated(h.smmu.translate(SID, -1, tagged, DmaAccess.READ)).entry()
                .translate(tagged)); // the untagged TLBI removed the entry the tagged access made
        assertEquals(1, h.smmu.stats().tlbEntries());
    }

    @Test
    void tlbiOfAnotherAsidLeavesTheEntry() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long root = s1Setup(h, 7, 0x4000_0000L, 0x9000_0000L);
        h.smmu.translate(SID, -1, 0x4000_0000L, DmaAccess.READ);
        h.mem.put64(h.tables.leaf(root, 0x4000_0000L, 3), 0xa000_0000L | PageTables.S1_RW | PageTables.PAGE);
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, 8).command());
        h.sync();
        assertEquals(0x9000_0000L, translated(h.smmu.translate(SID, -1, 0x4000_0000L, DmaAccess.READ)).entry()
                .translatedAddr());
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, 7).command());
        h.sync();
        assertEquals(0xa000_0000L, translated(h.smmu.translate(SID, -1, 0x4000_0000L, DmaAccess.READ)).entry()
                .translatedAddr());
    }

    @Test
    void staleSteUntilCfgiAndStrictModeReportsIt() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT, Smmuv3.Options.DEFAULT.withStrict(true)).enable();
        h.ste(SID, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS));
        translated(h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        h.ste(SID, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT));
        translated(h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ)); // cached bypass STE
        assertEquals(CoherencyViolation.Kind.STE, h.smmu.coherencyViolations().get(0).kind());
        h.cfgiSte(SID);
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        Harness quiet = new Harness(Smmuv3Profile.DEFAULT).enable(); // strict mode off by default
        quiet.ste(SID, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS));
        quiet.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        quiet.ste(SID, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT));
        translated(quiet.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        assertEquals(0, quiet.smmu.coherencyViolationCount());
    }

    @Test
    void stage2TranslationAndStage2FaultRecord() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long s2root = h.tables.s2Root(24, 1);
        h.tables.map(s2root, 0x1234_5000L, 0x5555_5000L, PageTables.S2_RW);
        h.ste(SID, Harness.s2Ste(s2root, 9));
        assertEquals(0x5555_5abcL, translated(h.smmu.translate(SID, -1, 0x1234_5abcL, DmaAccess.WRITE)).entry()
                .translate(0x1234_5abcL));
        h.smmu.translate(SID, -1, 0x2000_0000L, DmaAccess.WRITE);
        // Stage 2 F_TRANSLATION: S2 (bit 103), CLASS IN, RnW 0 for a write, IPA[55:12] in bits [247:204].
        long w1 = (1L << 39) | (2L << 40);
        assertArrayEquals(new long[] {0x10 | ((long) SID << 32), w1, 0x2000_0000L, 0x2000_0000L},
                h.rawEvents().get(0));
        // STE.S2R == 0 suppresses stage 2 fault records (§5.5).
        long[] quiet = Harness.s2Ste(s2root, 9);
        Ste.S2R.set(quiet, 0);
        h.ste(SID + 1, quiet);
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID + 1, -1, 0x2000_0000L, DmaAccess.WRITE));
        assertEquals(List.of(), h.rawEvents());
        // A SubstreamID with stage 1 disabled: C_BAD_SUBSTREAMID (§7.3.9).
        h.smmu.translate(SID, 5, 0x1234_5000L, DmaAccess.READ);
        assertArrayEquals(new long[] {0x08 | (5L << 12) | ((long) SID << 32), 0, 0, 0}, h.rawEvents().get(0));
    }

    @Test
    void nestedTranslationWithTablesAndCdInIpaSpace() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long ipaBase = 0x4000_0000L; // guest "RAM" in IPA space maps to PA 0x8000_0000
        long paBase = 0x8000_0000L;
        long s2root = h.tables.s2Root(24, 1);
        for (long off = 0; off < 0x40_0000L; off += 0x20_0000L) {
            h.tables.map(s2root, ipaBase + off, paBase + off, PageTables.S2_RW, 2);
        }
        // The guest's stage 1 tables live at IPA ipaBase + 0x10000.., i.e. PA paBase + 0x10000..
        PageTables guest = new PageTables(h.mem, paBase + 0x10000);
        long s1rootPa = guest.newTable();
        long shift = paBase - ipaBase;
        // Build stage 1 by hand in PA space but with IPA pointers (4-level, 48-bit).
        long va = 0x1_2345_6000L;
        long l1 = guest.newTable();
        long l2 = guest.newTable();
        long l3 = guest.newTable();
        h.mem.put64(s1rootPa + ((va >>> 39) & 511) * 8, (l1 - shift) | 3);
        h.mem.put64(l1 + ((va >>> 30) & 511) * 8, (l2 - shift) | 3);
        h.mem.put64(l2 + ((va >>> 21) & 511) * 8, (l3 - shift) | 3);
        h.mem.put64(l3 + ((va >>> 12) & 511) * 8, (ipaBase + 0x30_0000L) | PageTables.S1_RW | 3);
        long cdIpa = ipaBase + 0x1000;
        h.cd(cdIpa + shift, Harness.cd(s1rootPa - shift, 3));
        long[] ste = Harness.s2Ste(s2root, 4);
        Ste.CONFIG.set(ste, Ste.CONFIG_NESTED);
        Ste.S1CONTEXTPTR.set(ste, cdIpa >>> 6);
        h.ste(SID, ste);
        assertEquals(paBase + 0x30_0000L + 0x78, translated(h.smmu.translate(SID, -1, va + 0x78, DmaAccess.READ))
                .entry().translate(va + 0x78));
        // A CD whose IPA stage 2 does not map: stage 2 F_TRANSLATION with CLASS == CD (§7.3.13).
        h.ste(SID + 1, ste.clone());
        long[] ste2 = ste.clone();
        Ste.S1CONTEXTPTR.set(ste2, 0x7000_0000L >>> 6);
        h.ste(SID + 1, ste2);
        h.smmu.translate(SID + 1, -1, va, DmaAccess.READ);
        EventRecord ev = h.events().get(0);
        assertEquals(EventType.F_TRANSLATION, ev.type());
        assertTrue(ev.s2());
        assertEquals(EventRecord.CLASS_CD, ev.faultClass());
        assertEquals(0x7000_0000L, ev.ipa());
    }

    @Test
    void substreamsCdTablesAndS1dss() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long root = h.tables.s1Root();
        h.tables.map(root, 0x10_0000L, 0x7770_0000L, PageTables.S1_RW);
        long root3 = h.tables.s1Root();
        h.tables.map(root3, 0x10_0000L, 0x3330_0000L, PageTables.S1_RW);
        h.cd(CD0, Harness.cd(root, 1));
        h.cd(CD0 + 3 * 64, Harness.cd(root3, 3));
        long[] ste = Harness.s1Ste(CD0, 4); // 16 CDs
        h.ste(SID, ste);
        assertEquals(0x3330_0000L, translated(h.smmu.translate(SID, 3, 0x10_0000L, DmaAccess.READ)).entry()
                .translatedAddr());
        h.smmu.translate(SID, 16, 0x10_0000L, DmaAccess.READ); // beyond 2^S1CDMax
        assertArrayEquals(new long[] {0x08 | (16L << 12) | ((long) SID << 32), 0, 0, 0}, h.rawEvents().get(0));
        h.smmu.translate(SID, -1, 0x10_0000L, DmaAccess.READ); // S1DSS 0b00: terminate
        assertArrayEquals(new long[] {0x06 | ((long) SID << 32), 0, 0, 0}, h.rawEvents().get(0));
        Ste.S1DSS.set(ste, Ste.S1DSS_SUBSTREAM0);
        h.ste(SID, ste);
        h.cfgiSte(SID);
        assertEquals(0x7770_0000L, translated(h.smmu.translate(SID, -1, 0x10_0000L, DmaAccess.READ)).entry()
                .translatedAddr());
        h.smmu.translate(SID, 0, 0x10_0000L, DmaAccess.READ); // SSID 0 is reserved with S1DSS 0b10
        assertEquals(EventType.F_STREAM_DISABLED, h.events().get(0).type());
        Ste.S1DSS.set(ste, Ste.S1DSS_BYPASS);
        h.ste(SID, ste);
        h.cfgiSte(SID);
        assertEquals(0x10_0123L, translated(h.smmu.translate(SID, -1, 0x10_0123L, DmaAccess.READ)).entry()
                .translate(0x10_0123L));
    }

    @Test
    void twoLevelCdTable() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long root = h.tables.s1Root();
        h.tables.map(root, 0x10_0000L, 0x6660_0000L, PageTables.S1_RW);
        long l1 = CD0;
        long leaf = CD0 + 0x10000;
        int ssid = (5 << 6) | 9; // L1 index 5, leaf index 9 (4KB leaves: 64 CDs)
        h.mem.put64(l1 + 5 * 8, leaf | 1);
        h.cd(leaf + 9 * 64, Harness.cd(root, 12));
        long[] ste = Harness.s1Ste(l1, 12);
        Ste.S1FMT.set(ste, Ste.S1FMT_2LVL_4K);
        h.ste(SID, ste);
        assertEquals(0x6660_0000L, translated(h.smmu.translate(SID, ssid, 0x10_0000L, DmaAccess.READ)).entry()
                .translatedAddr());
        h.smmu.translate(SID, (6 << 6), 0x10_0000L, DmaAccess.READ); // L1CD.V == 0
        assertEquals(CdTable.badSubstream(SID, 6 << 6), h.events().get(0));
    }

    @Test
    void badCdAndCdFetchAbort() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        h.ste(SID, Harness.s1Ste(CD0, 0));
        h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ); // CD V == 0
        assertArrayEquals(new long[] {0x0a | ((long) SID << 32), 0, 0, 0}, h.rawEvents().get(0));
        long[] cd = Harness.cd(0x5000, 1);
        Cd.TG0.set(cd, 3); // reserved granule
        h.cd(CD0, cd);
        h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        assertEquals(EventType.C_BAD_CD, h.events().get(0).type());
        long[] noAbort = Harness.cd(0x5000, 1);
        Cd.A.set(noAbort, 0); // RAZ/WI termination with TERM_MODEL == 1 (§5.5)
        h.cd(CD0, noAbort);
        h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        assertEquals(EventType.C_BAD_CD, h.events().get(0).type());
        h.ste(SID + 1, Harness.s1Ste(0x10_0000_0000L, 0)); // inside OAS, outside memory
        h.smmu.translate(SID + 1, 2, 0x1000, DmaAccess.READ);
        assertEquals(EventType.C_BAD_SUBSTREAMID, h.events().get(0).type()); // S1CDMax 0 with a SubstreamID
        h.smmu.translate(SID + 1, -1, 0x1000, DmaAccess.READ);
        assertArrayEquals(new long[] {0x09 | ((long) (SID + 1) << 32), 0, 0, 0x10_0000_0000L}, h.rawEvents().get(0));
    }

    @Test
    void twoLevelStreamTable() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT);
        long l1 = Harness.STRTAB;
        long l2 = Harness.STRTAB + 0x10000;
        // SPLIT 8: StreamID[15:8] indexes the L1, [7:0] the level-2 table; Span 9 covers 256 STEs.
        int sid = (2 << 8) | 17;
        h.mem.put64(l1 + 2 * 8, l2 | 9);
        for (int i = 0; i < 8; i++) {
            h.mem.put64(l2 + 17 * 64 + i * 8, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS)[i]);
        }
        h.write64(STRTAB_BASE.offset(), l1);
        h.write(STRTAB_BASE_CFG.offset(), 16 | (8 << 6) | (StreamTable.FMT_2LEVEL << 16));
        h.write64(EVENTQ_BASE.offset(), Harness.EVTQ | Harness.EVTQ_LOG2);
        h.write(CR0.offset(), CR0_EVENTQEN.mask() | CR0_SMMUEN.mask());
        translated(h.smmu.translate(sid, -1, 0x1000, DmaAccess.READ));
        h.smmu.translate(3 << 8, -1, 0x1000, DmaAccess.READ); // L1STD Span 0
        assertArrayEquals(new long[] {0x02 | ((long) (3 << 8) << 32), 0, 0, 0}, h.rawEvents().get(0));
        h.mem.put64(l1 + 4 * 8, l2 | 2); // Span 2: two STEs
        h.smmu.translate((4 << 8) | 2, -1, 0x1000, DmaAccess.READ);
        assertEquals(EventType.C_BAD_STREAMID, h.events().get(0).type());
    }
}
