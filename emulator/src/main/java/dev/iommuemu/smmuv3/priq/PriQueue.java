package dev.iommuemu.smmuv3.priq;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.queue.QueueGeometry;
import dev.iommuemu.smmuv3.registers.RegisterFile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;

/**
 * The PRI queue producer (IHI 0070 §8). Page requests are written while the queue is enabled and
 * healthy. Otherwise the SMMU answers for software:
 * <ul>
 *   <li>PRIQEN == 0 (or SMMUEN == 0), or GERROR.PRIQ_ABT_ERR active: every Page Request gets an
 *       automatic Response Failure without a PASID (§8.2);</li>
 *   <li>a full queue toggles PRIQ_PROD.OVFLG and starts an overflow condition that discards every
 *       request until software acknowledges it through PRIQ_CONS.OVACKFLG; a discarded request
 *       with Last == 1 gets an automatic Success carrying its PASID (IDR3.PPS == 1) (§8.1);</li>
 *   <li>a write that aborts activates GERROR.PRIQ_ABT_ERR and answers that request with Response
 *       Failure (§8.2).</li>
 * </ul>
 * Stop Markers never get automatic responses.
 */
public final class PriQueue {
    private final RegisterFile regs;
    private final GuestMemory mem;
    private final Interrupts irq;
    private final Smmuv3Profile profile;
    private final EndpointPort endpoints;

    public PriQueue(RegisterFile regs, GuestMemory mem, Interrupts irq, Smmuv3Profile profile, EndpointPort endpoints) {
        this.regs = regs;
        this.mem = mem;
        this.irq = irq;
        this.profile = profile;
        this.endpoints = endpoints;
    }

    /** Enqueues {@code req}; {@code false} when it was discarded (and perhaps auto-answered). */
    public boolean enqueue(PageRequest req) {
        long ack = regs.get(Smmuv3Regs.CR0ACK);
        if (!Smmuv3Regs.CR0_PRIQEN.isSet(ack) || !Smmuv3Regs.CR0_SMMUEN.isSet(ack)
                || irq.gerrorActive(Smmuv3Regs.GERROR_PRIQ_ABT_ERR)) {
            fail(req);
            return false;
        }
        QueueGeometry q = QueueGeometry.of(regs.get(Smmuv3Regs.PRIQ_BASE), profile.priqs(), PageRequest.SIZE);
        long p = regs.get(Smmuv3Regs.PRIQ_PROD);
        long c = regs.get(Smmuv3Regs.PRIQ_CONS);
        boolean overflowActive = Smmuv3Regs.Q_PROD_OVFLG.isSet(p) != Smmuv3Regs.Q_CONS_OVACKFLG.isSet(c);
        int prod = (int) p & q.pointerMask();
        int cons = (int) c & q.pointerMask();
        if (overflowActive || q.full(prod, cons)) {
            if (!overflowActive) {
                regs.set(Smmuv3Regs.PRIQ_PROD, p ^ Smmuv3Regs.Q_PROD_OVFLG.mask());
                irq.priQueue();
            }
            if (req.last() && !req.stopMarker()) {
                endpoints.priResponse(req.streamId(), req.ssid(), req.prgIndex(), EndpointPort.RESPONSE_SUCCESS);
            }
            return false;
        }
        long[] w = req.encode();
        long slot = q.slot(prod);
        if (mem.find(slot, PageRequest.SIZE) == null) {
            irq.raiseGerror(Smmuv3Regs.GERROR_PRIQ_ABT_ERR);
            fail(req);
            return false;
        }
        mem.store(slot, 8, w[0]);
        mem.store(slot + 8, 8, w[1]);
        regs.set(Smmuv3Regs.PRIQ_PROD, Smmuv3Regs.Q_PTR.insert(p, q.next(prod)));
        // §6.3 SMMU_PRIQ_IRQ_CFG2.LO: with LO, only Last == 1 entries interrupt; otherwise the queue
        // going from empty to non-empty does.
        boolean lo = profile.msi() && Smmuv3Regs.PRIQ_IRQ_CFG2_LO.isSet(regs.get(Smmuv3Regs.PRIQ_IRQ_CFG2));
        if (lo ? req.last() : q.empty(prod, cons)) {
            irq.priQueue();
        }
        return true;
    }

    /** §8.2: an automatic Response Failure, without a PASID; none for Stop Markers. */
    private void fail(PageRequest req) {
        if (!req.stopMarker()) {
            endpoints.priResponse(req.streamId(), -1, req.prgIndex(), EndpointPort.RESPONSE_FAILURE);
        }
    }
}
