package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Per granule and per level vectors (Arm ARM D8.2 translation granules and lookup levels, D8.3
 * descriptor formats and block sizes, D8.6.1 the Contiguous bit; IHI 0070 §5.2 S2SL0/S2T0SZ with
 * concatenated start tables, §5.4 CD.T0SZ), each row written from the spec's tables.
 */
class GranuleLevelVectorsTest {
    private SparseGuestMemory mem;

    private PageTableBuilder.Bump fresh() {
        mem = SparseGuestMemory.unbounded();
        return new PageTableBuilder.Bump(0x1000_0000L, 0x1000_0000L);
    }

    /** Levels of the descriptors a walk reads, in order, with the physical address of each. */
    private static final class Reads implements WalkObserver {
        final List<Integer> levels = new ArrayList<>();
        final List<Long> addresses = new ArrayList<>();

        @Override
        public void descriptor(int stage, int level, long address, long physical, long descriptor) {
            levels.add(level);
            addresses.add(physical);
        }
    }

    // Stage 1 start level from TxSZ (Arm ARM D8.2: the initial lookup level resolves the bits
    // above a whole number of strides). {granule, lowest TxSZ, highest TxSZ, start level}.
    private static final Object[][] S1_START = {
        {Granule.G4K, 12, 15, -1}, // 49..52-bit ranges only with DS (FEAT_LPA2)
        {Granule.G4K, 16, 24, 0},
        {Granule.G4K, 25, 33, 1},
        {Granule.G4K, 34, 42, 2},
        {Granule.G4K, 43, 48, 3},
        {Granule.G16K, 12, 16, 0}, // 12..15 only with DS
        {Granule.G16K, 17, 27, 1},
        {Granule.G16K, 28, 38, 2},
        {Granule.G16K, 39, 48, 3},
        {Granule.G64K, 12, 21, 1},
        {Granule.G64K, 22, 34, 2},
        {Granule.G64K, 35, 47, 3},
    };

    @Test
    void stage1StartLevelFromTxSz() {
        for (Object[] row : S1_START) {
            Granule g = (Granule) row[0];
            for (int tsz = (int) row[1]; tsz <= (int) row[2]; tsz++) {
                int start = (int) row[3];
                PageTableBuilder.Bump t = fresh();
                boolean ds = tsz < 16;
                PageTableBuilder b = PageTableBuilder.stage1(mem, t, g, tsz, 52, 52).ds(ds);
                long top = (1L << (64 - tsz)) - g.pageSize(); // the last page: every index bit set
                b.map(top, 0x8000_0000L, 3, PageTableBuilder.S1_RW);
                Reads reads = new Reads();
                WalkResult r = new Walker(mem, 52).translate(b.stage1Config(), null, top + 5, DmaAccess.PRIV_READ, reads);
                String where = g + " TxSZ " + tsz;
                assertEquals(0x8000_0005L, assertInstanceOf(Translation.class, r, where).outputAddress(), where);
                assertEquals(start, (int) reads.levels.get(0), where);
                assertEquals(4 - start, reads.levels.size(), where);
                // The start table has 2^(range bits - level shift) entries: the top one is read.
                long entries = 1L << (64 - tsz - g.levelShift(start));
                assertEquals(b.ttb() + (entries - 1) * 8, (long) reads.addresses.get(0), where);
            }
        }
    }

    // Leaf sizes (Arm ARM D8.3.1 / AArch64.BlockDescSupported): {granule, level, log2 size, needs}
    // where needs is "" (always), "DS" (FEAT_LPA2) or "PA52" (64K level 1 with a 52-bit OAS).
    private static final Object[][] LEAVES = {
        {Granule.G4K, 0, 39, "DS"},
        {Granule.G4K, 1, 30, ""},
        {Granule.G4K, 2, 21, ""},
        {Granule.G4K, 3, 12, ""},
        {Granule.G16K, 1, 36, "DS"},
        {Granule.G16K, 2, 25, ""},
        {Granule.G16K, 3, 14, ""},
        {Granule.G64K, 1, 42, "PA52"},
        {Granule.G64K, 2, 29, ""},
        {Granule.G64K, 3, 16, ""},
    };

