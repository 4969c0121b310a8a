package dev.iommuemu.bridge.session;

/**
 * The bounds on one VMM connection (docs/daemon.md "Limits and timeouts"): every wait on the peer
 * ends. Milliseconds; 0 disables the bound it names.
 *
 * @param ackTimeoutMs a back-end request's acknowledgement (IOTLB/ATC invalidation), whole
 * @param messageTimeoutMs the rest of a message once its first byte arrived, and each send
 * @param handshakeTimeoutMs from accept to the first complete message
 * @param idleTimeoutMs silence allowed before the VMM shared guest memory (a VMM that did may be
 *     silent for as long as its guest does not touch the IOMMU)
 */
public record ConnectionLimits(int ackTimeoutMs, int messageTimeoutMs, int handshakeTimeoutMs, int idleTimeoutMs) {
    public static final int MESSAGE_TIMEOUT_MS = 5000;
    public static final int HANDSHAKE_TIMEOUT_MS = 10_000;
    public static final int IDLE_TIMEOUT_MS = 60_000;

    public ConnectionLimits {
        if (ackTimeoutMs <= 0 || messageTimeoutMs < 0 || handshakeTimeoutMs < 0 || idleTimeoutMs < 0) {
            throw new IllegalArgumentException("timeouts must not be negative (and the ack timeout positive)");
        }
    }

    /** The defaults with this ack timeout. */
    public static ConnectionLimits of(int ackTimeoutMs) {
        return new ConnectionLimits(ackTimeoutMs, MESSAGE_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS);
    }
}
