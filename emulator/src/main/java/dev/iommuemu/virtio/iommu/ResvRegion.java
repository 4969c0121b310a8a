package dev.iommuemu.virtio.iommu;

/**
 * A reserved region reported by PROBE as a RESV_MEM property (virtio spec, IOMMU device, "Property
 * RESV_MEM"): {@code [start, end]} inclusive, subtype {@link Structs.ResvMem#T_RESERVED} or
 * {@link Structs.ResvMem#T_MSI}.
 */
public record ResvRegion(int subtype, long start, long end) {
    public ResvRegion {
        if (Long.compareUnsigned(start, end) > 0) {
            throw new IllegalArgumentException("start > end");
        }
        if (subtype < 0 || subtype > 0xff) {
            throw new IllegalArgumentException("subtype " + subtype);
        }
    }

    public static ResvRegion reserved(long start, long end) {
        return new ResvRegion(Structs.ResvMem.T_RESERVED, start, end);
    }

    public static ResvRegion msi(long start, long end) {
        return new ResvRegion(Structs.ResvMem.T_MSI, start, end);
    }

    public boolean contains(long addr) {
        return Long.compareUnsigned(addr, start) >= 0 && Long.compareUnsigned(addr, end) <= 0;
    }

    public boolean overlaps(long first, long last) {
        return Long.compareUnsigned(first, end) <= 0 && Long.compareUnsigned(start, last) <= 0;
    }
}
