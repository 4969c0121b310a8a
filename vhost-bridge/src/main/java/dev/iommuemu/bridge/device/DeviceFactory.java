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
}
