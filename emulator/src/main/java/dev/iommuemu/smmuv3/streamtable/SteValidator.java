package dev.iommuemu.smmuv3.streamtable;

import dev.iommuemu.smmuv3.profile.Smmuv3Profile;

/**
 * The SMMU-level ILLEGAL conditions of an STE (IHI 0070 §5.2.2 validity of STE; each field's
 * "ILLEGAL if" rules in §5.2). An STE failing any of them gives C_BAD_STE. The stage-2 translation
 * table parameters (S2T0SZ/S2SL0/S2TG/S2PS consistency) are checked by the translation engine's
 * stage-2 configuration; see {@code dev.iommuemu.smmuv3.translate}.
 */
public final class SteValidator {
    private SteValidator() {}

    /** Why {@code ste} is ILLEGAL, or {@code null} when it is usable. {@code e2h} is SMMU_CR2.E2H. */
    public static String check(Ste ste, Smmuv3Profile p, boolean e2h) {
        if (!ste.valid()) {
            return "V == 0";
        }
        int cfg = ste.config();
        if (cfg != Ste.CONFIG_ABORT && (cfg & 0b100) == 0) {
            return "Config 0b" + Integer.toBinaryString(cfg) + " reserved";
        }
        if (cfg == Ste.CONFIG_ABORT || cfg == Ste.CONFIG_BYPASS) {
            return null; // §5.2.2: the remaining fields are IGNORED
        }
        if (ste.stage1() && !p.s1()) {
            return "stage 1 not implemented (IDR0.S1P == 0)";
        }
        if (ste.stage2() && !p.s2()) {
            return "stage 2 not implemented (IDR0.S2P == 0)";
        }
        if (ste.stage1()) {
            if (ste.s1cdMax() > p.ssidBits()) {
                return "S1CDMax > IDR1.SSIDSIZE";
            }
            if (ste.s1cdMax() != 0) {
                int fmt = ste.s1fmt();
                if (fmt == 0b11) {
                    return "S1Fmt reserved";
                }
                if (fmt != Ste.S1FMT_LINEAR && !p.cd2l()) {
                    return "2-level CD table without IDR0.CD2L";
                }
                if (ste.s1dss() == 0b11) {
                    return "S1DSS reserved";
                }
            }
            if (Long.compareUnsigned(ste.s1ContextPtr(), 1L << p.oasBits()) >= 0) {
                return "S1ContextPtr beyond OAS";
            }
            if (p.stallForced() && ste.s1stalld()) {
                return "S1STALLD with IDR0.STALL_MODEL == 0b10";
            }
            // §5.2 STRW: 0b01 and 0b11 reserved; EL2 needs IDR0.Hyp and is ILLEGAL with stage 2.
            int strw = ste.strw();
            if (strw == 0b01 || strw == 0b11) {
                return "STRW reserved";
            }
            if (strw == Ste.STRW_EL2 && (!p.hyp() || ste.stage2())) {
                return "STRW == EL2 without IDR0.Hyp or with stage 2";
            }
        }
        if (ste.stage2()) {
            if (!p.vmid16() && (ste.s2vmid() >>> 8) != 0) {
                return "S2VMID[15:8] set without IDR0.VMID16";
            }
            if (ste.get(Ste.S2AA64) == 0) {
                return "S2AA64 == 0: AArch32 tables not implemented (IDR0.TTF == 0b10)";
            }
            if (ste.get(Ste.S2ENDI) != 0) {
                return "S2ENDI big-endian with IDR0.TTENDIAN == 0b10";
            }
            if (ste.s2s() && !p.stall()) {
                return "S2S with IDR0.STALL_MODEL == 0b01";
            }
            if (!ste.s2s() && p.stallForced()) {
                return "S2S == 0 with IDR0.STALL_MODEL == 0b10";
            }
            int tg = (int) ste.get(Ste.S2TG);
            if (tg == 0b11 || (tg == 0 && !p.gran4k()) || (tg == 1 && !p.gran64k()) || (tg == 2 && !p.gran16k())) {
                return "S2TG reserved or not implemented";
            }
            int ps = Math.min(Smmuv3Profile.oasBits((int) ste.get(Ste.S2PS)), p.oasBits());
            if (Long.compareUnsigned(ste.s2ttb(), 1L << ps) >= 0) {
                return "S2TTB beyond S2PS";
            }
        }
        if (p.ats() && ste.eats() != 0) {
            // §5.2 EATS: 0b11 reserved; 0b10 (split-stage) needs nesting and IDR0.NS1ATS == 0.
            if (ste.eats() == 0b11) {
                return "EATS reserved";
            }
            if (ste.eats() == 0b10 && cfg != Ste.CONFIG_NESTED) {
                return "EATS == 0b10 without nesting";
            }
        }
        return null;
    }
}
