package dev.iommuemu.tlb;

import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Translation;

/**
 * One TLB invalidation, named after the SMMUv3 command it carries out (IHI 0070 §4.4), with the
 * command's VMID, ASID, Address, Leaf and range fields. {@link #matches} is the exact scope of
 * the command: the TLB removes precisely the entries it matches (§4.4 permits over-invalidation
 * but does not recommend it; an emulator that over-invalidated would hide guest bugs).
 *
 * <p>Leaf: this TLB caches only complete (leaf) translations, never table descriptors (walk
 * caches), so Leaf = 1 ("only cached entries for the last level ... are required to be
 * invalidated", §4.4.2.3) and Leaf = 0 remove the same entries. The field is kept for fidelity
 * and for a walk cache that may come later.
 *
 * @param kind    which command
 * @param vmid    VMID field (NH_*, S12_VMALL, S2_IPA); 0 otherwise
 * @param asid    ASID field (NH_ASID, NH_VA, EL2_ASID, EL2_VA); 0 otherwise
 * @param address Address field (a VA, or an IPA for S2_IPA); 0 for commands without one
 * @param leaf    Leaf field (see above)
 * @param range   TG/NUM/SCALE/TTL ({@link TlbRange#SINGLE} for commands without them)
 */
public record TlbInvalidation(Kind kind, int vmid, int asid, long address, boolean leaf, TlbRange range) {

    /** The commands (CMD_TLBI_*, IHI 0070 §4.4.2-§4.4.4), plus {@link #ALL}. */
    public enum Kind {
        /** CMD_TLBI_NH_ALL (§4.4.2.1, VMALLE1): every NS-EL1 stage 1 entry of the VMID, global or not. */
        NH_ALL,
        /** CMD_TLBI_NH_ASID (§4.4.2.2, ASIDE1): NS-EL1 non-global entries by VMID and ASID. */
        NH_ASID,
        /** CMD_TLBI_NH_VA (§4.4.2.4, VA{L}E1): NS-EL1 entries by VMID, ASID and VA, and global ones by VMID and VA. */
        NH_VA,
        /** CMD_TLBI_NH_VAA (§4.4.2.3, VAA{L}E1): NS-EL1 entries by VMID and VA, any ASID, global included. */
        NH_VAA,
        /** CMD_TLBI_EL2_ALL (§4.4.2.7, ALLE2): every EL2 entry, ASID-tagged or not. */
        EL2_ALL,
        /** CMD_TLBI_EL2_ASID (§4.4.2.10): EL2-E2H non-global entries by ASID. */
        EL2_ASID,
        /** CMD_TLBI_EL2_VA (§4.4.2.8, VA{L}E2): EL2 entries by VA whose ASID matches, or global. */
        EL2_VA,
        /** CMD_TLBI_EL2_VAA (§4.4.2.9): EL2 entries by VA, any ASID. */
        EL2_VAA,
        /** CMD_TLBI_S12_VMALL (§4.4.3.2, VMALLS12E1): every non-EL2 entry of the VMID, all stages. */
        S12_VMALL,
        /** CMD_TLBI_S2_IPA (§4.4.3.1, IPAS2{L}E1): stage 2 entries by VMID and IPA (and see {@link #s2Ipa}). */
        S2_IPA,
        /** CMD_TLBI_NSNH_ALL (§4.4.4.1, ALLE1): every non-EL2 entry, all VMIDs, all stages. */
        NSNH_ALL,
        /** Everything (not a command: reset, SMMUEN transitions, or a model that wants a clean slate). */
        ALL
    }

    public TlbInvalidation {
        if (kind == null || range == null) {
            throw new IllegalArgumentException("null kind or range");
        }
        // §4.4: VMID and ASID parameters are 16-bit fields (upper 8 bits RES0 with 8-bit support).
        if (vmid < 0 || vmid > 0xFFFF || asid < 0 || asid > 0xFFFF) {
            throw new IllegalArgumentException("VMID/ASID are 16-bit: " + vmid + "/" + asid);
        }
    }

    /** CMD_TLBI_NH_ALL(VMID). */
    public static TlbInvalidation nhAll(int vmid) {
        return new TlbInvalidation(Kind.NH_ALL, vmid, 0, 0, false, TlbRange.SINGLE);
    }

