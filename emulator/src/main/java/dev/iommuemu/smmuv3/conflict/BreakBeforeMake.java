package dev.iommuemu.smmuv3.conflict;

import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.tlb.TlbEntry;
import java.util.Objects;

/**
 * The break-before-make rules of IHI 0070 §3.21.1.1-3, as SMMU_IDR3.BBML selects them: which walk
 * results a TLB may hold, and which pairs of TLB entries matching one lookup are a TLB conflict.
 *
 * <ul>
 *   <li>Level 0 (BBML == 0, and every SMMU before v3.2): break-before-make is required for a change
 *       of block or page size, and for "creating a global entry where there might be non-global
 *       entries in a TLB that overlap the global entry" (§3.21.1.1). Any two entries that match one
 *       address are a conflict; this includes a change of the Contiguous hint, whose exemption
 *       §3.21.1.2 and §3.21.1.3 grant to Levels 1 and 2 only.</li>
 *   <li>Level 1: software uses the nT bit of a Block descriptor instead of break-before-make, and a
 *       Block with nT == 1 "is not cached in a way that will cause a TLB conflict" (§3.21.1.2): this
 *       model does not cache it at all ({@link #cacheable}), the interpretation §3.21.1.2's note
 *       names. A change to only the Contiguous bit, other properties unchanged, is not a conflict;
 *       any other change of size without break-before-make or nT is.</li>
 *   <li>Level 2: "the implementation automatically resolves any TLB multi-hit scenarios and an
 *       F_TLB_CONFLICT fault does not occur" when a translation's size changes (§3.21.1.3); the
 *       lookup uses one of the entries (the smallest span, {@link dev.iommuemu.tlb.Tlb#lookup}).</li>
 * </ul>
 * At every level, a global and a non-global entry matching one lookup are a conflict: the BBM
 * levels relax only changes of size "without changing any other parameters that are listed as
 * requiring use of break-before-make" (§3.21.1.1), and nG is one of those (§3.21.1.3 note).
 */
public final class BreakBeforeMake {
    private BreakBeforeMake() {}

    /** Whether a TLB may hold {@code t} at break-before-make level {@code bbml} (§3.21.1.2: not a Block with nT at Level 1). */
    public static boolean cacheable(Translation t, int bbml) {
        return bbml != 1 || !(ntBlock(t.s1Descriptor(), t.s1Level()) || ntBlock(t.s2Descriptor(), t.s2Level()));
    }

    /** A Block descriptor (a leaf above level 3, Arm ARM D8.3) with nT set. */
    private static boolean ntBlock(long descriptor, int level) {
        return level != Translation.NO_LEVEL && level < 3 && Descriptor.NT.isSet(descriptor);
    }

    /**
     * What kind of conflict two entries that both match a lookup of {@code input} are at level
     * {@code bbml}, or {@code null} when the level allows them to coexist.
     */
    public static TlbConflict.Kind classify(TlbEntry a, TlbEntry b, long input, int bbml) {
        if (a.global() != b.global()) {
            return TlbConflict.Kind.GLOBAL; // §3.21.1.1, whatever the level
        }
        boolean sameLeaves = a.level() == b.level() && a.granule() == b.granule() && a.ipaLevel() == b.ipaLevel()
                && a.ipaGranule() == b.ipaGranule();
        TlbConflict.Kind kind = sameLeaves ? TlbConflict.Kind.CONTIGUOUS : TlbConflict.Kind.SIZE;
        return switch (bbml) {
            case 0 -> kind; // §3.21.1.1: Level 0 requires break-before-make for any change of size
            case 1 -> kind == TlbConflict.Kind.CONTIGUOUS && sameTranslation(a, b, input) ? null : kind; // §3.21.1.2
            default -> null; // §3.21.1.3
        };
    }

    /** §3.21.1.2 "a change to only the Contiguous bit ... with other properties unchanged". */
    private static boolean sameTranslation(TlbEntry a, TlbEntry b, long input) {
        return a.translate(input) == b.translate(input) && a.perm() == b.perm()
                && Objects.equals(a.translation().attributes(), b.translation().attributes());
    }
}
