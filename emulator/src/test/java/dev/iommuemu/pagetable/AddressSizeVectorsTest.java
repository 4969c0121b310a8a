package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import org.junit.jupiter.api.Test;

/**
 * Address size checks (IHI 0070 §3.4; §5.4 CD.IPS, eff_IPS = MIN(IPS, OAS); §5.2 STE.S2PS,
 * eff_S2PS = MIN(S2PS, OAS)): output and next-level table addresses beyond the effective size are
 * Address Size faults at the level of the descriptor that holds them; table bases beyond it fault
 * at level 0; 52-bit addresses need the 64K granule with a 52-bit OAS or DS.
 */
class AddressSizeVectorsTest {
    private static final int[] SIZES = {32, 36, 40, 42, 44, 48, 52};

    private SparseGuestMemory mem = SparseGuestMemory.unbounded();

    /** A fresh table area in fresh memory (the builder does not clear tables). */
    private PageTableBuilder.Bump tables() {
        mem = SparseGuestMemory.unbounded();
        return new PageTableBuilder.Bump(0x1000_0000L, 0x100_0000L);
    }

    private WalkResult s1(int ips, int oas, Granule g, long oa, int level) {
        PageTableBuilder.Bump t = tables();
        PageTableBuilder b = PageTableBuilder.stage1(mem, t, g, 16, ips, oas);
        b.map(0x4000_0000L, oa, level, PageTableBuilder.S1_RW);
        return new Walker(mem, oas).stage1(b.stage1Config(), 0x4000_0000L, DmaAccess.PRIV_READ);
    }

    /** IPS x OAS: the last page below eff_IPS translates, the first one at eff_IPS faults. */
    @Test
    void stage1OutputAgainstEffectiveIps() {
        for (int oas : new int[] {40, 48, 52}) {
            for (int ips : SIZES) {
                int eff = Math.min(ips, oas);
                // 64K with a 52-bit OAS can express OA bit 48; 4K without DS stops at bit 47, and an
                // address it cannot express cannot fault (§5.4 CD.IPS note).
                Granule g = oas >= 52 && eff >= 48 ? Granule.G64K : Granule.G4K;
                long top = (1L << eff) - g.pageSize();
                WalkResult r0 = s1(ips, oas, g, top, 3);
                Translation t = assertInstanceOf(Translation.class, r0, "ips " + ips + " oas " + oas + " " + r0);
                assertEquals(top, t.outputAddress());
                if (eff < 52 && (eff < 48 || g == Granule.G64K)) {
                    TranslationFault f = assertInstanceOf(TranslationFault.class, s1(ips, oas, g, 1L << eff, 3));
                    assertEquals(FaultType.ADDRESS_SIZE, f.type(), "ips " + ips + " oas " + oas);
                    assertEquals(1, f.stage());
                    assertEquals(3, f.level());
                }
            }
        }
    }

    @Test
    void tableAddressBeyondIpsFaultsAtTheLevelOfTheTableDescriptor() {
        PageTableBuilder.Bump t = tables();
        PageTableBuilder b = PageTableBuilder.stage1(mem, t, Granule.G4K, 16, 40, 48);
        b.map(0x4000_0000L, 0x8000_0000L, 3, PageTableBuilder.S1_RW);
        long slot = b.setDescriptor(0x4000_0000L, 1, Descriptor.withAddress(0b11, 1L << 40, Granule.G4K, false, false));
        TranslationFault f = assertInstanceOf(TranslationFault.class,
                new Walker(mem, 48).stage1(b.stage1Config(), 0x4000_0000L, DmaAccess.PRIV_READ));
        assertEquals(FaultType.ADDRESS_SIZE, f.type());
        assertEquals(1, f.level());
        assertEquals(slot, f.descriptorAddress());
    }

    @Test
    void tableBaseBeyondTheSizeFaultsAtLevel0AndIsIllegal() {
        Stage1Config c = Stage1Config.simple(1L << 40, 16, Granule.G4K, 40);
        TranslationFault f = assertInstanceOf(TranslationFault.class, new Walker(mem, 48).stage1(c, 0x1000, DmaAccess.READ));
        assertEquals(FaultType.ADDRESS_SIZE, f.type());
        assertEquals(0, f.level());
        assertEquals(-1, f.descriptorAddress());
        // IHI 0070 §3.4 note / §5.4 CD.TTB0: the CD is ILLEGAL (C_BAD_CD) before any walk.
        assertEquals("TTB0: TTB 0x10000000000 outside 40-bit range", c.check(48, false));
        Stage2Config s2 = Stage2Config.simple(1L << 40, 24, 1, Granule.G4K, 40);
        TranslationFault g = assertInstanceOf(TranslationFault.class, new Walker(mem, 48).stage2(s2, 0x1000, DmaAccess.READ));
        assertEquals(FaultType.ADDRESS_SIZE, g.type());
        assertEquals(2, g.stage());
        assertEquals(0, g.level());
        assertEquals("S2TTB 0x10000000000 outside 40-bit range", s2.check(48, false));
    }

