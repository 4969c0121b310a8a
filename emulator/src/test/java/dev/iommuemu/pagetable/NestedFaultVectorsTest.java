package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Nested translation and fault attribution (IHI 0070 §3.4.3, §3.13.5; the event records of §7.3
 * carry S2, CLASS and IPA): every stage 1 table address and the stage 1 output go through stage
 * 2; a stage 2 fault on a table fetch is CLASS TT with the descriptor's IPA, on the output CLASS
 * IN with the stage 1 output, on a CD fetch CLASS CD.
 */
class NestedFaultVectorsTest {
    // Stage 1 tables live at IPAs [S1_IPA, +2 MiB), stored at PAs [S1_PA, +2 MiB).
    private static final long S1_IPA = 0x4000_0000L;
    private static final long S1_PA = 0x1000_0000L;
    private static final long VA = 0x12_3456_7000L;
    private static final long IPA = 0x8000_0000L; // stage 1 output of VA
    private static final long PA = 0xc000_0000L; // stage 2 output of IPA

    private final SparseGuestMemory mem = new SparseGuestMemory(0, 1L << 32);
    private PageTableBuilder s1;
    private PageTableBuilder s2;
    private Walker walker;

    @BeforeEach
    void build() {
        s1 = PageTableBuilder.stage1(mem, new PageTableBuilder.Bump(S1_IPA, 0x20_0000L), Granule.G4K, 16, 40, 48)
                .tableWriter(ipa -> ipa - S1_IPA + S1_PA);
        // Stage 2: 4K granule, 40-bit IPA (S2T0SZ 24), start level 1 (S2SL0 = 1), 40-bit PS.
        s2 = PageTableBuilder.stage2(mem, new PageTableBuilder.Bump(0x2000_0000L, 0x100_0000L), Granule.G4K, 24, 1, 40, 48);
        s1.map(VA, IPA, 3, PageTableBuilder.S1_RW | PageTableBuilder.S1_USER);
        // The stage 1 table window, page by page, and the output page.
        for (long off = 0; off < 0x20_0000L; off += 0x1000) {
            s2.map(S1_IPA + off, S1_PA + off, 3, PageTableBuilder.S2_RW);
        }
        s2.map(IPA, PA, 3, PageTableBuilder.S2_RW);
        walker = new Walker(mem, 48);
    }

    private Stage1Config c1() {
        return s1.stage1Config();
    }

    private Stage2Config c2() {
        return s2.stage2Config();
    }

    private TranslationFault nestedFault(Stage1Config a, Stage2Config b, DmaAccess acc) {
        return assertInstanceOf(TranslationFault.class, walker.nested(a, b, VA + 0x18, acc));
    }

    @Test
    void nestedTranslationComposesBothStages() {
        Translation t = assertInstanceOf(Translation.class, walker.nested(c1(), c2(), VA + 0x18, DmaAccess.WRITE));
        assertEquals(PA + 0x18, t.outputAddress());
        assertEquals(IPA + 0x18, t.ipa());
        assertEquals(3, t.s1Level());
        assertEquals(3, t.s2Level());
        assertEquals(12, t.pageShift());
        // Stage 1 AP = 0b01 (RW at both privileges, EL0-writable so PXN); stage 2 RW, executable.
        assertEquals(Perm.UR | Perm.UW | Perm.UX | Perm.PR | Perm.PW, t.perm());
    }

    @Test
    void smallerLeafOfEitherStageSizesTheResult() {
        s2.map(IPA + 0x20_0000L, PA, 2, PageTableBuilder.S2_RW); // 2 MiB stage 2 block
        s1.map(VA + 0x4000_0000L, IPA + 0x20_0000L, 1, PageTableBuilder.S1_RW); // 1 GiB stage 1 block
        long va = ((VA + 0x4000_0000L) & ~0x3fff_ffffL) | 0x20_1234L; // lands in the stage 2 block
        Translation t = assertInstanceOf(Translation.class, walker.nested(c1(), c2(), va, DmaAccess.PRIV_READ));
        assertEquals(PA + 0x1234, t.outputAddress());
        assertEquals(21, t.pageShift());
        assertEquals(21, t.s2PageShift());
        assertEquals(1, t.s1Level());
        assertEquals(2, t.s2Level());
    }

