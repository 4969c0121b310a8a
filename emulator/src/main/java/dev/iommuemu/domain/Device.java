package dev.iommuemu.domain;

import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;

/**
 * A device behind the physical SMMU (struct device + arm-smmu-v3's master): its StreamID, its
 * group, its CD table once it needs one, and the domains attached to its PASIDs (SSIDs, IHI 0070 §3.3.2).
 */
public final class Device {
    private final int streamId;
    final Group group;
    /** The linear CD table (host memory), or 0 before the device first needs one. */
    long cdTable;
    final Map<Integer, PagingDomain> pasids = new TreeMap<>();

    Device(int streamId, Group group) {
        this.streamId = streamId;
        this.group = group;
    }

    public int streamId() {
        return streamId;
    }

    public Group group() {
        return group;
    }

    public Domain domain() {
        return group.domain;
    }

    /** PASID -> domain for the PASIDs in use (never PASID 0: that is the RID domain). */
    public Map<Integer, PagingDomain> pasids() {
        return Collections.unmodifiableMap(pasids);
    }

    @Override
    public String toString() {
        return "device(sid=" + streamId + ")";
    }
}
