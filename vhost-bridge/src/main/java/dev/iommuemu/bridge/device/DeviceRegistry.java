package dev.iommuemu.bridge.device;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;

/** The models this daemon can serve, by name. */
public final class DeviceRegistry {
    private final Map<String, DeviceFactory> factories = new LinkedHashMap<>();

    /** The built-in models (identity, virtio-iommu, smmuv3) plus every factory on the class path (ServiceLoader). */
    public static DeviceRegistry discover() {
        DeviceRegistry r = new DeviceRegistry();
        r.register(new IdentityDevice.Factory());
        r.register(new dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge.Factory());
        r.register(new dev.iommuemu.bridge.device.virtio.VirtioIommuBridge.Factory());
        for (DeviceFactory f : ServiceLoader.load(DeviceFactory.class)) {
            r.register(f);
        }
        return r;
    }

    public DeviceRegistry register(DeviceFactory f) {
        factories.put(f.model(), f);
        return this;
    }

    public DeviceFactory get(String model) {
        return factories.get(model);
    }

    /** The factory with this protocol model number, or null. */
    public DeviceFactory byNumber(int number) {
        for (DeviceFactory f : factories.values()) {
            if (number != 0 && f.modelNumber() == number) {
                return f;
            }
        }
        return null;
    }

    public List<String> models() {
        return new ArrayList<>(factories.keySet());
    }
}
