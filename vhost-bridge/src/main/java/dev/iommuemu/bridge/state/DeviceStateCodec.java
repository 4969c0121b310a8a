package dev.iommuemu.bridge.state;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.iommuemu.bridge.control.ControlService;
import dev.iommuemu.proto.devstate.v1.DeviceState;

/**
 * The device-state envelope (docs/device-state.md): one serialized {@link DeviceState} with its
 * format version, model, profile and producer. Reading checks what the envelope promises before any
 * model sees the state: that it parses, that its format version is one this build reads, and that
 * it is for the session's model.
 */
public final class DeviceStateCodec {
    /** The format version this build writes and the newest it reads. */
    public static final int FORMAT_VERSION = 1;

    private DeviceStateCodec() {}

    /** An envelope for {@code model}'s state, format version and producer filled in; the caller sets the state. */
    public static DeviceState.Builder envelope(String model, String profile) {
        return DeviceState.newBuilder().setFormatVersion(FORMAT_VERSION).setModel(model).setProfile(profile)
                .setProducer(ControlService.VERSION);
    }

    public static byte[] encode(DeviceState state) {
        return state.toByteArray();
    }

    /**
     * The envelope in {@code blob}, checked for a session of model {@code model}.
     *
     * @throws DeviceStateException with a sentence when it is not a device state, has a format
     *     version this build does not read, or is another model's
     */
    public static DeviceState decode(byte[] blob, String model) {
        DeviceState d;
        try {
            d = DeviceState.parseFrom(blob);
        } catch (InvalidProtocolBufferException e) {
            // the parser's own text is for a developer, not for the person migrating
            java.util.logging.Logger.getLogger(DeviceStateCodec.class.getName()).fine(() -> "device state: " + e);
            throw new DeviceStateException("the device state (" + blob.length + " bytes) is not an iommu-emu device"
                    + " state: it does not parse as a DeviceState message (truncated, or another file?)");
        }
        if (d.getFormatVersion() == 0) {
            throw new DeviceStateException("the device state has no format version; it was not saved by iommu-emu");
        }
        if (Integer.compareUnsigned(d.getFormatVersion(), FORMAT_VERSION) > 0) { // a uint32 field
            throw new DeviceStateException("the device state has format version " + Integer.toUnsignedString(d.getFormatVersion()) + " (saved by"
                    + " iommu-emu " + producer(d) + ") but this daemon (iommu-emu " + ControlService.VERSION
                    + ") reads format version " + FORMAT_VERSION + "; load it with a daemon at least as new as the one"
                    + " that saved it");
        }
        if (!d.getModel().equals(model)) {
            throw new DeviceStateException("the device state is for model '" + d.getModel() + "' but this session's"
                    + " model is '" + model + "'; load it into a session started with --model " + d.getModel());
        }
        return d;
    }

    private static String producer(DeviceState d) {
        return d.getProducer().isEmpty() ? "unknown version" : d.getProducer();
    }
}
