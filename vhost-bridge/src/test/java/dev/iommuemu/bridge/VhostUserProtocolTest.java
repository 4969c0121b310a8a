package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.Protocol;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.testing.FakeDevice;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.testing.OpenFds;
import dev.iommuemu.bridge.testing.TestDaemon;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The standard vhost-user messages, with the test acting as the VMM over a real socket. */
class VhostUserProtocolTest {
    private TestDaemon daemon;

    @BeforeEach
    void start() throws Exception {
        daemon = new TestDaemon("std");
    }

    @AfterEach
    void stop() {
        daemon.close();
    }

    private FakeDevice device() throws InterruptedException {
        for (int i = 0; i < 200 && daemon.fake.created.isEmpty(); i++) {
            Thread.sleep(5);
        }
        return daemon.fake.created.get(daemon.fake.created.size() - 1);
    }

    private DeviceSession session() {
        return daemon.registry.list().get(daemon.registry.list().size() - 1);
    }

    @Test
    void socketFileIsOwnerOnlyAndRemovedOnClose() throws Exception {
        assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE), Files.getPosixFilePermissions(daemon.socket));
        daemon.close();
        assertFalse(Files.exists(daemon.socket));
    }

    @Test
    void featureNegotiation() throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            long f = Payloads.u64(vmm.call(Request.GET_FEATURES, new byte[0]).payload());
            assertEquals((1L << 32) | (1L << 30) | 0b111, f);
            long pf = Payloads.u64(vmm.call(Request.GET_PROTOCOL_FEATURES, new byte[0]).payload());
            assertEquals(Protocol.PROTOCOL_FEATURES, pf);
            assertTrue((pf & (1L << Protocol.PF_REPLY_ACK)) != 0 && (pf & (1L << Protocol.PF_BACKEND_REQ)) != 0
                    && (pf & (1L << Protocol.PF_CONFIG)) != 0 && (pf & (1L << Protocol.PF_CONFIGURE_MEM_SLOTS)) != 0);
            assertEquals(0, vmm.ack(Request.SET_PROTOCOL_FEATURES, Payloads.u64(pf)));
            assertEquals(0, vmm.ack(Request.SET_OWNER, new byte[0]));
            assertEquals(0, vmm.ack(Request.SET_FEATURES, Payloads.u64((1L << 30) | (1L << 32) | 1)));
            assertEquals((1L << 32) | 1, device().acceptedFeatures());
            assertEquals(Protocol.MAX_MEM_SLOTS, Payloads.u64(vmm.call(Request.GET_MAX_MEM_SLOTS, new byte[0]).payload()));
            assertEquals(2, Payloads.u64(vmm.call(Request.GET_QUEUE_NUM, new byte[0]).payload()));
            // protocol features we never offered: refused with EINVAL, connection stays
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.SET_PROTOCOL_FEATURES, Payloads.u64(1L << 40)));
            assertEquals(0, vmm.ack(Request.SET_OWNER, new byte[0]));
        }
    }

    @Test
    void memTableIsMappedAndSharedWithTheModel() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd low = new FakeVmm.Memfd(1 << 20); FakeVmm.Memfd high = new FakeVmm.Memfd(1 << 16)) {
            // page table of FakeDevice stream 4 at guest physical 0: iova page 1 -> 0x4000_0000, writable
            low.view.putLong(8, 0x4000_0000L | 3);
            Payloads.MemTable t = new Payloads.MemTable(List.of(
                    new Payloads.MemRegion(0, 1 << 20, 0x7f00_0000_0000L, 0),
                    new Payloads.MemRegion(0x4000_0000L, 1 << 16, 0x7f00_1000_0000L, 0)));
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, t.encode(), low.fd, high.fd));
            Payloads.TranslateReply r = Payloads.TranslateReply.decode(vmm.call(Request.IOMMU_TRANSLATE,
                    new Payloads.TranslateRequest(4, Payloads.NO_SUBSTREAM, 0x1234, Payloads.ACCESS_WRITE).encode()).payload());
            assertEquals(Payloads.TRANSLATED, r.result().status());
            assertEquals(0x4000_0234L, r.result().output());
            assertEquals(0xfff, r.result().addrMask());
            // the model writes guest memory, the VMM sees it (and the other way round)
            DeviceSession s = session();
            s.writeMemory(0x4000_0010L, new byte[] {9, 8, 7});
            assertEquals(9, high.view.get(0x10));
            high.view.putLong(0x100, 0xabcdef);
            assertArrayEquals(new byte[] {(byte) 0xef, (byte) 0xcd, (byte) 0xab, 0}, s.readMemory(0x4000_0100L, 4));
            assertEquals(2, s.regions().size());
            // a new table replaces the old
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0x8000_0000L, 1 << 16, 0x1000, 0))).encode(), high.fd));
            assertEquals(1, s.regions().size());
            assertEquals(0x8000_0000L, s.regions().get(0).base());
        }
    }

    @Test
    void addAndRemoveRegions() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd a = new FakeVmm.Memfd(1 << 16); FakeVmm.Memfd b = new FakeVmm.Memfd(1 << 16)) {
            Payloads.MemRegion ra = new Payloads.MemRegion(0, 1 << 16, 0x10_0000, 0);
            Payloads.MemRegion rb = new Payloads.MemRegion(0x10_0000, 1 << 16, 0x20_0000, 0);
            assertEquals(0, vmm.ack(Request.ADD_MEM_REG, new Payloads.SingleMemRegion(ra).encode(), a.fd));
            assertEquals(0, vmm.ack(Request.ADD_MEM_REG, new Payloads.SingleMemRegion(rb).encode(), b.fd));
            // overlapping: refused, the connection continues
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.ADD_MEM_REG, new Payloads.SingleMemRegion(new Payloads.MemRegion(0x8000, 1 << 16, 0, 0)).encode(), a.fd));
            DeviceSession s = session();
            assertEquals(2, s.regions().size());
            a.view.put(5, (byte) 0x5a);
            assertEquals(0x5a, s.readMemory(5, 1)[0]);
            assertEquals(0, vmm.ack(Request.REM_MEM_REG, new Payloads.SingleMemRegion(ra).encode(), a.fd));
            assertEquals(1, s.regions().size());
            assertEquals(ProtocolException.ENOENT, vmm.ack(Request.REM_MEM_REG, new Payloads.SingleMemRegion(ra).encode()));
            // a region whose fd is too small for it does not map: error reply
            assertEquals(ProtocolException.EFAULT, vmm.ack(Request.ADD_MEM_REG,
                    new Payloads.SingleMemRegion(new Payloads.MemRegion(0x100_0000, 1 << 20, 0, 0)).encode(), a.fd));
            assertEquals(1, s.regions().size());
        }
    }

    @Test
    void configSpace() throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            Payloads.Config c = Payloads.Config.decode(vmm.call(Request.GET_CONFIG, new Payloads.Config(0, 0, new byte[8]).encode()).payload());
            assertEquals(0, c.offset());
            assertArrayEquals(new byte[] {0, (byte) 0xf0, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff}, c.data());
            assertEquals(0, vmm.ack(Request.SET_CONFIG, new Payloads.Config(36, 0, new byte[] {1}).encode()));
            assertArrayEquals(new byte[] {1}, Payloads.Config.decode(vmm.call(Request.GET_CONFIG, new Payloads.Config(36, 0, new byte[1]).encode()).payload()).data());
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.SET_CONFIG, new Payloads.Config(0, 0, new byte[] {1}).encode()));
            // out of range read: the error reply is a u64 errno
            assertEquals(ProtocolException.EINVAL, Payloads.u64(vmm.call(Request.GET_CONFIG, new Payloads.Config(38, 0, new byte[8]).encode()).payload()));
        }
    }

    @Test
    void vringsStartOnKickAndCallTheirEventfd() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd ram = new FakeVmm.Memfd(1 << 20)) {
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0x4000_0000L, 1 << 20, 0x7000_0000L, 0))).encode(), ram.fd));
            assertEquals(0, vmm.ack(Request.SET_VRING_NUM, new Payloads.VringState(0, 64).encode()));
            assertEquals(0, vmm.ack(Request.SET_VRING_ADDR, new Payloads.VringAddr(0, 0, 0x7000_1000L, 0x7000_3000L, 0x7000_2000L, 0).encode()));
            assertEquals(0, vmm.ack(Request.SET_VRING_BASE, new Payloads.VringState(0, 5).encode()));
            int kick = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
            int call = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
            try {
                assertEquals(0, vmm.ack(Request.SET_VRING_CALL, Payloads.u64(0), call));
                assertEquals(0, vmm.ack(Request.SET_VRING_KICK, Payloads.u64(0), kick));
                FakeDevice d = device();
                assertTrue(d.calls.contains("start 0 Vring[size=64, descTable=1073745920, availRing=1073750016, usedRing=1073754112, nextAvail=5]"), d.calls.toString());
                EventFds.signal(kick);
                assertTrue(EventFds.awaitSignal(call, 2000), "used-buffer notification on the call eventfd");
                assertTrue(d.calls.contains("kick 0"));
                Payloads.VringState base = Payloads.VringState.decode(vmm.call(Request.GET_VRING_BASE, new Payloads.VringState(0, 0).encode()).payload());
                assertEquals(new Payloads.VringState(0, 42), base);
                assertTrue(d.calls.contains("stop 0"));
                // a queue the model does not have
                assertEquals(ProtocolException.EINVAL, vmm.ack(Request.SET_VRING_NUM, new Payloads.VringState(5, 64).encode()));
            } finally {
                dev.iommuemu.bridge.unix.LibC.closeQuietly(kick);
                dev.iommuemu.bridge.unix.LibC.closeQuietly(call);
            }
        }
    }

    /**
     * vhost-user "Ring states": with VHOST_USER_F_PROTOCOL_FEATURES a ring starts disabled. A kick
     * that arrives then is not served, but it must not be lost: the buffers it announced are
     * processed once SET_VRING_ENABLE enables the ring (else the guest waits forever).
     */
    @Test
    void aKickWhileTheRingIsDisabledIsServedWhenItIsEnabled() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd ram = new FakeVmm.Memfd(1 << 20)) {
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 1 << 20, 0x7000_0000L, 0))).encode(), ram.fd));
            assertEquals(0, vmm.ack(Request.SET_FEATURES, Payloads.u64((1L << 30) | (1L << 32))));
            assertEquals(0, vmm.ack(Request.SET_VRING_NUM, new Payloads.VringState(0, 64).encode()));
            assertEquals(0, vmm.ack(Request.SET_VRING_ADDR, new Payloads.VringAddr(0, 0, 0x7000_1000L, 0x7000_3000L, 0x7000_2000L, 0).encode()));
            int kick = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
            int call = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
            try {
                assertEquals(0, vmm.ack(Request.SET_VRING_CALL, Payloads.u64(0), call));
                assertEquals(0, vmm.ack(Request.SET_VRING_KICK, Payloads.u64(0), kick));
                FakeDevice d = device();
                EventFds.signal(kick);
                // the daemon has taken the kick when its counter is read (the eventfd no longer readable)
                long deadline = System.currentTimeMillis() + 5000;
                while (dev.iommuemu.bridge.unix.UnixSocket.pollIn(kick, 0) && System.currentTimeMillis() < deadline) {
                    Thread.sleep(2);
                }
                Thread.sleep(20); // let the kick thread finish with it
                assertFalse(d.calls.contains("kick 0"), "a disabled ring is not processed");
                assertEquals(0, vmm.ack(Request.SET_VRING_ENABLE, new Payloads.VringState(0, 1).encode()));
                assertTrue(EventFds.awaitSignal(call, 2000), "the buffers made available while disabled are processed on enable");
                assertTrue(d.calls.contains("kick 0"));
            } finally {
                dev.iommuemu.bridge.unix.LibC.closeQuietly(kick);
                dev.iommuemu.bridge.unix.LibC.closeQuietly(call);
            }
        }
    }

    /**
     * docs/protocol.md §3.3 (virtio 1.2 §2.7, §4.1.4.3): a ring the driver left unconfigured (VMM
     * address 0, or no SET_VRING_ADDR yet) takes its SET_VRING_KICK without error and is not
     * started, nor are its kicks served; SET_VRING_ADDR with its rings later starts it with that
     * kick eventfd and serves what was made available meanwhile.
     */
    @Test
    void anUnconfiguredRingTakesItsKickAndStartsWhenConfigured() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd ram = new FakeVmm.Memfd(1 << 20)) {
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 1 << 20, 0x7000_0000L, 0))).encode(), ram.fd));
            assertEquals(0, vmm.ack(Request.SET_VRING_NUM, new Payloads.VringState(1, 64).encode()));
            assertEquals(0, vmm.ack(Request.SET_VRING_ADDR, new Payloads.VringAddr(1, 0, 0, 0, 0, 0).encode()));
            int kick = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
            int call = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
            try {
                assertEquals(0, vmm.ack(Request.SET_VRING_CALL, Payloads.u64(1), call));
                // still an eventfd only (docs/daemon.md "Limits and timeouts"): a memfd is refused, the connection stays
                assertEquals(dev.iommuemu.bridge.protocol.ProtocolException.EINVAL, vmm.ack(Request.SET_VRING_KICK, Payloads.u64(1), ram.fd),
                        "an unconfigured ring's kick fd is checked too");
                assertEquals(0, vmm.ack(Request.SET_VRING_KICK, Payloads.u64(1), kick), "address 0: not an error");
                assertEquals(0, vmm.ack(Request.SET_VRING_ENABLE, new Payloads.VringState(1, 1).encode()));
                FakeDevice d = device();
                EventFds.signal(kick);
                long deadline = System.currentTimeMillis() + 5000;
                while (dev.iommuemu.bridge.unix.UnixSocket.pollIn(kick, 0) && System.currentTimeMillis() < deadline) {
                    Thread.sleep(2);
                }
                Thread.sleep(20);
                assertFalse(d.calls.stream().anyMatch(c -> c.startsWith("start 1") || c.equals("kick 1")), d.calls.toString());
                assertEquals(0, vmm.ack(Request.SET_VRING_ADDR, new Payloads.VringAddr(1, 0, 0x7000_1000L, 0x7000_3000L, 0x7000_2000L, 0).encode()));
                assertTrue(d.calls.contains("start 1 Vring[size=64, descTable=4096, availRing=8192, usedRing=12288, nextAvail=0]"), d.calls.toString());
                assertTrue(EventFds.awaitSignal(call, 2000), "what was made available before the ring started is served");
                assertTrue(d.calls.contains("kick 1"));
                EventFds.signal(kick);
                assertTrue(EventFds.awaitSignal(call, 2000), "the kick eventfd given while unconfigured is the ring's");
                // GET_VRING_BASE stops it; a kick before any SET_VRING_ADDR is not an error either
                assertEquals(new Payloads.VringState(1, 42),
                        Payloads.VringState.decode(vmm.call(Request.GET_VRING_BASE, new Payloads.VringState(1, 0).encode()).payload()));
                assertEquals(0, vmm.ack(Request.RESET_DEVICE, new byte[0]));
                int kick2 = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
                try {
                    assertEquals(0, vmm.ack(Request.SET_VRING_KICK, Payloads.u64(0), kick2));
                } finally {
                    dev.iommuemu.bridge.unix.LibC.closeQuietly(kick2);
                }
            } finally {
                dev.iommuemu.bridge.unix.LibC.closeQuietly(kick);
                dev.iommuemu.bridge.unix.LibC.closeQuietly(call);
            }
        }
    }

    /**
     * A ring stopped with GET_VRING_BASE and started again with a new kick eventfd (vhost-user
     * "Ring states") keeps being served, every time: the daemon's copy of the old kick fd is closed
     * and the new one often gets the same number, which must not confuse the kick thread.
     */
    @Test
    void aRestartedRingKeepsItsNewKick() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd ram = new FakeVmm.Memfd(1 << 20)) {
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 1 << 20, 0x7000_0000L, 0))).encode(), ram.fd));
            assertEquals(0, vmm.ack(Request.SET_VRING_NUM, new Payloads.VringState(0, 64).encode()));
            assertEquals(0, vmm.ack(Request.SET_VRING_ADDR, new Payloads.VringAddr(0, 0, 0x7000_1000L, 0x7000_3000L, 0x7000_2000L, 0).encode()));
            int call = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
            try {
                assertEquals(0, vmm.ack(Request.SET_VRING_CALL, Payloads.u64(0), call));
                for (int round = 0; round < 20; round++) {
                    int kick = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
                    try {
                        assertEquals(0, vmm.ack(Request.SET_VRING_KICK, Payloads.u64(0), kick));
                        EventFds.signal(kick);
                        assertTrue(EventFds.awaitSignal(call, 2000), "round " + round + ": the kick was served");
                        vmm.call(Request.GET_VRING_BASE, new Payloads.VringState(0, 0).encode());
                    } finally {
                        dev.iommuemu.bridge.unix.LibC.closeQuietly(kick);
                    }
                }
            } finally {
                dev.iommuemu.bridge.unix.LibC.closeQuietly(call);
            }
        }
    }

    private static long mappings(String name) throws Exception {
        return Files.readAllLines(java.nio.file.Path.of("/proc/self/maps")).stream().filter(l -> l.contains(name)).count();
    }

    @Test
    @SuppressWarnings("try")
    void disconnectUnmapsAndClosesEverything() throws Exception {
        try (FakeVmm warm = daemon.connect(); FakeVmm.Memfd m = new FakeVmm.Memfd(4096)) {
            warm.call(Request.GET_FEATURES, new byte[0]);
            // the JDK's first FileChannel creates a socket pair it keeps for good (its "pre-close" fd)
            mappings("memfd:fake-vmm");
        }
        assertTrue(daemon.awaitNoConnections(), "the warm-up session was torn down");
        // The baseline once the descriptor set has settled (no teardown or JVM-internal open in flight).
        Map<Integer, String> fdsBefore = OpenFds.settled();
        // Memfds of a name only this test uses: mappings other tests left for the GC to unmap can
        // come and go at any time and must not be counted.
        String name = "fake-vmm-disconnect";
        long mapsBefore = mappings("memfd:" + name);
        assertEquals(0, mapsBefore);
        FakeVmm vmm = daemon.connect();
        int[] sv = FakeVmm.socketPair();
        int irq = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
        int kick = dev.iommuemu.bridge.unix.LibC.eventfd(0, dev.iommuemu.bridge.unix.LibC.EFD_CLOEXEC);
        try (FakeVmm.Memfd a = new FakeVmm.Memfd(1 << 20, name); FakeVmm.Memfd b = new FakeVmm.Memfd(1 << 20, name)) {
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 1 << 20, 0x10_0000, 0),
                    new Payloads.MemRegion(1 << 20, 1 << 20, 0x20_0000, 0))).encode(), a.fd, b.fd));
            assertEquals(0, vmm.ack(Request.SET_BACKEND_REQ_FD, new byte[0], sv[1]));
            assertEquals(0, vmm.ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(1), irq));
            assertEquals(0, vmm.ack(Request.SET_VRING_NUM, new Payloads.VringState(1, 16).encode()));
            assertEquals(0, vmm.ack(Request.SET_VRING_ADDR, new Payloads.VringAddr(1, 0, 0x10_0000, 0x10_2000, 0x10_1000, 0).encode()));
            assertEquals(0, vmm.ack(Request.SET_VRING_KICK, Payloads.u64(1), kick));
            assertEquals(0, vmm.ack(Request.SET_VRING_CALL, Payloads.u64(1), irq));
            // the daemon holds its own copies: two mappings more than before, and more fds
            assertEquals(mapsBefore + 4, mappings("memfd:" + name), "the VMM's two views and the daemon's two mappings");
        }
        vmm.close();
        dev.iommuemu.bridge.unix.LibC.closeQuietly(sv[0]);
        dev.iommuemu.bridge.unix.LibC.closeQuietly(sv[1]);
        dev.iommuemu.bridge.unix.LibC.closeQuietly(irq);
        dev.iommuemu.bridge.unix.LibC.closeQuietly(kick);
        assertTrue(daemon.awaitNoConnections(), "the session was torn down");
        assertEquals(0, daemon.registry.list().size());
        // Exactly the descriptors of before, same numbers, same files: every one the session held is
        // closed and none of anyone else's. (Waits out a descriptor the JVM holds for a moment.)
        assertEquals(fdsBefore, OpenFds.awaitEqual(fdsBefore), "every descriptor the session held is closed");
        // the test's own MappedByteBuffers may linger until GC; the daemon's mappings must be gone
        System.gc();
        Thread.sleep(100);
        assertTrue(mappings("memfd:" + name) <= mapsBefore + 2, "the daemon unmapped its regions");
    }
}