    /** CMD_TLBI_NH_ASID(VMID, ASID): global entries survive (§3.17.1, ASIDE1 scope). */
    public static TlbInvalidation nhAsid(int vmid, int asid) {
        return new TlbInvalidation(Kind.NH_ASID, vmid, asid, 0, false, TlbRange.SINGLE);
    }

    /** CMD_TLBI_NH_VA(VMID, ASID, Addr, Leaf) with its range fields. */
    public static TlbInvalidation nhVa(int vmid, int asid, long address, boolean leaf, TlbRange range) {
        return new TlbInvalidation(Kind.NH_VA, vmid, asid, address, leaf, range);
    }

    /** CMD_TLBI_NH_VAA(VMID, Addr, Leaf) with its range fields. */
    public static TlbInvalidation nhVaa(int vmid, long address, boolean leaf, TlbRange range) {
        return new TlbInvalidation(Kind.NH_VAA, vmid, 0, address, leaf, range);
    }

    /** CMD_TLBI_EL2_ALL. */
    public static TlbInvalidation el2All() {
        return new TlbInvalidation(Kind.EL2_ALL, 0, 0, 0, false, TlbRange.SINGLE);
    }

    /** CMD_TLBI_EL2_ASID(ASID). */
    public static TlbInvalidation el2Asid(int asid) {
        return new TlbInvalidation(Kind.EL2_ASID, 0, asid, 0, false, TlbRange.SINGLE);
    }

    /**
     * CMD_TLBI_EL2_VA(ASID, Addr, Leaf). With SMMU_CR2.E2H == 0 the ASID is ignored (§4.4.2.8);
     * entries of that regime are inserted under {@link TlbTag#NO_ASID}, hence global, and match
     * whatever the ASID.
     */
    public static TlbInvalidation el2Va(int asid, long address, boolean leaf, TlbRange range) {
        return new TlbInvalidation(Kind.EL2_VA, 0, asid, address, leaf, range);
    }

    /** CMD_TLBI_EL2_VAA(Addr, Leaf). */
    public static TlbInvalidation el2Vaa(long address, boolean leaf, TlbRange range) {
        return new TlbInvalidation(Kind.EL2_VAA, 0, 0, address, leaf, range);
    }

    /** CMD_TLBI_S12_VMALL(VMID). */
    public static TlbInvalidation s12Vmall(int vmid) {
        return new TlbInvalidation(Kind.S12_VMALL, vmid, 0, 0, false, TlbRange.SINGLE);
    }

    /**
     * CMD_TLBI_S2_IPA(VMID, Addr, Leaf). Removes stage 2-only entries whose IPA span the address
     * (or range) hits, and also NESTED entries of the VMID whose stage 2 leaf it hits. §4.4.3.1
     * does not require the latter ("not required to invalidate structures containing combined
     * stage 1 and stage 2 information"; software is expected to follow with NH_ALL or NH_VAA),
     * but a combined entry is built from that stage 2 descriptor, and a hypervisor that changes a
     * stage 2 mapping under a nested guest and issues only S2_IPA would otherwise keep a
     * translation to the old PA: removing it costs little and can never leave a stale hit.
     * For TTL and TG, a NESTED entry is judged by its stage 2 level and granule.
     */
    public static TlbInvalidation s2Ipa(int vmid, long ipa, boolean leaf, TlbRange range) {
        return new TlbInvalidation(Kind.S2_IPA, vmid, 0, ipa, leaf, range);
    }

    /** CMD_TLBI_NSNH_ALL. */
    public static TlbInvalidation nsnhAll() {
        return new TlbInvalidation(Kind.NSNH_ALL, 0, 0, 0, false, TlbRange.SINGLE);
    }

    /** Every entry of every regime. */
    public static TlbInvalidation all() {
        return new TlbInvalidation(Kind.ALL, 0, 0, 0, false, TlbRange.SINGLE);
    }

    /** Whether the command matches entries by address. */
    public boolean byAddress() {
        return switch (kind) {
            case NH_VA, NH_VAA, EL2_VA, EL2_VAA, S2_IPA -> true;
            default -> false;
        };
    }

    /** First address the command covers (meaningful when {@link #byAddress()}). */
    public long first() {
        return range.isRange() ? range.start(address) : address;
    }

