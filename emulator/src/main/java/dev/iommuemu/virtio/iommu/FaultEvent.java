package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.virtio.iommu.Structs.Fault;

/**
 * A fault report for the event queue, {@code struct virtio_iommu_fault} (virtio spec, IOMMU
 * device, "Fault reporting"). Reserved fields are always written as zero (device requirement).
 * {@code pasid} and {@code grpid} exist only in the 32-byte record of paravirtual nesting
 * (docs/nesting.md §6); the 24-byte record has no room for them.
 */
public record FaultEvent(int reason, int flags, int endpoint, long address, int pasid, int grpid) {

    public FaultEvent(int reason, int flags, int endpoint, long address) {
        this(reason, flags, endpoint, address, 0, 0);
    }

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
        return encode(Fault.SIZE);
    }

    /** The record of {@code size} bytes: {@link Fault#SIZE}, or {@link Fault#EXT_SIZE} with NESTING_SMMUV3. */
    public byte[] encode(int size) {
        long[] w = new long[Fault.EXT_LAYOUT.words()];
        Fault.REASON.set(w, reason);
        Fault.FLAGS.set(w, flags & 0xffff_ffffL);
        Fault.ENDPOINT.set(w, endpoint & 0xffff_ffffL);
        Fault.ADDRESS.set(w, address);
        if (size >= Fault.EXT_SIZE) {
            Fault.PASID.set(w, pasid & 0xffff_ffffL);
            Fault.GRPID.set(w, grpid & 0xffff_ffffL);
        }
        return Structs.toBytes(w, size);
    }

    /** Decodes a report of 24 or 32 bytes (for drivers in tests). */
    public static FaultEvent decode(byte[] b) {
        long[] w = Structs.toWords(b, Fault.EXT_LAYOUT.words());
        boolean ext = b.length >= Fault.EXT_SIZE;
        return new FaultEvent(Fault.REASON.getInt(w), (int) Fault.FLAGS.get(w), (int) Fault.ENDPOINT.get(w), Fault.ADDRESS.get(w),
                ext ? (int) Fault.PASID.get(w) : 0, ext ? (int) Fault.GRPID.get(w) : 0);
    }
}
