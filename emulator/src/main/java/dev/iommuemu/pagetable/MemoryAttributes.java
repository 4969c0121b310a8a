package dev.iommuemu.pagetable;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Layout;

/**
 * The memory type, Cacheability and Shareability of a translation's output (Arm ARM D8.6 memory
 * region attributes): decoded from a stage 1 descriptor through MAIR (D8.6.1, D8.6.2), from a
 * stage 2 descriptor's MemAttr with FEAT_S2FWB off (D8.6.5, Table D8-96) or on (D8.6.6, Tables
 * D8-100/D8-101: IHI 0070 §5.2 STE.S2FWB makes the SMMU behave as HCR_EL2.FWB == 1), and combined
 * for nested translation (Tables D8-97, D8-98, D8-103). Allocation and transient hints, the XS
 * attribute and Memory Tagging (FEAT_MTE_PERM) are not modelled.
 *
 * <p>CONSTRAINED UNPREDICTABLE encodings, this model's choice: a reserved Cacheability (MAIR
 * inner 0b0000 under a Normal outer nibble other than 0x40/0xa0/0xf0; stage 2 MemAttr 0b0100,
 * 0b1000, 0b1100 without FWB; 0b100 with FWB) reads as Non-cacheable; SH 0b01 reads as Outer
 * Shareable; MemAttr[3] (RES0 with FWB and no FEAT_MTE_PERM) is ignored. The stage 2 Device
 * check of STE.S2PTW ({@link #stage2Device}) follows the same decoding.
 *
 * @param type         the memory type
 * @param inner        inner Cacheability ({@link Cacheability#NON_CACHEABLE} for Device)
 * @param outer        outer Cacheability ({@link Cacheability#NON_CACHEABLE} for Device)
 * @param shareability the effective Shareability: Outer Shareable for Device and Normal
 *                     inner and outer Non-cacheable (D8.6.2 R_PYFVQ)
 */
public record MemoryAttributes(MemoryType type, Cacheability inner, Cacheability outer, Shareability shareability) {

    /** Memory types, from the most to the least restrictive (Table D8-97's precedence). */
    public enum MemoryType {
        DEVICE_nGnRnE, DEVICE_nGnRE, DEVICE_nGRE, DEVICE_GRE, NORMAL;

        public boolean device() {
            return this != NORMAL;
        }
    }

    /** Cacheability, from the most to the least restrictive (Table D8-98: the lower one wins). */
    public enum Cacheability { NON_CACHEABLE, WRITE_THROUGH, WRITE_BACK }

    /** Shareability, from the least to the most (Table D8-103: the wider one wins). */
    public enum Shareability { NON_SHAREABLE, INNER_SHAREABLE, OUTER_SHAREABLE }

    // ---- Arm ARM MAIR_ELx (IHI 0070 §5.4 CD.MAIR holds MAIR_EL1): eight 8-bit Attr<n> fields
    public static final Field[] MAIR_ATTR = new Field[8];
    public static final Layout MAIR;

    static {
        for (int n = 0; n < 8; n++) {
            MAIR_ATTR[n] = Field.of("Attr" + n, 8 * n, 8);
        }
        MAIR = new Layout("MAIR", 1, MAIR_ATTR);
    }

    /** MAIR Attr<n>[7:4]: the outer nibble (0b0000: Device). */
    public static final Field ATTR_OUTER = Field.of("Attr[7:4]", 4, 4);
    /** MAIR Attr<n>[3:0]: the inner nibble. */
    public static final Field ATTR_INNER = Field.of("Attr[3:0]", 0, 4);
    /** MAIR Attr<n>[3:2] of a Device encoding 0b0000dd00: the Device type. */
    public static final Field ATTR_DEVICE = Field.of("dd", 2, 2);
    /** A Cacheability nibble's [3:2] (allocation hints in [1:0] are not modelled): 0b00 Write-Through transient, 0b01 Write-Back transient (0b0100: Non-cacheable), 0b10 WT, 0b11 WB. */
    public static final Field NIBBLE_POLICY = Field.of("policy", 2, 2);

    // ---- the four bits of a stage 2 descriptor's MemAttr[3:0] (Descriptor.S2_MEMATTR)
    /** Without FWB: MemAttr[3:2], outer (0b00: Device). */
    public static final Field S2_OUTER = Field.of("MemAttr[3:2]", 2, 2);
    /** Without FWB: MemAttr[1:0], inner, or the Device type when MemAttr[3:2] == 0b00. */
    public static final Field S2_INNER = Field.of("MemAttr[1:0]", 0, 2);
    /** With FWB: MemAttr[2] (0: Device of type MemAttr[1:0], Table D8-100). */
    public static final Field S2_FWB_NORMAL = Field.of("MemAttr[2]", 2, 1);
    /** With FWB: MemAttr[1:0] (Table D8-101: 0b01 Non-cacheable, 0b10 Write-Back, 0b11 stage 1's). */
    public static final Field S2_FWB_KIND = Field.of("MemAttr[1:0]", 0, 2);

