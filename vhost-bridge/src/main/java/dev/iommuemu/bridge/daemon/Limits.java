package dev.iommuemu.bridge.daemon;

import dev.iommuemu.bridge.session.ConnectionLimits;

/**
 * The daemon's bounds on its peers beyond the ack timeout and VMM connection count
 * (docs/daemon.md "Limits and timeouts"). Milliseconds; a timeout of 0 is off.
 *
 * @param messageTimeoutMs the rest of a VMM message once its first byte arrived; each send to a VMM
 * @param handshakeTimeoutMs a new VMM connection's first complete message
 * @param idleTimeoutMs a VMM connection's silence before it shared guest memory
 * @param requireMemorySeals guest RAM and translation rings only as memfds sealed with F_SEAL_SHRINK
 * @param controlMaxConnections control-API clients served at once
 * @param controlRequestTimeoutMs the rest of a control request once its first byte arrived
 * @param controlIdleTimeoutMs a control client's silence between requests (event subscribers exempt)
 */
public record Limits(int messageTimeoutMs, int handshakeTimeoutMs, int idleTimeoutMs, boolean requireMemorySeals,
        int controlMaxConnections, int controlRequestTimeoutMs, int controlIdleTimeoutMs) {
    public static final Limits DEFAULTS = new Limits(ConnectionLimits.MESSAGE_TIMEOUT_MS, ConnectionLimits.HANDSHAKE_TIMEOUT_MS,
            ConnectionLimits.IDLE_TIMEOUT_MS, true, 64, 5000, 60_000);

    public Limits {
        if (messageTimeoutMs < 0 || handshakeTimeoutMs < 0 || idleTimeoutMs < 0 || controlRequestTimeoutMs < 0 || controlIdleTimeoutMs < 0) {
            throw new IllegalArgumentException("timeouts must not be negative (0 turns one off)");
        }
        if (controlMaxConnections <= 0) {
            throw new IllegalArgumentException("control.max.connections must be positive");
        }
    }

    /** A VMM connection's bounds with this ack timeout. */
    public ConnectionLimits connection(int ackTimeoutMs) {
        return new ConnectionLimits(ackTimeoutMs, messageTimeoutMs, handshakeTimeoutMs, idleTimeoutMs);
    }
}
