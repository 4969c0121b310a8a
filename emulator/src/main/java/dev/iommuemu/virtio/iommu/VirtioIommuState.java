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
     * What the config space and the offered features say the device is ("Device configuration
     * layout", "Feature bits"): a state is loaded only into a device built the same way (same
     * profile and VMM properties), since none of these may change while the driver runs.
     */
    public record Identity(long deviceFeatures, long pageSizeMask, long inputStart, long inputEnd, int domainStart,
            int domainEnd, int probeSize) {

        static Identity of(VirtioIommuConfig cfg, long deviceFeatures) {
            return new Identity(deviceFeatures, cfg.pageSizeMask(), cfg.inputStart(), cfg.inputEnd(), cfg.domainStart(),
                    cfg.domainEnd(), cfg.probeSize());
        }

        /** The first field in which {@code saved} differs from this, as "name saved (this device: mine)", or {@code null}. */
        String difference(Identity saved) {
            String[] names = {"offered features", "page_size_mask", "input_range.start", "input_range.end",
                "domain_range.start", "domain_range.end", "probe_size"};
            long[] a = saved.values();
            long[] b = values();
            for (int i = 0; i < a.length; i++) {
                if (a[i] != b[i]) {
                    return names[i] + " 0x" + Long.toHexString(a[i]) + " (this device: 0x" + Long.toHexString(b[i]) + ")";
                }
            }
            return null;
        }

        private long[] values() {
            return new long[] {deviceFeatures, pageSizeMask, inputStart, inputEnd, domainStart & 0xffff_ffffL,
                domainEnd & 0xffff_ffffL, probeSize};
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