    private static final int FWB_NC = 0b01;
    private static final int FWB_FORCE_WB = 0b10;
    private static final int FWB_USE_S1 = 0b11;

    /** What this model assumes of a transaction's own attributes when stage 1 does not translate. */
    public static final MemoryAttributes INCOMING = normal(Cacheability.WRITE_BACK, Cacheability.WRITE_BACK,
            Shareability.INNER_SHAREABLE);

    /** A Device type (Outer Shareable, D8.6.2 R_PYFVQ). */
    public static MemoryAttributes device(MemoryType t) {
        return new MemoryAttributes(t, Cacheability.NON_CACHEABLE, Cacheability.NON_CACHEABLE,
                Shareability.OUTER_SHAREABLE);
    }

    /** Normal memory; inner and outer Non-cacheable is Outer Shareable whatever {@code sh} says. */
    public static MemoryAttributes normal(Cacheability inner, Cacheability outer, Shareability sh) {
        boolean nc = inner == Cacheability.NON_CACHEABLE && outer == Cacheability.NON_CACHEABLE;
        return new MemoryAttributes(MemoryType.NORMAL, inner, outer, nc ? Shareability.OUTER_SHAREABLE : sh);
    }

    /** A descriptor's SH[1:0] (Tables D8-95/D8-102): 0b00 Non-, 0b10 Outer, 0b11 Inner Shareable; 0b01 reserved (Outer). */
    public static Shareability shareability(int sh) {
        return switch (sh & 3) {
            case 0b00 -> Shareability.NON_SHAREABLE;
            case 0b11 -> Shareability.INNER_SHAREABLE;
            default -> Shareability.OUTER_SHAREABLE;
        };
    }

    private static final MemoryType[] DEVICE_TYPES = {MemoryType.DEVICE_nGnRnE, MemoryType.DEVICE_nGnRE,
            MemoryType.DEVICE_nGRE, MemoryType.DEVICE_GRE};

    /** A Cacheability nibble of MAIR Attr<n> (Arm ARM MAIR_ELx.Attr: 0b0100 NC, 0b00RW (RW != 0)/0b10RW WT, 0b01RW (RW != 0)/0b11RW WB). */
    private static Cacheability nibble(int v) {
        if (v == 0b0100) {
            return Cacheability.NON_CACHEABLE;
        }
        if (v == 0) {
            return Cacheability.NON_CACHEABLE; // an inner 0b0000 under a Normal outer nibble: reserved
        }
        return (NIBBLE_POLICY.get(v) & 1) == 0 ? Cacheability.WRITE_THROUGH : Cacheability.WRITE_BACK;
    }

    /**
     * Stage 1 attributes: MAIR Attr<{@code attrIndx}> with the descriptor's SH (D8.6.1, D8.6.2,
     * Arm ARM MAIR_ELx.Attr encodings).
     */
    public static MemoryAttributes stage1(long mair, int attrIndx, int sh) {
        int attr = MAIR_ATTR[attrIndx & 7].getInt(mair);
        int outer = ATTR_OUTER.getInt(attr);
        int inner = ATTR_INNER.getInt(attr);
        if (outer == 0) {
            // 0b0000dd00: Device; the low bits (0b0000dd01 XS, others UNPREDICTABLE) are not modelled.
            return device(DEVICE_TYPES[ATTR_DEVICE.getInt(attr)]);
        }
        Shareability s = shareability(sh);
        if (inner == 0) {
            // FEAT_XS / FEAT_MTE2 special encodings: 0x40 NC, 0xa0 WT, 0xf0 WB (Tagged); else reserved.
            return switch (attr) {
                case 0x40 -> normal(Cacheability.NON_CACHEABLE, Cacheability.NON_CACHEABLE, s);
                case 0xa0 -> normal(Cacheability.WRITE_THROUGH, Cacheability.WRITE_THROUGH, s);
                case 0xf0 -> normal(Cacheability.WRITE_BACK, Cacheability.WRITE_BACK, s);
                default -> normal(Cacheability.NON_CACHEABLE, nibble(outer), s);
            };
        }
        return normal(nibble(inner), nibble(outer), s);
    }

    /** A stage 2 MemAttr[1:0] or [3:2] Cacheability without FWB (Table D8-96): 0b01 NC, 0b10 WT, 0b11 WB, 0b00 reserved (NC). */
    private static Cacheability s2Cacheability(int v) {
        return switch (v) {
            case 0b10 -> Cacheability.WRITE_THROUGH;
            case 0b11 -> Cacheability.WRITE_BACK;
            default -> Cacheability.NON_CACHEABLE;
        };
    }

