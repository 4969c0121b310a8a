package dev.iommuemu.bridge.unix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import java.io.IOException;
import java.util.List;

/**
 * A connected unix stream socket that carries file descriptors (unix(7) SCM_RIGHTS), made and
 * used with JNA because neither Java 17's channels nor Netty's domain sockets can receive bytes and
 * several descriptors of one {@code sendmsg} together (see shared/notes/java-stack.md).
 *
 * <p>One thread reads and any number of threads send (sends are serialized). Native buffers are
 * allocated once per socket. Received descriptors are opened with MSG_CMSG_CLOEXEC and handed to
 * the caller's list, whatever part of a split read they come with.
 */
public final class UnixSocket implements AutoCloseable {
    /** Largest chunk moved per system call; callers loop. */
    public static final int IO_CHUNK = 64 * 1024 + 64;

    private volatile int fd;
    private final Memory rxMsg = new Memory(LibC.MSGHDR_SIZE);
    private final Memory rxIov = new Memory(LibC.IOVEC_SIZE);
    private final Memory rxCtl = new Memory(LibC.CMSG_SPACE_MAX);
    private final Memory rxBuf = new Memory(IO_CHUNK);
    private final Memory txMsg = new Memory(LibC.MSGHDR_SIZE);
    private final Memory txIov = new Memory(LibC.IOVEC_SIZE);
    private final Memory txCtl = new Memory(LibC.CMSG_SPACE_MAX);
    private final Memory txBuf = new Memory(IO_CHUNK);
    private final Object txLock = new Object();
    /** One pollfd for the reading thread's bounded waits (allocated once). */
    private final Memory rxPoll = new Memory(8);
    /** The kernel dropped descriptors of a message (MSG_CTRUNC) since {@link #takeFdsTruncated}. */
    private boolean fdsTruncated;

    public UnixSocket(int fd) {
        this.fd = fd;
    }

    /** Connects to the unix socket at {@code path}. */
    public static UnixSocket connect(String path) throws IOException {
        byte[] addr = LibC.sockaddrUn(path);
        int s;
        try {
            s = LibC.socket(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0);
        } catch (LastErrorException e) {
            throw new IOException("socket: errno " + e.getErrorCode(), e);
        }
        try {
            LibC.connect(s, addr, addr.length);
        } catch (LastErrorException e) {
            LibC.closeQuietly(s);
            throw new IOException("connect " + path + ": errno " + e.getErrorCode(), e);
        }
        return new UnixSocket(s);
    }

    /** The descriptor (-1 once closed). */
    public int fd() {
        return fd;
    }

    /**
     * Reads up to {@code len} bytes into {@code dst}; descriptors that arrive are appended to
     * {@code fds}. Returns the byte count, 0 at end of stream.
     *
     * When the kernel truncated the descriptors (MSG_CTRUNC: more than {@value LibC#MAX_FDS} in one
     * part of a message; it has closed the excess) the bytes are still returned and
     * {@link #takeFdsTruncated} says so, so that the reader can finish the message and answer it.
     *
     * @throws IOException on a socket error
     */
    public int recv(byte[] dst, int off, int len, List<Integer> fds) throws IOException {
        int n = Math.min(len, IO_CHUNK);
        rxIov.setPointer(0, rxBuf);
        rxIov.setLong(8, n);
        rxMsg.clear(LibC.MSGHDR_SIZE);
        rxMsg.setPointer(16, rxIov);
        rxMsg.setLong(24, 1);
        rxMsg.setPointer(32, rxCtl);
        rxMsg.setLong(40, LibC.CMSG_SPACE_MAX);
        rxCtl.clear(LibC.CMSG_SPACE_MAX);
        long got;
        while (true) {
            try {
                got = LibC.recvmsg(fd, rxMsg, LibC.MSG_CMSG_CLOEXEC);
                break;
            } catch (LastErrorException e) {
                if (e.getErrorCode() == LibC.EINTR) {
                    continue;
                }
                throw new IOException("recvmsg: errno " + e.getErrorCode(), e);
            }
        }
        long ctlLen = rxMsg.getLong(40);
        int flags = rxMsg.getInt(48);
        // cmsg(3): walk the control messages; only SCM_RIGHTS is expected on a unix socket.
        long pos = 0;
        while (pos + LibC.CMSG_HDR <= ctlLen) {
            long cmsgLen = rxCtl.getLong(pos);
            int level = rxCtl.getInt(pos + 8);
            int type = rxCtl.getInt(pos + 12);
            if (cmsgLen < LibC.CMSG_HDR || pos + cmsgLen > ctlLen) {
                break;
            }
            if (level == LibC.SOL_SOCKET && type == LibC.SCM_RIGHTS) {
                int count = (int) ((cmsgLen - LibC.CMSG_HDR) / 4);
                for (int i = 0; i < count; i++) {
                    fds.add(rxCtl.getInt(pos + LibC.CMSG_HDR + 4L * i));
                }
            }
            pos += (cmsgLen + 7) & ~7L;
        }
        if ((flags & LibC.MSG_CTRUNC) != 0) {
            fdsTruncated = true;
        }
        if (got > 0) {
            rxBuf.read(0, dst, off, (int) got);
        }
        return (int) got;
    }

    /** Whether descriptors were dropped (MSG_CTRUNC) since the last call; resets the flag. */
    public boolean takeFdsTruncated() {
        boolean t = fdsTruncated;
        fdsTruncated = false;
        return t;
    }

    /**
     * Reads exactly {@code len} bytes (or throws {@link java.io.EOFException}), collecting fds.
     */
    public void recvFully(byte[] dst, int off, int len, List<Integer> fds) throws IOException {
        recvFully(dst, off, len, fds, 0);
    }

