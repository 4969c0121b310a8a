package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.VhostUserHeader;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import dev.iommuemu.bridge.session.Counter;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.testing.OpenFds;
import dev.iommuemu.bridge.testing.TestDaemon;
import dev.iommuemu.bridge.unix.LibC;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Malformed frames from a peer: an error reply where one is expected, a closed connection, a log
 * line; other connections unaffected; no descriptor leaks.
 */
class BadPeerTest {
    private TestDaemon daemon;

    @BeforeEach
    void start() throws Exception {
        daemon = new TestDaemon("bad");
    }

    @AfterEach
    void stop() {
        daemon.close();
    }

    private static byte[] header(int request, int flags, int size) {
        return ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(request).putInt(flags).putInt(size).array();
    }

    private static void raw(FakeVmm vmm, byte[] bytes, int... fds) throws Exception {
        vmm.channel.socket().send(bytes, 0, bytes.length, fds);
    }

    /** One sendmsg with more descriptors than UnixSocket.send allows (cmsg(3) SCM_RIGHTS of 9 ints). */
    private static void sendNine(FakeVmm vmm, byte[] bytes, int[] fds) {
        com.sun.jna.Memory buf = new com.sun.jna.Memory(bytes.length);
        buf.write(0, bytes, 0, bytes.length);
        com.sun.jna.Memory iov = new com.sun.jna.Memory(LibC.IOVEC_SIZE);
        iov.setPointer(0, buf);
        iov.setLong(8, bytes.length);
        long cmsgLen = LibC.CMSG_HDR + 4L * fds.length;
        com.sun.jna.Memory ctl = new com.sun.jna.Memory((cmsgLen + 7) & ~7L);
        ctl.clear();
        ctl.setLong(0, cmsgLen);
        ctl.setInt(8, LibC.SOL_SOCKET);
        ctl.setInt(12, LibC.SCM_RIGHTS);
        for (int i = 0; i < fds.length; i++) {
            ctl.setInt(LibC.CMSG_HDR + 4L * i, fds[i]);
        }
        com.sun.jna.Memory msg = new com.sun.jna.Memory(LibC.MSGHDR_SIZE);
        msg.clear();
        msg.setPointer(16, iov);
        msg.setLong(24, 1);
        msg.setPointer(32, ctl);
        msg.setLong(40, (cmsgLen + 7) & ~7L);
        LibC.sendmsg(vmm.channel.socket().fd(), msg, LibC.MSG_NOSIGNAL);
    }

