package dev.iommuemu.virtio.iommu;

import dev.iommuemu.virtqueue.VirtqRing;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * How one virtio-iommu instance is built: what its config space shows, which features it offers,
 * which endpoints exist and what bounds a guest cannot push it past. Immutable; build with
 * {@link #builder()}. This is host configuration, so bad values throw; guest input never does.
 *
 * @param pageSizeMask     config page_size_mask: the lowest set bit is the granule ("Device operations")
 * @param inputStart       config input_range.start
 * @param inputEnd         config input_range.end
 * @param domainStart      config domain_range.start
 * @param domainEnd        config domain_range.end
 * @param probeSize        config probe_size; 0 means PROBE is not offered
 * @param bypass           the initial value of config bypass (restored on system reset)
 * @param legacyBypass     offer the superseded VIRTIO_IOMMU_F_BYPASS instead of BYPASS_CONFIG
 * @param mmio             offer VIRTIO_IOMMU_F_MMIO
 * @param accessPlatform   offer VIRTIO_F_ACCESS_PLATFORM (the device's own ring accesses go through a platform IOMMU)
 * @param endpointRanges   existing endpoint IDs, as inclusive {first, last} pairs
 * @param resvAll          RESV_MEM regions of every endpoint
 * @param resvPerEndpoint  further RESV_MEM regions of single endpoints
 * @param sharedDomains    whether several endpoints may share a domain (else a second ATTACH answers UNSUPP)
 * @param maxDomains       bound on live domains (ATTACH beyond it answers NOMEM)
 * @param maxEndpoints     bound on attached endpoints (ATTACH beyond it answers NOMEM)
 * @param maxMappingsPerDomain bound on mappings in one domain (MAP beyond it answers NOMEM)
 * @param maxMappings      bound on mappings over all domains (MAP beyond it answers NOMEM)
 * @param maxQueueSize     largest queue size the transport may set (power of two, at most 32768)
 * @param maxPendingFaults fault reports held while the event queue has no buffer; beyond, they are dropped
 * @param granuleAlignedMaps whether MAP refuses a range or physical address not aligned on the granule
 *                         with RANGE ("MAP request": the device SHOULD); QEMU's device does not check
 */
public record VirtioIommuConfig(
        long pageSizeMask,
        long inputStart,
        long inputEnd,
        int domainStart,
        int domainEnd,
        int probeSize,
        boolean bypass,
        boolean legacyBypass,
        boolean mmio,
        boolean accessPlatform,
        long[] endpointRanges,
        List<ResvRegion> resvAll,
        Map<Integer, List<ResvRegion>> resvPerEndpoint,
        boolean sharedDomains,
        int maxDomains,
        int maxEndpoints,
        int maxMappingsPerDomain,
        int maxMappings,
        int maxQueueSize,
        int maxPendingFaults,
        boolean granuleAlignedMaps) {

    public VirtioIommuConfig {
        if (pageSizeMask == 0) {
            throw new IllegalArgumentException("page_size_mask needs at least one bit (device requirement)");
        }
        if (Long.compareUnsigned(inputStart, inputEnd) > 0 || Integer.compareUnsigned(domainStart, domainEnd) > 0) {
            throw new IllegalArgumentException("empty input or domain range");
        }
        if (endpointRanges.length % 2 != 0) {
            throw new IllegalArgumentException("endpoint ranges are {first, last} pairs");
        }
        if (maxQueueSize < 1 || maxQueueSize > VirtqRing.MAX_SIZE || Integer.bitCount(maxQueueSize) != 1) {
            throw new IllegalArgumentException("max queue size " + maxQueueSize);
        }
        if (maxDomains < 0 || maxEndpoints < 0 || maxMappingsPerDomain < 0 || maxMappings < 0 || maxPendingFaults < 0 || probeSize < 0) {
            throw new IllegalArgumentException("negative bound");
        }
        endpointRanges = endpointRanges.clone();
        resvAll = List.copyOf(resvAll);
        Map<Integer, List<ResvRegion>> m = new HashMap<>();
        resvPerEndpoint.forEach((k, v) -> m.put(k, List.copyOf(v)));
        resvPerEndpoint = Map.copyOf(m);
        int worst = resvAll.size() + resvPerEndpoint.values().stream().mapToInt(List::size).max().orElse(0);
        if (probeSize > 0 && (long) worst * Structs.ResvMem.SIZE > probeSize) {
            throw new IllegalArgumentException("probe_size " + probeSize + " cannot hold " + worst + " RESV_MEM properties");
        }
    }

    /** The existing endpoint IDs as {first, last} pairs (a copy). */
    @Override
    public long[] endpointRanges() {
        return endpointRanges.clone();
    }

    /** The page granularity: the least significant bit of page_size_mask. */
    public long granule() {
        return Long.lowestOneBit(pageSizeMask);
    }

    /** Whether endpoint ID {@code ep} exists on this device. */
    public boolean endpointExists(int ep) {
        for (int i = 0; i < endpointRanges.length; i += 2) {
            if (Long.compareUnsigned(ep & 0xffff_ffffL, endpointRanges[i]) >= 0 && Long.compareUnsigned(ep & 0xffff_ffffL, endpointRanges[i + 1]) <= 0) {
                return true;
            }
        }
        return false;
    }

    /** The RESV_MEM regions of endpoint {@code ep}: the common ones, then its own. */
    public List<ResvRegion> resvRegions(int ep) {
        List<ResvRegion> own = resvPerEndpoint.get(ep);
        if (own == null || own.isEmpty()) {
            return resvAll;
        }
        List<ResvRegion> all = new ArrayList<>(resvAll);
        all.addAll(own);
        return all;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder with the defaults of a typical arm64 virt machine (4K granule, MSI doorbell region). */
    public static final class Builder {
        private long pageSizeMask = 0x1000L | 0x20_0000L | 0x4000_0000L; // 4K with 2M and 1G hints
        private long inputStart = 0;
        private long inputEnd = -1L;
        private int domainStart = 0;
        private int domainEnd = -1;
        private int probeSize = 512;
        private boolean bypass = false;
        private boolean legacyBypass = false;
        private boolean mmio = true;
        private boolean accessPlatform = false;
        private long[] endpointRanges = {0, 0xffff};
        private final List<ResvRegion> resvAll = new ArrayList<>();
        private final Map<Integer, List<ResvRegion>> resvPerEndpoint = new HashMap<>();
        private boolean sharedDomains = true;
        private int maxDomains = 1024;
        private int maxEndpoints = 1024;
        private int maxMappingsPerDomain = 1 << 21;
        private int maxMappings = 1 << 21;
        // The driver may size a queue up to what the VMM's transport offers: QEMU 10's virtio-pci
        // takes queues of up to 1024 entries (its VIRTQUEUE_MAX_SIZE); virtio 1.x §2.7 allows 32768.
        private int maxQueueSize = 1024;
        private int maxPendingFaults = 64;
        private boolean granuleAlignedMaps = true;

        public Builder pageSizeMask(long v) { pageSizeMask = v; return this; }
        public Builder inputRange(long start, long end) { inputStart = start; inputEnd = end; return this; }
        public Builder domainRange(int start, int end) { domainStart = start; domainEnd = end; return this; }
        public Builder probeSize(int v) { probeSize = v; return this; }
        public Builder bypass(boolean v) { bypass = v; return this; }
        public Builder legacyBypass(boolean v) { legacyBypass = v; return this; }
        public Builder mmio(boolean v) { mmio = v; return this; }
        public Builder accessPlatform(boolean v) { accessPlatform = v; return this; }
        public Builder endpoints(long... firstLastPairs) { endpointRanges = firstLastPairs.clone(); return this; }
        public Builder resv(ResvRegion r) { resvAll.add(r); return this; }
        /** Replaces the RESV_MEM regions of every endpoint (QEMU's {@code reserved-regions}). */
        public Builder resvCommon(List<ResvRegion> all) { resvAll.clear(); resvAll.addAll(all); return this; }
        public Builder resv(int endpoint, ResvRegion r) { resvPerEndpoint.computeIfAbsent(endpoint, k -> new ArrayList<>()).add(r); return this; }
        public Builder sharedDomains(boolean v) { sharedDomains = v; return this; }
        public Builder maxDomains(int v) { maxDomains = v; return this; }
        public Builder maxEndpoints(int v) { maxEndpoints = v; return this; }
        public Builder maxMappingsPerDomain(int v) { maxMappingsPerDomain = v; return this; }
        public Builder maxMappings(int v) { maxMappings = v; return this; }
        public Builder maxQueueSize(int v) { maxQueueSize = v; return this; }
        public Builder maxPendingFaults(int v) { maxPendingFaults = v; return this; }
        public Builder granuleAlignedMaps(boolean v) { granuleAlignedMaps = v; return this; }

        public VirtioIommuConfig build() {
            return new VirtioIommuConfig(pageSizeMask, inputStart, inputEnd, domainStart, domainEnd, probeSize, bypass,
                    legacyBypass, mmio, accessPlatform, endpointRanges, resvAll, resvPerEndpoint, sharedDomains,
                    maxDomains, maxEndpoints, maxMappingsPerDomain, maxMappings, maxQueueSize, maxPendingFaults, granuleAlignedMaps);
        }
    }
}
