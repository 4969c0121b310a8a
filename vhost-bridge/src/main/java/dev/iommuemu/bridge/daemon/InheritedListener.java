package dev.iommuemu.bridge.daemon;

import com.sun.jna.LastErrorException;
import dev.iommuemu.bridge.client.Errno;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.bridge.unix.UnixSocket;
import java.io.IOException;

/**
 * A listening socket the daemon inherited (--fd, systemd socket activation) rather than created:
 * accept(2) on it; closing it stops accepting but removes no file (its creator owns the path).
 */
final class InheritedListener {
    private volatile int fd;

    InheritedListener(int fd) {
        this.fd = fd;
    }

    int fd() {
        return fd;
    }

    /** Blocks for the next connection; throws once closed. */
    UnixSocket accept() throws IOException {
        while (true) {
            int s = fd;
            if (s < 0) {
                throw new IOException("the inherited socket is closed");
            }
            try {
                return new UnixSocket(LibC.accept4(s, null, null, LibC.SOCK_CLOEXEC));
            } catch (LastErrorException e) {
                if (e.getErrorCode() == LibC.EINTR || e.getErrorCode() == 103 /* ECONNABORTED */) {
                    continue;
                }
                if (fd < 0) {
                    throw new IOException("the inherited socket is closed");
                }
                // EINVAL: not listening; ENOTSOCK: not a socket (accept(2))
                throw new IOException("accept on the inherited fd " + s + ": " + Errno.describe(e.getErrorCode())
                        + (e.getErrorCode() == 22 ? "; it is not a listening socket" : ""), e);
            }
        }
    }

    void close() {
        int s;
        synchronized (this) {
            s = fd;
            fd = -1;
        }
        if (s >= 0) {
            try {
                LibC.shutdown(s, LibC.SHUT_RDWR); // wakes a blocked accept
            } catch (LastErrorException ignored) {
                // a listening socket may report ENOTCONN; accept is woken regardless
            }
            LibC.closeQuietly(s);
        }
    }
}
