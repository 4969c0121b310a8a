package dev.iommuemu.bridge.session;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import dev.iommuemu.bridge.unix.LibC;

/**
 * Signalling and draining eventfds (eventfd(2): 8-byte counter writes and reads). A signal never
 * blocks: the descriptors are non-blocking (set when they are registered) and a write is made
 * only when poll(2) reports POLLOUT, which eventfd(2) gives while the counter has room. On a
 * saturated counter (a VMM that never reads it) the signal is dropped: the counter is non-zero,
 * so the reader still sees a pending notification, which is all eventfd semantics promise.
 */
final class EventFd {
    private final Memory buf = new Memory(8);
    private final Memory pfd = new Memory(8);

    /** Adds 1 to the counter of {@code fd}; false if the write failed (e.g. the VMM closed it). */
    boolean signal(int fd) {
        return add(fd, 1);
    }

    /**
     * Adds {@code n} (> 0) to the counter of {@code fd}; false if the write failed. A counter with
     * no room (EAGAIN, or no POLLOUT) counts as delivered: a notification is pending already.
     */
    synchronized boolean add(int fd, long n) {
        pfd.setInt(0, fd);
        pfd.setShort(4, LibC.POLLOUT);
        pfd.setShort(6, (short) 0);
        try {
            if (LibC.poll(pfd, 1, 0) == 1 && (pfd.getShort(6) & LibC.POLLOUT) == 0) {
                return (pfd.getShort(6) & (LibC.POLLERR | LibC.POLLNVAL)) == 0;
            }
            if (pfd.getShort(6) == 0) {
                return true; // no POLLOUT: saturated
            }
            buf.setLong(0, n);
            return LibC.write(fd, buf, 8) == 8;
        } catch (LastErrorException e) {
            return e.getErrorCode() == LibC.EAGAIN || e.getErrorCode() == LibC.EINTR;
        }
    }

    /** Reads and resets the counter (non-blocking: 0 when there is nothing); returns the count or 0. */
    synchronized long drain(int fd) {
        try {
            return LibC.read(fd, buf, 8) == 8 ? buf.getLong(0) : 0;
        } catch (LastErrorException e) {
            return 0;
        }
    }
}