    private WalkResult leafWalk(Granule g, int level, boolean ds, int oas, long typeBits, boolean stage2) {
        PageTableBuilder.Bump t = fresh();
        long va = 0x1234_5678_9abcL;
        long oa = outputFor(g, ds, oas);
        Walker w = new Walker(mem, oas);
        if (stage2) {
            PageTableBuilder b = PageTableBuilder.stage2(mem, t, g, 16, g == Granule.G4K ? 0 : 1, 52, oas).ds(ds);
            long slot = b.map(va, oa, level, PageTableBuilder.S2_RW);
            mem.put64(slot, (mem.get64(slot) & ~3L) | typeBits);
            return w.stage2(b.stage2Config(), va, DmaAccess.READ);
        }
        PageTableBuilder b = PageTableBuilder.stage1(mem, t, g, 16, 52, oas).ds(ds);
        long slot = b.map(va, oa, level, PageTableBuilder.S1_RW);
        mem.put64(slot, (mem.get64(slot) & ~3L) | typeBits);
        return w.stage1(b.stage1Config(), va, DmaAccess.PRIV_READ);
    }

    /** An output address aligned for every block size, using the top bits the format can hold. */
    private static long outputFor(Granule g, boolean ds, int oas) {
        boolean fiftyTwo = oas >= 52 && (ds || g == Granule.G64K);
        return fiftyTwo ? 0x000a_0000_0000_0000L : 0x0000_a000_0000_0000L;
    }

    @Test
    void leafSizesAtEveryLegalLevelBothStages() {
        for (boolean stage2 : new boolean[] {false, true}) {
            for (Object[] row : LEAVES) {
                Granule g = (Granule) row[0];
                int level = (int) row[1];
                int shift = (int) row[2];
                String needs = (String) row[3];
                if (stage2 && level < (g == Granule.G4K ? 0 : 1)) {
                    continue;
                }
                long type = level == 3 ? 0b11 : 0b01;
                WalkResult r = leafWalk(g, level, needs.equals("DS"), 52, type, stage2);
                String where = (stage2 ? "S2 " : "S1 ") + g + " level " + level;
                Translation t = assertInstanceOf(Translation.class, r, where);
                assertEquals(shift, t.pageShift(), where);
                long oa = outputFor(g, needs.equals("DS"), 52);
                assertEquals(oa | (0x1234_5678_9abcL & ((1L << shift) - 1)), t.outputAddress(), where);
                assertEquals(level, stage2 ? t.s2Level() : t.s1Level(), where);
                if (!needs.isEmpty()) {
                    // Without the feature the same descriptor is a block at an illegal level.
                    TranslationFault f = assertInstanceOf(TranslationFault.class,
                            leafWalk(g, level, false, needs.equals("PA52") ? 48 : 52, type, stage2), where);
                    assertEquals(FaultType.TRANSLATION, f.type(), where);
                    assertEquals(level, f.level(), where);
                }
            }
        }
    }

    /** Arm ARM D8.3.1: a block descriptor at level 0 (4K without DS, 16K, 64K) or -1 is invalid. */
    @Test
    void blocksAtIllegalLevelsAreTranslationFaults() {
        Object[][] illegal = {
            {Granule.G4K, 0, false}, {Granule.G16K, 0, true}, {Granule.G16K, 1, false}, {Granule.G64K, 1, false},
        };
        for (Object[] row : illegal) {
            Granule g = (Granule) row[0];
            int level = (int) row[1];
            TranslationFault f = assertInstanceOf(TranslationFault.class, leafWalk(g, level, (boolean) row[2], 48, 0b01, false));
            assertEquals(FaultType.TRANSLATION, f.type());
            assertEquals(level, f.level());
            assertEquals(1, f.stage());
        }
        // 4K level -1 (DS, TxSZ 12): no block there either.
        PageTableBuilder.Bump t = fresh();
        PageTableBuilder b = PageTableBuilder.stage1(mem, t, Granule.G4K, 12, 52, 52).ds(true);
        long slot = b.setDescriptor(0x0008_0000_0000_0000L, -1, PageTableBuilder.S1_RW | 0b01);
        TranslationFault f = assertInstanceOf(TranslationFault.class,
                new Walker(mem, 52).stage1(b.stage1Config(), 0x0008_0000_0000_0000L, DmaAccess.PRIV_READ));
        assertEquals(FaultType.TRANSLATION, f.type());
        assertEquals(-1, f.level());
        assertEquals(slot, f.descriptorAddress());
    }

