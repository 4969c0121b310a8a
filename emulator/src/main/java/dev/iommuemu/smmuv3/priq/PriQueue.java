package dev.iommuemu.smmuv3.priq;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.queue.QueueGeometry;
import dev.iommuemu.smmuv3.registers.RegisterFile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;

/**
 * The PRI queue producer (IHI 0070 §8, §3.9.2). Page requests are written when PRIQEN is set;
 * a request that cannot be written (queue disabled, full, or its write aborted) is discarded, and
 * if it was the last of its group (Last == 1, not a Stop Marker) the SMMU answers the group itself
 * with a successful PRG response so the endpoint retries and faults again (§3.9.2.1 PRI queue
 * overflow). A full queue also toggles PRIQ_PROD.OVFLG until acknowledged via PRIQ_CONS.OVACKFLG.
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

    /** Enqueues {@code req}; {@code false} when it was discarded. */
    public boolean enqueue(PageRequest req) {
        if (!Smmuv3Regs.CR0_PRIQEN.isSet(regs.get(Smmuv3Regs.CR0ACK))) {
            discard(req);
            return false;
        }
        QueueGeometry q = QueueGeometry.of(regs.get(Smmuv3Regs.PRIQ_BASE), profile.priqs(), PageRequest.SIZE);
        int prod = (int) regs.get(Smmuv3Regs.PRIQ_PROD) & q.pointerMask();
        int cons = (int) regs.get(Smmuv3Regs.PRIQ_CONS) & q.pointerMask();
        if (q.full(prod, cons)) {
            long p = regs.get(Smmuv3Regs.PRIQ_PROD);
            long c = regs.get(Smmuv3Regs.PRIQ_CONS);
            if (Smmuv3Regs.Q_PROD_OVFLG.isSet(p) == Smmuv3Regs.Q_CONS_OVACKFLG.isSet(c)) {
                regs.set(Smmuv3Regs.PRIQ_PROD, p ^ Smmuv3Regs.Q_PROD_OVFLG.mask());
                irq.priQueue();
            }
            discard(req);
            return false;
        }
        long[] w = req.encode();
        long slot = q.slot(prod);
        if (!mem.store(slot, 8, w[0]) || !mem.store(slot + 8, 8, w[1])) {
            irq.raiseGerror(Smmuv3Regs.GERROR_PRIQ_ABT_ERR);
            discard(req);
            return false;
        }
        regs.set(Smmuv3Regs.PRIQ_PROD, Smmuv3Regs.Q_PTR.insert(regs.get(Smmuv3Regs.PRIQ_PROD), q.next(prod)));
        irq.priQueue();
        return true;
    }

    private void discard(PageRequest req) {
        if (req.last() && !req.stopMarker()) {
            endpoints.priResponse(req.streamId(), req.ssid(), req.prgIndex(), EndpointPort.RESPONSE_SUCCESS);
        }
    }
}
