package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import dev.iommuemu.bridge.session.ConnectionLimits;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.testing.TestDaemon;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.bridge.unix.UnixSocket;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.ControlResponse;
import dev.iommuemu.proto.v1.StatusRequest;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The seven behaviours of a misbehaving VMM or control client that issue 14 reported, each bounded
 * now (docs/daemon.md "Limits and timeouts"): the misbehaving session ends (one log line), the
 * others keep being served, no thread of the daemon dies of an uncaught exception.
 */
class HostilePeerTest {
    /** Short bounds so that the tests wait briefly: ack 500 ms, message 500 ms, handshake 800 ms, idle 1200 ms. */
    static final ConnectionLimits SHORT = new ConnectionLimits(500, 500, 800, 1200);

    private TestDaemon daemon;
    private final List<Throwable> uncaught = new CopyOnWriteArrayList<>();
    private Thread.UncaughtExceptionHandler previous;

    @BeforeEach
    void start() throws Exception {
        previous = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> uncaught.add(e));
        daemon = new TestDaemon("hostile", SHORT, 4);
    }

    @AfterEach
    void stop() {
        daemon.close();
        Thread.setDefaultUncaughtExceptionHandler(previous);
        assertEquals(List.of(), uncaught, "uncaught exceptions on daemon threads");
    }

    private static byte[] header(int request, int flags, int size) {
        return ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(request).putInt(flags).putInt(size).array();
    }

    private static byte[] mmioWrite(long offset, long value) {
        return new Payloads.MmioWrite(offset, 8, value).encode();
    }

    /** A translation on a second, well-behaved connection: stream 1 adds 0x1_0000_0000 (FakeDevice). */
    private static void translates(FakeVmm healthy, long iova) throws Exception {
        Payloads.TranslateReply r = Payloads.TranslateReply.decode(healthy.call(Request.IOMMU_TRANSLATE,
                new Payloads.TranslateRequest(1, Payloads.NO_SUBSTREAM, iova, 0).encode()).payload());
        assertEquals(0x1_0000_0000L + iova, r.result().output());
    }

    // ---- 1. bounded waits in the middle of a message

    /**
     * Reported: a back-end reply that stops after 1 byte blocked the guest's MMIO write for as long
     * as the socket stayed open. Now the ack timeout bounds the whole reply: the write returns, the
     * session fails and only its connection closes.
     */
    @Test
    void aBackEndReplyThatStopsAfterOneByteEndsOnlyItsSession() throws Exception {
        int[] sv = FakeVmm.socketPair();
        try (FakeVmm vmm = daemon.connect(); FakeVmm healthy = daemon.connect()) {
            assertEquals(0, vmm.ack(Request.SET_BACKEND_REQ_FD, new byte[0], sv[0]));
            LibC.closeQuietly(sv[0]);
            Thread stalling = new Thread(() -> {
                try (UnixSocket back = new UnixSocket(sv[1])) {
                    byte[] b = new byte[256];
                    back.recv(b, 0, b.length, new ArrayList<>()); // the IOTLB invalidation request
                    back.send(new byte[] {(byte) 1029}, 0, 1); // one byte of the ack, then nothing
                    Thread.sleep(20_000);
                } catch (Exception ignored) {
                    // closed by the test
                }
            });
            stalling.setDaemon(true);
            stalling.start();
            assertTimeoutPreemptively(Duration.ofSeconds(5), () -> {
                vmm.send(Request.IOMMU_MMIO_WRITE, true, mmioWrite(0x10, 1)); // INV: an invalidation with an ack
                translates(healthy, 0x3000);
                assertTrue(vmm.closedByPeer(3000), "the session whose back end stalled is closed");
            });
            translates(healthy, 0x4000);
            stalling.interrupt();
        }
    }

    /** A VMM message that stops midway (the socket left open) is closed within the message timeout. */
    @Test
    void aMessageThatStopsMidwayIsClosedWithinTheMessageTimeout() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm healthy = daemon.connect()) {
            byte[] b = new byte[22];
            System.arraycopy(header(Request.SET_FEATURES.code(), 1, 40), 0, b, 0, 12);
            vmm.channel.socket().send(b, 0, b.length);
            translates(healthy, 0x1000);
            long t0 = System.nanoTime();
            assertTrue(vmm.closedByPeer(3000), "a stalled message ends its connection");
            assertTrue(System.nanoTime() - t0 < 2_000_000_000L);
            translates(healthy, 0x2000);
        }
    }

    // ---- 2. interrupt fds: eventfds only, signalled without blocking

    /** Reported: a pipe nobody reads as an interrupt fd blocked the MMIO write after ~8000 interrupts. */
    @Test
    void anInterruptFdThatIsAPipeIsRefused() throws Exception {
        int[] pipe = new int[2];
        LibC.pipe2(pipe, 0x80000 /* O_CLOEXEC */);
        try (FakeVmm vmm = daemon.connect()) {
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(2), pipe[1]));
            int evt = LibC.eventfd(0, LibC.EFD_CLOEXEC);
            try {
                assertEquals(0, vmm.ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(2), evt), "an eventfd is accepted");
            } finally {
                LibC.closeQuietly(evt);
            }
        } finally {
            LibC.closeQuietly(pipe[0]);
            LibC.closeQuietly(pipe[1]);
        }
    }

    /**
     * An interrupt eventfd whose counter the VMM let reach its maximum: eventfd(2) blocks such a
     * write. The daemon's signal never blocks; the notification stays pending (counter non-zero).
     */
    @Test
    void aSaturatedInterruptEventfdNeverBlocksTheModel() throws Exception {
        int evt = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        try (FakeVmm vmm = daemon.connect()) {
            com.sun.jna.Memory m = new com.sun.jna.Memory(8);
            m.setLong(0, 0xffff_ffff_ffff_fffeL);
            assertEquals(8, LibC.write(evt, m, 8));
            assertEquals(0, vmm.ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(2), evt));
            assertTimeoutPreemptively(Duration.ofSeconds(5), () -> {
                for (int i = 0; i < 50; i++) {
                    assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, mmioWrite(0x18, 2))); // IRQ: raise line 2
                }
            });
            assertEquals(8, LibC.read(evt, m, 8));
            assertEquals(0xffff_ffff_ffff_fffeL, m.getLong(0), "the VMM's pending count is intact");
        } finally {
            LibC.closeQuietly(evt);
        }
    }

    // ---- 3. kick and doorbell fds: eventfds only

    /** Reported: /dev/null or a memfd as a kick fd spun a core and grew RSS without bound. */
    @Test
    void aKickFdThatIsNotAnEventfdIsRefused() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd ram = new FakeVmm.Memfd(1 << 20); FakeVmm.Memfd notEventfd = new FakeVmm.Memfd(4096)) {
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0x4000_0000L, 1 << 20, 0x7000_0000L, 0))).encode(), ram.fd));
            assertEquals(0, vmm.ack(Request.SET_VRING_NUM, new Payloads.VringState(0, 64).encode()));
            assertEquals(0, vmm.ack(Request.SET_VRING_ADDR, new Payloads.VringAddr(0, 0, 0x7000_1000L, 0x7000_3000L, 0x7000_2000L, 0).encode()));
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.SET_VRING_KICK, Payloads.u64(0), notEventfd.fd));
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.SET_VRING_CALL, Payloads.u64(0), notEventfd.fd));
            // a translation ring whose doorbell is a memfd
            try (FakeVmm.Memfd ring = new FakeVmm.Memfd(64 + 64 * 4)) {
                byte[] p = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(4).putInt(0).array();
                assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_SET_TRANSLATE_RING, p, ring.fd, notEventfd.fd));
            }
            assertEquals(0, vmm.ack(Request.SET_OWNER, new byte[0]), "the connection continues");
        }
    }

    // ---- 4. guest memory that can shrink

    /** Reported: ftruncate on guest RAM after it was mapped raised uncaught InternalErrors. Unsealed memory is refused. */
    @Test
    void guestMemoryAndRingsNotSealedAgainstShrinkingAreRefused() throws Exception {
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd loose = new FakeVmm.Memfd(1 << 16, "loose", false);
                FakeVmm.Memfd sealed = new FakeVmm.Memfd(1 << 16)) {
            byte[] table = new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 1 << 16, 0, 0))).encode();
            assertEquals(ProtocolException.EFAULT, vmm.ack(Request.SET_MEM_TABLE, table, loose.fd));
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, table, sealed.fd));
            com.sun.jna.LastErrorException e = assertThrows(com.sun.jna.LastErrorException.class, () -> LibC.ftruncate(sealed.fd, 0));
            assertEquals(1, e.getErrorCode(), "F_SEAL_SHRINK: the kernel refuses to shrink (EPERM)");
        }
        int bell = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd loose = new FakeVmm.Memfd(64 + 64 * 4, "ring", false)) {
            byte[] p = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(4).putInt(0).array();
            assertEquals(ProtocolException.EFAULT, vmm.ack(Request.IOMMU_SET_TRANSLATE_RING, p, loose.fd, bell));
        } finally {
            LibC.closeQuietly(bell);
        }
    }

    /**
     * With sealing not required (--require-memory-seals false), a region shrunk under the daemon
     * faults on access: the session ends with a clear reason, no exception escapes a thread.
     */
    @Test
    void aShrunkRegionEndsItsSessionWhenSealsAreNotRequired() throws Exception {
        daemon.registry.requireMemorySeals(false);
        try (FakeVmm vmm = daemon.connect(); FakeVmm healthy = daemon.connect(); FakeVmm.Memfd loose = new FakeVmm.Memfd(1 << 16, "shrunk", false)) {
            assertEquals(0, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 1 << 16, 0, 0))).encode(), loose.fd));
            LibC.ftruncate(loose.fd, 0);
            assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, mmioWrite(0x28, 0x2000))); // PEEK address
            vmm.send(Request.IOMMU_MMIO_READ, false, new Payloads.MmioRead(0x30, 8).encode());
            // the JVM reports the SIGBUS as an InternalError at once (interpreted code: the read is
            // answered EFAULT) or at its next safepoint (compiled code: the connection just ends)
            assertTrue(vmm.channel.socket().awaitReadable(3000));
            try {
                VhostUserMessage r = vmm.channel.read();
                if (r != null) {
                    assertEquals(ProtocolException.EFAULT, Payloads.u64(r.payload()), "the read is answered with EFAULT");
                }
            } catch (IOException closed) {
                // ECONNRESET: closed
            }
            assertTrue(vmm.closedByPeer(3000), "then the session ends");
            assertTrue(awaitNoSession(), "the session is torn down");
            translates(healthy, 0x5000);
        }
    }

    /** Waits until only the healthy session of the test is left. */
    private boolean awaitNoSession() throws InterruptedException {
        long deadline = System.currentTimeMillis() + 3000;
        while (daemon.registry.list().size() > 1 && System.currentTimeMillis() < deadline) {
            Thread.sleep(10);
        }
        return daemon.registry.list().size() == 1;
    }

    // ---- 5. connection admission

    /** Reported: idle connections up to the limit locked out every new VMM. */
    @Test
    void silentAndIdleConnectionsDoNotLockOutANewVmm() throws Exception {
        try (VhostUserServer small = new VhostUserServer(FakeVmm.socketPath("adm"), daemon.registry, SHORT, 2)) {
            Path p = small.path();
            try (FakeVmm silent = new FakeVmm(p); FakeVmm idle = new FakeVmm(p)) {
                idle.call(Request.GET_FEATURES, new byte[0]); // one message, then nothing, no memory
                try (FakeVmm refused = new FakeVmm(p)) {
                    assertTrue(refused.closedByPeer(1000), "over the limit: refused at once");
                }
                assertTrue(silent.closedByPeer(2000), "no first message within the handshake timeout");
                assertTrue(idle.closedByPeer(3000), "idle without guest memory past the idle timeout");
                long deadline = System.currentTimeMillis() + 2000;
                while (small.connectionCount() > 0 && System.currentTimeMillis() < deadline) {
                    Thread.sleep(10);
                }
                try (FakeVmm next = new FakeVmm(p); FakeVmm.Memfd ram = new FakeVmm.Memfd(4096)) {
                    next.call(Request.GET_FEATURES, new byte[0]);
                    assertEquals(0, next.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 4096, 0, 0))).encode(), ram.fd));
                    assertFalse(next.closedByPeer(2000), "a VMM that shared its memory may be silent");
                    assertEquals(0, next.ack(Request.SET_OWNER, new byte[0]));
                }
            }
        }
    }

    /** An inherited listening socket (--fd, systemd) is admitted through the same limits as one the daemon creates. */
    @Test
    void anInheritedListenerHasTheSameAdmissionLimits() throws Exception {
        Path p = FakeVmm.socketPath("adm-fd");
        java.nio.file.Files.deleteIfExists(p);
        byte[] addr = dev.iommuemu.bridge.unix.LibC.sockaddrUn(p.toString());
        int fd = dev.iommuemu.bridge.unix.LibC.socket(dev.iommuemu.bridge.unix.LibC.AF_UNIX, dev.iommuemu.bridge.unix.LibC.SOCK_STREAM, 0);
        dev.iommuemu.bridge.unix.LibC.bind(fd, addr, addr.length);
        dev.iommuemu.bridge.unix.LibC.listen(fd, 8);
        try (VhostUserServer inherited = VhostUserServer.inherited(fd, daemon.registry, SHORT, 1); FakeVmm silent = new FakeVmm(p)) {
            long deadline = System.currentTimeMillis() + 2000;
            while (inherited.connectionCount() < 1 && System.currentTimeMillis() < deadline) {
                Thread.sleep(10);
            }
            try (FakeVmm refused = new FakeVmm(p)) {
                assertTrue(refused.closedByPeer(1000), "over --max-connections: refused at once");
            }
            long t0 = System.nanoTime();
            assertTrue(silent.closedByPeer(2000), "no first message within the handshake timeout");
            assertTrue(System.nanoTime() - t0 < 1_500_000_000L, "closed by the 800 ms handshake timeout");
            deadline = System.currentTimeMillis() + 2000;
            while (inherited.connectionCount() > 0 && System.currentTimeMillis() < deadline) {
                Thread.sleep(10);
            }
            try (FakeVmm next = new FakeVmm(p)) {
                next.call(Request.GET_FEATURES, new byte[0]);
                assertEquals(1, inherited.connectionCount(), "the slot is free again");
            }
        }
        assertTrue(java.nio.file.Files.exists(p), "an inherited socket's file is its creator's: left in place");
        java.nio.file.Files.deleteIfExists(p);
    }

    // ---- 6. control socket limits and read timeouts

    private static byte[] delimited(ControlRequest r) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        r.writeDelimitedTo(b);
        return b.toByteArray();
    }

    private static ControlResponse response(UnixSocket s) throws IOException {
        assertTrue(s.awaitReadable(3000), "a response");
        return ControlResponse.parseDelimitedFrom(dev.iommuemu.bridge.unix.UnixSocketStreams.in(s));
    }

    /** Reported: no connection limit, no read timeout; a truncated request held its connection forever. */
    @Test
    void controlClientsAreBoundedInNumberAndTime() throws Exception {
        Path path = FakeVmm.socketPath("ctl");
        try (ControlServer control = new ControlServer(path, daemon.registry, daemon.socket.toString(), new ControlServer.Options(2, 500, 1500));
                UnixSocket a = UnixSocket.connect(path.toString()); UnixSocket b = UnixSocket.connect(path.toString())) {
            byte[] status = delimited(ControlRequest.newBuilder().setId(7).setStatus(StatusRequest.getDefaultInstance()).build());
            a.send(status, 0, status.length);
            assertTrue(response(a).hasStatus());
            // a truncated request: closed after the request timeout
            b.send(status, 0, status.length - 1);
            long t0 = System.nanoTime();
            assertTrue(closed(b, 3000), "an incomplete request ends its connection");
            assertTrue(System.nanoTime() - t0 < 2_500_000_000L);
            // a third and fourth client: the fourth is over the limit, told so, and closed
            try (UnixSocket c = UnixSocket.connect(path.toString()); UnixSocket d = UnixSocket.connect(path.toString())) {
                d.send(status, 0, status.length);
                c.send(status, 0, status.length);
                ControlResponse refusal = response(d);
                assertEquals(7, refusal.getId());
                assertEquals(ProtocolException.EBUSY, refusal.getError().getErrno());
                assertTrue(refusal.getError().getMessage().contains("--control-max-connections"), refusal.getError().getMessage());
                assertTrue(closed(d, 2000));
                assertTrue(response(c).hasStatus(), "the client within the limit is served");
            }
            // an idle client is closed after the idle timeout; an oversized request at once
            assertTrue(closed(a, 4000), "an idle client is closed");
            try (UnixSocket e = UnixSocket.connect(path.toString())) {
                byte[] huge = {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0x7f};
                e.send(huge, 0, huge.length);
                assertTrue(closed(e, 2000), "a request over the size limit is refused before it is read");
            }
            try (ControlClient ok = ControlClient.connect(path)) {
                assertNotNull(ok.status());
            }
        }
    }

    private static boolean closed(UnixSocket s, int timeoutMs) throws IOException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        byte[] b = new byte[4096];
        while (System.currentTimeMillis() < deadline) {
            if (!s.awaitReadable((int) Math.max(1, deadline - System.currentTimeMillis()))) {
                return false;
            }
            try {
                if (s.recv(b, 0, b.length, new ArrayList<>()) == 0) {
                    return true;
                }
            } catch (IOException e) {
                return true;
            }
        }
        return false;
    }

    // ---- 7. the socket path

    /** Reported: a second daemon on a served path took it, and removed the files when it exited. */
    @Test
    void aSecondServerOnALivePathRefusesToStartAndTheFirstKeepsItsFile() throws Exception {
        IOException e = assertThrows(IOException.class, () -> new VhostUserServer(daemon.socket, daemon.registry, SHORT, 2));
        assertTrue(e.getMessage().contains("another process"), e.getMessage());
        Path ctl = FakeVmm.socketPath("ctl2");
        try (ControlServer first = new ControlServer(ctl, daemon.registry)) {
            assertThrows(IOException.class, () -> new ControlServer(ctl, daemon.registry));
            assertTrue(Files.exists(ctl), "the first control server's socket file stays");
        }
        assertTrue(Files.exists(daemon.socket), "the first server's socket file stays");
        try (FakeVmm vmm = daemon.connect()) {
            assertEquals(0, vmm.ack(Request.SET_OWNER, new byte[0]), "the first daemon is reachable");
        }
    }

    /** A socket file nobody listens on (a crashed daemon's) is replaced; closing removes only the file it made. */
    @Test
    void aStaleSocketFileIsReplacedAndOnlyTheOwnFileIsRemoved() throws Exception {
        Path p = FakeVmm.socketPath("stale");
        int s = LibC.socket(LibC.AF_UNIX, LibC.SOCK_STREAM, 0);
        byte[] addr = LibC.sockaddrUn(p.toString());
        LibC.bind(s, addr, addr.length);
        LibC.closeQuietly(s); // bound, never listened: stale
        assertTrue(Files.exists(p));
        VhostUserServer server = new VhostUserServer(p, daemon.registry, SHORT, 2);
        try (FakeVmm vmm = new FakeVmm(p)) {
            assertEquals(0, vmm.ack(Request.SET_OWNER, new byte[0]));
        }
        // someone replaced the file meanwhile: closing leaves that one alone
        Files.delete(p);
        int other = LibC.socket(LibC.AF_UNIX, LibC.SOCK_STREAM, 0);
        LibC.bind(other, addr, addr.length);
        server.close();
        assertTrue(Files.exists(p), "a successor's socket file is not removed");
        LibC.closeQuietly(other);
        Files.delete(p);
    }
}
