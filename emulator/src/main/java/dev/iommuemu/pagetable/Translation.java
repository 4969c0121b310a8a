package dev.iommuemu.pagetable;

import dev.iommuemu.dma.Perm;

/**
 * A successful walk.
 *
 * @param inputAddress  the input (VA, or IPA for stage 2 only) that was translated
 * @param outputAddress the output address of that input byte
 * @param pageShift     log2 of the leaf size; for nested, of the smaller of the two leaves
 * @param contigShift   log2 of the span the Contiguous hint lets a TLB entry cover (&gt;= pageShift)
 * @param perm          {@link Perm} bits granted (for nested, stage 1 AND stage 2)
 * @param dirtyPerm     {@link Perm} write bits that a write would gain through a hardware dirty
 *                      update (DBM set, writable but for the read-only bit, HD enabled); a TLB
 *                      that holds this entry re-walks such a write instead of faulting
 * @param global        stage 1 nG == 0 (not tagged with an ASID); true for stage 2 only
 * @param s1Level       level of the stage 1 leaf, or {@link #NO_LEVEL}
 * @param s2Level       level of the stage 2 leaf, or {@link #NO_LEVEL}
 * @param ipa           the intermediate address of the input (stage 1 output); for stage 2 only
 *                      the input itself; for stage 1 only the output
 * @param s2PageShift   log2 of the stage 2 leaf size, or 0
 * @param s1Granule     the stage 1 granule, or null
 * @param s2Granule     the stage 2 granule, or null
 * @param s1Descriptor  the stage 1 leaf descriptor as it stands after any hardware update
 * @param s2Descriptor  the stage 2 leaf descriptor as it stands after any hardware update
 * @param attributes    the output's memory attributes (stage 1 and stage 2 combined), or
 *                      {@code null} where nobody computed them: the walker leaves them to its
 *                      caller, which knows MAIR and S2FWB ({@link #withAttributes})
 */
public record Translation(
        long inputAddress,
        long outputAddress,
        int pageShift,
        int contigShift,
        int perm,
        int dirtyPerm,
        boolean global,
        int s1Level,
        int s2Level,
        long ipa,
        int s2PageShift,
        Granule s1Granule,
        Granule s2Granule,
        long s1Descriptor,
        long s2Descriptor,
        MemoryAttributes attributes) implements WalkResult {

    public static final int NO_LEVEL = -9;

    /** A translation without attributes. */
    public Translation(long inputAddress, long outputAddress, int pageShift, int contigShift, int perm, int dirtyPerm,
            boolean global, int s1Level, int s2Level, long ipa, int s2PageShift, Granule s1Granule, Granule s2Granule,
            long s1Descriptor, long s2Descriptor) {
        this(inputAddress, outputAddress, pageShift, contigShift, perm, dirtyPerm, global, s1Level, s2Level, ipa,
                s2PageShift, s1Granule, s2Granule, s1Descriptor, s2Descriptor, null);
    }

    /** This translation with its memory attributes. */
    public Translation withAttributes(MemoryAttributes a) {
        return new Translation(inputAddress, outputAddress, pageShift, contigShift, perm, dirtyPerm, global, s1Level,
                s2Level, ipa, s2PageShift, s1Granule, s2Granule, s1Descriptor, s2Descriptor, a);
    }

    /**
     * The memory attributes of this translation (Arm ARM D8.6): stage 1's from {@code mair} and the
     * stage 1 leaf's AttrIndx and SH, or {@code incoming} when stage 1 did not translate; then
     * combined with the stage 2 leaf's MemAttr and SH, read with or without FWB, when stage 2 did.
     */
    public MemoryAttributes attributes(long mair, boolean fwb, MemoryAttributes incoming) {
        MemoryAttributes a = s1Level == NO_LEVEL ? incoming
                : MemoryAttributes.stage1(mair, (int) Descriptor.ATTR_INDX.get(s1Descriptor),
                        (int) Descriptor.SH.get(s1Descriptor));
        if (s2Level != NO_LEVEL) {
            a = MemoryAttributes.combine(a, (int) Descriptor.S2_MEMATTR.get(s2Descriptor),
                    (int) Descriptor.SH.get(s2Descriptor), fwb);
        }
        return a;
    }

    /** The input address aligned down to the leaf. */
    public long inputBase() {
        return inputAddress & ~((1L << pageShift) - 1);
    }

    /** The output address of the leaf's first byte. */
    public long outputBase() {
        return outputAddress & ~((1L << pageShift) - 1);
    }

    @Override
    public String toString() {
        return String.format("Translation[0x%x -> 0x%x, 2^%d, %s%s, s1L%d s2L%d, ipa 0x%x%s]",
                inputAddress, outputAddress, pageShift, Perm.toString(perm), global ? " global" : "",
                s1Level, s2Level, ipa, attributes == null ? "" : ", " + attributes);
    }
}
