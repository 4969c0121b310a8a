package dev.iommuemu.bridge.device.virtio;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.PropertyRefusedException;
import dev.iommuemu.bridge.device.VmmProperties;
import dev.iommuemu.bridge.state.NestingStateCodec;
import dev.iommuemu.bridge.state.VirtioIommuStateCodec;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.virtio.iommu.ChangedDomains;
import dev.iommuemu.virtio.iommu.ResvRegion;
import dev.iommuemu.virtio.iommu.MirroredDomain;
import dev.iommuemu.virtio.iommu.RequestQueueHandOff;
import dev.iommuemu.virtio.iommu.VmmRequest;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.virtio.iommu.VirtioIommuConfig;
import dev.iommuemu.virtio.iommu.VirtioIommuDevice;
import dev.iommuemu.virtio.iommu.VirtioIommuState;
import java.util.ArrayList;
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

    /** A fault report is published only after a checkpoint (VirtioIommuDevice's event queue). */
    @Override
    public boolean translationsCheckpoint() {
        return true;
    }

    /**
     * docs/protocol.md §4.13: the request queue's state, its hand-off refused (not servable) for a
     * "+strict" profile, whose checks must see every request, as §4.12 refuses it.
     */
    @Override
    public java.util.Optional<RequestQueueHandOff> requestQueueHandOff() {
        RequestQueueHandOff s = device.requestQueueHandOff();
        if (profile.endsWith("+strict")) {
            s = new RequestQueueHandOff(false, s.desc(), s.avail(), s.used(), s.size(), s.nextAvail(), s.usedIdx(), s.eventIdx(),
                    s.indirect(), s.mapUnmap(), s.inputStart(), s.inputEnd(), s.granuleMask(), s.mappings(), s.maxMappings(),
                    s.maxPerDomain(), s.nesting());
        }
        return java.util.Optional.of(s);
    }

    @Override
    public java.util.Optional<MirroredDomain> mirroredDomain(int id) {
        return device.mirroredDomain(id);
    }

    @Override
    public List<MirroredDomain> mirroredDomains() {
        return device.mirroredDomains();
    }

    @Override
    public ChangedDomains takeChangedDomains() {
        return device.takeChangedDomains();
    }

    @Override
    public int applyVmmRequests(List<VmmRequest> log, int nextAvail, int usedIdx) {
        return device.applyVmmRequests(log, nextAvail, usedIdx);
    }

    @Override
    public int numQueues() {
        return device.queueCount();
    }

    /**
     * Starts queue {@code index} (virtio 1.x §2.7). A queue loaded running (a daemon restart: the
     * journal saved it while the rings ran) and not started since resumes when {@code ring} has the
     * saved size and addresses (docs/device-state-virtio.md "Restart"): its saved next available
     * index is kept and {@code ring.nextAvail()} ignored (the front-end cannot know how far the
     * dead daemon got), the used elements that were waiting are published once each where the
     * guest's used->idx does not cover them yet, and what is available is served at once (kicks
     * sent while no daemon ran may be lost), with a "vq" + index notification if one is due.
     * Otherwise the queue is set up afresh from {@code ring}.
     */
    @Override
    public void queueStart(int index, Vring ring) {
        synchronized (device) {
            if (device.resumeQueue(index, ring.size(), ring.descTable(), ring.availRing(), ring.usedRing())) {
                queueNotified(index);
                return;
            }
            device.setQueueEnabled(index, false);
            if (!device.setQueueSize(index, ring.size())
                    || !device.setQueueAddresses(index, ring.descTable(), ring.availRing(), ring.usedRing())) {
                throw new IllegalArgumentException("virtio-iommu queue " + index + " rejects " + ring);
            }
            device.setQueueNextAvail(index, ring.nextAvail());
            device.setQueueEnabled(index, true);
        }
    }

    /**
     * The saved state (docs/device-state-virtio.md): virtio_iommu_state.proto's VirtioIommuState,
     * with the nesting host's iommufd objects in {@code nesting.host} for the {@code nesting}
     * profile. Taken under the device lock, so it is one consistent instant; the rings may run (a
     * restart's periodic save), and vhost-user migration takes it after GET_VRING_BASE stopped them.
     */
    @Override
    public byte[] saveState() {
        synchronized (device) {
            var m = VirtioIommuStateCodec.encode(device.saveState());
            if (nestingHost != null) {
                m = m.toBuilder().setNesting(m.getNesting().toBuilder()
                        .setHost(NestingStateCodec.encode(nestingHost.iommufdState(), nestingHost.mappedRegionsNow()))).build();
            }
            // docs/device-state.md: the envelope (format version, model, profile) around it
            return dev.iommuemu.bridge.state.DeviceStateCodec.encode(
                    dev.iommuemu.bridge.state.DeviceStateCodec.envelope(Factory.NAME, profile()).setVirtioIommu(m).build());
        }
    }

    /**
     * Loads a saved state, entirely or not at all (docs/device-state-virtio.md): the blob is
     * decoded, a nesting profile's host is rebuilt off to the side from its iommufd objects, the
     * device checks everything, and only then is anything swapped. Runs under the device lock and
     * only while both rings are stopped (vhost-user: before the front-end starts them with
     * SET_VRING_*; the rings come back as saved, and a later {@link #queueStart} resumes or
     * re-sets them); a ring loaded running and not started since counts as stopped, so a restarted
     * daemon may be loaded again before its rings start.
     */
    @Override
    public void loadState(byte[] state) {
        // refused before parsing: a blob larger than this device's bounds allow would be parsed into the
        // heap whole (its mappings, at most maxMappings of about 30 bytes, and 1 MiB for the rest)
        long most = (1L << 20) + 48L * device.config().maxMappings();
        if (state.length > most) {
            throw new IllegalArgumentException("the device state is " + state.length + " bytes, more than this virtio-iommu's"
                    + " can be (" + most + " bytes for at most " + device.config().maxMappings() + " mappings); it was saved"
                    + " by a device with other bounds, or is not a device state");
        }
        dev.iommuemu.proto.devstate.v1.DeviceState d = dev.iommuemu.bridge.state.DeviceStateCodec.decode(state, Factory.NAME);
        if (!d.hasVirtioIommu()) {
            throw new dev.iommuemu.bridge.state.DeviceStateException("the device state for model 'virtio-iommu' holds no"
                    + " virtio-iommu state; it is damaged or was not saved by a virtio-iommu session");
        }
        if (!d.getProfile().equals(profile())) {
            throw new dev.iommuemu.bridge.state.DeviceStateException("the device state is for virtio-iommu profile '"
                    + d.getProfile() + "' but this session's profile is '" + profile() + "'; load it into a session"
                    + " started with --profile " + d.getProfile());
        }
        dev.iommuemu.proto.devstate.v1.VirtioIommuState m = d.getVirtioIommu();
        VirtioIommuState s = VirtioIommuStateCodec.decode(m);
        synchronized (device) {
            for (int q = 0; q < device.queueCount(); q++) {
                if (device.queueEnabled(q) && !device.queueResumable(q)) {
                    throw new IllegalArgumentException("virtio-iommu state refused: virtqueue " + q
                            + " is running; a state is loaded only with the rings stopped (GET_VRING_BASE first).");
                }
            }
            if (nestingHost == null || s.nesting() == null || !m.getNesting().hasHost()) {
                if (nestingHost != null && s.nesting() != null) {
                    throw new IllegalArgumentException("virtio-iommu state refused: its nesting state lacks the nesting host's iommufd objects.");
                }
                device.loadState(s); // refuses a nesting state on a plain device, and the reverse
                return;
            }
            NestingStateCodec.Decoded host = NestingStateCodec.decode(m.getNesting().getHost());
            NestingHost restored = nestingHost.rebuilt(host.iommufd(), host.nestParentRegions(), s.nesting());
            device.loadState(s, restored.restoredNesting());
            nestingHost.adopt(restored);
        }
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
    public void setEndpoints(java.util.Set<Integer> present) {
        device.setEndpoints(present);
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
            return create(profile, VmmProperties.NONE, context);
        }

        /**
         * The profile's device with QEMU's virtio-iommu properties over it (docs/qemu-properties.md):
         * {@code boot-bypass} is config {@code bypass} at power-on and after a system reset,
         * {@code granule} makes page_size_mask every page size from the granule up (QEMU's
         * {@code -(granule)}), {@code aw-bits} makes input_range [0, 2^aw-bits - 1], and
         * {@code reserved-regions} replace the profile's RESV_MEM regions of every endpoint
         * (virtio spec "Property RESV_MEM"); {@code unaligned-maps} (QEMU's behaviour, not a
         * property) lets MAP take ranges not aligned on the granule. arm-smmuv3 properties are
         * refused (EINVAL).
         */
        @Override
        public BridgedDevice create(String profile, VmmProperties props, DeviceContext context) {
            if (props.hasSmmuv3()) {
                throw new PropertyRefusedException(Errno.EINVAL.code, props.stage() != null ? "stage" : "primary-bus",
                        "arm-smmuv3 properties were sent for the daemon's virtio-iommu device; "
                        + "start the daemon with --model smmuv3 for an arm-smmuv3");
            }
            VirtioIommuConfig.Builder b = VirtioIommuConfig.builder();
            switch (profile) {
                case "default", "nesting" -> { }
                case "16k" -> b.pageSizeMask(0x4000L | 0x200_0000L);
                case "64k" -> b.pageSizeMask(0x1_0000L | 0x2000_0000L);
                case "boot-bypass" -> b.bypass(true);
                default -> throw new IllegalArgumentException("virtio-iommu has no profile " + profile + "; profiles: " + profiles());
            }
            boolean nesting = profile.equals("nesting");
            if (nesting) {
                b.endpoints(0, NestingHost.ENDPOINTS - 1);
            }
            apply(b, props, nesting);
            if (nesting) {
                NestingHost nh = NestingHost.create(context.memory());
                return new VirtioIommuBridge(profile, new VirtioIommuDevice(b.build(), context.memory(), context.host(),
                        nh.nesting()), nh);
            }
            return new VirtioIommuBridge(profile, new VirtioIommuDevice(b.build(), context.memory(), context.host()));
        }

        private static void apply(VirtioIommuConfig.Builder b, VmmProperties props, boolean nesting) {
            if (props.bootBypass() != null) {
                b.bypass(props.bootBypass());
            }
            if (props.granule() != null) {
                long g = props.granule();
                if (nesting && g != 0x1000 && g != 0x4000 && g != 0x1_0000) {
                    // docs/nesting.md §6: the endpoints' stage 2 is an SMMUv3's, whose translation
                    // granules are 4K, 16K and 64K (IHI 0070 §6.3.6 SMMU_IDR5.GRAN4K/16K/64K).
                    throw new PropertyRefusedException(Errno.EOPNOTSUPP.code, "granule",
                            "virtio-iommu granule=" + (g >> 10) + "k cannot be honoured by the daemon's profile 'nesting', "
                            + "whose endpoints sit behind an SMMUv3 with 4k, 16k and 64k granules; use granule=4k, 16k or 64k");
                }
                b.pageSizeMask(-g); // QEMU: page_size_mask = -(granule), every size from the granule up
            }
            if (props.awBits() != null) {
                int aw = props.awBits();
                b.inputRange(0, aw == 64 ? -1L : (1L << aw) - 1);
            }
            if (props.unalignedMaps() != null) {
                b.granuleAlignedMaps(!props.unalignedMaps());
            }
            if (props.reservedRegions() != null) {
                List<ResvRegion> rs = new ArrayList<>();
                for (VmmProperties.ReservedRegion r : props.reservedRegions()) {
                    rs.add(new ResvRegion(r.type(), r.low(), r.high()));
                }
                b.resvCommon(rs);
            }
        }
    }
}
