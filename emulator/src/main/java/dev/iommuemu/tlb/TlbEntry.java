package dev.iommuemu.tlb;

import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Translation;

/**
 * One cached translation: a power-of-two, naturally aligned span of input addresses (VA, or IPA
 * for {@link Regime#S2}) under a {@link TlbTag}, mapping linearly to output addresses. Immutable.
 *
 * <p>The span is the leaf the walk ended in ({@link Translation#pageShift}: for nested, the smaller
 * of the stage 1 and stage 2 leaves), or the larger span the Contiguous hint allows
 * ({@link Translation#contigShift}, Arm ARM D8.6.1; {@link #contiguous()} then says so).
 *
 * <p>Besides the span it is looked up by, an entry knows the regions an invalidation by address
 * must hit to remove it (IHI 0070 §4.4: "the least significant bits of the address are ignored
 * as needed, given the size of the entry"):
 * <ul>
 *   <li>its <em>input match region</em> ({@link #matchBase()}, {@link #matchShift()}): the span
 *       itself, except for {@link Regime#NESTED} where it is the whole stage 1 leaf when that is
 *       larger than the span: a combined entry holds information from that stage 1 descriptor,
 *       so invalidating any VA that descriptor maps must remove it;</li>
 *   <li>for {@link Regime#NESTED}, its <em>IPA match region</em> ({@link #ipaBase()},
 *       {@link #ipaShift()}): the stage 2 leaf its IPA went through (or the IPA image of the span
 *       when that is larger), for CMD_TLBI_S2_IPA (see {@link TlbInvalidation#s2Ipa}).</li>
 * </ul>
 * The permission check is the caller's: {@link #perm()} and {@link #dirtyPerm()} are the walk's.
 */
public final class TlbEntry {
    private final TlbTag tag;
    private final Translation translation;
    // Copied out of tag and translation so that matching an invalidation touches one object.
    private final Regime regime;
    private final int vmid;
    private final int asid;
    private final Granule granule;
    private final int level;
    private final Granule ipaGranule;
    private final int ipaLevel;
    private final boolean global;
    private final long inputBase;
    private final long outputBase;
    private final int shift;
    private final boolean contiguous;
    private final long matchBase;
    private final int matchShift;
    private final long ipaBase;
    private final int ipaShift;
    private final int perm;
    private final int dirtyPerm;

    /**
     * @throws IllegalArgumentException if the translation's sizes are not a walk's (a bug in the
     *                                  caller, never guest input)
     */
    public TlbEntry(TlbTag tag, Translation t) {
        if (tag == null || t == null) {
            throw new IllegalArgumentException("null tag or translation");
        }
        int page = t.pageShift();
        if (page < 12 || page > 62 || t.contigShift() > 62) {
            throw new IllegalArgumentException("leaf size out of range: " + t);
        }
        this.tag = tag;
        this.translation = t;
        this.regime = tag.regime();
        this.vmid = tag.vmid();
        this.asid = tag.asid();
        boolean s2 = regime == Regime.S2;
        this.granule = s2 ? t.s2Granule() : t.s1Granule();
        this.level = s2 ? t.s2Level() : t.s1Level();
        this.ipaGranule = t.s2Granule();
        this.ipaLevel = t.s2Level();
        // §3.17.1: nG only tags entries in regimes with ASIDs; stage 2 entries carry no ASID.
        this.global = t.global() || !tag.regime().hasAsid() || tag.asid() == TlbTag.NO_ASID;
        this.contiguous = t.contigShift() > page;
        this.shift = contiguous ? t.contigShift() : page;
        long mask = (1L << shift) - 1;
        this.inputBase = t.inputAddress() & ~mask;
        // Linear within the span; subtracting (not masking) keeps a misaligned output exact.
        this.outputBase = t.outputAddress() - (t.inputAddress() & mask);
        this.perm = t.perm();
        this.dirtyPerm = t.dirtyPerm();
        int ms = shift;
        int is = 0;
        long ib = 0;
        if (tag.regime() == Regime.NESTED) {
            if (t.s1Granule() != null && t.s1Level() != Translation.NO_LEVEL) {
                ms = Math.max(ms, t.s1Granule().levelShift(t.s1Level()));
            }
            is = Math.max(shift, t.s2PageShift());
            ib = t.ipa() & -(1L << is);
        }
        this.matchShift = ms;
        this.matchBase = t.inputAddress() & -(1L << ms);
        this.ipaShift = is;
        this.ipaBase = ib;
    }

    public TlbTag tag() {
        return tag;
    }

    public Regime regime() {
        return regime;
    }

    public int vmid() {
        return vmid;
    }

    /** The tag's ASID (meaningless when {@link #global()}). */
    public int asid() {
        return asid;
    }

    /** The walk this entry caches (descriptors, levels, granules). */
    public Translation translation() {
        return translation;
    }

    /** Not tagged with an ASID: matches lookups with any ASID of its regime, VMID and ASET (§3.17.1). */
    public boolean global() {
        return global;
    }

    /** First input address of the span. */
    public long inputBase() {
        return inputBase;
    }

    /** Output address of {@link #inputBase()}. */
    public long outputBase() {
        return outputBase;
    }

    /** log2 of the span. */
    public int shift() {
        return shift;
    }

    public long size() {
        return 1L << shift;
    }

    /** Whether the span came from the Contiguous hint (it is larger than the leaf). */
    public boolean contiguous() {
        return contiguous;
    }

    /** Permission bits granted ({@link dev.iommuemu.dma.Perm}); for nested, both stages'. */
    public int perm() {
        return perm;
    }

    /** Write bits a write would gain by a hardware dirty update: re-walk such a write (see {@link Translation}). */
    public int dirtyPerm() {
        return dirtyPerm;
    }

    public boolean covers(long address) {
        return (address ^ inputBase) >>> shift == 0;
    }

    /** The output address of {@code address}, which lies in the span. */
    public long translate(long address) {
        return outputBase + (address - inputBase);
    }

    /** Start of the input region any invalidating address must hit (see class comment). */
    public long matchBase() {
        return matchBase;
    }

    /** log2 of the input match region (&gt;= {@link #shift()}). */
    public int matchShift() {
        return matchShift;
    }

    /** For {@link Regime#NESTED}: start of the IPA region a CMD_TLBI_S2_IPA must hit; else 0. */
    public long ipaBase() {
        return ipaBase;
    }

    /** For {@link Regime#NESTED}: log2 of the IPA match region; else 0. */
    public int ipaShift() {
        return ipaShift;
    }

    /** The granule the input was translated with: stage 2's for {@link Regime#S2}, else stage 1's; may be null. */
    public Granule granule() {
        return granule;
    }

    /** The walk level of the input's leaf: stage 2's for {@link Regime#S2}, else stage 1's. */
    public int level() {
        return level;
    }

    /** For {@link Regime#NESTED} (and S2): the stage 2 granule; may be null. */
    public Granule ipaGranule() {
        return ipaGranule;
    }

    /** For {@link Regime#NESTED} (and S2): the stage 2 leaf level, or {@link Translation#NO_LEVEL}. */
    public int ipaLevel() {
        return ipaLevel;
    }

    @Override
    public String toString() {
        return String.format("TlbEntry[%s vmid %d %s 0x%x/2^%d%s -> 0x%x%s]", tag.regime(), tag.vmid(),
                global ? "global" : "asid " + tag.asid(), inputBase, shift, contiguous ? " contig" : "",
                outputBase, tag.regime() == Regime.NESTED ? String.format(" ipa 0x%x/2^%d", ipaBase, ipaShift) : "");
    }
}
