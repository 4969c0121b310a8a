package dev.iommuemu.bridge.session;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;
import dev.iommuemu.bridge.testing.FakeDevice;
import dev.iommuemu.bridge.unix.Descriptors;
import dev.iommuemu.bridge.unix.LibC;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The session's interrupt and call eventfds. */
class SessionHostTest {
    private static long write(int fd, long v) {
        Memory m = new Memory(8);
        m.setLong(0, v);
        return LibC.write(fd, m, 8);
    }

    private static long read(int fd) {
        Memory m = new Memory(8);
        LibC.read(fd, m, 8);
        return m.getLong(0);
    }

    /**
     * A call eventfd whose counter the VMM let reach its maximum (eventfd(2): a write that would
     * overflow blocks, even after the fd was made non-blocking if the VMM cleared the flag on the
     * shared description). The signal returns at once and the VMM still finds its notification
     * pending. The eventfd here is a blocking one on purpose: the daemon must not rely on the flag.
     */
    @Test
    void aSignalOnASaturatedEventfdReturnsAtOnceAndStaysPending() throws Exception {
        DeviceSession session = new DeviceSession(1, "test", new FakeDevice.Factory(), "default", new Counters(null), new EventBus());
        SessionHost host = new SessionHost(session);
        int mine = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        int daemons = LibC.dup(mine);
        try {
            assertEquals(8, write(mine, 0xffff_ffff_ffff_fffeL));
            host.setCallFd(0, daemons);
            assertTimeoutPreemptively(Duration.ofSeconds(3), () -> {
                for (int i = 0; i < 1000; i++) {
                    host.raiseIrq("vq0");
                }
            });
            assertEquals(0xffff_ffff_ffff_fffeL, read(mine), "the pending count is the VMM's, untouched");
            host.raiseIrq("vq0");
            assertEquals(1, read(mine), "with room again, a signal adds 1");
        } finally {
            host.close(); // closes the call fds it holds
            session.close();
            LibC.closeQuietly(mine);
        }
    }

    /** A replaced call eventfd with no signal in flight is closed at once. */
    @Test
    void aReplacedCallFdIsClosed() throws Exception {
        DeviceSession session = new DeviceSession(1, "test", new FakeDevice.Factory(), "default", new Counters(null), new EventBus());
        SessionHost host = new SessionHost(session);
        int a = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        int b = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        try {
            host.setCallFd(0, a);
            host.setCallFd(0, b);
            // (Descriptors.kind: the number may be taken and given back by another JVM thread meanwhile)
            assertFalse(Descriptors.isEventFd(a) && a != b && isOpen(a), "the replaced fd is closed");
            host.raiseIrq("vq0");
            assertEquals(1, read(b));
        } finally {
            host.close();
            session.close();
        }
    }

    private static boolean isOpen(int fd) {
        try {
            return LibC.fcntl(fd, LibC.F_GETFL, 0) >= 0;
        } catch (com.sun.jna.LastErrorException e) {
            return false;
        }
    }
}