    @Test
    void stage2FaultOnAStage1TableFetchIsClassTtWithTheDescriptorIpa() {
        long level2DescIpa = s1.slot(VA, 2);
        s2.setDescriptor(level2DescIpa, 3, 0); // unmap the page that holds the level 2 table
        TranslationFault f = nestedFault(c1(), c2(), DmaAccess.WRITE);
        assertEquals(FaultType.TRANSLATION, f.type());
        assertEquals(2, f.stage());
        assertEquals(3, f.level());
        assertEquals(FaultClass.TT, f.faultClass());
        assertEquals(level2DescIpa, f.ipa());
        assertEquals(VA + 0x18, f.inputAddress());
        assertEquals(s2.slot(level2DescIpa, 3), f.descriptorAddress());
        // The access stage 2 faulted on is the descriptor read (the transaction was a write).
        assertEquals(DmaAccess.READ, f.access());
    }

    @Test
    void stage2FaultOnTheOutputIsClassInWithTheStage1Output() {
        s2.map(IPA, PA, 3, PageTableBuilder.S2_RW & ~Descriptor.S2AP_W.mask()); // read-only at stage 2
        TranslationFault f = nestedFault(c1(), c2(), DmaAccess.WRITE);
        assertEquals(FaultType.PERMISSION, f.type());
        assertEquals(2, f.stage());
        assertEquals(FaultClass.IN, f.faultClass());
        assertEquals(IPA + 0x18, f.ipa());
        assertEquals(s2.slot(IPA, 3), f.descriptorAddress());
        assertEquals(DmaAccess.WRITE, f.access()); // CLASS IN: the transaction's own access
        // The read still translates.
        assertEquals(PA + 0x18, assertInstanceOf(Translation.class,
                walker.nested(c1(), c2(), VA + 0x18, DmaAccess.READ)).outputAddress());
    }

    @Test
    void stage1OutputBeyondTheStage2RangeIsAStage2TranslationFaultAtLevel0() {
        s1.map(VA, 1L << 40, 3, PageTableBuilder.S1_RW); // 2^40 needs 41 bits: beyond IPS 40
        TranslationFault f = nestedFault(c1(), c2(), DmaAccess.PRIV_READ);
        assertEquals(FaultType.ADDRESS_SIZE, f.type()); // IHI 0070 §3.4 stage 1 check 2 first
        assertEquals(1, f.stage());
        Stage1Config wide = new Stage1Config(c1().tt0(), c1().tt1(), 48, false, false, false, false, false,
                false, false, false, false, false, false, false);
        TranslationFault g = nestedFault(wide, c2(), DmaAccess.PRIV_READ);
        // §3.4 stage 2 check 1: an IPA outside S2T0SZ's 40 bits.
        assertEquals(FaultType.TRANSLATION, g.type());
        assertEquals(2, g.stage());
        assertEquals(0, g.level());
        assertEquals(FaultClass.IN, g.faultClass());
        assertEquals((1L << 40) + 0x18, g.ipa());
    }

    @Test
    void stage2ForACdFetchReportsClassCd() {
        long cdIpa = S1_IPA + 0x1f_0040L;
        Translation t = assertInstanceOf(Translation.class,
                walker.stage2For(c2(), cdIpa, DmaAccess.READ, FaultClass.CD, 0x77));
        assertEquals(S1_PA + 0x1f_0040L, t.outputAddress());
        s2.setDescriptor(cdIpa, 3, 0);
        TranslationFault f = assertInstanceOf(TranslationFault.class,
                walker.stage2For(c2(), cdIpa, DmaAccess.READ, FaultClass.CD, 0x77));
        assertEquals(FaultType.TRANSLATION, f.type());
        assertEquals(2, f.stage());
        assertEquals(FaultClass.CD, f.faultClass());
        assertEquals(cdIpa, f.ipa());
        assertEquals(0x77, f.inputAddress());
    }

    @Test
    void externalAbortOnAStage1FetchReportsStage1AndThePhysicalAddress() {
        // Stage 2 maps the page holding the level 3 table to a PA with no memory behind it.
        long l3DescIpa = s1.slot(VA, 3);
        long hole = 1L << 36;
        s2.map(l3DescIpa, hole, 3, PageTableBuilder.S2_RW);
        TranslationFault f = nestedFault(c1(), c2(), DmaAccess.READ);
        assertEquals(FaultType.WALK_EABT, f.type());
        assertEquals(1, f.stage());
        assertEquals(3, f.level());
        assertEquals(hole | (l3DescIpa & 0xfff), f.descriptorAddress());
    }

    @Test
    void externalAbortOnAStage2FetchReportsStage2() {
        // The stage 2 level 2 table for the output IPA sits in a hole.
        long hole = 1L << 36;
        s2.setDescriptor(IPA, 2, Descriptor.withAddress(0b11, hole, Granule.G4K, false, false));
        TranslationFault f = nestedFault(c1(), c2(), DmaAccess.READ);
        assertEquals(FaultType.WALK_EABT, f.type());
        assertEquals(2, f.stage());
        assertEquals(3, f.level());
        assertEquals(FaultClass.IN, f.faultClass());
        assertEquals(IPA + 0x18, f.ipa());
        assertEquals(hole + ((IPA >>> 12) & 511) * 8, f.descriptorAddress());
    }

