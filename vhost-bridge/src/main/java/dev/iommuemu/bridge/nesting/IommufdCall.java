package dev.iommuemu.bridge.nesting;

/**
 * One call of the host-side nesting model (docs/nesting.md §3), free of any transport: the control
 * API (protobuf IommufdRequest) and the VMM protocol (docs/protocol.md §4.6) both decode into these
 * and run them through {@link IommufdCalls#handle}. Each mirrors an iommufd ioctl
 * (include/uapi/linux/iommufd.h).
 */
public sealed interface IommufdCall {
    /** Takes over the session's SMMUv3 as the host's physical IOMMU (once per session). */
    record OpenHost(long carveBase, long carveSize, int streamTableLog2) implements IommufdCall {}

    /** A device behind the SMMU; {@code group} empty or null: a group of its own. */
    record Probe(int streamId, String group) implements IommufdCall {}

    /** VFIO_DEVICE_BIND_IOMMUFD: claims DMA ownership; id = the device id. */
    record Bind(int streamId) implements IommufdCall {}

    /** IOMMU_GET_HW_INFO (struct iommu_hw_info_arm_smmuv3). */
    record HwInfo(int devId) implements IommufdCall {}

    /**
     * IOMMU_HWPT_ALLOC: without {@code vste} (null) a paging hwpt for {@code devId} (flags
     * NEST_PARENT 1); with it a nested hwpt on vIOMMU {@code ptId} from the guest STE words 0-1
     * (struct iommu_hwpt_arm_smmuv3) and fault queue {@code faultId} (0 = none).
     */
    record AllocHwpt(int devId, int ptId, int flags, long[] vste, int faultId) implements IommufdCall {}

    record Attach(int devId, int hwptId) implements IommufdCall {}

    /** To the blocking domain. */
    record Detach(int devId) implements IommufdCall {}

    /** IOMMU_IOAS_MAP's (or with {@code unmap}, UNMAP's) effect on a paging hwpt: 4 KiB pages. */
    record Map(int hwptId, long iova, long phys, long length, boolean read, boolean write, boolean unmap) implements IommufdCall {}

    record AllocViommu(int devId, int hwptId) implements IommufdCall {}

    /** {@code virtId}: the guest's StreamID. */
    record AllocVdevice(int viommuId, int devId, long virtId) implements IommufdCall {}

    /** IOMMU_HWPT_INVALIDATE on a vIOMMU: 16-byte SMMUv3 commands, two words each. */
    record Invalidate(int viommuId, long[] cmds) implements IommufdCall {}

    record AllocVeventq(int viommuId, int depth) implements IommufdCall {}

    /** {@code max} 0 or beyond {@link IommufdCalls#MAX_READ}: that many. */
    record ReadVevents(int veventqId, int max) implements IommufdCall {}

    record AllocFaultQueue() implements IommufdCall {}

    record ReadFaults(int faultId, int max) implements IommufdCall {}

    /** struct iommu_hwpt_page_response: code SUCCESS 0, INVALID 1, FAILURE 2. */
    record PageResponse(int faultId, int cookie, int code) implements IommufdCall {}
}
