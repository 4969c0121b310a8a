package dev.iommuemu.bridge;

import com.sun.jna.Memory;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.bridge.unix.UnixSocket;

/** eventfd helpers for tests. */
final class EventFds {
    private EventFds() {}

    static void signal(int fd) {
        Memory m = new Memory(8);
        m.setLong(0, 1);
        LibC.write(fd, m, 8);
    }

    /** Waits for the eventfd to be signalled and reads (resets) it. */
    static boolean awaitSignal(int fd, int timeoutMs) throws java.io.IOException {
        if (!UnixSocket.pollIn(fd, timeoutMs)) {
            return false;
        }
        Memory m = new Memory(8);
        return LibC.read(fd, m, 8) == 8 && m.getLong(0) > 0;
    }
}
