package dev.iommuemu.smmuv3.streamtable;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Structure;
import dev.iommuemu.field.Layout;

/**
 * A Stream Table Entry (IHI 0070 §5.2): 64 bytes, its fields declared once here and decoded into
 * an immutable value. Validation against a profile and the SMMU's state is {@link SteValidator}.
 */
public final class Ste extends Structure {
    public static final int SIZE = 64;
    public static final int WORDS = 8;

    // ---- IHI 0070 §5.2 STE fields (bit positions as the spec prints them)
    public static final Field V = Field.bit("V", 0);
    public static final Field CONFIG = Field.bits("Config", 3, 1);
    public static final Field S1FMT = Field.bits("S1Fmt", 5, 4);
    public static final Field S1CONTEXTPTR = Field.bits("S1ContextPtr", 55, 6);
    public static final Field S1CDMAX = Field.bits("S1CDMax", 63, 59);
    public static final Field S1DSS = Field.bits("S1DSS", 65, 64);
    public static final Field S1CIR = Field.bits("S1CIR", 67, 66);
    public static final Field S1COR = Field.bits("S1COR", 69, 68);
    public static final Field S1CSH = Field.bits("S1CSH", 71, 70);
    public static final Field S2HWU59 = Field.bit("S2HWU59", 72);
    public static final Field S2HWU60 = Field.bit("S2HWU60", 73);
    public static final Field S2HWU61 = Field.bit("S2HWU61", 74);
    public static final Field S2HWU62 = Field.bit("S2HWU62", 75);
    public static final Field DRE = Field.bit("DRE", 76);
    public static final Field CONT = Field.bits("CONT", 80, 77);
    public static final Field DCP = Field.bit("DCP", 81);
    public static final Field PPAR = Field.bit("PPAR", 82);
    public static final Field MEV = Field.bit("MEV", 83);
    public static final Field SW_RESERVED = Field.bits("SW_RESERVED", 87, 84);
    /** §5.2 S2FWB (SMMUv3.2): stage 2 attributes as HCR_EL2.FWB == 1; RES0 without SMMU_IDR3.FWB. */
    public static final Field S2FWB = Field.bit("S2FWB", 89);
    public static final Field S1STALLD = Field.bit("S1STALLD", 91);
    public static final Field EATS = Field.bits("EATS", 93, 92);
    public static final Field STRW = Field.bits("STRW", 95, 94);
    public static final Field MEMATTR = Field.bits("MemAttr", 99, 96);
    public static final Field MTCFG = Field.bit("MTCFG", 100);
    public static final Field ALLOCCFG = Field.bits("ALLOCCFG", 104, 101);
    public static final Field SHCFG = Field.bits("SHCFG", 109, 108);
    public static final Field NSCFG = Field.bits("NSCFG", 111, 110);
    public static final Field PRIVCFG = Field.bits("PRIVCFG", 113, 112);
    public static final Field INSTCFG = Field.bits("INSTCFG", 115, 114);
    public static final Field IMPDEF1 = Field.bits("IMPLEMENTATION_DEFINED", 127, 116);
    public static final Field S2VMID = Field.bits("S2VMID", 143, 128);
    public static final Field S2T0SZ = Field.bits("S2T0SZ", 165, 160);
    public static final Field S2SL0 = Field.bits("S2SL0", 167, 166);
    public static final Field S2IR0 = Field.bits("S2IR0", 169, 168);
    public static final Field S2OR0 = Field.bits("S2OR0", 171, 170);
    public static final Field S2SH0 = Field.bits("S2SH0", 173, 172);
    public static final Field S2TG = Field.bits("S2TG", 175, 174);
    public static final Field S2PS = Field.bits("S2PS", 178, 176);
    public static final Field S2AA64 = Field.bit("S2AA64", 179);
    public static final Field S2ENDI = Field.bit("S2ENDI", 180);
    public static final Field S2AFFD = Field.bit("S2AFFD", 181);
    public static final Field S2PTW = Field.bit("S2PTW", 182);
    public static final Field S2HD = Field.bit("S2HD", 183);
    public static final Field S2HA = Field.bit("S2HA", 184);
    public static final Field S2S = Field.bit("S2S", 185);
    public static final Field S2R = Field.bit("S2R", 186);
    public static final Field S2TTB = Field.bits("S2TTB", 247, 196);

