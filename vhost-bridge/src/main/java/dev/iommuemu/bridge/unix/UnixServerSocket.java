package dev.iommuemu.bridge.unix;

import com.sun.jna.LastErrorException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A listening unix stream socket whose file is created owner-only (0600): the mode is set on the
 * socket inode with fchmod before bind(2), which Linux's unix_bind uses for the new file, so there
 * is no window in which another user could connect; a chmod after bind makes sure of it.
 */
public final class UnixServerSocket implements AutoCloseable {
    private final Path path;
    private volatile int fd;

    private UnixServerSocket(Path path, int fd) {
        this.path = path;
        this.fd = fd;
    }

    /** Binds {@code path}, replacing a stale socket file (never another kind of file). */
    public static UnixServerSocket bind(Path path, int backlog) throws IOException {
        byte[] addr = LibC.sockaddrUn(path.toString());
        if (Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            if (!isSocket(path)) {
                throw new IOException(path + " exists and is not a socket");
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
        return new UnixServerSocket(path, s);
    }

    private static boolean isSocket(Path p) throws IOException {
        Object mode = Files.getAttribute(p, "unix:mode", java.nio.file.LinkOption.NOFOLLOW_LINKS);
        return mode instanceof Integer m && (m & LibC.S_IFMT) == 0140000;
    }

    public Path path() {
        return path;
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
                throw new IOException("accept: errno " + e.getErrorCode(), e);
            }
        }
    }

    /** Stops accepting (wakes a blocked accept), closes the socket and removes its file. */
    @Override
    public void close() {
        int s;
        synchronized (this) {
            s = fd;
            fd = -1;
        }
        if (s >= 0) {
            try {
                LibC.shutdown(s, LibC.SHUT_RDWR);
            } catch (LastErrorException ignored) {
                // a listening socket may report ENOTCONN; accept is woken regardless
            }
            LibC.closeQuietly(s);
            try {
                Files.deleteIfExists(path);
            } catch (IOException ignored) {
                // already gone
            }
        }
    }
}
