package dev.iommuemu.smmuv3.cd;

import dev.iommuemu.smmuv3.profile.Smmuv3Profile;

/**
 * The ILLEGAL conditions of a CD (IHI 0070 §5.4.2 validity of CD; the per-field rules of §5.4).
 * A CD failing any of them gives C_BAD_CD.
 */
public final class CdValidator {
    private CdValidator() {}

    /**
     * Why {@code cd} is ILLEGAL by the rules that depend on the SMMU's ID registers, or {@code null}.
     * The translation-system rules (TxSZ, TTBx ranges) are {@link CdStage1#check}.
     */
    public static String check(Cd cd, Smmuv3Profile p) {
        if (!cd.valid()) {
            return "V == 0";
        }
        if (!cd.is(Cd.AA64)) {
            return "AA64 == 0: AArch32 tables not implemented (IDR0.TTF == 0b10)";
        }
        if (cd.is(Cd.ENDI)) {
            return "ENDI big-endian with IDR0.TTENDIAN == 0b10";
        }
        // §5.5: with TERM_MODEL == 1 (every profile) RAZ/WI termination does not exist: A == 0 is ILLEGAL.
        if (!cd.is(Cd.A)) {
            return "A == 0 with IDR0.TERM_MODEL == 1";
        }
        if (cd.stall() && !p.stall()) {
            return "S == 1 with IDR0.STALL_MODEL == 0b01";
        }
        if (!cd.stall() && p.stallForced()) {
            return "S == 0 with IDR0.STALL_MODEL == 0b10";
        }
        // §5.4 HA/HD: ILLEGAL beyond what IDR0.HTTU implements.
        if (cd.is(Cd.HA) && p.httu() == 0) {
            return "HA without IDR0.HTTU";
        }
        if (cd.is(Cd.HD) && p.httu() < 2) {
            return "HD without IDR0.HTTU == 0b10";
        }
        if (!p.asid16() && (cd.asid() >>> 8) != 0) {
            return "ASID[15:8] set without IDR0.ASID16";
        }
        // §5.4 TG0/TG1 and T0SZ/T1SZ: checked for each translation table that is not disabled.
        if (!cd.is(Cd.EPD0)) {
            String r = region("0", tg0Granule((int) cd.get(Cd.TG0)), (int) cd.get(Cd.T0SZ), p);
            if (r != null) {
                return r;
            }
        }
        if (!cd.is(Cd.EPD1)) {
            String r = region("1", tg1Granule((int) cd.get(Cd.TG1)), (int) cd.get(Cd.T1SZ), p);
            if (r != null) {
                return r;
            }
        }
        return null;
    }

    /** TG0 encoding to granule bits (12, 14, 16), or 0 when reserved (§5.4 TG0). */
    public static int tg0Granule(int tg0) {
        return switch (tg0) {
            case 0 -> 12;
            case 1 -> 16;
            case 2 -> 14;
            default -> 0;
        };
    }

    /** TG1 encoding to granule bits, or 0 when reserved (§5.4 TG1). */
    public static int tg1Granule(int tg1) {
        return switch (tg1) {
            case 1 -> 14;
            case 2 -> 12;
            case 3 -> 16;
            default -> 0;
        };
    }

    private static String region(String n, int granule, int txsz, Smmuv3Profile p) {
        boolean supported = switch (granule) {
            case 12 -> p.gran4k();
            case 14 -> p.gran16k();
            case 16 -> p.gran64k();
            default -> false;
        };
        if (!supported) {
            return "TG" + n + " reserved or not implemented";
        }
        return null; // TxSZ and TTBx ranges: CdStage1.check
    }
}
