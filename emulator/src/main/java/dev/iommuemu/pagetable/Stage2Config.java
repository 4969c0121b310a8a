package dev.iommuemu.pagetable;

/**
 * Stage 2 translation as a stream table entry configures it (IHI 0070 §5.2 STE S2* fields; Arm
 * ARM D8 VTCR_EL2 semantics).
 *
 * @param ttb        S2TTB (bits below the start table's alignment are treated as zero)
 * @param t0sz       S2T0SZ: the IPA range covers {@code 2^(64 - t0sz)} bytes
 * @param startLevel the start level decoded from S2SL0 (and S2SL0_2) with {@link #startLevel}
 * @param granule    S2TG
 * @param psBits     effective output size: MIN(S2PS, SMMU_IDR5.OAS) (§5.2 STE.S2PS)
 * @param ha         S2HA
 * @param hd         S2HD (effective only with S2HA)
 * @param affd       S2AFFD (ignored when S2HA)
 * @param ptw        S2PTW: stage 1 walks and CD fetches to Device memory fault (§5.2 STE.S2PTW)
 * @param ds         S2DS: 52-bit descriptors for 4K/16K (FEAT_LPA2 layout)
 * @param bigEndian  S2ENDI
 * @param xnx        the two-bit stage 2 XN field (FEAT_XNX; SMMU_IDR3.XNX)
 * @param fwb        S2FWB: descriptors' MemAttr read as with HCR_EL2.FWB == 1 (§5.2 STE.S2FWB,
 *                   Arm ARM D8.6.6); see {@link MemoryAttributes#combine}
 */
