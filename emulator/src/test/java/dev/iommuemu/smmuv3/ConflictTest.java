package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.Harness.words;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.IDR3;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.IDR3_BBML;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.smmuv3.cache.CoherencyViolation;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * TLB and configuration cache conflicts (IHI 0070 §3.20, F_TLB_CONFLICT §7.3.17, F_CFG_CONFLICT
 * §7.3.18) and the break-before-make levels of SMMU_IDR3.BBML (§3.21.1.1-3), in strict mode: each
 * vector is a guest's sequence of table updates, the lookup that follows, and what an SMMU at each
 * BBML level must answer, with the record checked word for word.
 */
class ConflictTest {
    private static final int SID = 3;
    private static final int SID2 = 4;
    private static final long CD0 = Harness.CDS;
    private static final long CD1 = Harness.CDS + 0x1000;
    private static final long VA = 0x4000_0000L;
    private static final long PA = 0x8000_0000L;
    private static final long PA2 = 0x9000_0000L;
    private static final long BLOCK_2M = PA | PageTables.S1_RW | PageTables.BLOCK;
    private static final long STRICT_READ_BIT = 1L << 35; // RnW, bit 99 of the record

    /** The DEFAULT profile advertising break-before-make level {@code bbml} (SMMU_IDR3.BBML, §6.3.4). */
    static Smmuv3Profile profile(int bbml) {
        Smmuv3Profile p = Smmuv3Profile.DEFAULT;
        return p.withIdr3((int) IDR3_BBML.insert(p.idr3(), bbml));
    }

    /** A strict-mode device at {@code bbml}, stream SID on a 4KB stage 1 for ASID 7; returns the TTB. */
    private static long setup(Harness h) {
        long root = h.tables.s1Root();
        h.cd(CD0, Harness.cd(root, 7));
        h.ste(SID, Harness.s1Ste(CD0, 0));
        return root;
    }

    private static Harness strict(int bbml) {
        return new Harness(profile(bbml), Smmuv3.Options.DEFAULT.withStrict(true)).enable();
    }

    private static long translate(Harness h, int sid, long va) {
        DmaResult r = h.smmu.translate(sid, -1, va, DmaAccess.READ);
        return assertInstanceOf(DmaResult.Translated.class, r, () -> "0x" + Long.toHexString(va) + ": " + r).entry()
                .translate(va);
    }

