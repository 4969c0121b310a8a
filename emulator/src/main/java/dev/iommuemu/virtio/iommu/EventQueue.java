package dev.iommuemu.virtio.iommu;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.virtqueue.DescriptorChain;
import dev.iommuemu.virtqueue.SplitVirtqueue;
import java.util.ArrayDeque;

/**
 * Fault delivery on the event virtqueue (virtio spec, IOMMU device, "Fault reporting"): each
 * report fills one driver-supplied device-writable buffer. When no buffer is available the
 * report waits in a FIFO of at most {@code maxPendingFaults} entries and goes out, in order, when
 * the driver adds buffers (an eventq notification); beyond that bound reports are dropped and
 * counted (the spec lets the device "either wait for one to be consumed, or drop the event").
 * A buffer too small for a report is returned unused (used length 0): the device SHOULD NOT split
 * a report over several buffers.
 *
 * <p>Buffers are returned with {@link SplitVirtqueue#complete}: the device publishes them after its
 * host has saved the state (DmaHost.checkpoint), so a report delivered into a buffer is either in
 * the saved pending reports or in the queue's waiting used elements, never lost by a restart.
 */
final class EventQueue {
    private final SplitVirtqueue vq;
    private final GuestMemory mem;
    private final VirtioIommuCounters counters;
    private final int maxPending;
    private final ArrayDeque<FaultEvent> pending = new ArrayDeque<>();
    /** 24 bytes, or 32 with NESTING_SMMUV3 negotiated (docs/nesting.md §6). */
    private int recordSize = Structs.Fault.SIZE;

    EventQueue(SplitVirtqueue vq, GuestMemory mem, VirtioIommuCounters counters, int maxPending) {
        this.vq = vq;
        this.mem = mem;
        this.counters = counters;
        this.maxPending = maxPending;
    }

    void setRecordSize(int size) {
        recordSize = size;
    }

    /** Queues a report and writes it, and those waiting, into what buffers allow (returned, not yet published). */
    void post(FaultEvent e) {
        counters.faultsReported++;
        drain();
        if (pending.isEmpty()) {
            pending.addLast(e);
            drain();
            if (!pending.isEmpty()) {
                if (maxPending == 0) {
                    pending.clear();
                    counters.faultsDropped++;
                } else {
                    counters.faultsDeferred++;
                }
            }
        } else if (pending.size() < maxPending) {
            pending.addLast(e); // keep order behind reports already waiting
            counters.faultsDeferred++;
        } else {
            counters.faultsDropped++;
        }
    }

    /** Writes pending reports into available buffers (returned, not yet published). */
    void flush() {
        drain();
    }

    /** Writes pending reports while buffers last; {@code true} when nothing is left pending. */
    private boolean drain() {
        while (!pending.isEmpty()) {
            DescriptorChain c = vq.pop();
            if (c == null) {
                return false;
            }
            if (!c.ok() || c.writableLength() < recordSize) {
                counters.eventBuffersRejected++;
                if (c.returnable()) {
                    vq.complete(c.head(), 0);
                }
                continue;
            }
            FaultEvent e = pending.peekFirst();
            if (!c.write(mem, 0, e.encode(recordSize), 0, recordSize)) {
                counters.eventBuffersRejected++;
                vq.complete(c.head(), 0);
                continue;
            }
            pending.removeFirst();
            vq.complete(c.head(), recordSize);
            counters.faultsDelivered++;
        }
        return true;
    }

    /** The reports waiting for a buffer, oldest first. */
    java.util.List<FaultEvent> savedPending() {
        return java.util.List.copyOf(pending);
    }

    /** Why {@code faults} cannot be this queue's pending reports, as a sentence, or {@code null}. */
    String refusal(java.util.List<FaultEvent> faults, int size) {
        if (faults.size() > maxPending) {
            return faults.size() + " pending fault reports exceed this device's bound of " + maxPending;
        }
        for (FaultEvent e : faults) {
            String which = "a pending fault report of endpoint " + Integer.toUnsignedString(e.endpoint());
            if (size < Structs.Fault.EXT_SIZE && (e.pasid() != 0 || e.grpid() != 0)) {
                return which + " carries a PASID or group ID, which only the 32-byte record of NESTING_SMMUV3 has";
            }
            String why = recordRefusal(e, size);
            if (why != null) {
                return which + " " + why;
            }
        }
        return null;
    }

    /**
     * Why this device could not have made report {@code e} for records of {@code size} bytes, or
     * {@code null}. virtio spec, IOMMU device, "Fault reporting": reason is R_UNKNOWN, R_DOMAIN or
     * R_MAPPING; flags are READ, WRITE, EXEC and ADDRESS (the others reserved), plus PASID_VALID and
     * RECOVERABLE in the 32-byte record of NESTING_SMMUV3 (docs/nesting.md §6); address, pasid and
     * grpid are written only with the flag that makes them meaningful, else zero.
     */
    private static String recordRefusal(FaultEvent e, int size) {
        int reason = e.reason();
        if (reason != Structs.Fault.R_UNKNOWN && reason != Structs.Fault.R_DOMAIN && reason != Structs.Fault.R_MAPPING) {
            return "has reason " + Integer.toUnsignedString(reason) + ", which is none of VIRTIO_IOMMU_FAULT_R_UNKNOWN (0),"
                    + " R_DOMAIN (1) and R_MAPPING (2)";
        }
        int known = Structs.Fault.F_READ | Structs.Fault.F_WRITE | Structs.Fault.F_EXEC | Structs.Fault.F_ADDRESS
                | (size >= Structs.Fault.EXT_SIZE ? Structs.Fault.F_PASID_VALID | Structs.Fault.F_RECOVERABLE : 0);
        if ((e.flags() & ~known) != 0) {
            return "has flags 0x" + Integer.toHexString(e.flags()) + " with reserved bits 0x" + Integer.toHexString(e.flags() & ~known)
                    + " set, which this device never sets";
        }
        if (e.address() != 0 && (e.flags() & Structs.Fault.F_ADDRESS) == 0) {
            return "carries address 0x" + Long.toHexString(e.address()) + " without VIRTIO_IOMMU_FAULT_F_ADDRESS";
        }
        if (e.pasid() != 0 && (e.flags() & Structs.Fault.F_PASID_VALID) == 0) {
            return "carries PASID 0x" + Integer.toHexString(e.pasid()) + " without F_PASID_VALID";
        }
        if (e.grpid() != 0 && (e.flags() & Structs.Fault.F_RECOVERABLE) == 0) {
            return "carries group ID 0x" + Integer.toHexString(e.grpid()) + " without F_RECOVERABLE";
        }
        return null;
    }

    /** Replaces the pending reports (checked by {@link #refusal}). */
    void restore(java.util.List<FaultEvent> faults, int size) {
        pending.clear();
        pending.addAll(faults);
        recordSize = size;
    }

    int pendingCount() {
        return pending.size();
    }

    void reset() {
        pending.clear();
    }
}
