package dev.iommuemu.pagetable.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage2Config;
import org.junit.jupiter.api.Test;

/** The builder writes the descriptors the Arm ARM D8.3 formats say, byte for byte. */
class PageTableBuilderTest {
    private final SparseGuestMemory mem = new SparseGuestMemory(1L << 32);
    private final PageTableBuilder.Bump tables = new PageTableBuilder.Bump(0x10_0000L, 0x10_0000L);

    @Test
    void fourLevel4kLayout() {
        PageTableBuilder b = PageTableBuilder.stage1(mem, tables, Granule.G4K, 16, 48, 48);
        long va = 0x0000_1234_5678_9000L;
        long slot = b.map(va, 0x8765_4000L, 3, PageTableBuilder.S1_RW);
        assertEquals(0x10_0000L, b.ttb());
        // Level 0 at the TTB, then one 4 KiB table per level, allocated in order.
        assertEquals(0x10_1000L | 0b11, mem.get64(0x10_0000L + ((va >>> 39) & 511) * 8));
        assertEquals(0x10_2000L | 0b11, mem.get64(0x10_1000L + ((va >>> 30) & 511) * 8));
        assertEquals(0x10_3000L | 0b11, mem.get64(0x10_2000L + ((va >>> 21) & 511) * 8));
        assertEquals(0x10_3000L + ((va >>> 12) & 511) * 8, slot);
        assertEquals(0x8765_4000L | 0b11 | (1L << 10), mem.get64(slot));
        assertEquals(slot, b.slot(va, 3));
        // A 2 MiB block elsewhere; mapSize picks the level from the size.
        long block = b.mapSize(0x4020_0000L, 0x9000_0000L, 1L << 21, PageTableBuilder.S1_RW);
        assertEquals(0x9000_0000L | 0b01 | (1L << 10), mem.get64(block));
        assertThrows(IllegalStateException.class, () -> b.map(0x4020_1000L, 0, 3, PageTableBuilder.S1_RW),
                "a page under a block is a test bug");
    }

    @Test
    void concatenatedStage2StartTableIsAlignedToItsSize() {
        PageTableBuilder.Bump t = new PageTableBuilder.Bump(0x10_1000L, 0x100_0000L);
        // 4K, start level 1 (S2SL0 = 1), 43-bit IPA: 13 bits at level 1 = 16 concatenated tables (64 KiB).
        PageTableBuilder b = PageTableBuilder.stage2(mem, t, Granule.G4K, 21, 1, 48, 48);
        assertEquals(13, b.startBits());
        assertEquals(0x11_0000L, b.ttb());
        Stage2Config c = b.stage2Config();
        assertEquals(21, c.t0sz());
        assertEquals(1, c.startLevel());
    }

    @Test
    void fiftyTwoBitEncodingsAndEndianness() {
        PageTableBuilder lpa = PageTableBuilder.stage1(mem, tables, Granule.G64K, 12, 52, 52);
        long s = lpa.map(0, 0x000f_0000_0001_0000L, 3, 0);
        assertEquals(0x0000_0000_0001_0000L | (0xfL << 12) | 0b11, mem.get64(s), "OA[51:48] in bits [15:12]");
        PageTableBuilder ds = PageTableBuilder.stage1(mem, tables, Granule.G4K, 12, 52, 52).ds(true);
        long d = ds.map(0, 0x000f_0000_0000_1000L, 3, 0);
        assertEquals(0x0003_0000_0000_1000L | (3L << 8) | 0b11, mem.get64(d), "OA[51:50] in bits [9:8]");
        PageTableBuilder be = PageTableBuilder.stage1(mem, tables, Granule.G4K, 25, 48, 48).bigEndian(true);
        long e = be.map(0x1000, 0x2000, 3, 0);
        assertEquals(Long.reverseBytes(0x2000L | 0b11), mem.get64(e));
        assertEquals(0x2000L | 0b11, be.descriptor(0x1000, 3));
    }
}
