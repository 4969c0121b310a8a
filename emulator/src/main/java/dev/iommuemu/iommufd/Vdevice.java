package dev.iommuemu.iommufd;

import dev.iommuemu.domain.Device;

/** IOMMU_VDEVICE_ALLOC: a device as its vIOMMU's guest knows it; {@code virtId} is the guest's StreamID. */
public record Vdevice(int id, Viommu viommu, Device device, int devId, long virtId) {}
