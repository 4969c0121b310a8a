package dev.iommuemu.iommufd;

import dev.iommuemu.domain.Device;
import dev.iommuemu.domain.PagingDomain;
import java.util.HashMap;
import java.util.Map;

/**
 * IOMMU_VIOMMU_ALLOC (type ARM_SMMUV3): the host side of one guest's vSMMU over a nest parent. It
 * owns a VMID (every nested domain and guest TLBI is tagged with it), the virtual-to-physical
 * StreamID map of its vDEVICEs, and optionally a vEVENT queue.
 */
public final class Viommu {
    private final int id;
    private final PagingDomain parent;
    private final int vmid;
    final Map<Long, Vdevice> byVirtId = new HashMap<>();
    final Map<Device, Vdevice> byDevice = new HashMap<>();
    VeventQueue veventq;

    Viommu(int id, PagingDomain parent, int vmid) {
        this.id = id;
        this.parent = parent;
        this.vmid = vmid;
    }

    public int id() {
        return id;
    }

    public PagingDomain parent() {
        return parent;
    }

    public int vmid() {
        return vmid;
    }

    public VeventQueue veventq() {
        return veventq;
    }

    /** The physical device behind guest StreamID {@code virtId}, or {@code null}. */
    public Vdevice vdevice(long virtId) {
        return byVirtId.get(virtId);
    }
}