    public static final Layout LAYOUT = new Layout("STE", WORDS, V, CONFIG, S1FMT, S1CONTEXTPTR, S1CDMAX, S1DSS,
            S1CIR, S1COR, S1CSH, S2HWU59, S2HWU60, S2HWU61, S2HWU62, DRE, CONT, DCP, PPAR, MEV, SW_RESERVED, S2FWB, S1STALLD,
            EATS, STRW, MEMATTR, MTCFG, ALLOCCFG, SHCFG, NSCFG, PRIVCFG, INSTCFG, IMPDEF1, S2VMID, S2T0SZ, S2SL0,
            S2IR0, S2OR0, S2SH0, S2TG, S2PS, S2AA64, S2ENDI, S2AFFD, S2PTW, S2HD, S2HA, S2S, S2R, S2TTB);

    // ---- STE.Config encodings (§5.2 Config)
    public static final int CONFIG_ABORT = 0b000;
    public static final int CONFIG_BYPASS = 0b100;
    public static final int CONFIG_S1 = 0b101;
    public static final int CONFIG_S2 = 0b110;
    public static final int CONFIG_NESTED = 0b111;

    // ---- STE.S1DSS (§5.2 S1DSS)
    public static final int S1DSS_TERMINATE = 0b00;
    public static final int S1DSS_BYPASS = 0b01;
    public static final int S1DSS_SUBSTREAM0 = 0b10;

    // ---- STE.S1Fmt (§5.2 S1Fmt)
    public static final int S1FMT_LINEAR = 0b00;
    public static final int S1FMT_2LVL_4K = 0b01;
    public static final int S1FMT_2LVL_64K = 0b10;

    // ---- STE.STRW (§5.2 STRW)
    public static final int STRW_NSEL1 = 0b00;
    public static final int STRW_EL2 = 0b10;

    private Ste(long[] words) {
        super(words, WORDS, "STE");
    }

    /** An STE from its eight little-endian doublewords (copied). */
    public static Ste of(long[] words) {
        return new Ste(words);
    }

    public boolean valid() {
        return V.isSet(words);
    }

    public int config() {
        return CONFIG.getInt(words);
    }

    /** Whether this STE terminates traffic silently: Config 0b000 or a reserved 0b0xx (§5.2 Config). */
    public boolean abort() {
        return (config() & 0b100) == 0;
    }

    /** Config 0b1x1: stage 1 translates (§5.2). */
    public boolean stage1() {
        return (config() & 0b101) == 0b101;
    }

    /** Config 0b11x: stage 2 translates (§5.2). */
    public boolean stage2() {
        return (config() & 0b110) == 0b110;
    }

    /** S1Fmt, with the reserved 0b11 behaving as 0b00 (§5.2 S1Fmt). */
    public int s1fmt() {
        int f = S1FMT.getInt(words);
        return f == 0b11 ? S1FMT_LINEAR : f;
    }

    /** S1ContextPtr[55:6] in place: the CD or L1CD table address. */
    public long s1ContextPtr() {
        return S1CONTEXTPTR.inPlace(words);
    }

    public int s1cdMax() {
        return S1CDMAX.getInt(words);
    }

    /**
     * The S1CDMax in effect on an SMMU with SMMU_IDR1.SSIDSIZE {@code ssidSize}: §5.2 S1CDMax (and
     * with it S1Fmt and S1DSS) is IGNORED when SSIDSIZE == 0, so the table is one CD.
     */
    public int s1cdMax(int ssidSize) {
        return ssidSize == 0 ? 0 : s1cdMax();
    }

    /** S1DSS, with the reserved 0b11 behaving as 0b00 (§5.2 S1DSS). */
    public int s1dss() {
        int d = S1DSS.getInt(words);
        return d == 0b11 ? S1DSS_TERMINATE : d;
    }

    /** STE.S2FWB (§5.2): meaningful when stage 2 translates and SMMU_IDR3.FWB == 1. */
    public boolean s2fwb() {
        return S2FWB.isSet(words);
    }

    public boolean s1stalld() {
        return S1STALLD.isSet(words);
    }

    public int eats() {
        return EATS.getInt(words);
    }

    public int strw() {
        return STRW.getInt(words);
    }

    public int privcfg() {
        return PRIVCFG.getInt(words);
    }

    public int instcfg() {
        return INSTCFG.getInt(words);
    }

    public int s2vmid() {
        return S2VMID.getInt(words);
    }

    public boolean s2s() {
        return S2S.isSet(words);
    }

    public boolean s2r() {
        return S2R.isSet(words);
    }

    /** S2TTB[51:4] in place. */
    public long s2ttb() {
        return S2TTB.inPlace(words);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Ste s && java.util.Arrays.equals(words, s.words);
    }

    @Override
    public int hashCode() {
        return java.util.Arrays.hashCode(words);
    }

    @Override
    public String toString() {
        return LAYOUT.format(words);
    }
}