public record Stage2Config(
        long ttb,
        int t0sz,
        int startLevel,
        Granule granule,
        int psBits,
        boolean ha,
        boolean hd,
        boolean affd,
        boolean ptw,
        boolean ds,
        boolean bigEndian,
        boolean xnx,
        boolean fwb) {

    /** Without S2FWB. */
    public Stage2Config(long ttb, int t0sz, int startLevel, Granule granule, int psBits, boolean ha, boolean hd,
            boolean affd, boolean ptw, boolean ds, boolean bigEndian, boolean xnx) {
        this(ttb, t0sz, startLevel, granule, psBits, ha, hd, affd, ptw, ds, bigEndian, xnx, false);
    }

    /** Marker returned by {@link #startLevel} for a reserved S2SL0 encoding. */
    public static final int INVALID_LEVEL = Integer.MIN_VALUE;

    /** A common configuration: no HTTU, little-endian, one-bit XN. */
    public static Stage2Config simple(long ttb, int t0sz, int startLevel, Granule g, int psBits) {
        return new Stage2Config(ttb, t0sz, startLevel, g, psBits, false, false, false, false, false, false, false);
    }

    public Stage2Config withHttu(boolean ha, boolean hd) {
        return new Stage2Config(ttb, t0sz, startLevel, granule, psBits, ha, hd, affd, ptw, ds, bigEndian, xnx, fwb);
    }

    public Stage2Config withAffd(boolean affd) {
        return new Stage2Config(ttb, t0sz, startLevel, granule, psBits, ha, hd, affd, ptw, ds, bigEndian, xnx, fwb);
    }

    public Stage2Config withPtw(boolean ptw) {
        return new Stage2Config(ttb, t0sz, startLevel, granule, psBits, ha, hd, affd, ptw, ds, bigEndian, xnx, fwb);
    }

    public Stage2Config withXnx(boolean xnx) {
        return new Stage2Config(ttb, t0sz, startLevel, granule, psBits, ha, hd, affd, ptw, ds, bigEndian, xnx, fwb);
    }

    public Stage2Config withBigEndian(boolean be) {
        return new Stage2Config(ttb, t0sz, startLevel, granule, psBits, ha, hd, affd, ptw, ds, be, xnx, fwb);
    }

    public Stage2Config withDs(boolean ds) {
        return new Stage2Config(ttb, t0sz, startLevel, granule, psBits, ha, hd, affd, ptw, ds, bigEndian, xnx, fwb);
    }

    public Stage2Config withFwb(boolean fwb) {
        return new Stage2Config(ttb, t0sz, startLevel, granule, psBits, ha, hd, affd, ptw, ds, bigEndian, xnx, fwb);
    }

    public int inputBits() {
        return 64 - t0sz;
    }

    /**
     * The start level that {SL2, SL0} encode for a granule (Arm ARM VTCR_EL2.SL0/SL2, as IHI 0070
     * §5.2 STE.S2SL0 adopts them): 4K: 0->2, 1->1, 2->0, 3->3 (with small tables, else reserved),
     * SL2=1 with SL0=0 -> -1 (DS only); 16K: 0->3, 1->2, 2->1, 3->0 (DS only); 64K: 0->3, 1->2, 2->1,
     * 3 reserved. Returns {@link #INVALID_LEVEL} for a reserved encoding.
     */
    public static int startLevel(Granule g, int sl0, int sl2, boolean ds, boolean stt) {
        if (sl2 != 0) {
            return (g == Granule.G4K && ds && sl0 == 0) ? -1 : INVALID_LEVEL;
        }
        return switch (g) {
            case G4K -> switch (sl0) {
                case 0 -> 2;
                case 1 -> 1;
                case 2 -> 0;
                default -> stt ? 3 : INVALID_LEVEL;
            };
            case G16K -> switch (sl0) {
                case 0 -> 3;
                case 1 -> 2;
                case 2 -> 1;
                default -> ds ? 0 : INVALID_LEVEL;
            };
            case G64K -> switch (sl0) {
                case 0 -> 3;
                case 1 -> 2;
                case 2 -> 1;
                default -> INVALID_LEVEL;
            };
        };
    }

    /** Whether some {S2SL0_2, S2SL0} encoding gives {@code level} for this granule (a hand-built record may hold any int). */
    private static boolean encodable(Granule g, int level, boolean ds, boolean stt) {
        for (int sl2 = 0; sl2 <= 1; sl2++) {
            for (int sl0 = 0; sl0 <= 3; sl0++) {
                if (startLevel(g, sl0, sl2, ds, stt) == level) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Bits of the IPA resolved by the (possibly concatenated) start table. */
    public int startBits() {
        return inputBits() - granule.levelShift(startLevel);
    }

    /**
     * Why this configuration cannot be walked, or {@code null}. The rules of IHI 0070 §5.2 that make
     * an STE ILLEGAL (C_BAD_STE) for stage 2: S2T0SZ range, S2SL0 consistent with S2T0SZ and S2TG
     * (Arm ARM AArch64.S2InconsistentSL: the start level resolves at least one bit and at most
     * {@code stride + 4} bits, i.e. up to 16 concatenated tables), S2TTB within S2PS.
     *
     * @param ias the SMMU's input address size (IHI 0070 §3.4)
     * @param stt small translation tables (SMMU_IDR3.STT)
     */
    public String check(int ias, boolean stt) {
        if (granule == null) {
            return "S2TG reserved";
        }
        if (startLevel == INVALID_LEVEL || !encodable(granule, startLevel, ds, stt)) {
            return "S2SL0 reserved for this granule";
        }
        int max = stt ? (granule == Granule.G64K ? 47 : 48) : 39;
        int min = Math.max((granule == Granule.G64K || ds) ? 12 : 16, 64 - ias);
        if (t0sz < min || t0sz > max) {
            return "S2T0SZ " + t0sz + " outside [" + min + ", " + max + "]";
        }
        int bits = startBits();
        if (bits < 1 || bits > granule.stride() + 4) {
            return "S2SL0 (start level " + startLevel + ") inconsistent with S2T0SZ " + t0sz + " and " + granule;
        }
        if (psBits < 64 && (ttb >>> psBits) != 0) {
            return "S2TTB 0x" + Long.toHexString(ttb) + " outside " + psBits + "-bit range";
        }
        return null;
    }
}