    /**
     * Reads exactly {@code len} bytes, collecting fds, before {@code deadlineNanos}
     * ({@link System#nanoTime}; 0: no deadline). A peer that stops sending in the middle is a
     * {@link java.net.SocketTimeoutException}: every wait on a peer is bounded.
     */
    public void recvFully(byte[] dst, int off, int len, List<Integer> fds, long deadlineNanos) throws IOException {
        int done = 0;
        while (done < len) {
            if (deadlineNanos != 0) {
                long left = deadlineNanos - System.nanoTime();
                if (left <= 0 || !awaitReadable((int) Math.max(1, Math.min(Integer.MAX_VALUE, left / 1_000_000L)))) {
                    throw new java.net.SocketTimeoutException("peer stalled mid-message: " + (off + done) + " of " + (off + len) + " bytes within the time allowed");
                }
            }
            int n = recv(dst, off + done, len - done, fds);
            if (n == 0) {
                throw new java.io.EOFException(done == 0 && off == 0 ? "peer closed" : "peer closed mid-message after " + done + " of " + len + " bytes");
            }
            done += n;
        }
    }

    /** Sends all of {@code data}; {@code fds} (at most 8, may be empty) ride with the first byte. */
    public void send(byte[] data, int off, int len, int... fds) throws IOException {
        if (fds.length > LibC.MAX_FDS) {
            throw new IllegalArgumentException("at most " + LibC.MAX_FDS + " fds");
        }
        synchronized (txLock) {
            int done = 0;
            boolean first = true;
            while (done < len || first) {
                int n = Math.min(len - done, IO_CHUNK);
                txBuf.write(0, data, off + done, n);
                txIov.setPointer(0, txBuf);
                txIov.setLong(8, n);
                txMsg.clear(LibC.MSGHDR_SIZE);
                txMsg.setPointer(16, txIov);
                txMsg.setLong(24, 1);
                if (first && fds.length > 0) {
                    long cmsgLen = LibC.CMSG_HDR + 4L * fds.length;
                    txCtl.clear(LibC.CMSG_SPACE_MAX);
                    txCtl.setLong(0, cmsgLen);
                    txCtl.setInt(8, LibC.SOL_SOCKET);
                    txCtl.setInt(12, LibC.SCM_RIGHTS);
                    for (int i = 0; i < fds.length; i++) {
                        txCtl.setInt(LibC.CMSG_HDR + 4L * i, fds[i]);
                    }
                    txMsg.setPointer(32, txCtl);
                    txMsg.setLong(40, (cmsgLen + 7) & ~7L);
                }
                long sent;
                try {
                    sent = LibC.sendmsg(fd, txMsg, LibC.MSG_NOSIGNAL);
                } catch (LastErrorException e) {
                    if (e.getErrorCode() == LibC.EINTR) {
                        continue;
                    }
                    if (e.getErrorCode() == LibC.EAGAIN) {
                        // SO_SNDTIMEO expired (Descriptors.sendTimeout): the peer stopped reading
                        throw new java.net.SocketTimeoutException("sendmsg: the peer stopped reading (send timeout)");
                    }
                    throw new IOException("sendmsg: errno " + e.getErrorCode(), e);
                }
                done += (int) sent;
                first = false;
                if (len == 0) {
                    break;
                }
            }
        }
    }

    /** Wakes a thread blocked in {@link #recv} (it sees end of stream) without releasing the fd. */
    public void shutdown() {
        int f = fd;
        if (f >= 0) {
            try {
                LibC.shutdown(f, LibC.SHUT_RDWR);
            } catch (LastErrorException ignored) {
                // ENOTCONN: already down.
            }
        }
    }

    @Override
    public void close() {
        int f;
        synchronized (this) {
            f = fd;
            fd = -1;
        }
        LibC.closeQuietly(f);
    }

    public boolean isOpen() {
        return fd >= 0;
    }

    /**
     * Waits up to {@code timeoutMs} (negative: forever) for data or hang-up on this socket; true if
     * a read will not block. For the reading thread only (its pollfd is allocated once).
     */
    public boolean awaitReadable(int timeoutMs) throws IOException {
        long deadline = System.nanoTime() + Math.max(0, timeoutMs) * 1_000_000L;
        while (true) {
            rxPoll.setInt(0, fd);
            rxPoll.setShort(4, LibC.POLLIN);
            rxPoll.setShort(6, (short) 0);
            int left = timeoutMs < 0 ? -1 : (int) Math.max(0, (deadline - System.nanoTime()) / 1_000_000L);
            try {
                return LibC.poll(rxPoll, 1, left) > 0;
            } catch (LastErrorException e) {
                if (e.getErrorCode() != LibC.EINTR) {
                    throw new IOException("poll: errno " + e.getErrorCode(), e);
                }
            }
        }
    }

    /** Waits up to {@code timeoutMs} for data (or hang-up) on {@code fd}; true if readable. */
    public static boolean pollIn(int fd, int timeoutMs) throws IOException {
        Memory p = new Memory(8);
        p.setInt(0, fd);
        p.setShort(4, LibC.POLLIN);
        p.setShort(6, (short) 0);
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        while (true) {
            int left = (int) Math.max(0, (deadline - System.nanoTime()) / 1_000_000L);
            try {
                int r = LibC.poll(p, 1, left);
                return r > 0;
            } catch (LastErrorException e) {
                if (e.getErrorCode() != LibC.EINTR) {
                    throw new IOException("poll: errno " + e.getErrorCode(), e);
                }
            }
        }
    }
}