    /** Last address (inclusive) the command covers (meaningful when {@link #byAddress()}). */
    public long last() {
        return range.isRange() ? range.end(address) : address;
    }

    /** Whether this command removes {@code e}: the exact scope of §4.4 (see the {@link Kind} constants). */
    public boolean matches(TlbEntry e) {
        return matches(e, first(), last());
    }

    /** {@link #matches(TlbEntry)} with {@link #first()} and {@link #last()} computed once by the caller. */
    boolean matches(TlbEntry e, long first, long last) {
        Regime r = e.regime();
        boolean el1 = r == Regime.NH || r == Regime.NESTED;
        boolean vmidOk = e.vmid() == vmid;
        return switch (kind) {
            case NH_ALL -> el1 && vmidOk;
            case NH_ASID -> el1 && vmidOk && !e.global() && e.asid() == asid;
            case NH_VA -> el1 && vmidOk && (e.global() || e.asid() == asid)
                    && hit(e.matchBase(), e.matchShift(), e.granule(), e.level(), first, last);
            case NH_VAA -> el1 && vmidOk && hit(e.matchBase(), e.matchShift(), e.granule(), e.level(), first, last);
            case EL2_ALL -> r == Regime.EL2;
            case EL2_ASID -> r == Regime.EL2 && !e.global() && e.asid() == asid;
            case EL2_VA -> r == Regime.EL2 && (e.global() || e.asid() == asid)
                    && hit(e.matchBase(), e.matchShift(), e.granule(), e.level(), first, last);
            case EL2_VAA -> r == Regime.EL2 && hit(e.matchBase(), e.matchShift(), e.granule(), e.level(), first, last);
            case S12_VMALL -> r != Regime.EL2 && vmidOk;
            case S2_IPA -> vmidOk
                    && (r == Regime.S2 && hit(e.matchBase(), e.matchShift(), e.granule(), e.level(), first, last)
                        || r == Regime.NESTED
                            && hit(e.ipaBase(), e.ipaShift(), e.ipaGranule(), e.ipaLevel(), first, last));
            case NSNH_ALL -> r != Regime.EL2;
            case ALL -> true;
        };
    }

    /**
     * A superset of {@link #matches}'s regimes, as a bit per {@link Regime#ordinal()}, and whether
     * the VMID must equal {@link #vmid()}: lets a scan skip entries by their key alone.
     */
    int regimeMask() {
        int nh = 1 << Regime.NH.ordinal();
        int nested = 1 << Regime.NESTED.ordinal();
        int s2 = 1 << Regime.S2.ordinal();
        int el2 = 1 << Regime.EL2.ordinal();
        return switch (kind) {
            case NH_ALL, NH_ASID, NH_VA, NH_VAA -> nh | nested;
            case EL2_ALL, EL2_ASID, EL2_VA, EL2_VAA -> el2;
            case S12_VMALL, NSNH_ALL -> nh | nested | s2;
            case S2_IPA -> s2 | nested;
            case ALL -> nh | nested | s2 | el2;
        };
    }

    /** Whether matching entries all have VMID {@link #vmid()} (see {@link #regimeMask()}). */
    boolean vmidScoped() {
        return switch (kind) {
            case NH_ALL, NH_ASID, NH_VA, NH_VAA, S12_VMALL, S2_IPA -> true;
            default -> false;
        };
    }

    /**
     * Whether the address (TG = 0) or range [first, last] (TG != 0) hits the region
     * {@code [base, base + 2^shift)} of an entry inserted with {@code granule} at leaf {@code level}.
     * A range only applies to entries of TG's granule, and with TTL != 0 only to leaves at level
     * TTL (§4.4.1.1 TG, TTL); an entry whose granule or level is unknown is treated as matching both.
     */
    private boolean hit(long base, int shift, Granule granule, int level, long first, long last) {
        if (range.tg() == 0) {
            return (address ^ base) >>> shift == 0;
        }
        if (granule != null && granule != range.granule()) {
            return false;
        }
        int ttl = range.level();
        if (ttl >= 0 && level != Translation.NO_LEVEL && level != ttl) {
            return false;
        }
        long end = base + ((1L << shift) - 1);
        return Long.compareUnsigned(first, end) <= 0 && Long.compareUnsigned(base, last) <= 0;
    }
}
