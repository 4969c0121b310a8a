package dev.iommuemu.bridge.device.virtio;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.virtio.iommu.VirtioIommuConfig;
import dev.iommuemu.virtio.iommu.VirtioIommuDevice;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The virtio-iommu model (virtio 1.x device-types/iommu, device ID 23) behind the daemon's device
 * seam: config space for GET/SET_CONFIG, features for GET/SET_FEATURES, and the request and event
 * virtqueues served from the vring messages (virtio 1.x §2.7 split virtqueues). Used-buffer
 * notifications are raised as lines "vq0"/"vq1", which the daemon writes to the call eventfds.
 */
public final class VirtioIommuBridge implements BridgedDevice {
    private final String profile;
    private final VirtioIommuDevice device;
    /** The paravirtual nesting host of the {@code nesting} profile, else null. */
    private final NestingHost nestingHost;

    VirtioIommuBridge(String profile, VirtioIommuDevice device) {
        this(profile, device, null);
    }

    private VirtioIommuBridge(String profile, VirtioIommuDevice device, NestingHost nestingHost) {
        this.profile = profile;
        this.device = device;
        this.nestingHost = nestingHost;
    }

    /** The device behind the seam (for tests and diagnostics). */
    public VirtioIommuDevice device() {
        return device;
    }

    @Override
    public String model() {
        return Factory.NAME;
    }

    @Override
    public String profile() {
        return profile;
    }

    @Override
    public IommuModel iommu() {
        return device;
    }

    @Override
    public long virtioFeatures() {
        return device.deviceFeatures();
    }

    @Override
    public void setVirtioFeatures(long features) {
        if (!device.setDriverFeatures(features)) {
            // virtio 1.x §2.2.1: the device refuses a feature set it did not offer (FEATURES_OK stays clear).
            throw new IllegalArgumentException("virtio-iommu refuses features 0x" + Long.toHexString(features));
        }
    }

    @Override
    public byte[] readConfig(int offset, int length) {
        byte[] all = device.configBytes();
        byte[] out = new byte[Math.max(0, length)];
        for (int i = 0; i < out.length; i++) {
            int o = offset + i;
            out[i] = o >= 0 && o < all.length ? all[o] : 0;
        }
        return out;
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        for (int i = 0; i < data.length; i++) {
            device.writeConfig(offset + i, 1, data[i] & 0xffL);
        }
    }

    @Override
    public int numQueues() {
        return device.queueCount();
    }

    @Override
    public void queueStart(int index, Vring ring) {
        if (!device.setQueueSize(index, ring.size())
                || !device.setQueueAddresses(index, ring.descTable(), ring.availRing(), ring.usedRing())) {
            throw new IllegalArgumentException("virtio-iommu queue " + index + " rejects " + ring);
        }
        device.setQueueNextAvail(index, ring.nextAvail());
        device.setQueueEnabled(index, true);
    }

    @Override
    public int queueStop(int index) {
        device.setQueueEnabled(index, false);
        return device.queueNextAvail(index);
    }

    @Override
    public void queueNotified(int index) {
        if (nestingHost != null && index == 0) {
            // docs/nesting.md §6: the nest parent follows the VMM's RAM regions before the
            // guest's requests (ATTACH_TABLE) are served; PvNesting runs under the device lock.
            synchronized (device) {
                nestingHost.sync();
            }
        }
        device.queueNotified(index); // signals "vqN" itself when the driver wants it
    }

    @Override
    public void systemReset() {
        device.systemReset();
    }

    @Override
    public void reset() {
        device.reset();
    }

    @Override
    public Map<String, Long> counters() {
        Map<String, Long> c = device.counters().asMap();
        if (nestingHost == null) {
            return c;
        }
        Map<String, Long> all = new LinkedHashMap<>(c);
        synchronized (device) {
            all.put("nest_parent_regions", (long) nestingHost.mappedRegions());
            all.put("nest_parent_map_failures", nestingHost.mapFailures());
        }
        return all;
    }

    /**
     * The factory. Profiles: {@code default} (4 KiB granule with 2 MiB/1 GiB block hints, 64-bit
     * input range, 32-bit domain range, bypass off until the driver configures it), {@code 16k} and
     * {@code 64k} (those granules), {@code boot-bypass} (config.bypass = 1 at reset, so a guest
     * boots before its driver attaches endpoints, as QEMU's default does), and {@code nesting}
     * (paravirtual nesting, docs/nesting.md §6: endpoints 0-255 are devices behind a per-session
     * emulated SMMUv3 {@code max} as StreamIDs 0-255, the device offers VIRTIO_IOMMU_F_NESTING_SMMUV3,
     * and the nest parent maps the VMM's RAM regions IPA = PA; see {@link NestingHost}).
     */
    public static final class Factory implements DeviceFactory {
        public static final String NAME = "virtio-iommu";

        @Override
        public String model() {
            return NAME;
        }

        @Override
        public int modelNumber() {
            return 2;
        }

        @Override
        public List<String> profiles() {
            return Arrays.asList("default", "16k", "64k", "boot-bypass", "nesting");
        }

        @Override
        public BridgedDevice create(String profile, DeviceContext context) {
            VirtioIommuConfig.Builder b = VirtioIommuConfig.builder();
            switch (profile) {
                case "default" -> { }
                case "16k" -> b.pageSizeMask(0x4000L | 0x200_0000L);
                case "64k" -> b.pageSizeMask(0x1_0000L | 0x2000_0000L);
                case "boot-bypass" -> b.bypass(true);
                case "nesting" -> {
                    b.endpoints(0, NestingHost.ENDPOINTS - 1);
                    NestingHost nh = NestingHost.create(context.memory());
                    return new VirtioIommuBridge(profile, new VirtioIommuDevice(b.build(), context.memory(), context.host(),
                            nh.nesting()), nh);
                }
                default -> throw new IllegalArgumentException("virtio-iommu has no profile " + profile + "; profiles: " + profiles());
            }
            return new VirtioIommuBridge(profile, new VirtioIommuDevice(b.build(), context.memory(), context.host()));
        }
    }
}
