package dev.iommuemu.bridge.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.memory.GuestMemory;
import java.io.IOException;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * docs/protocol.md §4.11, the dirty log: every write path of {@link MappedRegion} marks the 4 KiB
 * pages it touched in the VMM's bitmap (vhost-user.rst "dirty pages log": page n at byte n / 8,
 * bit n % 8), read back byte for byte from the memfd as the VMM sees it.
 */
class DirtyLogTest {
    private static final long RAM = 0x4000_0000L;
    /** The bitmap covers pages below 0x40080: GPA below 0x4008_0000, the lower half of the region. */
    private static final long LOG_SIZE = 0x8010;

    /** Counts as the session's counters would. */
    private static final class Counts implements DirtyLog.Listener {
        long marked;
        long overflows;

        @Override
        public void marked(long pages) {
            marked += pages;
        }

        @Override
        public void overflow() {
            overflows++;
        }
    }

    /** The nonzero bytes of the bitmap, by offset. */
    private static Map<Integer, Integer> bits(FakeVmm.Memfd f, int from, int size) {
        Map<Integer, Integer> m = new TreeMap<>();
        for (int i = 0; i < size; i++) {
            int b = f.view.get(from + i) & 0xff;
            if (b != 0) {
                m.put(i, b);
            }
        }
        return m;
    }

    @Test
    void everyWritePathMarksItsPagesAndNothingElse() throws Exception {
        Counts counts = new Counts();
        try (MappedGuestMemory mem = new MappedGuestMemory(4); FakeVmm.Memfd f = new FakeVmm.Memfd(LOG_SIZE, "dirty-log-test")) {
            mem.add(MappedRegion.allocate("dirty-log-ram", RAM, 1 << 20));
            DirtyLog log = DirtyLog.map(LibC.dup(f.fd), LOG_SIZE, 0, true, "test", counts);
            assertEquals(0x4008_0000L, log.limit());
            mem.dirtyLog(log);

            assertTrue(mem.store(RAM, 1, 0x11));              // page 0x40000: byte 0x8000 bit 0
            assertTrue(mem.store(RAM + 0x1ffe, 2, 0x2222));   // page 0x40001: bit 1
            assertTrue(mem.store(RAM + 0x2ffe, 4, 0x3333_3333)); // unaligned across pages 0x40002 and 0x40003: bits 2, 3
            assertTrue(mem.store(RAM + 0x5000, 8, 0x55L));    // page 0x40005: bit 5
            assertTrue(mem.write(RAM + 0x9ff0, new byte[32], 0, 32)); // pages 0x40009, 0x4000a: byte 0x8001 bits 1, 2
            GuestMemory.Region r = mem.find(RAM + 0xc000, 8);
            assertTrue(r.compareAndSet64(RAM + 0xc000, 0, 7)); // page 0x4000c: byte 0x8001 bit 4
            assertFalse(r.compareAndSet64(RAM + 0xd000, 5, 7), "memory holds 0, not 5"); // page 0x4000d: no write, no bit
            assertEquals(Map.of(0x8000, 0x2f, 0x8001, 0x16), bits(f, 0, (int) LOG_SIZE));
            assertEquals(8, counts.marked);
            assertEquals(8, log.marked());

            // a page already marked is not counted again
            assertTrue(mem.store(RAM + 0x10, 8, 1));
            assertEquals(8, counts.marked);

            // beyond the bitmap: counted, nothing set, no exception; a write straddling the end
            // marks the page inside (byte 0x800f bit 7, page 0x4007f)
            assertTrue(mem.store(0x4008_0000L, 8, 1));
            assertEquals(1, counts.overflows);
            assertTrue(mem.write(0x4007_fff8L, new byte[16], 0, 16));
            assertEquals(2, counts.overflows);
            assertEquals(2, log.overflows());
            assertEquals(Map.of(0x8000, 0x2f, 0x8001, 0x16, 0x800f, 0x80), bits(f, 0, (int) LOG_SIZE));
            assertEquals(9, counts.marked);

            // the VMM clears a word (it copied the pages); the next write marks again
            f.view.putLong(0x8000, 0);
            assertTrue(mem.store(RAM + 0x3000, 4, 9)); // page 0x40003: byte 0x8000 bit 3
            assertEquals(Map.of(0x8000, 0x08, 0x800f, 0x80), bits(f, 0, (int) LOG_SIZE));
            assertEquals(10, counts.marked);

            // a region added while logging is logged too
            mem.add(MappedRegion.allocate("dirty-log-ram2", 0x3000_0000L, 0x10000));
            assertTrue(mem.store(0x3000_4000L, 1, 1)); // page 0x30004: byte 0x6000 bit 4
            assertEquals(0x10, f.view.get(0x6000));
            assertEquals(11, counts.marked);

            // stopped: no more bits
            mem.dirtyLog(null);
            log.close();
            for (int i = 0; i < LOG_SIZE; i += 8) {
                f.view.putLong(i, 0);
            }
            assertTrue(mem.store(RAM + 0x7000, 8, 1));
            assertTrue(mem.write(RAM, new byte[0x3000], 0, 0x3000));
            assertTrue(mem.find(RAM + 0x8000, 8).compareAndSet64(RAM + 0x8000, 0, 1));
            assertEquals(Map.of(), bits(f, 0, (int) LOG_SIZE));
            assertEquals(11, counts.marked);
        }
    }

