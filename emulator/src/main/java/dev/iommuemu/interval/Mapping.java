package dev.iommuemu.interval;

/**
 * One entry of an {@link IntervalMap}: the inclusive input range {@code [first, last]} (unsigned
 * 64-bit addresses, as virtio-iommu's {@code virt_start}/{@code virt_end} are inclusive) maps to
 * output addresses starting at {@code target}, with model-defined attribute bits {@code attrs}
 * (virtio-iommu MAP flags, or a page-table permission encoding on the SMMUv3 side).
 */
public record Mapping(long first, long last, long target, int attrs) {

    /** Whether {@code addr} lies in {@code [first, last]}. */
    public boolean contains(long addr) {
        return Long.compareUnsigned(addr, first) >= 0 && Long.compareUnsigned(addr, last) <= 0;
    }

    /** The output address of {@code addr}, which lies in this mapping. */
    public long translate(long addr) {
        return target + (addr - first);
    }

    /** Number of input addresses covered, minus one (so the whole 64-bit space fits). */
    public long sizeMinusOne() {
        return last - first;
    }
}
