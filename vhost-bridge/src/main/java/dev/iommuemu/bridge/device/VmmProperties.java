package dev.iommuemu.bridge.device;

import java.util.List;

/**
 * The properties of the VMM's own IOMMU device (QEMU's {@code -device virtio-iommu-pci,...} and
 * {@code arm-smmuv3} properties, docs/qemu-properties.md) as the front-end handed them over with
 * IOMMU_SET_PROPERTIES (docs/protocol.md §4.7). A {@code null} field was not given: the daemon's
 * profile supplies it. The values are QEMU's, already checked against QEMU's own ranges by the
 * codec; whether the model can honour them is the {@link DeviceFactory}'s decision.
 *
 * @param bootBypass      virtio-iommu {@code boot-bypass}: config {@code bypass} after a system reset
 * @param granule         virtio-iommu {@code granule} in bytes (4k, 8k, 16k, 64k, or the host page size for "host")
 * @param awBits          virtio-iommu {@code aw-bits}: the input range is [0, 2^aw-bits - 1]
 * @param reservedRegions virtio-iommu {@code reserved-regions} (replacing the profile's), or null
 * @param unalignedMaps   virtio-iommu as QEMU's device behaves (no property): MAP ranges need not be
 *                        aligned on the granule (QEMU does not apply the spec's "SHOULD set RANGE")
 * @param stage           arm-smmuv3 {@code stage}: which translation stages the SMMU advertises
 * @param pciBus          arm-smmuv3 {@code primary-bus} / {@code bus_num}: the PCI bus numbers behind it
 */
public record VmmProperties(Boolean bootBypass, Long granule, Integer awBits, List<ReservedRegion> reservedRegions,
        Boolean unalignedMaps, SmmuStage stage, PciBus pciBus) {

    public static final VmmProperties NONE = new VmmProperties(null, null, null, null, null, null, null);

    public VmmProperties {
        reservedRegions = reservedRegions == null ? null : List.copyOf(reservedRegions);
    }

    /** Whether no property was given. */
    public boolean isEmpty() {
        return equals(NONE);
    }

    /** Whether a virtio-iommu property was given. */
    public boolean hasVirtioIommu() {
        return bootBypass != null || granule != null || awBits != null || reservedRegions != null || unalignedMaps != null;
    }

    /** Whether an arm-smmuv3 property was given. */
    public boolean hasSmmuv3() {
        return stage != null || pciBus != null;
    }

    /**
     * One entry of QEMU's {@code reserved-regions} array ({low, high, type}; the type is the PROBE
     * RESV_MEM subtype, virtio spec "Property RESV_MEM": 0 reserved, 1 MSI), inclusive bounds.
     */
    public record ReservedRegion(long low, long high, int type) {}

    /** QEMU's arm-smmuv3 {@code stage}: "1", "2" or "nested" (both stages). */
    public enum SmmuStage {
        STAGE1("1", true, false),
        STAGE2("2", false, true),
        NESTED("nested", true, true);

        public final String qemuName;
        public final boolean s1;
        public final boolean s2;

        SmmuStage(String qemuName, boolean s1, boolean s2) {
            this.qemuName = qemuName;
            this.s1 = s1;
            this.s2 = s2;
        }
    }

    /**
     * The PCI bus an arm-smmuv3 serves (its {@code primary-bus}, whose number QEMU also knows as
     * {@code bus_num}) and the last bus number behind it. Informational: StreamIDs are the PCI
     * requester IDs, bus &lt;&lt; 8 | devfn, which the front-end sends as they are.
     */
    public record PciBus(int primary, int last) {}
}
