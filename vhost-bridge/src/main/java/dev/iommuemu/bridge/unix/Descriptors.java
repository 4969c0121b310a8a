package dev.iommuemu.bridge.unix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What a descriptor a peer sent really is, and the flags the daemon needs on it. A VMM chooses
 * what it passes; the daemon checks the kind when a descriptor is registered, never when it is
 * used (proc(5) /proc/self/fd/N, eventfd(2), memfd_create(2) "File sealing", fcntl(2)).
 */
public final class Descriptors {
    /** proc(5): the link target of an eventfd's /proc/self/fd entry (an anonymous inode). */
    public static final String EVENTFD = "anon_inode:[eventfd]";

    private Descriptors() {}

    /** The /proc/self/fd/N link target ("anon_inode:[eventfd]", "/dev/null", "pipe:[123]", ...). */
    public static String kind(int fd) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
        } catch (IOException | UnsupportedOperationException e) {
            return "fd " + fd + " (not open)";
        }
    }

    public static boolean isEventFd(int fd) {
        return fd >= 0 && EVENTFD.equals(kind(fd));
    }

    /**
     * Checks that {@code fd} is an eventfd and sets O_NONBLOCK on it (fcntl(2) F_SETFL), so that a
     * signal on a saturated counter fails with EAGAIN instead of blocking (eventfd(2)); returns
     * null, or a sentence saying what {@code fd} is instead. The flag is on the open file
     * description, shared with the VMM's copy; QEMU's event notifiers are non-blocking already.
     */
    public static String requireEventFd(int fd, String what) {
        String kind = kind(fd);
        if (!EVENTFD.equals(kind)) {
            return what + " must be an eventfd (eventfd(2)), not " + kind;
        }
        try {
            int fl = LibC.fcntl(fd, LibC.F_GETFL, 0);
            if ((fl & LibC.O_NONBLOCK) == 0) {
                LibC.fcntl(fd, LibC.F_SETFL, fl | LibC.O_NONBLOCK);
            }
        } catch (LastErrorException e) {
            return what + ": fcntl O_NONBLOCK failed with errno " + e.getErrorCode();
        }
        return null;
    }

    /**
     * The seals of {@code fd} (fcntl(2) F_GET_SEALS), or -1 for a file that cannot carry seals
     * (anything but a memfd: EINVAL).
     */
    public static int seals(int fd) {
        try {
            return LibC.fcntl(fd, LibC.F_GET_SEALS, 0);
        } catch (LastErrorException e) {
            return -1;
        }
    }

    /** Adds seals (fcntl(2) F_ADD_SEALS) to a memfd made with MFD_ALLOW_SEALING. */
    public static void addSeals(int fd, int seals) throws IOException {
        try {
            LibC.fcntl(fd, LibC.F_ADD_SEALS, seals);
        } catch (LastErrorException e) {
            throw new IOException("F_ADD_SEALS: errno " + e.getErrorCode());
        }
    }

    /** Bounds every sendmsg on socket {@code fd} (socket(7) SO_SNDTIMEO): a peer that stops reading fails the send. */
    public static void sendTimeout(int fd, int timeoutMs) {
        if (timeoutMs <= 0) {
            return;
        }
        Memory tv = new Memory(16);
        tv.setLong(0, timeoutMs / 1000);
        tv.setLong(8, (timeoutMs % 1000) * 1000L);
        try {
            LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_SNDTIMEO, tv, 16);
        } catch (LastErrorException e) {
            // ENOTSOCK: not a socket, nothing to bound
        }
    }
}
