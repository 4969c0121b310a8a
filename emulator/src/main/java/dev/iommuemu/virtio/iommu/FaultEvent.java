package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.virtio.iommu.Structs.Fault;

/**
 * A fault report for the event queue, {@code struct virtio_iommu_fault} (virtio spec, IOMMU
 * device, "Fault reporting"). Reserved fields are always written as zero (device requirement).
 */
public record FaultEvent(int reason, int flags, int endpoint, long address) {

    /** The report for a faulting access: reason, READ/WRITE/EXEC from the access, ADDRESS with the address. */
    public static FaultEvent of(int reason, int endpoint, long address, DmaAccess access) {
        int f = access.write() ? Fault.F_WRITE : Fault.F_READ;
        if (access.instruction()) {
            f |= Fault.F_EXEC;
        }
        return new FaultEvent(reason, f | Fault.F_ADDRESS, endpoint, address);
    }

    /** The 24 bytes as written to the driver's buffer. */
    public byte[] encode() {
        long[] w = new long[Fault.LAYOUT.words()];
        Fault.REASON.set(w, reason);
        Fault.FLAGS.set(w, flags & 0xffff_ffffL);
        Fault.ENDPOINT.set(w, endpoint & 0xffff_ffffL);
        Fault.ADDRESS.set(w, address);
        return Structs.toBytes(w, Fault.SIZE);
    }

    /** Decodes a report (for drivers in tests). */
    public static FaultEvent decode(byte[] b) {
        long[] w = Structs.toWords(b, Fault.LAYOUT.words());
        return new FaultEvent(Fault.REASON.getInt(w), (int) Fault.FLAGS.get(w), (int) Fault.ENDPOINT.get(w), Fault.ADDRESS.get(w));
    }
}
