package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaResult;

/**
 * The outcome of one translation with what {@link dev.iommuemu.dma.DmaResult} cannot carry: whether
 * the target is a VIRTIO_IOMMU_MAP_F_MMIO mapping (virtio spec, "MAP request": accesses are not
 * speculated, buffered, cached, split or combined, so the VMM must issue them to the device
 * as one access), and the fault report the model produced, if any.
 */
public record Translation(DmaResult result, boolean mmio, FaultEvent fault) {}
