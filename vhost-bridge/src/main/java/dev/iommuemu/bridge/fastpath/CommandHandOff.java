package dev.iommuemu.bridge.fastpath;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.memory.MappedRegion;
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

    /** §4.12 layout, offsets from C0 (the lock and ok are {@link HandOffLock}'s). */
    public static final int OFF_LOCK = HandOffLock.OFF_LOCK;
    public static final int OFF_OK = HandOffLock.OFF_OK;
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
    public static final int FREE = HandOffLock.FREE;
    public static final int HELD_BY_VMM = HandOffLock.HELD_BY_VMM;
    public static final int HELD_BY_DAEMON = HandOffLock.HELD_BY_DAEMON;
    /** features bit 0: SMMU_IDR0.MSI; bit 1: SMMU_IDR3.RIL. */
    public static final int FEATURE_MSI = 1;
    public static final int FEATURE_RIL = 2;
    /** sync_line when a CMD_SYNC with CS = SIG_IRQ pulses no line. */
    public static final int NO_LINE = 0xffff_ffff;
    /** How long the daemon waits for a lock the VMM holds before it gives up on it (§4.12). */
    public static final long DEFAULT_TIMEOUT_NANOS = HandOffLock.DEFAULT_TIMEOUT_NANOS;

    /** What the VMM left in the log: {@code count} commands of two words, its batches, PROD and CONS. */
    public record Log(long[] words, int count, long batches, int prod, int cons) {}

    private final MappedRegion mem;
    private final long c0;
    private final HandOffLock lock;
    private String label = "the session";
    private boolean scribbleLogged;

    CommandHandOff(MappedRegion mem, long c0) {
        this.mem = mem;
        this.c0 = c0;
        this.lock = new HandOffLock(mem, c0, LOG, "command-queue", "§4.12", "a batch");
    }

    /** The region's lock (taken and given back by the session). */
    public HandOffLock lock() {
        return lock;
    }

    /** The name of the session in log messages. */
    public void label(String who) {
        this.label = who;
        lock.label(who);
    }

    /** The bound on waiting for a lock the VMM holds (5 s by default; tests shorten it). */
    public void timeout(long nanos) {
        lock.timeout(nanos);
    }

    /** Whether the daemon gave up on the lock (a VMM held it too long): the session fails. */
    public boolean disabled() {
        return lock.disabled();
    }

    /** Whether the daemon holds the lock now. */
    public boolean held() {
        return lock.held();
    }

    /** The region was just cleared: the daemon holds its lock (2) until the session lets go. */
    void holdWhileCleared() {
        lock.holdWhileCleared();
    }

    /** {@link HandOffLock#acquire}. */
    public boolean acquire() {
        return lock.acquire();
    }

    /**
     * Takes what the VMM logged (under the lock), or null when it logged nothing ({@code count} and
     * {@code batches} 0), and zeroes {@code count} and {@code batches}. A count above 1024 is read
     * as 1024 (logged once).
     */
    public Log takeLog() {
        if (!lock.held()) {
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
        if (!lock.held()) {
            return;
        }
        if (s != null) {
            mem.write64(c0 + OFF_CMDQ_BASE, s.cmdqBase());
            mem.write32(c0 + OFF_PROD, s.prod());
            mem.write32(c0 + OFF_CONS, s.cons());
            mem.write32(c0 + OFF_FEATURES, s.features());
            mem.write32(c0 + OFF_OAS, s.oasBits());
            mem.write32(c0 + OFF_SYNC_LINE, s.syncLine());
        }
        lock.release(s != null && s.ok());
    }
}