    @Test
    void theLogLiesAtItsOffsetAndStraddlingChunksMarkBothPages() throws Exception {
        Counts counts = new Counts();
        // a region of 1 GiB + 64 KiB is two chunks: a doubleword at 1 GiB - 4 takes the byte-wise path
        long size = MappedRegion.CHUNK_SIZE + 0x10000;
        try (MappedGuestMemory mem = new MappedGuestMemory(4); FakeVmm.Memfd f = new FakeVmm.Memfd(4096 + 0x8008, "dirty-log-off")) {
            mem.add(MappedRegion.allocate("dirty-log-big", 0, size));
            try (DirtyLog log = DirtyLog.map(LibC.dup(f.fd), 0x8008, 4096, true, "test", counts)) {
                mem.dirtyLog(log);
                assertTrue(mem.store(MappedRegion.CHUNK_SIZE - 4, 8, -1L)); // pages 0x3ffff and 0x40000
                assertTrue(mem.store(MappedRegion.CHUNK_SIZE - 1, 2, 0x1234)); // the short form of the same
                assertTrue(mem.store(MappedRegion.CHUNK_SIZE - 2, 4, 0x1234)); // and the word form
                // the bitmap starts at mmap_offset 4096 of the memfd
                assertEquals(Map.of(0x7fff, 0x80, 0x8000, 0x01), bits(f, 4096, 0x8008));
                assertEquals(Map.of(), bits(f, 0, 4096));
                assertEquals(2, counts.marked);
                mem.dirtyLog(null);
            }
        }
    }

    @Test
    void refusals() throws Exception {
        Counts counts = new Counts();
        assertNull(DirtyLog.check(8, 0));
        assertNull(DirtyLog.check(DirtyLog.MAX_SIZE, 0x2000));
        assertEquals("a dirty log is a positive multiple of 8 bytes up to 1073741824 (1 GiB), not 12 bytes: size it as"
                + " (highest guest physical address / 4096 / 8) rounded up to 8", DirtyLog.check(12, 0));
        assertTrue(DirtyLog.check(0, 0).startsWith("a dirty log is a positive multiple of 8 bytes"));
        assertTrue(DirtyLog.check(DirtyLog.MAX_SIZE + 8, 0).endsWith("not 1073741832 bytes: size it as (highest guest physical"
                + " address / 4096 / 8) rounded up to 8"));
        assertEquals("the dirty log's mmap_offset 0x800 is not a multiple of the 4096-byte page size", DirtyLog.check(8, 0x800));
        // coverage of the RAM mapped: mmap_size x 8 x 4096 bytes of GPA must reach its end
        assertNull(DirtyLog.coverage(8, 0), "no RAM yet");
        assertNull(DirtyLog.coverage(8, 0x4_0000), "64 pages, exactly");
        assertNull(DirtyLog.coverage(DirtyLog.MAX_SIZE, 1L << 45), "the largest log: 2^33 pages");
        assertEquals("the dirty log covers guest physical addresses below 0x40000, but guest RAM reaches 0x40001;"
                + " size it to cover all of guest RAM (at least 16 bytes)", DirtyLog.coverage(8, 0x4_0001));
        assertEquals("the dirty log covers guest physical addresses below 0xfc0000, but guest RAM reaches 0x1000000;"
                + " size it to cover all of guest RAM (at least 512 bytes)", DirtyLog.coverage(504, 0x100_0000));
        assertEquals("the dirty log covers guest physical addresses below 0x200000000000, but guest RAM reaches 0x200000001000;"
                + " size it to cover all of guest RAM (at least 1073741832 bytes)", DirtyLog.coverage(DirtyLog.MAX_SIZE, (1L << 45) + 0x1000));
        assertThrows(IllegalArgumentException.class, () -> DirtyLog.map(-1, 12, 0, true, "test", counts));
        try (FakeVmm.Memfd unsealed = new FakeVmm.Memfd(4096, "dirty-log-unsealed", false)) {
            int fd = LibC.dup(unsealed.fd);
            IOException e = assertThrows(IOException.class, () -> DirtyLog.map(fd, 4096, 0, true, "test", counts));
            assertTrue(e.getMessage().contains("is not a memfd sealed against shrinking"), e.getMessage());
            // without the seal requirement (--require-memory-seals false) it maps
            DirtyLog.map(fd, 4096, 0, false, "test", counts).close();
        }
        try (FakeVmm.Memfd small = new FakeVmm.Memfd(4096, "dirty-log-small")) {
            int fd = LibC.dup(small.fd);
            IOException e = assertThrows(IOException.class, () -> DirtyLog.map(fd, 8192, 0, true, "test", counts));
            assertTrue(e.getMessage().contains("holds 4096 bytes, region needs 8192"), e.getMessage());
            LibC.closeQuietly(fd);
        }
    }
}