    /** IHI 0070 §3.14.1 / §7.3.13 F_WALK_EABT: a descriptor fetch that aborts, at each level, each stage alone. */
    @Test
    void externalAbortsOnSingleStageWalks() {
        long hole = 1L << 36; // SparseGuestMemory has nothing there
        for (int level = 0; level <= 2; level++) {
            SparseGuestMemory m = new SparseGuestMemory(1L << 32);
            PageTableBuilder b1 = PageTableBuilder.stage1(m, new PageTableBuilder.Bump(0x100_0000L, 0x100_0000L),
                    Granule.G4K, 16, 48, 48);
            b1.map(VA, IPA, 3, PageTableBuilder.S1_RW);
            b1.setDescriptor(VA, level, Descriptor.withAddress(0b11, hole, Granule.G4K, false, false));
            TranslationFault f = assertInstanceOf(TranslationFault.class,
                    new Walker(m, 48).stage1(b1.stage1Config(), VA, DmaAccess.PRIV_READ));
            assertEquals(FaultType.WALK_EABT, f.type());
            assertEquals(1, f.stage());
            assertEquals(level + 1, f.level());
            assertEquals(hole + ((VA >>> (39 - 9 * (level + 1))) & 511) * 8, f.descriptorAddress());
            PageTableBuilder b2 = PageTableBuilder.stage2(m, new PageTableBuilder.Bump(0x300_0000L, 0x100_0000L),
                    Granule.G4K, 16, 0, 48, 48);
            b2.map(VA, PA, 3, PageTableBuilder.S2_RW);
            b2.setDescriptor(VA, level, Descriptor.withAddress(0b11, hole, Granule.G4K, false, false));
            TranslationFault g = assertInstanceOf(TranslationFault.class, new Walker(m, 48).stage2(b2.stage2Config(), VA, DmaAccess.READ));
            assertEquals(FaultType.WALK_EABT, g.type());
            assertEquals(2, g.stage());
            assertEquals(level + 1, g.level());
            assertEquals(VA, g.ipa());
            assertEquals(FaultClass.IN, g.faultClass());
        }
        // The start table itself in a hole: level of the start table.
        Stage1Config c = Stage1Config.simple(hole, 25, Granule.G4K, 48);
        TranslationFault f = assertInstanceOf(TranslationFault.class,
                new Walker(new SparseGuestMemory(1L << 32), 48).stage1(c, 0x1000, DmaAccess.READ));
        assertEquals(FaultType.WALK_EABT, f.type());
        assertEquals(1, f.level());
        assertEquals(hole, f.descriptorAddress());
    }

    @Test
    void s2ptwMakesATableWalkToDeviceMemoryAStage2PermissionFault() {
        long l1DescIpa = s1.slot(VA, 1);
        s2.map(l1DescIpa, l1DescIpa - S1_IPA + S1_PA, 3, PageTableBuilder.S2_RW & ~Descriptor.S2_MEMATTR.mask()
                | PageTableBuilder.S2_DEVICE);
        // Without S2PTW the walk goes ahead (SMMU_IDR3.PTWNNC aside).
        assertInstanceOf(Translation.class, walker.nested(c1(), c2(), VA, DmaAccess.READ));
        TranslationFault f = nestedFault(c1(), c2().withPtw(true), DmaAccess.READ);
        assertEquals(FaultType.PERMISSION, f.type());
        assertEquals(2, f.stage());
        assertEquals(FaultClass.TT, f.faultClass());
        assertEquals(l1DescIpa, f.ipa());
        // IHI 0070 §5.2 STE.S2PTW covers CD fetches too, but not the transaction's own output.
        TranslationFault cd = assertInstanceOf(TranslationFault.class,
                walker.stage2For(c2().withPtw(true), l1DescIpa, DmaAccess.READ, FaultClass.CD, 0));
        assertEquals(FaultType.PERMISSION, cd.type());
        assertEquals(FaultClass.CD, cd.faultClass());
        assertInstanceOf(Translation.class,
                walker.stage2For(c2().withPtw(true), l1DescIpa, DmaAccess.READ, FaultClass.IN, 0));
    }

