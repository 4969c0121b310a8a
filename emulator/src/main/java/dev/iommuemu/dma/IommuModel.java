package dev.iommuemu.dma;

/**
 * What every device model (SMMUv3, virtio-iommu) offers the shell: DMA translation for an
 * endpoint. Register and queue access are model-specific and live on the models themselves.
 */
public interface IommuModel {
    /** Substream (PASID) value meaning "the access carries no substream". */
    int NO_SUBSTREAM = -1;

    /**
     * Translates one access of endpoint {@code endpoint} (SMMUv3 StreamID, virtio-iommu endpoint
     * ID), optionally with a substream ID, at input address {@code iova}. Never throws for guest
     * state: bad configuration is reported as the architected fault.
     */
    DmaResult translate(int endpoint, int substream, long iova, DmaAccess access);

    /** Bound on the entries of one {@link #prefetch}, whatever the caller asks. */
    int MAX_PREFETCH_ENTRIES = 64;

    /**
     * A speculative translation of {@code iova} for the VMM's cache, with the semantics of a
     * prefetch (IHI 0070 §4.2: "prefetch commands directed to addresses that cause
     * translation-related faults for any reason do not record error events"): the entry a
     * {@link #translate} would return, or {@code null} where that would fault, stall, record
     * anything or write a table. Never changes what the guest can observe except caches the
     * guest must invalidate anyway. The default prefetches nothing.
     */
    default IotlbEntry speculate(int endpoint, int substream, long iova, DmaAccess access) {
        return null;
    }

    /**
     * The entries, in address order, that {@link #speculate} gives for the addresses from
     * {@code from} upwards: each next address is the one after the previous entry. Stops at the
     * first address without one, once {@code maxPages} 4 KiB pages are covered, or after
     * {@link #MAX_PREFETCH_ENTRIES} entries (IHI 0070 §4.2.2: a prefetch limits its own work).
     */
    default java.util.List<IotlbEntry> prefetch(int endpoint, int substream, long from, DmaAccess access, int maxPages) {
        java.util.List<IotlbEntry> out = new java.util.ArrayList<>();
        long addr = from;
        long pages = 0;
        while (pages < maxPages && out.size() < MAX_PREFETCH_ENTRIES) {
            IotlbEntry e = speculate(endpoint, substream, addr, access);
            if (e == null || !e.covers(addr)) {
                break;
            }
            out.add(e);
            long last = e.iova() | e.addrMask();
            if (last == -1L) {
                break; // the entry reaches the top of the address space
            }
            pages += ((last - addr) >>> 12) + 1;
            addr = last + 1;
        }
        return out;
    }
}
