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

    /**
     * Why {@code ste} is ILLEGAL, or {@code null} when it is usable. Reserved encodings that the
     * spec says "behave as" another value (Config 0b0xx, S1Fmt 0b11, S1DSS 0b11) are not ILLEGAL;
     * {@link Ste} callers see them through the effective accessors.
     */
    public static String check(Ste ste, Smmuv3Profile p) {
        if (!ste.valid()) {
            return "V == 0";
        }
        int cfg = ste.config();
        if ((cfg & 0b100) == 0 || cfg == Ste.CONFIG_BYPASS) {
            return null; // §5.2 Config: 0b0xx behaves as abort; abort and bypass IGNORE the rest
        }
        // §5.2 S2FWB is RES0 without SMMU_IDR3.FWB (§6.3.4); this model makes a set RES0 S2FWB
        // ILLEGAL, so a driver that assumes FWB on an SMMU without it sees C_BAD_STE rather than
        // silently different memory attributes.
        if (ste.s2fwb() && !p.fwb()) {
            return "S2FWB without IDR3.FWB";
        }
        if (ste.stage1() && !p.s1()) {
            return "Config 0b1x1 without stage 1 (IDR0.S1P == 0)";
        }
        if (ste.stage2() && !p.s2()) {
            return "Config 0b11x without stage 2 (IDR0.S2P == 0)";
        }
        if (ste.stage1()) {
            // §5.2 STE validity pseudocode: S1CDMax is checked only when SSIDSIZE != 0 (IGNORED otherwise).
            if (p.ssidBits() > 0 && ste.s1cdMax() > p.ssidBits()) {
                return "S1CDMax > IDR1.SSIDSIZE";
            }
            if (p.ssidBits() > 0 && ste.s1cdMax() != 0 && ste.s1fmt() != Ste.S1FMT_LINEAR && ste.s1fmt() != 0b11
                    && !p.cd2l()) {
                return "S1Fmt 2-level without IDR0.CD2L";
            }
            // §5.2 S1STALLD: ILLEGAL when the stall model is not configurable (STALL_MODEL != 0b00).
            if (ste.s1stalld() && p.stallModel() != 0) {
                return "S1STALLD with IDR0.STALL_MODEL != 0b00";
            }
            // §5.2 STRW: RES0 without IDR0.Hyp, IGNORED with stage 2; 0bx1 is ILLEGAL.
            if (p.hyp() && !ste.stage2() && (ste.strw() & 1) != 0) {
                return "STRW 0bx1 reserved";
            }
        }
        if (ste.stage2()) {
            if (!p.vmid16() && (ste.s2vmid() >>> 8) != 0) {
                return "S2VMID[15:8] set without IDR0.VMID16";
            }
            if (ste.get(Ste.S2AA64) == 0) {
                return "S2AA64 == 0: VMSAv8-32 LPAE tables not implemented (IDR0.TTF == 0b10)";
            }
            if (ste.get(Ste.S2ENDI) != 0) {
                return "S2ENDI big-endian with IDR0.TTENDIAN == 0b10";
            }
            // §5.2 S2HA/S2HD: ILLEGAL beyond what IDR0.HTTU implements.
            if (ste.get(Ste.S2HA) != 0 && p.httu() == 0) {
                return "S2HA without IDR0.HTTU";
            }
            if (ste.get(Ste.S2HD) != 0 && p.httu() < 2) {
                return "S2HD without IDR0.HTTU == 0b10";
            }
            if (ste.s2s() && !p.stall()) {
                return "S2S with IDR0.STALL_MODEL == 0b01";
            }
            if (!ste.s2s() && p.stallForced()) {
                return "S2S == 0 with IDR0.STALL_MODEL == 0b10";
            }
            int tg = (int) ste.get(Ste.S2TG);
            if ((tg == 0 && !p.gran4k()) || (tg == 1 && !p.gran64k()) || (tg == 2 && !p.gran16k())) {
                return "S2TG granule not implemented";
            }
        }
        if (p.ats()) {
            // §5.2 EATS (IGNORED without IDR0.ATS): 0b01 ILLEGAL with stage 2 stalling; 0b10 (split
            // stage) ILLEGAL unless nested, S2S == 0 and IDR0.NS1ATS == 0; 0b11 without DPT behaves as 0b00.
            int eats = ste.eats();
            if (eats == 0b01 && ste.stage2() && ste.s2s()) {
                return "EATS == 0b01 with stage 2 and S2S";
            }
            if (eats == 0b10 && (cfg != Ste.CONFIG_NESTED || ste.s2s() || p.ns1ats())) {
                return "EATS == 0b10 (split-stage) not permitted";
            }
        }
        return null;
    }
}
