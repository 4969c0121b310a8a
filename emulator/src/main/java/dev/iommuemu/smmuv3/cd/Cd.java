package dev.iommuemu.smmuv3.cd;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Structure;
import dev.iommuemu.field.Layout;
import java.util.Arrays;

/**
 * A Context Descriptor (IHI 0070 §5.4): 64 bytes describing one stage-1 translation regime (a
 * PASID's address space). Fields declared once here; validation is {@link CdValidator}.
 */
public final class Cd extends Structure {
    public static final int SIZE = 64;
    public static final int WORDS = 8;

    // ---- IHI 0070 §5.4 CD fields
    public static final Field T0SZ = Field.bits("T0SZ", 5, 0);
    public static final Field TG0 = Field.bits("TG0", 7, 6);
    public static final Field IR0 = Field.bits("IR0", 9, 8);
    public static final Field OR0 = Field.bits("OR0", 11, 10);
    public static final Field SH0 = Field.bits("SH0", 13, 12);
    public static final Field EPD0 = Field.bit("EPD0", 14);
    public static final Field ENDI = Field.bit("ENDI", 15);
    public static final Field T1SZ = Field.bits("T1SZ", 21, 16);
    public static final Field TG1 = Field.bits("TG1", 23, 22);
    public static final Field IR1 = Field.bits("IR1", 25, 24);
    public static final Field OR1 = Field.bits("OR1", 27, 26);
    public static final Field SH1 = Field.bits("SH1", 29, 28);
    public static final Field EPD1 = Field.bit("EPD1", 30);
    public static final Field V = Field.bit("V", 31);
    public static final Field IPS = Field.bits("IPS", 34, 32);
    public static final Field AFFD = Field.bit("AFFD", 35);
    public static final Field WXN = Field.bit("WXN", 36);
    public static final Field UWXN = Field.bit("UWXN", 37);
    public static final Field TBI0 = Field.bit("TBI0", 38);
    public static final Field TBI1 = Field.bit("TBI1", 39);
    public static final Field PAN = Field.bit("PAN", 40);
    public static final Field AA64 = Field.bit("AA64", 41);
    public static final Field HD = Field.bit("HD", 42);
    public static final Field HA = Field.bit("HA", 43);
    public static final Field S = Field.bit("S", 44);
    public static final Field R = Field.bit("R", 45);
    public static final Field A = Field.bit("A", 46);
    public static final Field ASET = Field.bit("ASET", 47);
    public static final Field ASID = Field.bits("ASID", 63, 48);
    public static final Field NSCFG0 = Field.bit("NSCFG0", 64);
    public static final Field HAD0 = Field.bit("HAD0", 65);
    public static final Field TTB0 = Field.bits("TTB0", 119, 68);
    public static final Field HWU0 = Field.bits("HWU0", 126, 123);
    public static final Field NSCFG1 = Field.bit("NSCFG1", 128);
    public static final Field HAD1 = Field.bit("HAD1", 129);
    public static final Field TTB1 = Field.bits("TTB1", 183, 132);
    public static final Field HWU1 = Field.bits("HWU1", 190, 187);
    public static final Field MAIR = Field.bits("MAIR", 255, 192);
    public static final Field AMAIR = Field.bits("AMAIR", 319, 256);
    public static final Field IMPDEF = Field.bits("IMPLEMENTATION_DEFINED", 351, 320);
    public static final Field PARTID = Field.bits("PARTID", 400, 384);
    public static final Field PMG = Field.bits("PMG", 423, 416);

    public static final Layout LAYOUT = new Layout("CD", WORDS, T0SZ, TG0, IR0, OR0, SH0, EPD0, ENDI, T1SZ, TG1,
            IR1, OR1, SH1, EPD1, V, IPS, AFFD, WXN, UWXN, TBI0, TBI1, PAN, AA64, HD, HA, S, R, A, ASET, ASID, NSCFG0,
            HAD0, TTB0, HWU0, NSCFG1, HAD1, TTB1, HWU1, MAIR, AMAIR, IMPDEF, PARTID, PMG);

    private Cd(long[] words) {
        super(words, WORDS, "CD");
    }

    /** A CD from its eight little-endian doublewords (copied). */
    public static Cd of(long[] words) {
        return new Cd(words);
    }

    public boolean valid() {
        return V.isSet(words);
    }

    public int asid() {
        return ASID.getInt(words);
    }

    /** CD.R: record faults (§5.4: F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION from stage 1). */
    public boolean recordFaults() {
        return R.isSet(words);
    }

    /** CD.S: stall faulting transactions (§3.12.2). */
    public boolean stall() {
        return S.isSet(words);
    }

    /** TTB0[55:4] in place. */
    public long ttb0() {
        return TTB0.inPlace(words);
    }

    public long ttb1() {
        return TTB1.inPlace(words);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Cd c && Arrays.equals(words, c.words);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(words);
    }

    @Override
    public String toString() {
        return LAYOUT.format(words);
    }
}
