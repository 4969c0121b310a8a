package dev.iommuemu.bridge.unix;

import com.sun.jna.LastErrorException;
import dev.iommuemu.bridge.client.Errno;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A listening unix stream socket whose file is created owner-only (0600): the mode is set on the
 * socket inode with fchmod before bind(2), which Linux's unix_bind uses for the new file, so there
 * is no window in which another user could connect; a chmod after bind makes sure of it.
 *
 * <p>An existing socket file is probed first (connect(2)): if something answers, another daemon
 * serves the path and binding is refused; only a stale file (ECONNREFUSED: nobody listens) is
 * removed. Closing removes the file only if it is still the one this socket created (same inode),
 * never a successor's.
 *
 * <p>{@link #inherited} wraps a listening socket the process inherited (--fd, systemd socket
 * activation) instead: the same accept(2) path, and closing it removes no file (its creator owns
 * the path).
 */
public final class UnixServerSocket implements AutoCloseable {
    private final Path path; // null: inherited, no file of ours
    private final Object inode;
    private volatile int fd;
    private boolean detached;

    private UnixServerSocket(Path path, int fd, Object inode) {
        this.path = path;
        this.fd = fd;
        this.inode = inode;
    }

    /**
     * Binds {@code path}. Refuses a path that is not a socket, or a socket on which a process
     * accepts connections (unix(7): connect succeeds); replaces a stale socket file.
     */
    public static UnixServerSocket bind(Path path, int backlog) throws IOException {
        byte[] addr = LibC.sockaddrUn(path.toString());
        if (Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            if (!isSocket(path)) {
                throw new IOException(path + " exists and is not a socket");
            }
            if (answers(addr)) {
                throw new IOException("another process (a running daemon?) is serving " + path + "; stop it or choose another path");
            }
            Files.delete(path);
        }
        int s;
        try {
            s = LibC.socket(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0);
        } catch (LastErrorException e) {
            throw new IOException("socket: errno " + e.getErrorCode(), e);
        }
        try {
            LibC.fchmod(s, 0600);
            LibC.bind(s, addr, addr.length);
            LibC.chmod(path.toString(), 0600);
            LibC.listen(s, backlog);
        } catch (LastErrorException e) {
            LibC.closeQuietly(s);
            throw new IOException("bind/listen " + path + ": errno " + e.getErrorCode(), e);
        }
        return new UnixServerSocket(path, s, inode(path));
    }

    /**
     * A listening unix socket this process inherited as descriptor {@code fd} (--fd, systemd's
     * LISTEN_FDS, sd_listen_fds(3)). This object owns the descriptor (closes it) but not the path.
     */
    public static UnixServerSocket inherited(int fd) {
        return new UnixServerSocket(null, fd, null);
    }

    /** Whether a process accepts connections on the socket at {@code addr} (connect probe). */
    private static boolean answers(byte[] addr) throws IOException {
        int s;
        try {
            s = LibC.socket(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0);
        } catch (LastErrorException e) {
            throw new IOException("socket: errno " + e.getErrorCode(), e);
        }
        try {
            LibC.connect(s, addr, addr.length);
            return true;
        } catch (LastErrorException e) {
            // ECONNREFUSED: a socket file nobody listens on (stale); EAGAIN: a full backlog, someone listens
            if (e.getErrorCode() == LibC.ECONNREFUSED || e.getErrorCode() == LibC.ENOENT) {
                return false;
            }
            return true;
        } finally {
            LibC.closeQuietly(s);
        }
    }

    private static Object inode(Path p) {
        try {
            return Files.getAttribute(p, "unix:ino", java.nio.file.LinkOption.NOFOLLOW_LINKS);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /**
     * Hands the listening descriptor to another owner (the control API's Netty channel, which
     * closes it); this object then only removes the socket file on {@link #close}.
     */
    public synchronized int detach() {
        detached = true;
        return fd;
    }

    private static boolean isSocket(Path p) throws IOException {
        Object mode = Files.getAttribute(p, "unix:mode", java.nio.file.LinkOption.NOFOLLOW_LINKS);
        return mode instanceof Integer m && (m & LibC.S_IFMT) == 0140000;
    }

    /** The socket file this object created, or null for an {@link #inherited} socket. */
    public Path path() {
        return path;
    }

    /** The listening descriptor (-1 once closed). */
    public int fd() {
        return fd;
    }

    /** Blocks for the next connection; throws once the socket is closed. */
    public UnixSocket accept() throws IOException {
        while (true) {
            int s = fd;
            if (s < 0) {
                throw new IOException("server socket closed");
            }
            try {
                return new UnixSocket(LibC.accept4(s, null, null, LibC.SOCK_CLOEXEC));
            } catch (LastErrorException e) {
                if (e.getErrorCode() == LibC.EINTR || e.getErrorCode() == 103 /* ECONNABORTED */) {
                    continue;
                }
                if (fd < 0) {
                    throw new IOException("server socket closed");
                }
                // accept(2): EINVAL, the socket is not listening (an inherited descriptor may not be)
                throw new IOException("accept on " + (path != null ? path.toString() : "the inherited fd " + s) + ": "
                        + Errno.describe(e.getErrorCode()) + (e.getErrorCode() == LibC.EINVAL ? "; it is not a listening socket" : ""), e);
            }
        }
    }

    /** Stops accepting (wakes a blocked accept), closes the socket and removes its file. */
    @Override
    public void close() {
        int s;
        boolean owned;
        synchronized (this) {
            s = fd;
            fd = -1;
            owned = !detached;
        }
        if (s >= 0) {
            if (owned) {
                try {
                    LibC.shutdown(s, LibC.SHUT_RDWR);
                } catch (LastErrorException ignored) {
                    // a listening socket may report ENOTCONN; accept is woken regardless
                }
                LibC.closeQuietly(s);
            }
            if (path == null) {
                return; // inherited: the path, if any, is its creator's
            }
            try {
                Object now = inode(path);
                if (now != null && now.equals(inode)) {
                    Files.deleteIfExists(path);
                }
            } catch (IOException ignored) {
                // already gone
            }
        }
    }
}
