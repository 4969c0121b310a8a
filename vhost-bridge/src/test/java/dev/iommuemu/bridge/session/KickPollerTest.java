package dev.iommuemu.bridge.session;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;
import dev.iommuemu.bridge.unix.LibC;
import java.lang.management.ManagementFactory;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The kick poller: a pass over its eventfds allocates nothing (issue 14: RSS grew per pass). */
class KickPollerTest {
    @Test
    void aPollPassAllocatesNothing() throws Exception {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        AtomicInteger kicks = new AtomicInteger();
        int kick = LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
        Memory one = new Memory(8);
        one.setLong(0, 1);
        try (KickPoller p = new KickPoller("kick-test", q -> kicks.incrementAndGet())) {
            p.set(0, LibC.dup(kick));
            Thread poller = Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().equals("kick-test")).findFirst().orElseThrow();
            int warm = 20_000;
            signalAndWait(kick, one, kicks, warm);
            long before = mx.getThreadAllocatedBytes(poller.getId());
            int n = 20_000;
            signalAndWait(kick, one, kicks, warm + n);
            long perPass = (mx.getThreadAllocatedBytes(poller.getId()) - before) / n;
            assertEquals(warm + n, kicks.get());
            assertTrue(perPass < 8, "bytes allocated per kick pass: " + perPass);
        } finally {
            LibC.closeQuietly(kick);
        }
    }

    private static void signalAndWait(int fd, Memory one, AtomicInteger kicks, int target) throws InterruptedException {
        while (kicks.get() < target) {
            int seen = kicks.get();
            LibC.write(fd, one, 8);
            long deadline = System.nanoTime() + 2_000_000_000L;
            while (kicks.get() == seen) {
                assertTrue(System.nanoTime() < deadline, "kick served");
                Thread.onSpinWait();
            }
        }
    }
}
