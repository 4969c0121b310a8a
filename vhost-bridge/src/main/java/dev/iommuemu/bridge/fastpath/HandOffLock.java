package dev.iommuemu.bridge.fastpath;

import dev.iommuemu.bridge.memory.MappedRegion;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.logging.Logger;

/**
 * The lock of a hand-off region of the shared memory, the same for the VMM's command-queue
 * hand-off (docs/protocol.md §4.12) and its virtio-iommu request hand-off (§4.13): a u32 at the
 * region's start that both processes take by a compare-and-swap from 0 (acquire), 1 held by the
 * VMM, 2 held by the daemon, given back by a store of 0 (release), and the region's u32 {@code ok}
 * right after it, which the daemon writes.
 *
 * <p>The daemon waits for a lock the VMM holds by spinning, then yielding, then parking, for at
 * most the bound (5 s, §4.12); a VMM that holds it longer is broken or stopped inside a batch: the
 * daemon writes {@code ok} = 0, logs it, and its session fails rather than run the model without
 * the lock. Used under the session lock only (one daemon thread at a time).
 */
public final class HandOffLock {
    /** §4.12 / §4.13: offsets from the region's start. */
    public static final int OFF_LOCK = 0x00;
    public static final int OFF_OK = 0x04;
    /** lock values: free, held by the VMM, held by the daemon. */
    public static final int FREE = 0;
    public static final int HELD_BY_VMM = 1;
    public static final int HELD_BY_DAEMON = 2;
    /** How long the daemon waits for a lock the VMM holds before it gives up on it (§4.12). */
    public static final long DEFAULT_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);
    private static final int SPINS = 128;
    private static final int YIELDS = 256;
    private static final long PARK_NANOS = 50_000;

    private final MappedRegion mem;
    private final long c0;
    /** The region's logger (CommandHandOff's, RequestHandOff's). */
    private final Logger log;
    /** What the region is and where it is specified, for the warning ("command-queue", "§4.12"). */
    private final String what;
    private final String section;
    private final String stoppedInside;
    private long timeoutNanos = DEFAULT_TIMEOUT_NANOS;
    private String label = "the session";
    private boolean held;
    private boolean disabled;

    /**
     * The lock of the region at {@code c0} of {@code mem}, its warnings on {@code log}; {@code what}, {@code section} and
     * {@code stoppedInside} name it in the warning of a VMM that held it too long ("the VMM held the
     * {what} lock (docs/protocol.md {section}) ... (a VMM thread stopped inside {stoppedInside}, ...").
     */
    HandOffLock(MappedRegion mem, long c0, Logger log, String what, String section, String stoppedInside) {
        this.mem = mem;
        this.log = log;
        this.c0 = c0;
        this.what = what;
        this.section = section;
        this.stoppedInside = stoppedInside;
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
        log.warning(String.format("%s: the VMM held the %s lock (docs/protocol.md %s) for more than %d ms"
                + " (a VMM thread stopped inside %s, or a broken VMM): the daemon closes the connection, since it must"
                + " not run the model without the lock; a VMM that reconnects takes over from its restart journal",
                label, what, section, TimeUnit.NANOSECONDS.toMillis(timeoutNanos), stoppedInside));
    }

    /**
     * Gives the lock back with every field of the region as it is ({@code ok} included): the
     * daemon changed none of them since {@link #acquire}, so the VMM goes on from its own values
     * (§4.13: the daemon applies a long request log to its model without the lock). Nothing when
     * the daemon does not hold it.
     */
    public void releaseUnchanged() {
        if (!held) {
            return;
        }
        VarHandle.releaseFence(); // the daemon's reads of the region before the store that frees it
        mem.write32(c0 + OFF_LOCK, FREE);
        VarHandle.fullFence(); // the store is visible before the daemon does anything else
        held = false;
    }

    /**
     * Writes {@code ok} and gives the lock back (the region's other fields written by the caller
     * before, then a store of 0, release). Nothing when the daemon does not hold it.
     */
    void release(boolean ok) {
        if (!held) {
            return;
        }
        mem.write32(c0 + OFF_OK, ok ? 1 : 0);
        VarHandle.releaseFence();
        mem.write32(c0 + OFF_LOCK, FREE);
        VarHandle.fullFence(); // the store is visible before the daemon does anything else
        held = false;
    }
}
