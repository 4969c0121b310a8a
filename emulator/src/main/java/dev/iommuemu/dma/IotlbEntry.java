package dev.iommuemu.dma;

/**
 * A translation as the VMM caches it (the shape of QEMU's {@code IOMMUTLBEntry}): the input range
 * {@code [iova, iova + addrMask]} maps to {@code [translatedAddr, translatedAddr + addrMask]} with
 * the permission bits of {@link Perm}. {@code addrMask} is {@code size - 1} of a power-of-two size.
 */
public record IotlbEntry(long iova, long translatedAddr, long addrMask, int perm) {
    public IotlbEntry {
        if ((addrMask & (addrMask + 1)) != 0) {
            throw new IllegalArgumentException("addrMask must be 2^n - 1: 0x" + Long.toHexString(addrMask));
        }
    }

    /** The output address of {@code addr}, which lies in this entry. */
    public long translate(long addr) {
        return translatedAddr | (addr & addrMask);
    }

    public boolean covers(long addr) {
        return (addr & ~addrMask) == iova;
    }
}
