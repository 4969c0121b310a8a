package dev.iommuemu.bridge.session;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import dev.iommuemu.bridge.unix.LibC;

/** Signalling and draining eventfds (eventfd(2): 8-byte counter writes and reads). */
final class EventFd {
    private final Memory buf = new Memory(8);

    /** Adds 1 to the counter of {@code fd}; false if the write failed (e.g. the VMM closed it). */
    boolean signal(int fd) {
        return add(fd, 1);
    }

    /** Adds {@code n} (> 0) to the counter of {@code fd}; false if the write failed. */
    synchronized boolean add(int fd, long n) {
        buf.setLong(0, n);
        try {
            return LibC.write(fd, buf, 8) == 8;
        } catch (LastErrorException e) {
            return false;
        }
    }

    /** Reads and resets the counter (the fd must be readable); returns the count or 0. */
    synchronized long drain(int fd) {
        try {
            return LibC.read(fd, buf, 8) == 8 ? buf.getLong(0) : 0;
        } catch (LastErrorException e) {
            return 0;
        }
    }
}