    /**
     * Whether a stage 2 MemAttr makes Device memory (the check of IHI 0070 §5.2 STE.S2PTW): without
     * FWB MemAttr[3:2] == 0b00 (Table D8-96), with FWB MemAttr[2] == 0 (Table D8-100).
     */
    public static boolean stage2Device(int memAttr, boolean fwb) {
        return fwb ? S2_FWB_NORMAL.get(memAttr) == 0 : S2_OUTER.get(memAttr) == 0;
    }

    /**
     * The attributes of a translation whose stage 2 descriptor has {@code memAttr} and {@code sh},
     * given the attributes {@code s1} that stage 1 produced (or the transaction's own when stage 1
     * does not translate, {@link #INCOMING}).
     *
     * <p>FWB off (D8.6.5): stage 2's own attributes (Table D8-96) are combined with stage 1's:
     * Device wins over Normal and the more restrictive Device type wins (Table D8-97); the less
     * cacheable of each of inner and outer wins (Table D8-98).
     *
     * <p>FWB on (D8.6.6): MemAttr[2] == 0 is Device of type MemAttr[1:0], combined with stage 1 as
     * Device types are (R_GSDKZ); 0b101 gives Normal Non-cacheable unless stage 1 is Device; 0b110
     * gives Normal Write-Back whatever stage 1 says; 0b111 gives stage 1's attributes (Table D8-101).
     *
     * <p>Shareability (D8.6.7.1, Table D8-103, independent of FWB): Outer Shareable for a Device or
     * inner and outer Non-cacheable result; otherwise the wider of the two stages, each stage's
     * Device or Non-cacheable mapping counting as Outer Shareable (R_YHCTP; for stage 1 this model
     * normalises, the IMPLEMENTATION DEFINED choice of D8.6.2 R_NSCNC).
     */
    public static MemoryAttributes combine(MemoryAttributes s1, int memAttr, int sh, boolean fwb) {
        MemoryType type;
        Cacheability inner;
        Cacheability outer;
        Shareability s2sh;
        if (fwb) {
            if (S2_FWB_NORMAL.get(memAttr) == 0) {
                MemoryType t = DEVICE_TYPES[S2_FWB_KIND.getInt(memAttr)];
                return device(s1.type.ordinal() < t.ordinal() ? s1.type : t);
            }
            int kind = S2_FWB_KIND.getInt(memAttr);
            if (kind == FWB_USE_S1) {
                type = s1.type;
                inner = s1.inner;
                outer = s1.outer;
                s2sh = shareability(sh);
            } else if (kind == FWB_FORCE_WB) {
                type = MemoryType.NORMAL;
                inner = outer = Cacheability.WRITE_BACK;
                s2sh = shareability(sh);
            } else { // 0b01 Non-cacheable; 0b00 reserved, read as 0b01
                if (s1.type.device()) {
                    return s1;
                }
                type = MemoryType.NORMAL;
                inner = outer = Cacheability.NON_CACHEABLE;
                s2sh = Shareability.OUTER_SHAREABLE;
            }
        } else {
            int hi = S2_OUTER.getInt(memAttr);
            int lo = S2_INNER.getInt(memAttr);
            if (hi == 0) {
                MemoryType t = DEVICE_TYPES[lo];
                return device(s1.type.ordinal() < t.ordinal() ? s1.type : t);
            }
            if (s1.type.device()) {
                return s1;
            }
            type = MemoryType.NORMAL;
            Cacheability s2i = s2Cacheability(lo);
            Cacheability s2o = s2Cacheability(hi);
            inner = s1.inner.ordinal() < s2i.ordinal() ? s1.inner : s2i;
            outer = s1.outer.ordinal() < s2o.ordinal() ? s1.outer : s2o;
            boolean s2nc = s2i == Cacheability.NON_CACHEABLE && s2o == Cacheability.NON_CACHEABLE;
            s2sh = s2nc ? Shareability.OUTER_SHAREABLE : shareability(sh);
        }
        if (type.device()) {
            return device(type);
        }
        Shareability s = s1.shareability.ordinal() > s2sh.ordinal() ? s1.shareability : s2sh;
        return normal(inner, outer, s);
    }

    /** Compact rendering for logs and walk explanations, e.g. "Normal iWB oWB ISH", "Device-nGnRE". */
    @Override
    public String toString() {
        if (type.device()) {
            return type.name().replace("DEVICE_", "Device-");
        }
        return "Normal i" + abbrev(inner) + " o" + abbrev(outer) + " " + switch (shareability) {
            case NON_SHAREABLE -> "NSH";
            case INNER_SHAREABLE -> "ISH";
            case OUTER_SHAREABLE -> "OSH";
        };
    }

    private static String abbrev(Cacheability c) {
        return switch (c) {
            case NON_CACHEABLE -> "NC";
            case WRITE_THROUGH -> "WT";
            case WRITE_BACK -> "WB";
        };
    }
}
