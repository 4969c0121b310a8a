package dev.iommuemu.bridge.protocol;

/**
 * Back-end to front-end requests, sent on the channel of SET_BACKEND_REQ_FD
 * (docs/interop/vhost-user.rst "Back-end message types"; the IOMMU range is docs/protocol.md §5).
 */
public enum BackendRequest {
    /** Drop cached translations; always sent with NEED_REPLY, answered with a u64 ack. */
    IOMMU_IOTLB_INVALIDATE(Protocol.IOMMU_BASE, Payloads.IotlbInvalidate.SIZE),
    /** A message-signalled interrupt: a 32-bit write of data to address. */
    IOMMU_MSI(Protocol.IOMMU_BASE + 1, Payloads.MsiWrite.SIZE),
    /** Endpoints drop ATC entries; always sent with NEED_REPLY, answered with a u64 ack. */
    IOMMU_ATC_INVALIDATE(Protocol.IOMMU_BASE + 2, Payloads.AtcInvalidate.SIZE),
    /** A PRI Page Request Group Response to an endpoint; no reply. */
    IOMMU_PRI_RESPONSE(Protocol.IOMMU_BASE + 3, Payloads.PriResponse.SIZE),
    /** A stalled transaction was resumed or terminated by the guest; no reply (protocol version 2). */
    IOMMU_STALL_RESOLVED(Protocol.IOMMU_BASE + 4, Payloads.StallResolved.SIZE);

    private final int code;
    private final int payload;

    BackendRequest(int code, int payload) {
        this.code = code;
        this.payload = payload;
    }

    public int code() {
        return code;
    }

    public int payloadSize() {
        return payload;
    }

    public static BackendRequest of(int code) {
        for (BackendRequest r : values()) {
            if (r.code == code) {
                return r;
            }
        }
        return null;
    }
}
