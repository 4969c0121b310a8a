package dev.iommuemu.smmuv3.ats;

/**
 * What the SMMU sends back to endpoints (devices) outside guest memory: PRI responses
 * (CMD_PRI_RESP, IHI 0070 §4.5.2), ATC invalidations (CMD_ATC_INV, §4.5.1, §3.9.1.3), and the
 * resolution of stalled transactions (CMD_RESUME / CMD_STALL_TERM, §4.7.1-2). The daemon connects it
 * to its device back-ends; tests record the calls. Calls are synchronous: an ATC invalidation is
 * complete when the call returns, so a following CMD_SYNC can complete (§4.7.3).
 */
public interface EndpointPort {
    /** PCIe PRG Response Codes (PCIe r6.0 §10.4.2.1), which CMD_PRI_RESP.Resp selects (§4.5.2). */
    int RESPONSE_SUCCESS = 0b0000;
    int RESPONSE_INVALID_REQUEST = 0b0001;
    int RESPONSE_FAILURE = 0b1111;

    /** A PRG response for page request group {@code prgIndex}; {@code ssid} is -1 without a PASID. */
    void priResponse(int streamId, int ssid, int prgIndex, int response);

    /**
     * Invalidate the endpoint's ATC over {@code [addr, addr + size)} for {@code ssid} (-1: the
     * non-PASID entries), or every PASID's entries when {@code global}.
     */
    void atcInvalidate(int streamId, int ssid, long addr, long size, boolean global);

    /** A stalled transaction is resolved: retried ({@code retry}) or terminated with an abort. */
    void stallResolved(int streamId, int stag, boolean retry);

    /** A port that drops everything. */
    EndpointPort NONE = new EndpointPort() {
        @Override
        public void priResponse(int streamId, int ssid, int prgIndex, int response) {}

        @Override
        public void atcInvalidate(int streamId, int ssid, long addr, long size, boolean global) {}

        @Override
        public void stallResolved(int streamId, int stag, boolean retry) {}
    };
}
