package dev.iommuemu.tlb;

/**
 * The translation regime a TLB entry was inserted under (IHI 0070 §3.17 TLB tagging: every cached
 * translation is tagged with the StreamWorld-derived regime, plus an ASID and a VMID where the
 * regime has them). Entries of different regimes never match each other's lookups (§3.17: "nG
 * does not allow a TLB entry to match a lookup from a StreamWorld that is not the same").
 */
public enum Regime {
    /**
     * Stage 1 only at NS-EL1: input is a VA; tagged with the VMID (STE.S2VMID, 0 when stage 2 is
     * not implemented) and, for nG == 1 entries, the ASID. Invalidated by CMD_TLBI_NH_*,
     * CMD_TLBI_S12_VMALL and CMD_TLBI_NSNH_ALL.
     */
    NH,
    /**
     * Stage 1 at any-EL2 (STE.STRW = EL2 or EL2-E2H): input is a VA; no VMID; tagged with the ASID
     * for nG == 1 entries only under EL2-E2H. Without E2H the regime has no ASIDs: insert under
     * {@link TlbTag#NO_ASID} so every entry is global. Invalidated by CMD_TLBI_EL2_* only.
     */
    EL2,
    /**
     * Stage 2 only (§3.17 table, NS-EL1 "IPA" row): input is an IPA; tagged with the VMID, never
     * with an ASID. Invalidated by CMD_TLBI_S2_IPA, CMD_TLBI_S12_VMALL and CMD_TLBI_NSNH_ALL.
     */
    S2,
    /**
     * Combined stage 1 + stage 2 at NS-EL1: input is a VA, output a PA; tagged like {@link #NH}.
     * The entry also remembers the IPA its stage 1 produced and the stage 2 leaf it went through, so
     * that CMD_TLBI_S2_IPA can find it (see {@link TlbInvalidation#s2Ipa}).
     */
    NESTED;

    /** Whether the regime tags entries with a VMID (§3.17 table: NS-EL1 VA and IPA rows). */
    public boolean hasVmid() {
        return this != EL2;
    }

    /** Whether the regime may tag entries with an ASID (stage 1 regimes; §3.17.1). */
    public boolean hasAsid() {
        return this != S2;
    }
}
