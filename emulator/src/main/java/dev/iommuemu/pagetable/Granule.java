package dev.iommuemu.pagetable;

/**
 * A VMSAv8-64 translation granule (Arm ARM D8.2 "translation granule"): the page size, and with it
 * the number of address bits each lookup level resolves ({@code stride = pageShift - 3}, since
 * descriptors are 8 bytes).
 */
public enum Granule {
    G4K(12),
    G16K(14),
    G64K(16);

    private final int pageShift;

    Granule(int pageShift) {
        this.pageShift = pageShift;
    }

    /** log2 of the page size: 12, 14 or 16. */
    public int pageShift() {
        return pageShift;
    }

    public long pageSize() {
        return 1L << pageShift;
    }

    /** Address bits resolved per full lookup level: 9, 11 or 13. */
    public int stride() {
        return pageShift - 3;
    }

    /** The shift of the region a descriptor at {@code level} maps (level 3 = one page). */
    public int levelShift(int level) {
        return pageShift + stride() * (3 - level);
    }

    /**
     * Number of entries in a contiguous run at {@code level} (Arm ARM D8.6.1 the Contiguous bit):
     * 4K: 16 at every level; 16K: 128 at level 3, 32 at level 2; 64K: 32 at levels 2 and 3.
     * Returns 1 where the hint has no defined span.
     */
    public int contiguousEntries(int level) {
        return switch (this) {
            case G4K -> level >= 1 ? 16 : 1;
            case G16K -> level == 3 ? 128 : level == 2 ? 32 : 1;
            case G64K -> level >= 2 ? 32 : 1;
        };
    }

    /** CD.TG0 / TCR.TG0 / STE.S2TG encoding (IHI 0070 §5.4 CD.TG0, §5.2 STE.S2TG): 0=4K, 1=64K, 2=16K; null if reserved. */
    public static Granule fromTg0(int tg0) {
        return switch (tg0) {
            case 0 -> G4K;
            case 1 -> G64K;
            case 2 -> G16K;
            default -> null;
        };
    }

    /** CD.TG1 / TCR.TG1 encoding (IHI 0070 §5.4 CD.TG1): 1=16K, 2=4K, 3=64K; null if reserved. */
    public static Granule fromTg1(int tg1) {
        return switch (tg1) {
            case 1 -> G16K;
            case 2 -> G4K;
            case 3 -> G64K;
            default -> null;
        };
    }

    /** The TG0/S2TG encoding of this granule. */
    public int tg0() {
        return switch (this) {
            case G4K -> 0;
            case G64K -> 1;
            case G16K -> 2;
        };
    }

    /** The TG1 encoding of this granule. */
    public int tg1() {
        return switch (this) {
            case G16K -> 1;
            case G4K -> 2;
            case G64K -> 3;
        };
    }
}