    /** One kind of bad peer each; returns normally if the daemon answered as docs/protocol.md says. */
    @SuppressWarnings("try")
    private void misbehave(int kind, int memfd) throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            switch (kind) {
                case 0 -> { // unknown request with NEED_REPLY: ENOSYS, then closed
                    vmm.send(Request.GET_FEATURES, false, new byte[0]);
                    vmm.reply(Request.GET_FEATURES);
                    vmm.channel.send(VhostUserMessage.request(999, true, new byte[0]));
                    VhostUserMessage r = vmm.channel.read();
                    assertEquals(999, r.request());
                    assertEquals(ProtocolException.ENOSYS, Payloads.u64(r.payload()));
                }
                case 1 -> raw(vmm, header(1, 2, 0)); // version 2
                case 2 -> raw(vmm, header(1, 1, 1 << 20)); // oversized
                case 3 -> { // truncated: header promises 40 bytes, 10 arrive, then the peer goes
                    byte[] b = new byte[22];
                    System.arraycopy(header(Request.ADD_MEM_REG.code(), 1, 40), 0, b, 0, 12);
                    raw(vmm, b, memfd);
                    vmm.close();
                    return;
                }
                case 4 -> { // ADD_MEM_REG without its fd
                    assertEquals(ProtocolException.EBADF, vmm.ack(Request.ADD_MEM_REG, new Payloads.SingleMemRegion(new Payloads.MemRegion(0, 4096, 0, 0)).encode()));
                }
                case 5 -> { // GET_FEATURES with two stray fds
                    vmm.send(Request.GET_FEATURES, false, new byte[0], memfd, memfd);
                }
                case 6 -> { // more than 8 fds across the parts of one message: EBADF (docs/protocol.md §6), then closed
                    byte[] p = new Payloads.MemTable(List.of()).encode();
                    raw(vmm, header(Request.SET_MEM_TABLE.code(), 1 | 8, p.length), memfd, memfd, memfd, memfd, memfd, memfd, memfd, memfd);
                    raw(vmm, p, memfd, memfd, memfd, memfd, memfd, memfd, memfd, memfd);
                    assertEquals(ProtocolException.EBADF, Payloads.u64(vmm.reply(Request.SET_MEM_TABLE).payload()));
                }
                case 11 -> { // 9 fds in one sendmsg (the kernel truncates them: MSG_CTRUNC): EBADF, then closed
                    int[] nine = {memfd, memfd, memfd, memfd, memfd, memfd, memfd, memfd, memfd};
                    byte[] h = header(Request.GET_FEATURES.code(), 1, 0);
                    sendNine(vmm, h, nine);
                    assertEquals(ProtocolException.EBADF, Payloads.u64(vmm.reply(Request.GET_FEATURES).payload()));
                }
                case 7 -> { // a region that does not map, no reply asked: closed
                    int[] sv = FakeVmm.socketPair();
                    vmm.send(Request.SET_MEM_TABLE, false, new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 4096, 0, 0))).encode(), sv[0]);
                    LibC.closeQuietly(sv[0]);
                    LibC.closeQuietly(sv[1]);
                }
                case 8 -> { // a request carrying the REPLY flag
                    raw(vmm, header(Request.GET_FEATURES.code(), 5, 0));
                }
                case 9 -> { // payload size wrong for the request
                    vmm.send(Request.SET_FEATURES, true, new byte[12]);
                    assertEquals(ProtocolException.EINVAL, Payloads.u64(vmm.reply(Request.SET_FEATURES).payload()));
                }
                case 10 -> { // SET_MEM_TABLE whose count disagrees with its size and fds
                    byte[] p = new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 4096, 0, 0))).encode();
                    p[0] = 3;
                    vmm.send(Request.SET_MEM_TABLE, false, p, memfd);
                }
                default -> throw new AssertionError(kind);
            }
            assertTrue(vmm.closedByPeer(3000), "kind " + kind + ": the daemon must close the connection");
        }
    }

    @Test
    void eachKindOfBadPeerIsAnsweredAndDisconnected() throws Exception {
        try (FakeVmm.Memfd mem = new FakeVmm.Memfd(4096)) {
            for (int kind = 0; kind <= 11; kind++) {
                misbehave(kind, mem.fd);
            }
        }
        assertTrue(daemon.awaitNoConnections(), "every session torn down");
        assertEquals(0, daemon.registry.list().size(), "every session torn down");
        assertTrue(daemon.registry.totals().get(Counter.PROTOCOL_ERRORS) >= 10);
    }

    @Test
    void aRegionThatDoesNotMapIsRefusedWhenAReplyIsAsked() throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            int[] sv = FakeVmm.socketPair();
            assertEquals(ProtocolException.EFAULT, vmm.ack(Request.SET_MEM_TABLE, new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 4096, 0, 0))).encode(), sv[0]));
            LibC.closeQuietly(sv[0]);
            LibC.closeQuietly(sv[1]);
            assertEquals(0, vmm.ack(Request.SET_OWNER, new byte[0]));
        }
    }

    @Test
    @SuppressWarnings("try")
    void noDescriptorLeaksAndOtherConnectionsKeepRunning() throws Exception {
        AtomicLong good = new AtomicLong();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        try (FakeVmm.Memfd mem = new FakeVmm.Memfd(4096); FakeVmm healthy = daemon.connect()) {
            Thread t = new Thread(() -> {
                try {
                    while (!Thread.currentThread().isInterrupted()) {
                        Payloads.TranslateReply r = Payloads.TranslateReply.decode(healthy.call(Request.IOMMU_TRANSLATE,
                                new Payloads.TranslateRequest(1, Payloads.NO_SUBSTREAM, 0x5000, 0).encode()).payload());
                        assertEquals(0x1_0000_5000L, r.result().output());
                        good.incrementAndGet();
                    }
                } catch (Throwable e) {
                    if (!Thread.currentThread().isInterrupted()) {
                        failure.set(e);
                    }
                }
            });
            for (int kind = 0; kind <= 11; kind++) { // warm-up: classes, log handlers, JNA
                misbehave(kind, mem.fd);
            }
            for (int i = 0; i < 500 && daemon.server.connectionCount() > 1; i++) {
                Thread.sleep(10);
            }
            t.start();
            Thread.sleep(50);
            // The baseline once the descriptor set has settled (the warm-up's teardown, JVM-internal opens).
            Map<Integer, String> before = OpenFds.settled();
            int rounds = Integer.getInteger("iommuemu.badpeer.rounds", 20);
            for (int i = 0; i < rounds; i++) {
                for (int kind = 0; kind <= 11; kind++) {
                    misbehave(kind, mem.fd);
                }
            }
            // the healthy connection is the one left
            for (int i = 0; i < 500 && daemon.server.connectionCount() > 1; i++) {
                Thread.sleep(10);
            }
            assertEquals(1, daemon.server.connectionCount());
            // Exactly the descriptors of before (waiting out one the JVM holds for a moment).
            Map<Integer, String> after = OpenFds.awaitEqual(before);
            long served = good.get();
            Thread.sleep(50);
            t.interrupt();
            healthy.close();
            t.join(2000);
            assertEquals(null, failure.get());
            assertEquals(before, after, "open descriptors after " + (rounds * 12) + " bad connections");
            assertTrue(served > 10 && good.get() > served, "the healthy VMM kept being served: " + served);
        }
    }

    @Test
    void connectionsBeyondTheLimitAreClosedAndTheOthersServed() throws Exception {
        try (dev.iommuemu.bridge.daemon.VhostUserServer small = new dev.iommuemu.bridge.daemon.VhostUserServer(
                FakeVmm.socketPath("limit"), daemon.registry, 1000, 2)) {
            java.nio.file.Path p = small.path();
            try (FakeVmm a = new FakeVmm(p); FakeVmm b = new FakeVmm(p)) {
                a.call(Request.GET_FEATURES, new byte[0]);
                b.call(Request.GET_FEATURES, new byte[0]);
                try (FakeVmm c = new FakeVmm(p)) {
                    assertTrue(c.closedByPeer(3000), "the third connection is refused");
                }
                assertEquals(0, a.ack(Request.SET_OWNER, new byte[0]));
            }
        }
    }
}
