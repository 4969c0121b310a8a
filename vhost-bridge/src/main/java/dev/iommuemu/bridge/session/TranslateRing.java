package dev.iommuemu.bridge.session;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.unix.LibC;
import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.util.logging.Logger;

/**
 * The shared-memory translation ring (docs/protocol.md §4.5): the fast path for IOMMU_TRANSLATE.
 * The front-end writes a request into the next slot and publishes it with the slot's sequence
 * number; this thread spins briefly on the next slot, translates, writes the result and publishes
 * it. When idle it sets the ring's {@code sleeping} word and waits on the doorbell eventfd, which
 * the front-end signals after publishing if it sees that word set (both sides fence between their
 * store and their load, so one of them always sees the other).
 */
final class TranslateRing implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(TranslateRing.class.getName());
    static final int HEADER = 64;
    static final int SLOT = 64;
    static final int OFF_SLEEPING = 0;
    static final int OFF_SEQ = 0;
    static final int OFF_REQ = 8;
    static final int OFF_RES = 32;
    /** Spin this long after the last request before sleeping. */
    private static final long SPIN_NANOS = 50_000;

    private final DeviceSession session;
    private final MappedRegion ring;
    private final int entries;
    private final int doorbell;
    private final int stopFd;
    private final EventFd eventFd = new EventFd();
    private final Thread thread;
    private volatile boolean running = true;

    private final Runnable onFailure;

    private TranslateRing(DeviceSession session, MappedRegion ring, int entries, int doorbell, Runnable onFailure) {
        this.session = session;
        this.onFailure = onFailure;
        this.ring = ring;
        this.entries = entries;
        this.doorbell = doorbell;
        this.stopFd = LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
        this.thread = new Thread(this::run, "iommu-emu-ring-" + session.id());
        thread.setDaemon(true);
        thread.start();
    }

    /**
     * Maps the ring and starts serving it; takes ownership of both fds in every case. The ring's
     * memfd must be sealed against shrinking unless the session allows unsealed memory;
     * {@code onFailure} ends the connection when the ring's memory faults.
     */
    static TranslateRing start(DeviceSession session, int entries, int ringFd, int doorbellFd, Runnable onFailure) throws ProtocolException {
        if (entries < 1 || entries > 4096 || Integer.bitCount(entries) != 1) {
            LibC.closeQuietly(ringFd);
            LibC.closeQuietly(doorbellFd);
            throw ProtocolException.refused(ProtocolException.EINVAL, "ring entries must be a power of two in 1..4096: " + entries);
        }
        MappedRegion r;
        try {
            if (session.requiresSeals()) {
                MappedRegion.requireShrinkSeal(ringFd);
            }
            r = MappedRegion.map(0, HEADER + (long) SLOT * entries, 0, 0, ringFd);
        } catch (IOException e) {
            LibC.closeQuietly(ringFd);
            LibC.closeQuietly(doorbellFd);
            throw ProtocolException.refused(ProtocolException.EFAULT, "translation ring does not map: " + e.getMessage());
        }
        return new TranslateRing(session, r, entries, doorbellFd, onFailure);
    }

    private long slot(long k) {
        return HEADER + (k & (entries - 1)) * SLOT;
    }

    private boolean published(long k) {
        int seq = ring.read32(slot(k) + OFF_SEQ);
        return seq == (int) (2 * k + 1);
    }

    private void run() {
        long k = 0;
        long lastWork = System.nanoTime();
        byte[] req = new byte[Payloads.TranslateRequest.SIZE];
        try {
            while (running) {
                if (published(k)) {
                    VarHandle.acquireFence();
                    long s = slot(k);
                    ring.read(s + OFF_REQ, req, 0, req.length);
                    Payloads.TranslateResult res;
                    try {
                        res = session.translate(Payloads.TranslateRequest.decode(req)).result();
                    } catch (ProtocolException e) {
                        res = new Payloads.TranslateResult(Payloads.ABORTED, 0, 0, 0, 0);
                    }
                    ring.write32(s + OFF_RES, res.status());
                    ring.write32(s + OFF_RES + 4, res.perm());
                    ring.write64(s + OFF_RES + 8, res.output());
                    ring.write64(s + OFF_RES + 16, res.addrMask());
                    ring.write32(s + OFF_RES + 24, res.stag());
                    VarHandle.releaseFence();
                    ring.write32(s + OFF_SEQ, (int) (2 * k + 2));
                    k++;
                    lastWork = System.nanoTime();
                    continue;
                }
                if (System.nanoTime() - lastWork < SPIN_NANOS) {
                    Thread.onSpinWait();
                    continue;
                }
                // going to sleep: announce it, then look once more (the front-end fences the other way)
                ring.write32(OFF_SLEEPING, 1);
                VarHandle.fullFence();
                if (!published(k)) {
                    waitForDoorbell();
                }
                ring.write32(OFF_SLEEPING, 0);
                VarHandle.fullFence();
                lastWork = System.nanoTime();
            }
        } catch (DeviceSession.Failed e) {
            LOG.warning("session " + session.id() + ": translation ring stopped: " + e.getMessage());
        } catch (RuntimeException e) {
            LOG.warning("session " + session.id() + ": translation ring stopped: " + e);
        } catch (InternalError e) {
            // SIGBUS on the ring's mapping: its memfd was shrunk (only possible unsealed)
            session.fail("translation ring memory became inaccessible (was its memfd truncated?): " + e.getMessage());
            LOG.warning("session " + session.id() + ": translation ring stopped: its memory became inaccessible");
            onFailure.run();
        }
    }

    private final Memory pfd = new Memory(16);

    private void waitForDoorbell() {
        Memory p = pfd;
        p.setInt(0, doorbell);
        p.setShort(4, LibC.POLLIN);
        p.setShort(6, (short) 0);
        p.setInt(8, stopFd);
        p.setShort(12, LibC.POLLIN);
        p.setShort(14, (short) 0);
        try {
            LibC.poll(p, 2, 1000);
        } catch (LastErrorException e) {
            return; // EINTR: look again
        }
        if ((p.getShort(6) & LibC.POLLIN) != 0) {
            eventFd.drain(doorbell);
        } else if ((p.getShort(6) & (LibC.POLLERR | LibC.POLLHUP | LibC.POLLNVAL)) != 0) {
            running = false;
        }
    }

    @Override
    public void close() {
        running = false;
        eventFd.signal(stopFd);
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            // never unmap under a running reader: leaking the mapping beats a SIGSEGV
            LOG.severe("session " + session.id() + ": translation ring thread did not stop; its mapping is left in place");
            return;
        }
        ring.unmap();
        LibC.closeQuietly(doorbell);
        LibC.closeQuietly(stopFd);
    }
}
