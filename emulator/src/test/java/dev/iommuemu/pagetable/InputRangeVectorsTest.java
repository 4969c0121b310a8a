package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import org.junit.jupiter.api.Test;

/**
 * Stage 1 input range checks (IHI 0070 §3.4 check 1, §3.4.1; §5.4 CD.T0SZ/T1SZ, TBI0/TBI1,
 * EPD0/EPD1): TTB0/TTB1 selection by VA[55], sign extension from the range size, top byte ignore,
 * walk disables, and the single range of StreamWorld any-EL2.
 */
class InputRangeVectorsTest {
    private static final long PA = 0x8000_0000L;

    private final SparseGuestMemory mem = new SparseGuestMemory(1L << 32);
    private final PageTableBuilder.Bump tables = new PageTableBuilder.Bump(0x100_0000L, 0x100_0000L);
    private final Walker walker = new Walker(mem, 48);

    /** TTB0 and TTB1 trees, 4K, 48-bit ranges, each mapping page 0x1000 of its range. */
    private Stage1Config twoRanges() {
        PageTableBuilder lo = PageTableBuilder.stage1(mem, tables, Granule.G4K, 16, 48, 48);
        PageTableBuilder hi = PageTableBuilder.stage1(mem, tables, Granule.G4K, 16, 48, 48);
        lo.map(0x1000L, PA, 3, PageTableBuilder.S1_RW);
        hi.map(0xffff_0000_0000_1000L, PA + 0x10_0000L, 3, PageTableBuilder.S1_RW);
        return lo.stage1Config().withTt1(hi.region());
    }

    private long out(Stage1Config c, long va) {
        return assertInstanceOf(Translation.class, walker.stage1(c, va, DmaAccess.PRIV_READ)).outputAddress();
    }

    private TranslationFault fault(Stage1Config c, long va) {
        return assertInstanceOf(TranslationFault.class, walker.stage1(c, va, DmaAccess.PRIV_READ));
    }

    @Test
    void va55SelectsTtb1AndBitsAboveTheRangeMustMatchIt() {
        Stage1Config c = twoRanges();
        assertEquals(PA + 0x123, out(c, 0x1123L));
        assertEquals(PA + 0x10_0123L, out(c, 0xffff_0000_0000_1123L));
        // §3.4.1: a 48-bit range accepts only VA[63:48] all equal to VA[55]. VA[55] = 0 with ones above,
        // or VA[55] = 1 with a zero above, is outside both ranges: a level 0 Translation fault.
        for (long va : new long[] {0x0001_0000_0000_1000L, 0x8000_0000_0000_1000L, 0xff7f_0000_0000_1000L,
                0xfffe_0000_0000_1000L, 0x00ff_0000_0000_1000L}) {
            TranslationFault f = fault(c, va);
            assertEquals(FaultType.TRANSLATION, f.type());
            assertEquals(1, f.stage());
            assertEquals(0, f.level());
            assertEquals(va, f.inputAddress());
            assertEquals(-1, f.descriptorAddress());
        }
    }

    @Test
    void tbiIgnoresTheTopByteOfItsOwnRangeOnly() {
        Stage1Config c = twoRanges().withTbi(true, false);
        // TBI0: VA[63:56] ignored for TTB0 (VA[55] == 0), output unaffected.
        assertEquals(PA + 0x123, out(c, 0xa500_0000_0000_1123L));
        // TBI1 == 0: the top byte of a TTB1 address must still be all ones.
        assertEquals(FaultType.TRANSLATION, fault(c, 0x7fff_0000_0000_1123L | (1L << 55)).type());
        Stage1Config c1 = twoRanges().withTbi(false, true);
        assertEquals(PA + 0x10_0123L, out(c1, 0x00ff_0000_0000_1123L));
        assertEquals(FaultType.TRANSLATION, fault(c1, 0xa500_0000_0000_1123L).type());
        // With TBI, VA[55:48] must still match VA[55].
        assertEquals(FaultType.TRANSLATION, fault(c, 0x0001_0000_0000_1000L).type());
    }

    @Test
    void epdDisablesItsRangeWithoutAWalk() {
        Stage1Config c = twoRanges();
        Stage1Config epd0 = new Stage1Config(new Stage1Config.Region(c.tt0().ttb(), 16, Granule.G4K, true), c.tt1(), 48,
                false, false, false, false, false, false, false, false, false, false, false, false);
        TranslationFault f = fault(epd0, 0x1000L);
        assertEquals(FaultType.TRANSLATION, f.type());
        assertEquals(0, f.level());
        assertEquals(-1, f.descriptorAddress());
        assertEquals(PA + 0x10_0000L, out(epd0, 0xffff_0000_0000_1000L));
        Stage1Config epd1 = c.withTt1(new Stage1Config.Region(c.tt1().ttb(), 16, Granule.G4K, true));
        assertEquals(FaultType.TRANSLATION, fault(epd1, 0xffff_0000_0000_1000L).type());
        assertEquals(PA, out(epd1, 0x1000L));
    }

    /** Caught by WalkerPropertyTest: IHI 0070 §5.4 CD.EPD0 is IGNORED (effective 0) for any-EL2. */
    @Test
    void el2IgnoresEpd0AndHasOneRange() {
        Stage1Config c = twoRanges();
        Stage1Config el2 = new Stage1Config(new Stage1Config.Region(c.tt0().ttb(), 16, Granule.G4K, true), null, 48,
                false, false, false, false, false, false, false, false, false, true, false, false);
        assertEquals(PA + 0x42, out(el2, 0x1042L));
        assertNull(el2.check(48, false));
        // One range: VA[55] == 1 is not a TTB1 address but out of range (VA[63:48] must be zero).
        TranslationFault f = fault(el2, 0xffff_0000_0000_1000L);
        assertEquals(FaultType.TRANSLATION, f.type());
        assertEquals(0, f.level());
    }
}
