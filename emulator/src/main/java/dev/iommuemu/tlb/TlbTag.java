package dev.iommuemu.tlb;

/**
 * What a TLB entry is tagged with besides its address (IHI 0070 §3.17): the regime, the VMID and
 * the ASID, plus the ASET of the CD that inserted it (§3.17.1: a global entry only matches lookups
 * through configurations with the same ASET; ASET plays no part in matching non-global entries or
 * in CMD_TLBI_* invalidation).
 *
 * <p>The canonical constructor normalises fields the regime does not tag with, so that equal
 * architectural tags are equal records: {@link Regime#EL2} has no VMID (forced to 0);
 * {@link Regime#S2} has neither ASID (forced to 0) nor ASET (forced to false).
 *
 * @param regime the translation regime
 * @param vmid   STE.S2VMID, 0..0xFFFF (IHI 0070 §3.17: 0 when stage 2 is not implemented)
 * @param asid   CD.ASID, 0..0xFFFF, or {@link #NO_ASID} for a regime without ASIDs (any-EL2
 *               without E2H), whose entries are then all global (§3.17.1: nG has no effect there)
 * @param aset   CD.ASET
 */
public record TlbTag(Regime regime, int vmid, int asid, boolean aset) {
    /** The ASID of a configuration whose regime has no ASIDs (§3.17 table: any-EL2 rows). */
    public static final int NO_ASID = -1;

    public TlbTag {
        if (regime == null) {
            throw new IllegalArgumentException("regime");
        }
        if (!regime.hasVmid()) {
            vmid = 0;
        }
        if (!regime.hasAsid()) {
            asid = 0;
            aset = false;
        }
        if (vmid < 0 || vmid > 0xFFFF) {
            throw new IllegalArgumentException("VMID out of range: " + vmid);
        }
        if (asid < NO_ASID || asid > 0xFFFF) {
            throw new IllegalArgumentException("ASID out of range: " + asid);
        }
    }

    /** A tag with ASET = 0 (shared ASID, the common case). */
    public TlbTag(Regime regime, int vmid, int asid) {
        this(regime, vmid, asid, false);
    }
}