    private static void tlbiVa(Harness h, long va) {
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 7).set(Command.TLBI_ADDR, va >>> 12)
                .command());
        h.sync();
    }

    private static void tlbiAsid(Harness h) {
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, 7).command());
        h.sync();
    }

    /** F_TLB_CONFLICT's Reason in this model: kind [3:0], log2 of the two spans [9:4] and [15:10]. */
    private static long reason(int kind, int firstShift, int secondShift) {
        return kind | ((long) firstShift << 4) | ((long) secondShift << 10);
    }

    // ---- TLB conflicts ----------------------------------------------------------------------

    /**
     * A guest's update sequence. It leaves a lookup of {@link #VA} able to match the entries it
     * made; {@code reason} is the Reason an SMMU that calls it a conflict records, and {@code out}
     * the output address when it does not.
     */
    record Scenario(String name, Consumer<Harness> steps, long out, long reason, String stale, String inMemory) {
        @Override
        public String toString() {
            return name;
        }
    }

    /** Pages merged into a 2MB Block (the Table descriptor replaced in place), no TLBI between. */
    static final Scenario MERGE_WITHOUT_BBM = new Scenario("4KB page -> 2MB block without break-before-make", h -> {
        long root = setup(h);
        h.tables.map(root, VA, PA, PageTables.S1_RW);
        assertEquals(PA, translate(h, SID, VA)); // the 4KB page is cached
        h.mem.put64(h.tables.leaf(root, VA, 2), BLOCK_2M);
        assertEquals(PA + 0x1000, translate(h, SID, VA + 0x1000)); // a miss: the 2MB block is cached too
    }, PA, reason(1, 12, 21), "4KB entry 0x40000000-0x40000fff -> 0x80000000", "2MB entry 0x40000000-0x401fffff -> 0x80000000");

    /** The same merge, the Table descriptor invalidated and its page's TLB entry removed first. */
    static final Scenario MERGE_WITH_BBM = new Scenario("4KB page -> 2MB block with break-before-make", h -> {
        long root = setup(h);
        h.tables.map(root, VA, PA, PageTables.S1_RW);
        assertEquals(PA, translate(h, SID, VA));
        long slot = h.tables.leaf(root, VA, 2);
        h.mem.put64(slot, 0); // break
        tlbiVa(h, VA);
        h.mem.put64(slot, BLOCK_2M); // make
        assertEquals(PA + 0x1000, translate(h, SID, VA + 0x1000));
    }, PA, -1, null, null);

    /** The merge with the Block's nT bit set (§3.21.1.2's procedure, before its TLB invalidations). */
    static final Scenario MERGE_WITH_NT = new Scenario("4KB page -> 2MB block with nT == 1", h -> {
        long root = setup(h);
        h.tables.map(root, VA, PA, PageTables.S1_RW);
        assertEquals(PA, translate(h, SID, VA));
        h.mem.put64(h.tables.leaf(root, VA, 2), BLOCK_2M | Descriptor.NT.prep(1));
        assertEquals(PA + 0x1000, translate(h, SID, VA + 0x1000));
    }, PA, reason(1, 12, 21), "4KB entry 0x40000000-0x40000fff -> 0x80000000", "2MB entry 0x40000000-0x401fffff -> 0x80000000");

    /** The Contiguous bit set on 16 live pages, nothing else changed (§3.21.1.2). */
    static final Scenario CONTIGUOUS_ONLY = new Scenario("Contiguous bit set on live pages", h -> {
        long root = setup(h);
        for (int i = 0; i < 16; i++) {
            h.tables.map(root, VA + i * 0x1000L, PA + i * 0x1000L, PageTables.S1_RW);
        }
        assertEquals(PA, translate(h, SID, VA));
        for (int i = 0; i < 16; i++) {
            h.tables.map(root, VA + i * 0x1000L, PA + i * 0x1000L, PageTables.S1_RW | Descriptor.CONTIGUOUS.prep(1));
        }
        assertEquals(PA + 0x1000, translate(h, SID, VA + 0x1000)); // a 64KB entry
    }, PA, reason(2, 12, 16), "4KB entry 0x40000000-0x40000fff -> 0x80000000",
            "64KB entry 0x40000000-0x4000ffff -> 0x80000000");

    /** The Contiguous bit set and the output moved at once: more than the Contiguous bit changed. */
    static final Scenario CONTIGUOUS_AND_OUTPUT = new Scenario("Contiguous bit set and output changed", h -> {
        long root = setup(h);
        for (int i = 0; i < 16; i++) {
            h.tables.map(root, VA + i * 0x1000L, PA + i * 0x1000L, PageTables.S1_RW);
        }
        assertEquals(PA, translate(h, SID, VA));
        for (int i = 0; i < 16; i++) {
            h.tables.map(root, VA + i * 0x1000L, PA2 + i * 0x1000L, PageTables.S1_RW | Descriptor.CONTIGUOUS.prep(1));
        }
        assertEquals(PA2 + 0x1000, translate(h, SID, VA + 0x1000));
    }, PA, reason(2, 12, 16), "4KB entry 0x40000000-0x40000fff -> 0x80000000",
            "64KB entry 0x40000000-0x4000ffff -> 0x90000000");

    /** A non-global page made global while cached, and a second ASID caching the global entry. */
    static final Scenario GLOBAL_OVER_NON_GLOBAL = new Scenario("global entry over a non-global one", h -> {
        long root = setup(h);
        h.cd(CD1, Harness.cd(root, 8));
        h.ste(SID2, Harness.s1Ste(CD1, 0));
        long leaf = h.tables.map(root, VA, PA, PageTables.S1_RW);
        assertEquals(PA, translate(h, SID, VA)); // tagged ASID 7
        h.mem.put64(leaf, PA | (PageTables.S1_RW & ~PageTables.NG) | PageTables.PAGE);
        assertEquals(PA, translate(h, SID2, VA)); // ASID 8 misses and caches a global entry
    }, 0, reason(3, 12, 12), "4KB entry 0x40000000-0x40000fff -> 0x80000000",
            "4KB entry 0x40000000-0x40000fff -> 0x80000000");

    /**
     * The table: scenario, BBML, whether the lookup of VA that follows is a conflict. Level 0
     * requires break-before-make for any change of size, the Contiguous hint included (§3.21.1.1);
     * Level 1 allows nT Blocks (which it does not cache) and a change of the Contiguous bit alone
     * (§3.21.1.2); Level 2 resolves every multi-hit of a size change (§3.21.1.3); no level allows a
     * global entry over non-global ones (§3.21.1.1).
     */
    static Stream<Arguments> vectors() {
        return Stream.of(
                Arguments.of(MERGE_WITHOUT_BBM, 0, true),
                Arguments.of(MERGE_WITHOUT_BBM, 1, true),
                Arguments.of(MERGE_WITHOUT_BBM, 2, false),
                Arguments.of(MERGE_WITH_BBM, 0, false),
                Arguments.of(MERGE_WITH_BBM, 1, false),
                Arguments.of(MERGE_WITH_BBM, 2, false),
                Arguments.of(MERGE_WITH_NT, 0, true), // nT is RES0 before Level 1: the Block is cached
                Arguments.of(MERGE_WITH_NT, 1, false),
                Arguments.of(MERGE_WITH_NT, 2, false), // Level 2 ignores nT and resolves the multi-hit
                Arguments.of(CONTIGUOUS_ONLY, 0, true),
                Arguments.of(CONTIGUOUS_ONLY, 1, false),
                Arguments.of(CONTIGUOUS_ONLY, 2, false),
                Arguments.of(CONTIGUOUS_AND_OUTPUT, 0, true),
                Arguments.of(CONTIGUOUS_AND_OUTPUT, 1, true),
                Arguments.of(CONTIGUOUS_AND_OUTPUT, 2, false),
                Arguments.of(GLOBAL_OVER_NON_GLOBAL, 0, true),
                Arguments.of(GLOBAL_OVER_NON_GLOBAL, 1, true),
                Arguments.of(GLOBAL_OVER_NON_GLOBAL, 2, true));
    }

    @ParameterizedTest(name = "{0} at BBML {1}: conflict {2}")
    @MethodSource("vectors")
    void tlbConflictVectors(Scenario s, int bbml, boolean conflict) {
        Harness h = strict(bbml);
        s.steps().accept(h);
        assertEquals(List.of(), h.rawEvents(), "the set-up itself is clean");
        DmaResult r = h.smmu.translate(SID, -1, VA + 0x10, DmaAccess.READ);
        if (!conflict) {
            // The lookup uses one of the matching entries: the smallest span (§3.21.1.3).
            assertEquals(s.out() + 0x10, assertInstanceOf(DmaResult.Translated.class, r).entry().translate(VA + 0x10));
            assertEquals(List.of(), h.rawEvents());
            assertTrue(h.smmu.coherencyViolations().stream()
                    .noneMatch(v -> v.kind() == CoherencyViolation.Kind.TLB_CONFLICT));
            return;
        }
        // §3.20.1: the transaction is aborted and F_TLB_CONFLICT recorded (§7.3.17): StreamID, RnW
        // (a read), Reason, InputAddr; S2 == 0, so the IPA is UNKNOWN (written 0).
        assertEquals(new DmaResult.Aborted("F_TLB_CONFLICT"), r);
        assertArrayEquals(new long[] {0x20 | ((long) SID << 32), STRICT_READ_BIT | s.reason(), VA + 0x10, 0},
                h.rawEvents().get(0));
        CoherencyViolation v = h.smmu.coherencyViolations().get(h.smmu.coherencyViolations().size() - 1);
        assertEquals(CoherencyViolation.Kind.TLB_CONFLICT, v.kind());
        assertEquals(SID, v.streamId());
        assertEquals(-1, v.ssid());
        assertEquals(VA + 0x10, v.address());
        assertTrue(v.stale().startsWith(s.stale()), v.stale());
        assertTrue(v.inMemory().startsWith(s.inMemory()), v.inMemory());
        assertTrue(v.remedy().contains("CMD_TLBI_NH_VA covering 0x40000000-"), v.remedy());
        if (s == GLOBAL_OVER_NON_GLOBAL) {
            assertTrue(v.stale().contains("(ASID 7, level 3)") && v.inMemory().contains("(global, level 3)"),
                    v.stale() + " / " + v.inMemory());
        }
        if (s == CONTIGUOUS_ONLY || s == CONTIGUOUS_AND_OUTPUT) {
            assertTrue(v.inMemory().endsWith("(ASID 7, level 3, Contiguous)"), v.inMemory());
        }
        if (bbml == 1 && s == MERGE_WITHOUT_BBM) {
            assertTrue(v.remedy().contains("nT"), v.remedy());
        }
        // The entries stay until software invalidates them: the next access conflicts again, and
        // after a TLBI of the range it translates from the tables.
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, VA, DmaAccess.READ));
        assertEquals(1, h.rawEvents().size());
        tlbiAsid(h);
        h.smmu.translate(SID, -1, VA, DmaAccess.READ);
        assertEquals(List.of(), h.rawEvents());
    }

    @Test
    void strictModeOffDetectsNothingAndTheSmallestSpanWins() {
        Harness h = new Harness(profile(0)).enable();
        MERGE_WITHOUT_BBM.steps().accept(h);
        assertEquals(PA, translate(h, SID, VA)); // §3.20.1: undetected, UNPREDICTABLE; the 4KB page here
        assertEquals(List.of(), h.rawEvents());
        assertEquals(0, h.smmu.coherencyViolationCount());
    }

    @Test
    void level1SplitAndMergeProceduresWithNtRaiseNothing() {
        Harness h = strict(1);
        long root = setup(h);
        long slot = h.tables.leaf(root, VA, 2);
        // Split (§3.21.1.2 note): Block nT 0 -> 1, TLBI the Block, Block -> Table of pages, TLBI the range.
        h.mem.put64(slot, BLOCK_2M);
        assertEquals(PA + 0x3000, translate(h, SID, VA + 0x3000));
        assertEquals(1, h.smmu.stats().tlbEntries());
        h.mem.put64(slot, BLOCK_2M | Descriptor.NT.prep(1));
        tlbiVa(h, VA);
        assertEquals(PA + 0x3000, translate(h, SID, VA + 0x3000)); // translated, never cached at Level 1
        assertEquals(0, h.smmu.stats().tlbEntries());
        long table = h.tables.newTable();
        for (int i = 0; i < 512; i++) {
            h.mem.put64(table + 8L * i, (PA + 0x1000L * i) | PageTables.S1_RW | PageTables.PAGE);
        }
        h.mem.put64(slot, table | 0b11);
        assertEquals(PA + 0x3000, translate(h, SID, VA + 0x3000));
        assertEquals(PA + 0x5000, translate(h, SID, VA + 0x5000));
        tlbiAsid(h);
        // Merge: Table -> Block with nT 1, TLBI the range, nT 1 -> 0, TLBI the Block.
        assertEquals(PA + 0x3000, translate(h, SID, VA + 0x3000)); // a page cached again
        h.mem.put64(slot, BLOCK_2M | Descriptor.NT.prep(1));
        assertEquals(PA + 0x7000, translate(h, SID, VA + 0x7000)); // the nT Block, not cached
        assertEquals(PA + 0x3000, translate(h, SID, VA + 0x3000)); // the cached page alone matches
        tlbiAsid(h);
        h.mem.put64(slot, BLOCK_2M);
        tlbiVa(h, VA);
        assertEquals(PA + 0x3000, translate(h, SID, VA + 0x3000));
        assertEquals(PA + 0x7000, translate(h, SID, VA + 0x7000)); // one 2MB entry serves both
        assertEquals(1, h.smmu.stats().tlbEntries());
        assertEquals(List.of(), h.rawEvents());
        assertEquals(0, h.smmu.coherencyViolationCount());
    }

    @Test
    void stage2ConflictRecordsS2AndTheIpa() {
        Harness h = new Harness(profile(0), Smmuv3.Options.DEFAULT.withStrict(true)).enable();
        long s2root = h.tables.s2Root(24, 1);
        long ipa = 0x1240_0000L;
        h.tables.map(s2root, ipa, PA, PageTables.S2_RW);
        h.ste(SID, Harness.s2Ste(s2root, 9));
        assertEquals(PA, translate(h, SID, ipa));
        h.mem.put64(h.tables.leaf(s2root, ipa, 2), PA | PageTables.S2_RW | PageTables.BLOCK);
        assertEquals(PA + 0x2000, translate(h, SID, ipa + 0x2000));
        assertEquals(new DmaResult.Aborted("F_TLB_CONFLICT"), h.smmu.translate(SID, -1, ipa + 0x8, DmaAccess.WRITE));
        // A write: RnW 0; S2 (bit 103) == 1 with the IPA (IPA[55:12], bits [247:204]); a stage 2
        // regime's input is the IPA itself.
        assertArrayEquals(new long[] {0x20 | ((long) SID << 32), (1L << 39) | reason(1, 12, 21), ipa + 0x8, ipa},
                h.rawEvents().get(0));
        CoherencyViolation v = h.smmu.coherencyViolations().get(0);
        assertTrue(v.remedy().contains("CMD_TLBI_S2_IPA covering 0x12400000-0x125fffff"), v.remedy());
    }

    @Test
    void profilesAdvertiseTheirLevel() {
        // §3.21.1.1: an SMMUv3.2 supports Level 1 or 2 (Arm recommends 2); DEFAULT is an SMMUv3.1.
        assertEquals(2L << 11, new Harness(Smmuv3Profile.MAX).read(IDR3.offset()) & (3L << 11));
        assertEquals(2L << 11, new Harness(Smmuv3Profile.MAX52).read(IDR3.offset()) & (3L << 11));
        assertEquals(0L, new Harness(Smmuv3Profile.DEFAULT).read(IDR3.offset()) & (3L << 11));
        assertEquals(1, profile(1).bbml());
        assertEquals(0, profile(3).bbml()); // reserved
    }

    // ---- configuration cache conflicts ------------------------------------------------------

    private static final int SPAN_SID = 8; // CONT 2: StreamIDs 8-11
    private static final long[] BYPASS_CONT2 = words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS, Ste.CONT, 2);

    @Test
    void steContSpanOverAnotherCachedSteIsCfgConflict() {
        Harness h = strict(0);
        h.ste(SPAN_SID, BYPASS_CONT2);
        long[] other = words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT);
        h.ste(SPAN_SID + 1, other);
        assertEquals(0x1000, translate(h, SPAN_SID, 0x1000)); // SID 8's STE cached, spanning 8-11
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SPAN_SID + 1, -1, 0x1000, DmaAccess.READ));
        assertEquals(List.of(), h.rawEvents()); // a lookup that missed, then Config abort (no event)
        // SID 9 cached as well: its lookup matches its own STE and SID 8's span (§3.20.2).
        assertEquals(new DmaResult.Aborted("F_CFG_CONFLICT"),
                h.smmu.translate(SPAN_SID + 1, 5, 0x1000, DmaAccess.READ));
        // F_CFG_CONFLICT (§7.3.18): SSV, SubstreamID, StreamID, Reason [95:64] (kind 1, CONT 2).
        assertArrayEquals(new long[] {0x21 | (1L << 11) | (5L << 12) | ((long) (SPAN_SID + 1) << 32), 0x21, 0, 0},
                h.rawEvents().get(0));
        CoherencyViolation v = h.smmu.coherencyViolations().get(0);
        assertEquals(CoherencyViolation.Kind.CFG_CONFLICT, v.kind());
        assertEquals(SPAN_SID + 1, v.streamId());
        assertEquals(Harness.STRTAB + 64L * (SPAN_SID + 1), v.address());
        assertTrue(v.stale().startsWith("the STE of SID 0x8 with CONT 2 (SIDs 0x8-0xb)"), v.stale());
        assertTrue(v.inMemory().startsWith("the STE of SID 0x9"), v.inMemory());
        assertTrue(v.remedy().contains("CMD_CFGI_STE_RANGE covering SIDs 0x8-0xb"), v.remedy());
        // SID 8's own lookup matches one STE only; SID 9 conflicts until the span is invalidated.
        assertEquals(0x2000, translate(h, SPAN_SID, 0x2000));
        h.ste(SPAN_SID + 1, BYPASS_CONT2);
        h.cmd(Command.build(Command.Op.CMD_CFGI_STE_RANGE).set(Command.SID, SPAN_SID).set(Command.CFGI_RANGE, 1)
                .command()); // 2^(Range + 1) StreamIDs: 8-11
        h.sync();
        assertEquals(0x3000, translate(h, SPAN_SID, 0x3000));
        assertEquals(0x3000, translate(h, SPAN_SID + 1, 0x3000));
        assertEquals(0x3000, translate(h, SPAN_SID + 1, 0x3000)); // both cached, identical: no conflict
        assertEquals(List.of(), h.rawEvents());
    }

    @Test
    void identicalStesInASpanAndStesOutsideItNeverConflict() {
        Harness h = strict(0);
        for (int sid = SPAN_SID; sid < SPAN_SID + 4; sid++) {
            h.ste(sid, BYPASS_CONT2);
        }
        h.ste(SPAN_SID + 4, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT)); // SID 12: outside 8-11
        for (int round = 0; round < 2; round++) {
            for (int sid = SPAN_SID; sid < SPAN_SID + 4; sid++) {
                assertEquals(0x1000, translate(h, sid, 0x1000));
            }
            assertEquals(new DmaResult.Aborted("STE.Config abort"),
                    h.smmu.translate(SPAN_SID + 4, -1, 0x1000, DmaAccess.READ));
        }
        assertEquals(List.of(), h.rawEvents());
        assertEquals(0, h.smmu.coherencyViolationCount());
    }
}
