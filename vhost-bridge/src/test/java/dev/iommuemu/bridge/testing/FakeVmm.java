package dev.iommuemu.bridge.testing;

import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import dev.iommuemu.bridge.session.VhostUserChannel;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.bridge.unix.UnixSocket;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.MappedByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicInteger;

/** A test VMM: speaks the front-end side of the protocol over a real unix socket. */
public final class FakeVmm implements AutoCloseable {
    private static final AtomicInteger SEQ = new AtomicInteger();
    public final VhostUserChannel channel;

    public FakeVmm(Path socket) throws IOException {
        channel = new VhostUserChannel(UnixSocket.connect(socket.toString()));
    }

    /** A unique short socket path under /tmp (sun_path is 107 bytes). */
    public static Path socketPath(String tag) {
        return Path.of("/tmp/ie-" + ProcessHandle.current().pid() + "-" + tag + "-" + SEQ.incrementAndGet() + ".sock");
    }

    /** A daemon of {@code model} and {@code profile} ("" for the default) on {@code socket}, without a control socket. */
    public static dev.iommuemu.bridge.daemon.Daemon daemon(Path socket, String model, String profile) throws Exception {
        return dev.iommuemu.bridge.daemon.Daemon.start(new dev.iommuemu.bridge.daemon.DaemonConfig(socket, null, model, profile,
                java.util.logging.Level.WARNING, 5000, 8), dev.iommuemu.bridge.device.DeviceRegistry.discover());
    }

    public void send(Request r, boolean needReply, byte[] payload, int... fds) throws IOException {
        channel.send(VhostUserMessage.request(r.code(), needReply, payload, fds));
    }

    /** Sends and reads the reply (which must answer the same request). */
    public VhostUserMessage call(Request r, byte[] payload, int... fds) throws IOException {
        send(r, !r.hasReply(), payload, fds);
        return reply(r);
    }

    public VhostUserMessage reply(Request r) throws IOException {
        try {
            VhostUserMessage m = channel.read();
            if (m == null) {
                throw new IOException("daemon closed the connection");
            }
            if (m.request() != r.code() || m.flags() != 0x5) {
                throw new IOException("unexpected reply " + m + " to " + r);
            }
            return m;
        } catch (ProtocolException e) {
            throw new IOException(e);
        }
    }

    /** Sends with NEED_REPLY and returns the u64 ack status. */
    public long ack(Request r, byte[] payload, int... fds) throws IOException {
        send(r, true, payload, fds);
        return Payloads.u64(reply(r).payload());
    }

    /** Whether the daemon closes the connection within the timeout (replies before the EOF are skipped). */
    public boolean closedByPeer(int timeoutMs) throws IOException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        byte[] b = new byte[256];
        java.util.List<Integer> fds = new java.util.ArrayList<>();
        while (true) {
            int left = (int) (deadline - System.currentTimeMillis());
            if (left <= 0 || !UnixSocket.pollIn(channel.socket().fd(), left)) {
                return false;
            }
            try {
                if (channel.socket().recv(b, 0, b.length, fds) == 0) {
                    return true;
                }
            } catch (IOException e) {
                return true; // ECONNRESET
            } finally {
                fds.forEach(LibC::closeQuietly);
                fds.clear();
            }
        }
    }

    @Override
    public void close() {
        channel.close();
    }

    /**
     * An anonymous shared memory file and the VMM's own view of it, sealed against shrinking and
     * growing as QEMU's memory-backend-memfd seals guest RAM (the daemon requires F_SEAL_SHRINK).
     */
    public static final class Memfd implements AutoCloseable {
        public final int fd;
        public final MappedByteBuffer view;

        public Memfd(long size) {
            this(size, "fake-vmm");
        }

        /** A memfd with its own name, so a test can count exactly its mappings in /proc/self/maps. */
        public Memfd(long size, String name) {
            this(size, name, true);
        }

        /** A memfd, sealed (F_SEAL_SHRINK | F_SEAL_GROW) or not. */
        public Memfd(long size, String name, boolean sealed) {
            fd = LibC.memfd_create(name, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
            LibC.ftruncate(fd, size);
            if (sealed) {
                LibC.fcntl(fd, LibC.F_ADD_SEALS, LibC.F_SEAL_SHRINK | LibC.F_SEAL_GROW);
            }
            try (FileChannel ch = FileChannel.open(Path.of("/proc/self/fd/" + fd), StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                view = ch.map(FileChannel.MapMode.READ_WRITE, 0, Math.min(size, Integer.MAX_VALUE));
                view.order(ByteOrder.LITTLE_ENDIAN);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        @Override
        public void close() {
            LibC.closeQuietly(fd);
        }
    }

    /** A connected socket pair (for the back-end channel). */
    public static int[] socketPair() {
        int[] sv = new int[2];
        LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0, sv);
        return sv;
    }

    /** Open descriptors of this process. */
    public static int openFds() {
        String[] l = new java.io.File("/proc/self/fd").list();
        return l == null ? -1 : l.length;
    }
}
