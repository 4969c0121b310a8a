package dev.iommuemu.bridge.fastpath;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.memory.MappedRegion;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.logging.Logger;

/**
 * The VMM's command-queue hand-off region of the shared memory (docs/protocol.md §4.12, version
 * 13), at {@code C0 = R0 + 64 * 256}: a lock both processes take by a compare-and-swap, the command
 * queue's state the daemon publishes for the VMM, and the log of commands the VMM consumed itself,
 * which the daemon drains into the model right after it takes the lock.
 *
 * <p>The daemon trusts nothing in the region beyond its bounds: a count above 1024 is read as 1024,
 * any command is handed to the model, which rejects what it does not know. A VMM that keeps the
 * lock longer than the bound (5 s) is broken or stopped: the daemon writes {@code ok} = 0 and its
 * session fails (the connection closes) rather than run the model without the lock. Used under
 * the session lock only (one daemon thread at a time).
 */
public final class CommandHandOff {
    private static final Logger LOG = Logger.getLogger(CommandHandOff.class.getName());

    /** §4.12 layout, offsets from C0. */
    public static final int OFF_LOCK = 0x00;
    public static final int OFF_OK = 0x04;
    public static final int OFF_CMDQ_BASE = 0x08;
    public static final int OFF_PROD = 0x10;
    public static final int OFF_CONS = 0x14;
    public static final int OFF_COUNT = 0x18;
    public static final int OFF_BATCHES = 0x1c;
    public static final int OFF_FEATURES = 0x20;
    public static final int OFF_OAS = 0x24;
    public static final int OFF_SYNC_LINE = 0x28;
    public static final int OFF_LOG = 0x100;
    public static final int COMMAND = 16;
    public static final int MAX_LOG = 1024;
    /** Bytes of the region: the log's end, 0x100 + 16 * 1024 = 16640. */
    public static final int SIZE = OFF_LOG + COMMAND * MAX_LOG;
    /** lock values: free, held by the VMM, held by the daemon. */
    public static final int FREE = 0;
    public static final int HELD_BY_VMM = 1;
    public static final int HELD_BY_DAEMON = 2;
    /** features bit 0: SMMU_IDR0.MSI; bit 1: SMMU_IDR3.RIL. */
    public static final int FEATURE_MSI = 1;
    public static final int FEATURE_RIL = 2;
    /** sync_line when a CMD_SYNC with CS = SIG_IRQ pulses no line. */
    public static final int NO_LINE = 0xffff_ffff;
    /** How long the daemon waits for a lock the VMM holds before it gives up on it (§4.12). */
    public static final long DEFAULT_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);
    private static final int SPINS = 128;
    private static final int YIELDS = 256;
    private static final long PARK_NANOS = 50_000;

    /** What the VMM left in the log: {@code count} commands of two words, its batches, PROD and CONS. */
    public record Log(long[] words, int count, long batches, int prod, int cons) {}

    private final MappedRegion mem;
    private final long c0;
    private long timeoutNanos = DEFAULT_TIMEOUT_NANOS;
    private String label = "the session";
    private boolean held;
    private boolean disabled;
    private boolean scribbleLogged;

    CommandHandOff(MappedRegion mem, long c0) {
        this.mem = mem;
        this.c0 = c0;
    }

    /** The name of the session in log messages. */
    public void label(String who) {
        this.label = who;
    }

    /** The bound on waiting for a lock the VMM holds (5 s by default; tests shorten it). */
    public void timeout(long nanos) {
        this.timeoutNanos = Math.max(0, nanos);
    }

    /** Whether the daemon gave up on the lock (a VMM held it too long): the session fails. */
    public boolean disabled() {
        return disabled;
    }

    /** Whether the daemon holds the lock now. */
    public boolean held() {
        return held;
    }

    /** The region was just cleared: the daemon holds its lock (2) until the session lets go. */
    void holdWhileCleared() {
        mem.write32(c0 + OFF_LOCK, HELD_BY_DAEMON);
        VarHandle.fullFence();
        held = true;
    }

    /**
     * Takes the lock (compare-and-swap 0 to 2, acquire): spinning, then yielding, then parking,
     * for at most the bound; past it the session must fail (a warning, {@code ok} = 0) and
     * this and {@link #release} do nothing any more. Returns whether the daemon holds the lock.
     */
    public boolean acquire() {
        if (disabled || held) {
            return held;
        }
        long at = c0 + OFF_LOCK;
        long start = System.nanoTime();
        for (int i = 0;; i++) {
            if (mem.compareAndSet32(at, FREE, HELD_BY_DAEMON)) {
                held = true;
                return true;
            }
            if (i < SPINS) {
                Thread.onSpinWait();
                continue;
            }
            if (System.nanoTime() - start >= timeoutNanos) {
                giveUp();
                return false;
            }
            if (i < SPINS + YIELDS) {
                Thread.yield();
            } else {
                LockSupport.parkNanos(PARK_NANOS);
            }
        }
    }

    private void giveUp() {
        disabled = true;
        mem.write32(c0 + OFF_OK, 0);
        VarHandle.fullFence();
        LOG.warning(String.format("%s: the VMM held the command-queue lock (docs/protocol.md §4.12) for more than %d ms"
                + " (a VMM thread stopped inside a batch, or a broken VMM): the daemon closes the connection, since it must"
                + " not run the model without the lock; a VMM that reconnects takes over from its restart journal",
                label, TimeUnit.NANOSECONDS.toMillis(timeoutNanos)));
    }

    /**
     * Takes what the VMM logged (under the lock), or null when it logged nothing ({@code count} and
     * {@code batches} 0), and zeroes {@code count} and {@code batches}. A count above 1024 is read
     * as 1024 (logged once).
     */
    public Log takeLog() {
        if (!held) {
            return null;
        }
        long count = Integer.toUnsignedLong(mem.read32(c0 + OFF_COUNT));
        long batches = Integer.toUnsignedLong(mem.read32(c0 + OFF_BATCHES));
        if (count == 0 && batches == 0) {
            return null;
        }
        if (count > MAX_LOG) {
            if (!scribbleLogged) {
                scribbleLogged = true;
                LOG.warning(String.format("%s: the VMM's command-queue log (docs/protocol.md §4.12) claims %d commands, more"
                        + " than the 1024 it holds: only 1024 are read (is the VMM writing the shared memory correctly?)",
                        label, count));
            }
            count = MAX_LOG;
        }
        int n = (int) count;
        long[] words = new long[2 * n];
        for (int i = 0; i < n; i++) {
            long a = c0 + OFF_LOG + (long) COMMAND * i;
            words[2 * i] = mem.read64(a);
            words[2 * i + 1] = mem.read64(a + 8);
        }
        int prod = mem.read32(c0 + OFF_PROD);
        int cons = mem.read32(c0 + OFF_CONS);
        mem.write32(c0 + OFF_COUNT, 0);
        mem.write32(c0 + OFF_BATCHES, 0);
        return new Log(words, n, batches, prod, cons);
    }

    /**
     * Writes the model's state ({@code ok}, {@code cmdq_base}, {@code prod}, {@code cons},
     * {@code features}, {@code oas}, {@code sync_line}; {@code null}: ok = 0) and gives the lock back
     * (a store of 0, release). Nothing when the daemon does not hold it.
     */
    public void release(BridgedDevice.CommandQueueState s) {
        if (!held) {
            return;
        }
        long c = c0;
        if (s == null) {
            mem.write32(c + OFF_OK, 0);
        } else {
            mem.write32(c + OFF_OK, s.ok() ? 1 : 0);
            mem.write64(c + OFF_CMDQ_BASE, s.cmdqBase());
            mem.write32(c + OFF_PROD, s.prod());
            mem.write32(c + OFF_CONS, s.cons());
            mem.write32(c + OFF_FEATURES, s.features());
            mem.write32(c + OFF_OAS, s.oasBits());
            mem.write32(c + OFF_SYNC_LINE, s.syncLine());
        }
        VarHandle.releaseFence();
        mem.write32(c + OFF_LOCK, FREE);
        VarHandle.fullFence(); // the store is visible before the daemon does anything else
        held = false;
    }
}
