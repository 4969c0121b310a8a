package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.memory.SparseGuestMemory;
import org.junit.jupiter.api.Test;

/** Hand-built tables, checked against values worked out by hand from the Arm ARM formats. */
class WalkerSmokeTest {
    // 4K granule, 48-bit VA: level 0 at 0x1000, level 1 at 0x2000, level 2 at 0x3000, level 3 at 0x4000.
    private static final long TABLE = 0b11;
    private static final long PAGE = 0b11 | (1L << 10); // AF
    private static final long BLOCK = 0b01 | (1L << 10);

    @Test
    void fourLevel4kPage() {
        SparseGuestMemory m = new SparseGuestMemory(1L << 32);
        long va = 0x0000_1234_5678_9abcL;
        // indices: L0 = va[47:39], L1 = va[38:30], L2 = va[29:21], L3 = va[20:12]
        m.put64(0x1000 + ((va >>> 39) & 511) * 8, 0x2000 | TABLE);
        m.put64(0x2000 + ((va >>> 30) & 511) * 8, 0x3000 | TABLE);
        m.put64(0x3000 + ((va >>> 21) & 511) * 8, 0x4000 | TABLE);
        m.put64(0x4000 + ((va >>> 12) & 511) * 8, 0x8765_4000L | PAGE);
        Walker w = new Walker(m, 48);
        WalkResult r = w.stage1(Stage1Config.simple(0x1000, 16, Granule.G4K, 48), va, DmaAccess.PRIV_WRITE);
        Translation t = assertInstanceOf(Translation.class, r);
        assertEquals(0x8765_4abcL, t.outputAddress());
        assertEquals(12, t.pageShift());
        assertEquals(3, t.s1Level());
        // AP = 0b00: privileged read/write, no unprivileged data access; PXN = UXN = 0: executable at
        // both privileges (execute-only for unprivileged, Arm ARM D8.4).
        assertEquals(Perm.PR | Perm.PW | Perm.PX | Perm.UX, t.perm());
    }

    @Test
    void twoMegBlockAndAccessFlagFault() {
        SparseGuestMemory m = new SparseGuestMemory(1L << 32);
        long va = 0x40_0123_4567L; // 39-bit VA (T0SZ 25): start level 1
        m.put64(0x1000 + ((va >>> 30) & 511) * 8, 0x3000 | TABLE);
        m.put64(0x3000 + ((va >>> 21) & 511) * 8, 0x8000_0000L | BLOCK);
        Walker w = new Walker(m, 48);
        Translation t = assertInstanceOf(Translation.class,
                w.stage1(Stage1Config.simple(0x1000, 25, Granule.G4K, 48), va, DmaAccess.PRIV_READ));
        assertEquals(0x8000_0000L | (va & 0x1f_ffff), t.outputAddress());
        assertEquals(21, t.pageShift());
        m.put64(0x3000 + ((va >>> 21) & 511) * 8, 0x8000_0000L | 0b01);
        TranslationFault f = assertInstanceOf(TranslationFault.class,
                w.stage1(Stage1Config.simple(0x1000, 25, Granule.G4K, 48), va, DmaAccess.PRIV_READ));
        assertEquals(FaultType.ACCESS_FLAG, f.type());
        assertEquals(2, f.level());
    }
}