    /**
     * STE.S2PTW's Device test reads MemAttr as STE.S2FWB says (IHI 0070 §5.2; Arm ARM Tables
     * D8-96 and D8-100): stage 2 MemAttr -> Device without FWB / with FWB. MemAttr[3] is RES0
     * with FWB (no FEAT_MTE_PERM) and ignored, so 0b1001 is Device-nGnRE there and Normal (outer
     * Write-Through, inner Non-cacheable) without FWB; 0b0110 is Normal either way.
     */
    @Test
    void s2ptwDeviceTestFollowsS2fwb() {
        Object[][] rows = {
                {0b0001, true, true},
                {0b1001, false, true},
                {0b0110, false, false},
                {0b1111, false, false},
                {0b0101, false, false},
        };
        long l1DescIpa = s1.slot(VA, 1);
        long leaf = s2.map(l1DescIpa, l1DescIpa - S1_IPA + S1_PA, 3, PageTableBuilder.S2_RW);
        for (Object[] row : rows) {
            int memAttr = (Integer) row[0];
            long d = mem.get64(leaf);
            mem.put64(leaf, Descriptor.S2_MEMATTR.insert(d, memAttr));
            for (int fwb = 0; fwb <= 1; fwb++) {
                boolean device = (Boolean) row[1 + fwb];
                WalkResult r = walker.nested(c1(), c2().withPtw(true).withFwb(fwb == 1), VA, DmaAccess.READ);
                String what = "MemAttr " + Integer.toBinaryString(memAttr) + (fwb == 1 ? " FWB" : "");
                if (device) {
                    TranslationFault f = assertInstanceOf(TranslationFault.class, r, what);
                    assertEquals(FaultType.PERMISSION, f.type(), what);
                    assertEquals(FaultClass.TT, f.faultClass(), what);
                } else {
                    assertInstanceOf(Translation.class, r, what);
                }
            }
        }
    }

    /**
     * Caught by WalkerPropertyTest. Arm ARM AArch64.SecondStageWalk checks S2PTW against the
     * completed stage 2 translation: its Access flag fault comes first, and with S2HA the Access
     * flag is set before the Permission fault.
     */
    @Test
    void s2ptwCheckFollowsTheStage2AccessFlag() {
        long l1DescIpa = s1.slot(VA, 1);
        long leaf = s2.map(l1DescIpa, l1DescIpa - S1_IPA + S1_PA, 3,
                (PageTableBuilder.S2_RW & ~Descriptor.S2_MEMATTR.mask() & ~Descriptor.AF.mask()) | PageTableBuilder.S2_DEVICE);
        TranslationFault f = nestedFault(c1(), c2().withPtw(true), DmaAccess.READ);
        assertEquals(FaultType.ACCESS_FLAG, f.type());
        assertEquals(2, f.stage());
        assertEquals(FaultClass.TT, f.faultClass());
        long before = mem.get64(leaf);
        TranslationFault g = nestedFault(c1(), c2().withPtw(true).withHttu(true, false), DmaAccess.READ);
        assertEquals(FaultType.PERMISSION, g.type());
        assertEquals(before | Descriptor.AF.mask(), mem.get64(leaf));
    }

    @Test
    void stage1HardwareUpdateIsAStage2WriteOfClassTt() {
        long leafIpa = s1.map(VA, IPA, 3, PageTableBuilder.S1_RW & ~Descriptor.AF.mask());
        long leafPa = leafIpa - S1_IPA + S1_PA;
        // Stage 2 maps the level 3 table read-only: the AF update's write faults at stage 2.
        s2.map(leafIpa, leafPa, 3, PageTableBuilder.S2_RW & ~Descriptor.S2AP_W.mask());
        Stage1Config ha = c1().withHttu(true, false);
        TranslationFault f = nestedFault(ha, c2(), DmaAccess.PRIV_READ);
        assertEquals(FaultType.PERMISSION, f.type());
        assertEquals(2, f.stage());
        assertEquals(FaultClass.TT, f.faultClass());
        assertEquals(leafIpa, f.ipa());
        // IHI 0070 §7.3.16: TTRnW = 0, a descriptor write faulted, although the input was a read.
        assertEquals(DmaAccess.WRITE, f.access());
        assertEquals(0, mem.get64(leafPa) & Descriptor.AF.mask());
        // With S2HD and DBM the same write marks the stage 2 page dirty, then AF is set (IHI 0070 §3.13.5).
        long s2Leaf = s2.map(leafIpa, leafPa, 3, (PageTableBuilder.S2_RW & ~Descriptor.S2AP_W.mask()) | Descriptor.DBM.mask());
        Translation t = assertInstanceOf(Translation.class,
                walker.nested(ha, c2().withHttu(true, true), VA, DmaAccess.PRIV_READ));
        assertEquals(PA, t.outputAddress());
        assertEquals(Descriptor.AF.mask(), mem.get64(leafPa) & Descriptor.AF.mask());
        assertEquals(Descriptor.S2AP_W.mask(), mem.get64(s2Leaf) & Descriptor.S2AP_W.mask());
    }
}
