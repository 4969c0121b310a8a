package dev.iommuemu.bridge.session;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;
import dev.iommuemu.bridge.testing.FakeDevice;
import dev.iommuemu.bridge.unix.LibC;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
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

    /** write(2)'s system call number: 1 on x86-64, 64 on arm64. */
    private static final String WRITE = System.getProperty("os.arch").equals("aarch64") ? "64" : "1";

    /** Whether a thread of this process is blocked in write(2) on {@code fd} (/proc/self/task/N/syscall). */
    private static boolean blockedInWrite(int fd) throws Exception {
        try (var tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path t : tasks) {
                try {
                    String[] sc = Files.readString(t.resolve("syscall")).trim().split(" ");
                    if (sc.length > 1 && sc[0].equals(WRITE) && Long.decode(sc[1]) == fd) {
                        return true;
                    }
                } catch (Exception e) {
                    // the task ended
                }
            }
        }
        return false;
    }

    /**
     * A call eventfd replaced (SET_VRING_CALL) while the model's thread is signalling it: the old
     * descriptor number must stay open until that signal is done. Closed at once, the number is free
     * for the next descriptor the VMM sends (a memfd of guest RAM, say) and the late eventfd write
     * would land in it: 8 bytes written into guest memory. Made deterministic by a blocking
     * signal: the eventfd's counter is one below its maximum (eventfd(2): a write that would
     * overflow blocks).
     */
    @Test
    void aReplacedCallFdStaysOpenWhileASignalIsInFlight() throws Exception {
        assertTrue(Set.of("amd64", "aarch64").contains(System.getProperty("os.arch")), "write(2)'s number is known");
        DeviceSession session = new DeviceSession(1, "test", new FakeDevice.Factory(), "default", new Counters(null), new EventBus());
        SessionHost host = new SessionHost(session);
        int mine = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        int daemons = LibC.dup(mine);
        int next = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        Thread raiser = new Thread(() -> host.raiseIrq("vq0"));
        try {
            assertEquals(8, write(mine, 0xffff_ffff_ffff_fffeL));
            host.setCallFd(0, daemons);
            raiser.start();
            long deadline = System.currentTimeMillis() + 5000;
            while (!blockedInWrite(daemons) && System.currentTimeMillis() < deadline) {
                Thread.sleep(2);
            }
            assertTrue(blockedInWrite(daemons), "the signal is in flight");
            host.setCallFd(0, next);
            assertTrue(Files.exists(Path.of("/proc/self/fd/" + daemons)), "the replaced fd is still open while signalled");
            assertEquals(0xffff_ffff_ffff_fffeL, read(mine)); // room: the signal completes
            raiser.join(5000);
            assertFalse(raiser.isAlive());
            assertEquals(1, read(mine), "the notification went to the old eventfd");
            long closeDeadline = System.currentTimeMillis() + 5000;
            while (Files.exists(Path.of("/proc/self/fd/" + daemons)) && System.currentTimeMillis() < closeDeadline) {
                Thread.sleep(2);
            }
            assertFalse(Files.exists(Path.of("/proc/self/fd/" + daemons)), "closed once the signal is done");
        } finally {
            if (raiser.isAlive()) {
                read(mine);
                raiser.join(5000);
            }
            host.close(); // closes the call fds it holds
            session.close();
            LibC.closeQuietly(mine);
        }
    }
}
