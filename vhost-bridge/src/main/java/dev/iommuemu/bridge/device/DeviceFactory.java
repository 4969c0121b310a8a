package dev.iommuemu.bridge.device;

import java.util.List;

/**
 * Makes device instances of one model. Factories are found with {@link java.util.ServiceLoader}
 * (META-INF/services/dev.iommuemu.bridge.device.DeviceFactory) and by {@link DeviceRegistry}.
 */
public interface DeviceFactory {
    /** The model name clients select ("smmuv3", "virtio-iommu"). */
    String model();

    /** The protocol's model number (docs/protocol.md §4.1), 0 for models outside the protocol's list. */
    int modelNumber();

    /** Profiles this model offers; the first is the default. */
    List<String> profiles();

    /**
     * A new instance in its reset state.
     *
     * @throws IllegalArgumentException for a profile the model does not have
     */
    BridgedDevice create(String profile, DeviceContext context);

    /**
     * A new instance whose profile is overridden by the VMM device's own properties
     * (IOMMU_SET_PROPERTIES, docs/protocol.md §4.7): the profile supplies only what the VMM's
     * device does not define. A model without such properties refuses any.
     *
     * @throws PropertyRefusedException for a property the model cannot honour
     * @throws IllegalArgumentException for a profile the model does not have
     */
    default BridgedDevice create(String profile, VmmProperties properties, DeviceContext context) {
        if (!properties.isEmpty()) {
            throw new PropertyRefusedException(dev.iommuemu.domain.Errno.EOPNOTSUPP.code, null,
                    "the daemon's model " + model() + " has no VMM device properties to set");
        }
        return create(profile, context);
    }
}
