package dev.iommuemu.tlb;

import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Translation;

/** Translations as the walker would return them, built with the canonical constructor. */
final class Walks {
    private Walks() {}

    /** A stage 1 leaf at {@code level} mapping {@code va} to {@code pa} (bases aligned to the leaf). */
    static Translation s1(long va, long pa, Granule g, int level, boolean global) {
        int shift = g.levelShift(level);
        return new Translation(va, pa, shift, shift, Perm.ALL, 0, global, level, Translation.NO_LEVEL,
                pa, 0, g, null, 0, 0);
    }

    /** A stage 1 leaf whose Contiguous hint lets the entry span {@code contigShift}. */
    static Translation s1Contig(long va, long pa, Granule g, int level, boolean global) {
        int shift = g.levelShift(level);
        int contig = shift + Integer.numberOfTrailingZeros(g.contiguousEntries(level));
        return new Translation(va, pa, shift, contig, Perm.ALL, 0, global, level, Translation.NO_LEVEL,
                pa, 0, g, null, 0, 0);
    }

    /** A stage 2-only leaf. */
    static Translation s2(long ipa, long pa, Granule g, int level) {
        int shift = g.levelShift(level);
        return new Translation(ipa, pa, shift, shift, Perm.ALL, 0, true, Translation.NO_LEVEL, level,
                ipa, shift, null, g, 0, 0);
    }

    /**
     * A combined stage 1 + stage 2 walk of {@code va}: stage 1 leaf (s1g, s1Level) maps it to
     * {@code ipa}, stage 2 leaf (s2g, s2Level) maps that to {@code pa}.
     */
    static Translation nested(long va, long ipa, long pa, Granule s1g, int s1Level, Granule s2g, int s2Level,
            boolean global) {
        int a = s1g.levelShift(s1Level);
        int b = s2g.levelShift(s2Level);
        int shift = Math.min(a, b);
        return new Translation(va, pa, shift, shift, Perm.PR | Perm.PW, 0, global, s1Level, s2Level,
                ipa, b, s1g, s2g, 0, 0);
    }
}
