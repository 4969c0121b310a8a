package dev.iommuemu.smmuv3.translate;

import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkObserver;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.tlb.TlbEntry;

/**
 * What one explained transaction ({@link TranslationPath#explain}) met on its way through the
 * configuration and translation flow (IHI 0070 §3.2 Figure 3-3), for diagnostics: the STE and CD
 * it used and whether they came from the configuration cache, the TLB entry that answered it, and
 * the walk of the tables as they are in memory now. Filled by the path; read by the caller.
 */
public final class PathTrace {
    private final WalkObserver observer;
    long steAddress = -1;
    long[] steWords;
    boolean steCached;
    long cdAddress = -1;
    boolean cdCached;
    TlbEntry tlbHit;
    WalkResult walked;
    TranslationFault cdFetchFault;

    /** {@code observer} sees every descriptor the explained walks read (CD fetch stage 2 walks included). */
    public PathTrace(WalkObserver observer) {
        this.observer = observer;
    }

    public WalkObserver observer() {
        return observer;
    }

    /** The address of the STE used, or -1 when it could not be read. */
    public long steAddress() {
        return steAddress;
    }

    /** The STE's words (from the cache when cached), or {@code null}. */
    public long[] steWords() {
        return steWords;
    }

    /** Whether the STE came from the configuration cache (§3.3.1: a cached STE is used without a fetch). */
    public boolean steCached() {
        return steCached;
    }

    /** The address of the CD used, or -1. */
    public long cdAddress() {
        return cdAddress;
    }

    public boolean cdCached() {
        return cdCached;
    }

    /** The TLB entry that answered the transaction, or {@code null} when the tables were walked. */
    public TlbEntry tlbHit() {
        return tlbHit;
    }

    /**
     * What the tables in memory give now (also on a TLB hit), a translation carrying its memory
     * attributes ({@link TranslationPath#attributes}), or {@code null} when no walk was reached.
     */
    public WalkResult walked() {
        return walked;
    }

    /** The stage 2 fault of a CD fetch (CLASS == CD), or {@code null}. */
    public TranslationFault cdFetchFault() {
        return cdFetchFault;
    }
}