    @Test
    void stage2OutputAgainstEffectiveS2ps() {
        for (int ps : SIZES) {
            int eff = Math.min(ps, 48);
            PageTableBuilder.Bump t = tables();
            PageTableBuilder b = PageTableBuilder.stage2(mem, t, Granule.G4K, 16, 0, ps, 48);
            b.map(0x1000, (1L << eff) - 0x1000, 3, PageTableBuilder.S2_RW);
            b.map(0x2000, 1L << eff, 3, PageTableBuilder.S2_RW);
            Walker w = new Walker(mem, 48);
            assertEquals((1L << eff) - 0x1000 + 0x10,
                    assertInstanceOf(Translation.class, w.stage2(b.stage2Config(), 0x1010, DmaAccess.READ)).outputAddress());
            if (eff < 48) {
                TranslationFault f = assertInstanceOf(TranslationFault.class, w.stage2(b.stage2Config(), 0x2010, DmaAccess.READ));
                assertEquals(FaultType.ADDRESS_SIZE, f.type());
                assertEquals(2, f.stage());
                assertEquals(3, f.level());
                assertEquals(0x2010, f.ipa());
            }
        }
    }

    /** 64K granule, OAS 52 (FEAT_LPA): OA[51:48] in descriptor bits [15:12], checked against eff_IPS. */
    @Test
    void fiftyTwoBitOutputWith64k() {
        long oa = 0x000f_1234_5678_0000L;
        Translation t = assertInstanceOf(Translation.class, s1(52, 52, Granule.G64K, oa, 3));
        assertEquals(oa, t.outputAddress());
        assertEquals(FaultType.ADDRESS_SIZE,
                assertInstanceOf(TranslationFault.class, s1(48, 52, Granule.G64K, oa, 3)).type());
        // With a 48-bit OAS bits [15:12] are not address bits: the output is OA[47:16] only.
        PageTableBuilder.Bump t0 = tables();
        PageTableBuilder b = PageTableBuilder.stage1(mem, t0, Granule.G64K, 16, 48, 48);
        b.setDescriptor(0x4000_0000L, 3, 0b11 | PageTableBuilder.S1_RW | (oa & 0xffff_ffff_0000L) | 0xf000);
        Translation u = assertInstanceOf(Translation.class,
                new Walker(mem, 48).stage1(b.stage1Config(), 0x4000_0000L, DmaAccess.PRIV_READ));
        assertEquals(oa & 0xffff_ffff_0000L, u.outputAddress());
    }

    /** 4K and 16K with DS (FEAT_LPA2): OA[51:50] in bits [9:8], OA[49:48] in [49:48]. */
    @Test
    void fiftyTwoBitOutputWithDs() {
        for (Granule g : new Granule[] {Granule.G4K, Granule.G16K}) {
            long oa = 0x000f_1234_5678_0000L & -g.pageSize();
            PageTableBuilder.Bump area = tables();
            PageTableBuilder b = PageTableBuilder.stage1(mem, area, g, 16, 52, 52).ds(true);
            long slot = b.map(0x4000_0000L, oa, 3, PageTableBuilder.S1_RW);
            assertEquals(3L << 8, mem.get64(slot) & (3L << 8), "OA[51:50] in bits [9:8]");
            Translation t = assertInstanceOf(Translation.class,
                    new Walker(mem, 52).stage1(b.stage1Config(), 0x4000_0000L, DmaAccess.PRIV_READ));
            assertEquals(oa, t.outputAddress());
            Stage1Config ips48 = new Stage1Config(b.stage1Config().tt0(), b.stage1Config().tt1(), 48, false, false,
                    false, false, false, false, false, true, false, false, false, false);
            assertEquals(FaultType.ADDRESS_SIZE, assertInstanceOf(TranslationFault.class,
                    new Walker(mem, 52).stage1(ips48, 0x4000_0000L, DmaAccess.PRIV_READ)).type());
        }
    }

    /** IHI 0070 §3.4: stage 1 bypassed, an input beyond the IAS is a stage 1 Address Size fault. */
    @Test
    void stage2OnlyInputBeyondTheIasIsAStage1AddressSizeFault() {
        PageTableBuilder.Bump t = tables();
        PageTableBuilder b = PageTableBuilder.stage2(mem, t, Granule.G4K, 24, 1, 40, 40);
        b.map(0x1000, 0x8000, 3, PageTableBuilder.S2_RW);
        Walker w = new Walker(mem, 40);
        TranslationFault f = assertInstanceOf(TranslationFault.class, w.stage2(b.stage2Config(), 1L << 40, DmaAccess.READ));
        assertEquals(FaultType.ADDRESS_SIZE, f.type());
        assertEquals(1, f.stage());
        assertEquals(0, f.level());
        // Within the IAS but beyond S2T0SZ: a stage 2 Translation fault (§3.4 stage 2 check 1).
        Stage2Config narrow = Stage2Config.simple(b.ttb(), 28, 1, Granule.G4K, 40);
        TranslationFault g = assertInstanceOf(TranslationFault.class, w.stage2(narrow, 1L << 36, DmaAccess.READ));
        assertEquals(FaultType.TRANSLATION, g.type());
        assertEquals(2, g.stage());
        assertEquals(0, g.level());
        assertEquals(1L << 36, g.ipa());
    }
}
