package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.memory.MappedGuestMemory;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.memory.GuestMemory;
import java.io.IOException;
import org.junit.jupiter.api.Test;

class MappedGuestMemoryTest {

    @Test
    void sharedWithTheVmmBothWays() throws Exception {
        try (FakeVmm.Memfd mem = new FakeVmm.Memfd(1 << 20); MappedGuestMemory gm = new MappedGuestMemory(4)) {
            mem.view.putLong(0x100, 0x1122_3344_5566_7788L);
            int dup = dupOf(mem.fd);
            gm.add(MappedRegion.map(0x4000_0000L, 1 << 20, 0x7000_0000L, 0, dup));
            assertEquals(0x1122_3344_5566_7788L, gm.load(0x4000_0100L, 8).getAsLong());
            assertEquals(0x5566_7788L, gm.load(0x4000_0100L, 4).getAsLong());
            assertEquals(0x7788L, gm.load(0x4000_0100L, 2).getAsLong());
            assertEquals(0x77L, gm.load(0x4000_0101L, 1).getAsLong());
            assertEquals(0x2233_4455_6677_8800L, gm.load(0x4000_00ffL, 8).getAsLong()); // unaligned read
            assertTrue(gm.store(0x4000_0203L, 8, 0xa1a2_a3a4_a5a6_a7a8L)); // unaligned
            assertEquals(0xa1a2_a3a4_a5a6_a7a8L, mem.view.getLong(0x203));
            GuestMemory.Region r = gm.find(0x4000_0400L, 8);
            assertTrue(r.compareAndSet64(0x4000_0400L, 0, 0xfeed));
            assertFalse(r.compareAndSet64(0x4000_0400L, 0, 0xbeef));
            assertEquals(0xfeed, mem.view.getLong(0x400));
            assertNull(gm.find(0x4000_0000L + (1 << 20) - 4, 8), "straddles the end: an abort");
            assertFalse(gm.load(0x3fff_fff8L, 8).isPresent());
            assertEquals(0x4000_0010L, gm.userToGuestPhysical(0x7000_0010L).getAsLong());
            assertFalse(gm.userToGuestPhysical(0x6fff_ffffL).isPresent());
            byte[] b = new byte[] {1, 2, 3, 4, 5};
            assertTrue(gm.write(0x4000_1000L, b, 0, 5));
            byte[] back = new byte[5];
            assertTrue(gm.read(0x4000_1000L, back, 0, 5));
            assertArrayEquals(b, back);
        }
    }

    @Test
    void regionsLargerThan2GiBAreChunked() throws Exception {
        long size = 3L << 30; // sparse memfd: only touched pages cost memory
        try (MappedGuestMemory gm = new MappedGuestMemory(2)) {
            gm.add(MappedRegion.allocate("t", 0x1_0000_0000L, size));
            long edge = 0x1_0000_0000L + (1L << 30) - 4; // straddles the first 1 GiB chunk boundary
            assertTrue(gm.store(edge, 8, 0x0102_0304_0506_0708L));
            assertEquals(0x0102_0304_0506_0708L, gm.load(edge, 8).getAsLong());
            assertEquals(0x0506_0708L, gm.load(edge, 4).getAsLong());
            assertEquals(0x0102_0304L, gm.load(edge + 4, 4).getAsLong());
            long high = 0x1_0000_0000L + (5L << 29) + 8;
            assertTrue(gm.store(high, 8, -2L));
            assertEquals(-2L, gm.load(high, 8).getAsLong());
            assertTrue(gm.find(high, 8).compareAndSet64(high, -2L, 3));
            byte[] across = new byte[16];
            assertTrue(gm.read(edge - 4, across, 0, 16));
            assertEquals(0x08, across[4]);
            assertEquals(0x01, across[11]);
            assertTrue(gm.load(0x1_0000_0000L + size - 8, 8).isPresent());
            assertFalse(gm.load(0x1_0000_0000L + size - 4, 8).isPresent());
        }
    }

    @Test
    void refusesWhatWouldFaultLater() throws Exception {
        // a file shorter than the region: touching past its end would raise SIGBUS
        try (FakeVmm.Memfd mem = new FakeVmm.Memfd(4096)) {
            IOException e = assertThrows(IOException.class, () -> MappedRegion.map(0, 8192, 0, 0, mem.fd));
            assertTrue(e.getMessage().contains("holds 4096 bytes"), e.getMessage());
            assertThrows(IOException.class, () -> MappedRegion.map(0, 4096, 0, 1, mem.fd));
        }
        // not a regular file
        int[] sv = FakeVmm.socketPair();
        try {
            IOException e = assertThrows(IOException.class, () -> MappedRegion.map(0, 4096, 0, 0, sv[0]));
            assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
        } finally {
            LibC.closeQuietly(sv[0]);
            LibC.closeQuietly(sv[1]);
        }
    }

    @Test
    void overlapsAndSlotsAreRefusedAndUnmapClosesTheFd() throws Exception {
        try (MappedGuestMemory gm = new MappedGuestMemory(2)) {
            gm.add(MappedRegion.allocate("a", 0x1000, 0x2000));
            MappedRegion overlap = MappedRegion.allocate("b", 0x2000, 0x1000);
            assertThrows(IllegalArgumentException.class, () -> gm.add(overlap));
            overlap.unmap();
            gm.add(MappedRegion.allocate("c", 0x3000, 0x1000));
            MappedRegion third = MappedRegion.allocate("d", 0x8000, 0x1000);
            assertThrows(IllegalArgumentException.class, () -> gm.add(third));
            third.unmap();
            int fd = gm.regions().get(0).fd();
            assertTrue(new java.io.File("/proc/self/fd/" + fd).exists());
            assertTrue(gm.remove(0x1000, 0x2000));
            assertFalse(gm.remove(0x1000, 0x2000));
            assertFalse(gm.load(0x1000, 8).isPresent());
            assertEquals(1, gm.regions().size());
        }
    }

    @Test
    void mapsAtAnUnalignedOffset() throws Exception {
        try (FakeVmm.Memfd mem = new FakeVmm.Memfd(3 * 4096); MappedGuestMemory gm = new MappedGuestMemory(1)) {
            mem.view.putLong(4096 + 0x18, 77);
            gm.add(MappedRegion.map(0, 4096, 0, 4096 + 0x10, dupOf(mem.fd)));
            assertEquals(77, gm.load(8, 8).getAsLong());
        }
    }

    static int dupOf(int fd) throws IOException {
        // a second descriptor of the same memfd, as the kernel makes when one crosses a socket
        java.nio.file.Path p = java.nio.file.Path.of("/proc/self/fd/" + fd);
        int[] sv = FakeVmm.socketPair();
        try {
            dev.iommuemu.bridge.unix.UnixSocket a = new dev.iommuemu.bridge.unix.UnixSocket(sv[0]);
            dev.iommuemu.bridge.unix.UnixSocket b = new dev.iommuemu.bridge.unix.UnixSocket(sv[1]);
            a.send(new byte[] {0}, 0, 1, fd);
            java.util.List<Integer> fds = new java.util.ArrayList<>();
            b.recv(new byte[1], 0, 1, fds);
            a.close();
            b.close();
            assertTrue(p.toFile().exists());
            return fds.get(0);
        } finally {
            LibC.closeQuietly(sv[0]);
            LibC.closeQuietly(sv[1]);
        }
    }
}
