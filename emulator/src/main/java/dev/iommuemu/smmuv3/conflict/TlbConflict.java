package dev.iommuemu.smmuv3.conflict;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.field.Field;
import dev.iommuemu.smmuv3.cache.CoherencyViolation;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.tlb.Regime;
import dev.iommuemu.tlb.TlbEntry;

/**
 * A TLB conflict (IHI 0070 §3.20.1): a lookup matched two TLB entries that the break-before-make
 * level does not allow to coexist ({@link BreakBeforeMake#classify}). An SMMU that detects one
 * "aborts the transaction that caused the lookup" and "attempts to record a F_TLB_CONFLICT event"
 * ({@link #event}); this model also reports it to strict mode ({@link #violation}).
 *
 * @param kind   why the two entries conflict
 * @param bbml   the break-before-make level (SMMU_IDR3.BBML) it was judged at
 * @param first  the entry with the smaller span (the one {@link dev.iommuemu.tlb.Tlb#lookup} returns)
 * @param second the other entry
 */
public record TlbConflict(Kind kind, int bbml, TlbEntry first, TlbEntry second) {

    /** Why two matching entries conflict; {@link #code} is Reason[3:0] of the record. */
    public enum Kind {
        /** Leaves of different levels: a Block and a Table's pages (§3.21.1.1 "changes to block or page size"). */
        SIZE(1),
        /** The same leaf level with different spans: the Contiguous hint changed (§3.21.1.2). */
        CONTIGUOUS(2),
        /** A global and a non-global entry (§3.21.1.1 "creating a global entry where there might be non-global entries"). */
        GLOBAL(3);

        public final int code;

        Kind(int code) {
            this.code = code;
        }
    }

    // F_TLB_CONFLICT's Reason is IMPLEMENTATION DEFINED (§7.3.17); this model's encoding:
    /** Reason[3:0]: {@link Kind#code}. */
    public static final Field REASON_KIND = Field.bits("kind", 3, 0);
    /** Reason[9:4]: log2 of the smaller entry's span. */
    public static final Field REASON_FIRST_SPAN = Field.bits("first span", 9, 4);
    /** Reason[15:10]: log2 of the larger entry's span. */
    public static final Field REASON_SECOND_SPAN = Field.bits("second span", 15, 10);

    /**
     * The first conflicting pair among {@code matches} (all the entries one lookup of {@code input}
     * matched, smallest span first, as {@link dev.iommuemu.tlb.Tlb#matching} returns them), or
     * {@code null} when there is none at level {@code bbml}.
     */
    public static TlbConflict find(TlbEntry[] matches, long input, int bbml) {
        for (int i = 0; i < matches.length; i++) {
            for (int j = i + 1; j < matches.length; j++) {
                Kind k = BreakBeforeMake.classify(matches[i], matches[j], input, bbml);
                if (k != null) {
                    return new TlbConflict(k, bbml, matches[i], matches[j]);
                }
            }
        }
        return null;
    }

    /** The IMPLEMENTATION DEFINED Reason of the record (the fields above). */
    public int reason() {
        long r = REASON_KIND.prep(kind.code);
        r = REASON_FIRST_SPAN.insert(r, first.shift());
        r = REASON_SECOND_SPAN.insert(r, second.shift());
        return (int) r;
    }

    /**
     * The F_TLB_CONFLICT record (§7.3.17) of the transaction: its StreamID and SubstreamID, RnW,
     * InD, PnU, its InputAddr {@code iova} as presented (§7.3: TBI does not affect InputAddr), and,
     * for entries that hold stage 2 information, S2 == 1 with the IPA of {@code input} (the
     * address the TLB was looked up with) through {@link #first}; IPA is UNKNOWN (0) otherwise.
     */
    public EventRecord event(int sid, int ssid, long iova, long input, DmaAccess access) {
        boolean ssv = ssid != IommuModel.NO_SUBSTREAM;
        Regime r = first.regime();
        boolean s2 = r == Regime.S2 || r == Regime.NESTED;
        long ipa = r == Regime.S2 ? input
                : r == Regime.NESTED ? first.translation().ipa() + (input - first.translation().inputAddress()) : 0;
        return new EventRecord(EventType.F_TLB_CONFLICT, sid, ssv, ssv ? ssid : 0, 0, false, !access.write(),
                access.instruction(), access.privileged(), s2, 0, iova, ipa, reason());
    }

    /** The strict-mode finding: both entries, and the maintenance that would have prevented it. */
    public CoherencyViolation violation(int sid, int ssid, long input) {
        return new CoherencyViolation(CoherencyViolation.Kind.TLB_CONFLICT, sid, ssid, input, describe(first),
                describe(second), remedy());
    }

    private static String describe(TlbEntry e) {
        return String.format("%s entry 0x%x-0x%x -> 0x%x %s (%s, level %d%s)", size(e.shift()), e.inputBase(),
                e.inputBase() + (e.size() - 1), e.outputBase(), Perm.toString(e.perm()),
                e.global() ? "global" : "ASID " + e.asid(), e.level(), e.contiguous() ? ", Contiguous" : "");
    }

    private static String size(int shift) {
        return shift >= 30 ? (1L << (shift - 30)) + "GB" : shift >= 20 ? (1L << (shift - 20)) + "MB"
                : (1L << (shift - 10)) + "KB";
    }

    private String remedy() {
        TlbEntry wide = first.shift() >= second.shift() ? first : second;
        String tlbi = switch (wide.regime()) {
            case EL2 -> "CMD_TLBI_EL2_VA";
            case S2 -> "CMD_TLBI_S2_IPA";
            default -> "CMD_TLBI_NH_VA";
        };
        String range = String.format("0x%x-0x%x", wide.inputBase(), wide.inputBase() + (wide.size() - 1));
        String bbm = "invalidating the old descriptor, then " + tlbi + " covering " + range
                + " and CMD_SYNC, before writing the new one (break-before-make, IHI 0070 §3.21.1.1)";
        return switch (kind) {
            case GLOBAL -> bbm + " would have prevented it: no break-before-make level allows a global entry"
                    + " over non-global ones";
            case CONTIGUOUS -> bbm + " would have prevented it" + (bbml == 0
                    ? "; SMMU_IDR3.BBML == 0 allows no change of the Contiguous hint without it"
                    : "; SMMU_IDR3.BBML == 1 allows a change of the Contiguous bit alone, not of the output or"
                            + " attributes with it (§3.21.1.2)");
            case SIZE -> bbm + (bbml == 1 ? ", or setting nT on the Block descriptor first (SMMU_IDR3.BBML == 1,"
                    + " §3.21.1.2)," : "") + " would have prevented it";
        };
    }
}
