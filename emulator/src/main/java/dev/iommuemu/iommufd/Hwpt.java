package dev.iommuemu.iommufd;

import dev.iommuemu.domain.Domain;

/**
 * An iommufd hardware page table object (IOMMU_HWPT_ALLOC): a paging domain (possibly a nest
 * parent) or a nested domain with its vIOMMU; {@code faultQueue} when allocated with
 * IOMMU_HWPT_FAULT_ID_VALID.
 */
public record Hwpt(int id, Domain domain, Viommu viommu, FaultQueue faultQueue) {}
