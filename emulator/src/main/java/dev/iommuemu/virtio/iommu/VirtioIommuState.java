package dev.iommuemu.virtio.iommu;

import dev.iommuemu.interval.Mapping;
import dev.iommuemu.virtqueue.SplitVirtqueue;
import java.util.List;

/**
 * The state of one virtio-iommu device that a live migration or a back-end restart carries
 * (docs/device-state-virtio.md): an immutable snapshot taken by {@link VirtioIommuDevice#saveState()}
 * and loaded by {@link VirtioIommuDevice#loadState}. Everything else of the device is either
 * configuration both ends are built with (checked through {@link Identity}) or derived.
 *
 * <p>Not saved, on purpose: any translation cached from the mappings (virtio 1.x §5.13.6: the
 * mappings are the architectural state; the VMM's IOTLB is refilled from them and the device has
 * no cache of its own), the counters (diagnostics of this process), and the virtio device status
 * (the VMM's transport keeps it; a vhost-user back-end never sees it).
 *
 * @param identity       the device this state belongs to
 * @param driverFeatures the features the driver accepted (virtio 1.x §2.2), 0 before FEATURES_OK
 * @param bypass         config field {@code bypass} ("Device configuration layout"; driver-writable with BYPASS_CONFIG)
 * @param topology       the endpoints on the VMM's bus (IOMMU_SET_ENDPOINTS), sorted; {@code null}: the VMM never said
 * @param domains        the live domains ("ATTACH request": created by the first ATTACH, gone with their last endpoint), by id
 * @param pendingFaults  fault reports waiting for an event-queue buffer ("Fault reporting"), oldest first
 * @param queues         the request queue (0) and the event queue (1)
 * @param nesting        the paravirtual nesting host's request-level state, or {@code null} without nesting (docs/nesting.md §6)
 */
