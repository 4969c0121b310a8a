package dev.iommuemu.pagetable;

/**
 * The 3-bit physical/intermediate address size encoding shared by TCR.IPS, VTCR.PS, CD.IPS,
 * STE.S2PS and SMMU_IDR5.OAS (IHI 0070 §5.4 CD.IPS, §5.2 STE.S2PS, §6.3.6 SMMU_IDR5.OAS).
 */
public final class PhysicalSize {
    private static final int[] BITS = {32, 36, 40, 42, 44, 48, 52, 56};

    private PhysicalSize() {}

    /** Bits for encoding {@code enc} (0..7). */
    public static int bits(int enc) {
        return BITS[enc & 7];
    }

    /** The encoding of {@code bits}; -1 if none. */
    public static int encode(int bits) {
        for (int i = 0; i < BITS.length; i++) {
            if (BITS[i] == bits) {
                return i;
            }
        }
        return -1;
    }

    /**
     * The effective size of a programmed encoding capped to the implementation's OAS
     * (IHI 0070 §5.4: eff_IPS = MIN(CD.IPS, SMMU_IDR5.OAS); §5.2: eff_S2PS = MIN(S2PS, OAS)).
     * Reserved encodings above 52 behave as the largest implemented size.
     */
    public static int effective(int enc, int oasBits) {
        return Math.min(bits(enc), oasBits);
    }
}