    /** Arm ARM D8.3: bits[1:0] == 0b01 at level 3 is reserved and invalid; bit 0 clear is invalid anywhere. */
    @Test
    void reservedAndInvalidEncodingsAreTranslationFaults() {
        for (Granule g : Granule.values()) {
            for (boolean stage2 : new boolean[] {false, true}) {
                TranslationFault f = assertInstanceOf(TranslationFault.class, leafWalk(g, 3, false, 48, 0b01, stage2));
                assertEquals(FaultType.TRANSLATION, f.type());
                assertEquals(3, f.level());
                assertEquals(stage2 ? 2 : 1, f.stage());
                for (long invalid : new long[] {0b00, 0b10}) {
                    TranslationFault v = assertInstanceOf(TranslationFault.class, leafWalk(g, 2, false, 48, invalid, stage2));
                    assertEquals(FaultType.TRANSLATION, v.type());
                    assertEquals(2, v.level());
                }
            }
        }
    }

    // Stage 2 start levels and concatenated start tables (IHI 0070 §5.2 S2SL0, Arm ARM VTCR_EL2.SL0
    // and the concatenation rule: the start level may resolve up to 4 bits more than a stride,
    // i.e. 2..16 tables). {granule, S2SL0, start level, S2T0SZ with one table}.
    private static final Object[][] S2_START = {
        {Granule.G4K, 0, 2, 34}, // 30-bit IPA: 9 bits at level 2
        {Granule.G4K, 1, 1, 25},
        {Granule.G4K, 2, 0, 16},
        {Granule.G16K, 0, 3, 39},
        {Granule.G16K, 1, 2, 28},
        {Granule.G16K, 2, 1, 17},
        {Granule.G64K, 0, 3, 35},
        {Granule.G64K, 1, 2, 22},
        {Granule.G64K, 2, 1, 12}, // a 52-bit IPA: 10 bits at level 1, one table
    };

    @Test
    void stage2StartLevelsAndConcatenatedStartTables() {
        for (Object[] row : S2_START) {
            Granule g = (Granule) row[0];
            int sl0 = (int) row[1];
            int start = (int) row[2];
            assertEquals(start, Stage2Config.startLevel(g, sl0, 0, false, false));
            int oneTable = (int) row[3];
            for (int extra = 0; extra <= 4; extra++) {
                int t0sz = oneTable - extra;
                if (t0sz < (g == Granule.G64K ? 12 : 16)) {
                    break; // §5.2 S2T0SZ minimum without S2DS
                }
                int tablesConcatenated = 1 << extra; // 1, 2, 4, 8, 16
                PageTableBuilder.Bump t = fresh();
                PageTableBuilder b = PageTableBuilder.stage2(mem, t, g, t0sz, start, 52, 52);
                Stage2Config c = b.stage2Config();
                String where = g + " S2SL0 " + sl0 + " S2T0SZ " + t0sz;
                assertNull(c.check(52, false), where);
                long top = (1L << (64 - t0sz)) - g.pageSize();
                b.map(top, 0x4000_0000L, 3, PageTableBuilder.S2_RW);
                Reads reads = new Reads();
                Translation tr = assertInstanceOf(Translation.class,
                        new Walker(mem, 52).translate(null, c, top + 9, DmaAccess.READ, reads), where);
                assertEquals(0x4000_0009L, tr.outputAddress(), where);
                assertEquals(start, (int) reads.levels.get(0), where);
                // The last entry of the last concatenated table.
                long entriesPerTable = g.pageSize() / 8;
                long lastEntry = tablesConcatenated * entriesPerTable - 1;
                if (extra == 0) {
                    lastEntry = (1L << (64 - t0sz - g.levelShift(start))) - 1;
                }
                assertEquals(c.ttb() + lastEntry * 8, (long) reads.addresses.get(0), where);
                assertEquals(0, c.ttb() % ((lastEntry + 1) * 8), where + ": start table aligned to its size");
            }
            // 32 tables would be needed: inconsistent, ILLEGAL, and the walker refuses at level 0.
            int t0sz = oneTable - 5;
            if (t0sz >= (g == Granule.G64K ? 12 : 16)) {
                Stage2Config bad = Stage2Config.simple(0x1000_0000L, t0sz, start, g, 48);
                assertNotNull(bad.check(52, false));
                TranslationFault f = assertInstanceOf(TranslationFault.class,
                        new Walker(mem, 52).stage2(bad, 0, DmaAccess.READ));
                assertEquals(FaultType.TRANSLATION, f.type());
                assertEquals(0, f.level());
            }
        }
    }

