package dev.iommuemu.bridge.state;

/**
 * A device state cannot be saved or loaded now, though it may be later: the session is not
 * quiescent as a save or load needs it (an SMMUv3 holding stalled transactions, or with a modelled
 * nesting host open: docs/device-state.md "Loading"). The session answers EBUSY (docs/protocol.md
 * §4.9), where a state that can never be loaded is EINVAL ({@link DeviceStateException}). The
 * message is a sentence saying what to wait for or do; nothing was saved or loaded.
 */
public final class DeviceStateBusyException extends IllegalArgumentException {
    public DeviceStateBusyException(String message) {
        super(message);
    }
}
