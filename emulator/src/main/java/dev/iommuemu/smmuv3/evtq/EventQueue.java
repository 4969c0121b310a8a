package dev.iommuemu.smmuv3.evtq;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.queue.QueueGeometry;
import dev.iommuemu.smmuv3.registers.RegisterFile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;

/**
 * The Event queue producer (IHI 0070 §7.2, §7.4). Records are written at EVENTQ_PROD when
 * EVENTQEN is set; a full queue loses the record and flags an overflow by toggling
 * EVENTQ_PROD.OVFLG, once, until software acknowledges it through EVENTQ_CONS.OVACKFLG (§7.4);
 * an abort writing the record activates GERROR.EVENTQ_ABT_ERR (§7.2).
 */
public final class EventQueue {
    private final RegisterFile regs;
    private final GuestMemory mem;
    private final Interrupts irq;
    private final Smmuv3Profile profile;
    private long written;
    private long lost;

    public EventQueue(RegisterFile regs, GuestMemory mem, Interrupts irq, Smmuv3Profile profile) {
        this.regs = regs;
        this.mem = mem;
        this.irq = irq;
        this.profile = profile;
    }

    /** Records written since reset. */
    public long written() {
        return written;
    }

    /** Records lost (queue disabled, full or aborting) since reset. */
    public long lost() {
        return lost;
    }

    /**
     * Whether the queue is writable (§7.2.1): enabled, not full, and no unacknowledged
     * GERROR.EVENTQ_ABT_ERR.
     */
    public boolean writable() {
        if (!enabledAndHealthy()) {
            return false;
        }
        QueueGeometry q = geometry();
        return !q.full(prod(q), cons(q));
    }

    private boolean enabledAndHealthy() {
        return Smmuv3Regs.CR0_EVENTQEN.isSet(regs.get(Smmuv3Regs.CR0ACK))
                && !irq.gerrorActive(Smmuv3Regs.GERROR_EVENTQ_ABT_ERR);
    }

    /**
     * Writes {@code rec}; {@code false} when it was not written. A non-stall record is then lost
     * (§7.2.1; a full queue also starts an overflow condition, §7.4); callers keep stall records
     * and retry them with {@link #recordStall} once the queue is writable again.
     */
    public boolean record(EventRecord rec) {
        if (!enabledAndHealthy()) {
            lost++;
            return false; // §7.2.1: silently discarded, no overflow
        }
        QueueGeometry q = geometry();
        int prod = prod(q);
        int cons = cons(q);
        if (q.full(prod, cons)) {
            if (rec.stall()) {
                return false; // §7.4: stall records are never discarded and never overflow
            }
            lost++;
            overflow();
            return false;
        }
        long[] w = rec.encode();
        long slot = q.slot(prod);
        byte[] b = new byte[EventRecord.SIZE];
        for (int i = 0; i < EventRecord.SIZE; i++) {
            b[i] = (byte) (w[i / 8] >>> (8 * (i % 8)));
        }
        if (!mem.write(slot, b, 0, b.length)) {
            lost++;
            irq.raiseGerror(Smmuv3Regs.GERROR_EVENTQ_ABT_ERR);
            return false;
        }
        long reg = regs.get(Smmuv3Regs.EVENTQ_PROD);
        regs.set(Smmuv3Regs.EVENTQ_PROD, Smmuv3Regs.Q_PTR.insert(reg, q.next(prod)));
        written++;
        if (q.empty(prod, cons)) {
            irq.eventQueue(); // §3.18.2: the queue went from empty to non-empty
        }
        return true;
    }

    /** §7.4: OVFLG toggles when an overflow occurs while no overflow is pending acknowledgement. */
    private void overflow() {
        long p = regs.get(Smmuv3Regs.EVENTQ_PROD);
        long c = regs.get(Smmuv3Regs.EVENTQ_CONS);
        if (Smmuv3Regs.Q_PROD_OVFLG.isSet(p) == Smmuv3Regs.Q_CONS_OVACKFLG.isSet(c)) {
            regs.set(Smmuv3Regs.EVENTQ_PROD, p ^ Smmuv3Regs.Q_PROD_OVFLG.mask());
            irq.eventQueue();
        }
    }

    private QueueGeometry geometry() {
        return QueueGeometry.of(regs.get(Smmuv3Regs.EVENTQ_BASE), profile.eventqs(), EventRecord.SIZE);
    }

    private int prod(QueueGeometry q) {
        return (int) regs.get(Smmuv3Regs.EVENTQ_PROD) & q.pointerMask();
    }

    private int cons(QueueGeometry q) {
        return (int) regs.get(Smmuv3Regs.EVENTQ_CONS) & q.pointerMask();
    }
}