    /** FEAT_LPA2: 4K with DS starts at level -1 for 49..52-bit ranges, at both stages (S2SL2 = 1, S2SL0 = 0). */
    @Test
    void fourKLevelMinusOneWithDs() {
        assertEquals(-1, Stage2Config.startLevel(Granule.G4K, 0, 1, true, false));
        assertEquals(Stage2Config.INVALID_LEVEL, Stage2Config.startLevel(Granule.G4K, 0, 1, false, false));
        PageTableBuilder.Bump t = fresh();
        PageTableBuilder b2 = PageTableBuilder.stage2(mem, t, Granule.G4K, 12, -1, 52, 52).ds(true);
        long ipa = 0x000f_ffff_ffff_f000L;
        b2.map(ipa, 0x000e_0000_0000_0000L, 3, PageTableBuilder.S2_RW);
        Reads reads = new Reads();
        Translation tr = assertInstanceOf(Translation.class,
                new Walker(mem, 52).translate(null, b2.stage2Config(), ipa + 1, DmaAccess.READ, reads));
        assertEquals(0x000e_0000_0000_0001L, tr.outputAddress());
        assertEquals(List.of(-1, 0, 1, 2, 3), reads.levels);
        assertEquals(b2.ttb() + 15 * 8, (long) reads.addresses.get(0)); // 16 entries at level -1
    }

    // Contiguous runs (Arm ARM D8.6.1): {granule, level, entries}.
    private static final Object[][] CONTIGUOUS = {
        {Granule.G4K, 1, 16}, {Granule.G4K, 2, 16}, {Granule.G4K, 3, 16},
        {Granule.G16K, 2, 32}, {Granule.G16K, 3, 128},
        {Granule.G64K, 2, 32}, {Granule.G64K, 3, 32},
    };

    @Test
    void contiguousHintWidensTheCacheableSpan() {
        for (Object[] row : CONTIGUOUS) {
            Granule g = (Granule) row[0];
            int level = (int) row[1];
            int entries = (int) row[2];
            PageTableBuilder.Bump t = fresh();
            PageTableBuilder b = PageTableBuilder.stage1(mem, t, g, 16, 48, 48);
            int shift = g.levelShift(level);
            long span = (long) entries << shift;
            long va = 3 * span + (5L << shift) + 0x10;
            b.mapContiguous(va, 0x7000_0000_0000L, level, PageTableBuilder.S1_RW);
            Translation tr = assertInstanceOf(Translation.class,
                    new Walker(mem, 48).stage1(b.stage1Config(), va, DmaAccess.PRIV_READ));
            String where = g + " level " + level;
            assertEquals(shift, tr.pageShift(), where);
            assertEquals(shift + Integer.numberOfTrailingZeros(entries), tr.contigShift(), where);
            assertEquals(0x7000_0000_0000L + (5L << shift) + 0x10, tr.outputAddress(), where);
        }
    }
}