public record VirtioIommuState(Identity identity, long driverFeatures, boolean bypass, List<Integer> topology,
        List<DomainState> domains, List<FaultEvent> pendingFaults, List<SplitVirtqueue.State> queues,
        PvNesting.State nesting) {

    public VirtioIommuState {
        topology = topology == null ? null : List.copyOf(topology);
        domains = List.copyOf(domains);
        pendingFaults = List.copyOf(pendingFaults);
        queues = List.copyOf(queues);
    }

    /**
     * How the device was built: what the config space and the offered features say it is ("Device
     * configuration layout", "Feature bits") and the rest of its {@link VirtioIommuConfig} (the
     * power-on value of {@code bypass}, QEMU's boot-bypass; whether MAP requires granule alignment;
     * shared domains; the bounds; the endpoint ranges; the RESV_MEM regions PROBE reports). A state
     * is loaded only into a device built the same way (same profile and VMM properties): none of
     * these may change while the driver runs, and each decides how a request is answered.
     */
    public record Identity(long deviceFeatures, long pageSizeMask, long inputStart, long inputEnd, int domainStart,
            int domainEnd, int probeSize, boolean bootBypass, boolean granuleAlignedMaps, boolean sharedDomains,
            int maxQueueSize, int maxPendingFaults, int maxDomains, int maxEndpoints, int maxMappingsPerDomain, int maxMappings,
            List<Long> endpointRanges, List<Resv> resvRegions) {

        public Identity {
            endpointRanges = List.copyOf(endpointRanges);
            resvRegions = List.copyOf(resvRegions);
        }

        /** A RESV_MEM region ("Property RESV_MEM") of endpoint {@code endpoint}, or of every endpoint ({@code -1}). */
        public record Resv(long endpoint, int subtype, long start, long end) {}

        static Identity of(VirtioIommuConfig cfg, long deviceFeatures) {
            List<Long> ranges = new java.util.ArrayList<>();
            for (long v : cfg.endpointRanges()) {
                ranges.add(v);
            }
            List<Resv> resv = new java.util.ArrayList<>();
            cfg.resvAll().forEach(r -> resv.add(new Resv(-1, r.subtype(), r.start(), r.end())));
            new java.util.TreeMap<>(cfg.resvPerEndpoint()).forEach((ep, rs) -> rs.forEach(r -> resv.add(
                    new Resv(ep & 0xffff_ffffL, r.subtype(), r.start(), r.end()))));
            return new Identity(deviceFeatures, cfg.pageSizeMask(), cfg.inputStart(), cfg.inputEnd(), cfg.domainStart(),
                    cfg.domainEnd(), cfg.probeSize(), cfg.bypass(), cfg.granuleAlignedMaps(), cfg.sharedDomains(), cfg.maxQueueSize(),
                    cfg.maxPendingFaults(), cfg.maxDomains(), cfg.maxEndpoints(), cfg.maxMappingsPerDomain(), cfg.maxMappings(),
                    ranges, resv);
        }

        /** The first field in which {@code saved} differs from this, as "name saved (this device: mine)", or {@code null}. */
        String difference(Identity saved) {
            java.util.Map<String, String> a = saved.fields();
            java.util.Map<String, String> b = fields();
            for (String name : b.keySet()) {
                if (!a.get(name).equals(b.get(name))) {
                    return name + " " + a.get(name) + " (this device: " + b.get(name) + ")";
                }
            }
            return null;
        }

        private java.util.Map<String, String> fields() {
            java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
            m.put("offered features", hex(deviceFeatures));
            m.put("page_size_mask", hex(pageSizeMask));
            m.put("input_range.start", hex(inputStart));
            m.put("input_range.end", hex(inputEnd));
            m.put("domain_range.start", hex(domainStart & 0xffff_ffffL));
            m.put("domain_range.end", hex(domainEnd & 0xffff_ffffL));
            m.put("probe_size", Integer.toString(probeSize));
            m.put("power-on bypass", Boolean.toString(bootBypass));
            m.put("granule-aligned MAP", Boolean.toString(granuleAlignedMaps));
            m.put("shared domains", Boolean.toString(sharedDomains));
            m.put("largest queue size", Integer.toString(maxQueueSize));
            m.put("pending fault bound", Integer.toString(maxPendingFaults));
            m.put("domain bound", Integer.toString(maxDomains));
            m.put("attached endpoint bound", Integer.toString(maxEndpoints));
            m.put("per-domain mapping bound", Integer.toString(maxMappingsPerDomain));
            m.put("mapping bound", Integer.toString(maxMappings));
            m.put("endpoint ranges", endpointRanges.stream().map(Identity::hex).toList().toString());
            m.put("RESV_MEM regions", resvRegions.stream().map(r -> (r.endpoint() < 0 ? "all" : "ep " + r.endpoint()) + ":"
                    + r.subtype() + ":" + hex(r.start()) + "-" + hex(r.end())).toList().toString());
            return m;
        }

        private static String hex(long v) {
            return "0x" + Long.toHexString(v);
        }
    }

    /**
     * One domain: its ID, whether it was created with ATTACH's VIRTIO_IOMMU_ATTACH_F_BYPASS (an
     * identity domain, no mappings), its endpoints in attach order, its mappings (MAP requests that
     * are still mapped: virt_start, virt_end, phys_start, flags READ/WRITE/MMIO) in address order,
     * and for a table domain (ATTACH_TABLE, docs/nesting.md §6) the iommufd nested hwpt it is and
     * the guest's STE words 0-1 it was made from ({@code hwpt} -1 and {@code ste} null otherwise).
     */
    public record DomainState(int id, boolean bypass, List<Integer> endpoints, List<Mapping> mappings, int hwpt, long[] ste) {
        public DomainState {
            endpoints = List.copyOf(endpoints);
            mappings = List.copyOf(mappings);
            ste = ste == null ? null : ste.clone();
        }

        @Override
        public long[] ste() {
            return ste == null ? null : ste.clone();
        }

        public boolean table() {
            return ste != null;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof DomainState d && d.id == id && d.bypass == bypass && d.endpoints.equals(endpoints)
                    && d.mappings.equals(mappings) && d.hwpt == hwpt && java.util.Arrays.equals(d.ste, ste);
        }

        @Override
        public int hashCode() {
            return java.util.Objects.hash(id, bypass, endpoints, mappings, hwpt, java.util.Arrays.hashCode(ste));
        }
    }
}
