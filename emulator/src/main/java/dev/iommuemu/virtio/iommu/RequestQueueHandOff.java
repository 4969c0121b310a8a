package dev.iommuemu.virtio.iommu;

/**
 * What the VMM needs of the request queue (queue 0) to serve MAP and UNMAP itself
 * (docs/protocol.md §4.13, version 14): whether the queue runs in the device, its ring
 * (descriptor table, available and used rings, guest-physical; size; the next available index and
 * the used index the next completion takes, virtio 1.x §2.7), the negotiated EVENT_IDX and
 * INDIRECT_DESC (§2.7.10, §2.7.5.3) and VIRTIO_IOMMU_F_MAP_UNMAP, the config's input range
 * (§5.13.4), the granule minus 1 when MAPs must be aligned on it (else 0), the live mappings of all
 * domains and the bounds on them ({@code maxPerDomain} at most 1024, a slot's size), and whether
 * the device has paravirtual nesting (docs/nesting.md §6), which the hand-off does not serve.
 */
public record RequestQueueHandOff(boolean running, long desc, long avail, long used, int size, int nextAvail, int usedIdx,
        boolean eventIdx, boolean indirect, boolean mapUnmap, long inputStart, long inputEnd, long granuleMask,
        long mappings, long maxMappings, int maxPerDomain, boolean nesting) {

    /** Whether the VMM may serve requests by the model's state alone (the daemon adds its own conditions). */
    public boolean servable() {
        return running && mapUnmap && !nesting;
    }
}
