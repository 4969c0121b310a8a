package dev.iommuemu.bridge.state;

/**
 * A device-state blob that cannot be loaded (not a DeviceState, a newer format version, another
 * model, a field out of range); the message is a sentence for the person who started the
 * migration or restart. Nothing has been loaded when it is thrown.
 */
public final class DeviceStateException extends IllegalArgumentException {
    public DeviceStateException(String message) {
        super(message);
    }
}
