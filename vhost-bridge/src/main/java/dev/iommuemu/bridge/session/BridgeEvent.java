package dev.iommuemu.bridge.session;

/**
 * Something observable that happened in a session, as the control API streams it: a fault, an
 * interrupt, an MSI, an invalidation, a session opening or closing. {@code kind} is one of the
 * constants here.
 */
public record BridgeEvent(long timeMillis, long sessionId, String kind, String detail,
        dev.iommuemu.bridge.device.Finding finding) {
    /** An event without structured fields. */
    public BridgeEvent(long timeMillis, long sessionId, String kind, String detail) {
        this(timeMillis, sessionId, kind, detail, null);
    }

    public static final String SESSION_OPEN = "session_open";
    public static final String SESSION_CLOSE = "session_close";
    public static final String FAULT = "fault";
    public static final String STALL = "stall";
    public static final String IRQ = "irq";
    public static final String MSI = "msi";
    /** The VMM could not deliver an MSI (IOMMU_MSI_ABORTED); detail names the error it activated. */
    public static final String MSI_ABORTED = "msi_aborted";
    /** A service failure was injected (control API Inject service_failure; SMMUv3 SFM_ERR). */
    public static final String SERVICE_FAILURE = "service_failure";
    public static final String INVALIDATE = "invalidate";
    public static final String PROTOCOL_ERROR = "protocol_error";
    public static final String PAGE_REQUEST = "page_request";
    public static final String PAGE_RESPONSE = "page_response";
    public static final String ATC_INVALIDATE = "atc_invalidate";
    public static final String STALL_RESOLVED = "stall_resolved";
    /** Records became readable in a nesting vEVENT queue (detail "queue=ID records=N"). */
    public static final String VEVENT = "vevent";
    /** Records became readable in a nesting fault queue (page faults: stalls, PRI requests). */
    public static final String IOPF = "iopf";
    /** A strict-mode finding (detail: its sentence; {@link #finding()}: its fields). */
    public static final String COHERENCY_VIOLATION = "coherency_violation";

    public static BridgeEvent now(long sessionId, String kind, String detail) {
        return new BridgeEvent(System.currentTimeMillis(), sessionId, kind, detail);
    }
}
