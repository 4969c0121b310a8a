package dev.iommuemu.pagetable;

/**
 * A stage 1 configuration simple enough for a VMM to walk itself (docs/protocol.md §4.8 "Walk
 * recipes", kind 1): AArch64 VMSAv8-64 translation tables with the 4 KiB granule, little-endian,
 * the TTB0 range only, no hardware updates, no LPA2, an output size of at most 48 bits, and
 * unprivileged data accesses (Arm ARM D8.2 translation regimes, D8.3 descriptors, D8.4 permissions).
 *
 * @param ttb        the start table's address as the walk uses it (TTB0 aligned to the start table's size)
 * @param t0sz       T0SZ: the range covers {@code 2^(64 - t0sz)} bytes
 * @param startLevel the level the walk starts at for that T0SZ with 4 KiB granules (Arm ARM D8.2), 0..3
 * @param oasBits    the effective output address size in bits (IHI 0070 §5.4 CD.IPS capped by SMMU_IDR5.OAS), at most 48
 */
public record WalkRecipe(long ttb, int t0sz, int startLevel, int oasBits) {
    /** The largest output size a recipe may carry (4 KiB descriptors hold OA[47:12] without LPA2). */
    public static final int MAX_OAS = 48;

    public WalkRecipe {
        if (t0sz < 16 || t0sz > 48) {
            throw new IllegalArgumentException("T0SZ " + t0sz + " outside 16..48 for a 4 KiB-granule walk");
        }
        if (startLevel != startLevel(t0sz)) {
            throw new IllegalArgumentException("start level " + startLevel + " for T0SZ " + t0sz + " (Arm ARM D8.2: " + startLevel(t0sz) + ")");
        }
        if (oasBits < 32 || oasBits > MAX_OAS) {
            throw new IllegalArgumentException("output size of " + oasBits + " bits (32.." + MAX_OAS + ")");
        }
        if ((ttb >>> oasBits) != 0 || Walker.alignTable(ttb, startBits(t0sz), false) != ttb) {
            throw new IllegalArgumentException(String.format("TTB 0x%x beyond %d bits or not aligned to its table", ttb, oasBits));
        }
    }

    /** The recipe of {@code ttb0} (aligned here as the walk aligns it) for {@code t0sz} and {@code oasBits}. */
    public static WalkRecipe of(long ttb0, int t0sz, int oasBits) {
        return new WalkRecipe(Walker.alignTable(ttb0, startBits(t0sz), false), t0sz, startLevel(t0sz), oasBits);
    }

    /**
     * Arm ARM D8.2 (4 KiB granule): a walk resolves 9 bits per level above the 12-bit page offset,
     * ending at level 3, so an input of {@code 64 - t0sz} bits starts at level
     * {@code 4 - ceil((64 - t0sz - 12) / 9)}.
     */
    public static int startLevel(int t0sz) {
        return Walker.startLevel(Granule.G4K, 64 - t0sz);
    }

    /** The bits of the input the start level's table resolves (its table has 2^bits entries). */
    public static int startBits(int t0sz) {
        return (64 - t0sz) - Granule.G4K.levelShift(startLevel(t0sz));
    }

    public int inputBits() {
        return 64 - t0sz;
    }
}
