package dev.iommuemu.bridge.device;

import dev.iommuemu.dma.IommuModel;
import java.util.List;
import java.util.Map;

/**
 * The seam between the daemon and one emulated IOMMU instance: everything the VMM protocol and
 * the control API ask of a device model, and nothing about sockets, fds or threads. One instance
 * serves one VMM connection (or one control-API session). The daemon calls it from one thread at
 * a time (it holds the session's lock), so an implementation needs no locking of its own.
 *
 * <p>A device gets its {@link dev.iommuemu.memory.GuestMemory} and {@link dev.iommuemu.dma.DmaHost}
 * from the {@link DeviceContext} its {@link DeviceFactory} receives. The SMMUv3 adapter implements
 * the MMIO methods (pages 0 and 1) and leaves the virtio ones at their defaults; the virtio-iommu
 * adapter does the reverse. Unsupported operations throw {@link UnsupportedOperationException},
 * which the daemon turns into an error reply (ENOSYS).
 */
public interface BridgedDevice extends AutoCloseable {

    /** The model name: "smmuv3", "virtio-iommu" (or a test model). */
    String model();

    /** The profile the instance was built with. */
    String profile();

    /** DMA translation (IOMMU_TRANSLATE, the control API's Translate). */
    IommuModel iommu();

    /** Size of the MMIO register space in bytes (SMMUv3: 0x20000, pages 0 and 1); 0 if none. */
    default long mmioSize() {
        return 0;
    }

    /**
     * An MMIO read of {@code size} (1, 2, 4, 8) bytes at {@code offset} in the register space.
     * The daemon has checked that the access lies inside {@link #mmioSize()}.
     */
    default long mmioRead(long offset, int size) {
        throw new UnsupportedOperationException(model() + " has no MMIO registers");
    }

    /** An MMIO write; side effects (commands, invalidations, interrupts) run before it returns. */
    default void mmioWrite(long offset, int size, long value) {
        throw new UnsupportedOperationException(model() + " has no MMIO registers");
    }

    /**
     * The registers the VMM may read from the shared register mirror (docs/protocol.md §4.8): those
     * drivers poll, whose reads have no side effects. None by default.
     */
    default List<MirroredRegister> mirroredRegisters() {
        return List.of();
    }

    /**
     * A mirrored register's value for the mirror: an MMIO read that is neither counted nor recorded
     * (it changes nothing, and a replay does not need it).
     */
    default long peekRegister(long offset, int size) {
        return mmioRead(offset, size);
    }

    /**
     * Names of the interrupt lines, in the order the VMM numbers them in IOMMU_SET_IRQ_FD; the
     * same names the model passes to {@link dev.iommuemu.dma.DmaHost#raiseIrq}. (Virtqueue used-
     * buffer notifications use the names "vq0", "vq1", ... and go to the SET_VRING_CALL fds.)
     */
    default List<String> irqLines() {
        return List.of();
    }

    /** virtio device feature bits offered (virtio 1.x §2.2); the daemon adds vhost-user's own. */
    default long virtioFeatures() {
        return 0;
    }

    /** The features the driver accepted (SET_FEATURES, minus vhost-user's bit 30). */
    default void setVirtioFeatures(long features) {}

    /**
     * An ATS Translation Request from endpoint {@code streamId} (PCIe ATS; IHI 0070 §3.9): the
     * result may be cached in the endpoint's ATC until {@link EndpointHost#atcInvalidate}. A model
     * checks that the stream may use ATS (SMMUv3 STE.EATS) and answers as the spec says.
     */
    default dev.iommuemu.dma.DmaResult atsTranslate(int streamId, int substreamId, long iova, dev.iommuemu.dma.DmaAccess access) {
        throw new UnsupportedOperationException(model() + " does not implement ATS translation requests");
    }

    /**
     * {@link #atsTranslate(int, int, long, dev.iommuemu.dma.DmaAccess)} with the request's PCIe
     * fields: {@code write} is NW == 0, {@code exe} and {@code priv} the PASID prefix's Execute and
     * Privileged requests, which a Translation Request may combine with write (a DmaAccess cannot).
     */
    default dev.iommuemu.dma.DmaResult atsTranslate(int streamId, int substreamId, long iova, boolean write,
            boolean exe, boolean priv) {
        return atsTranslate(streamId, substreamId, iova, new dev.iommuemu.dma.DmaAccess(write, exe, priv));
    }

    /** A PRI Page Request from an endpoint (PCIe PRI; SMMUv3 PRI queue, IHI 0070 §3.10). */
    default void pageRequest(PageRequest request) {
        throw new UnsupportedOperationException(model() + " does not implement PRI page requests");
    }

    /** Reads {@code length} bytes of the device config space (virtio 1.x §4.1.4.6; GET_CONFIG). */
    default byte[] readConfig(int offset, int length) {
        throw new UnsupportedOperationException(model() + " has no config space");
    }

    /** Writes config space bytes (SET_CONFIG). */
    default void writeConfig(int offset, byte[] data) {
        throw new UnsupportedOperationException(model() + " has no config space");
    }

    /** Number of virtqueues (virtio-iommu: requestq and eventq, virtio 1.x §5.13.2). */
    default int numQueues() {
        return 0;
    }

    /** Starts serving queue {@code index} as laid out in guest memory (after SET_VRING_KICK). */
    default void queueStart(int index, Vring ring) {
        throw new UnsupportedOperationException(model() + " has no virtqueues");
    }

    /** Stops queue {@code index}; returns the next available-ring index to process (GET_VRING_BASE). */
    default int queueStop(int index) {
        throw new UnsupportedOperationException(model() + " has no virtqueues");
    }

    /** The driver made buffers available in queue {@code index} (a kick). */
    default void queueNotified(int index) {}

    /**
     * The endpoints that have a device on the VMM's bus (IOMMU_SET_ENDPOINTS, docs/protocol.md
     * §4.7): virtio-iommu endpoint IDs, SMMUv3 StreamIDs. Sent at start and after each hotplug or
     * unplug; the whole set each time. Resets keep it (it describes the bus, not the IOMMU).
     */
    default void setEndpoints(java.util.Set<Integer> present) {
        throw new UnsupportedOperationException(model() + " has no endpoint topology");
    }

    /**
     * The VMM found neither memory nor a device at the address of an MSI this device sent through
     * {@link dev.iommuemu.dma.DmaHost#msi(long, int, dev.iommuemu.dma.MsiSource)} (IOMMU_MSI_ABORTED,
     * docs/protocol.md §4). Returns the name of the error it activated, or {@code null}; by default
     * (a model without such MSIs, e.g. virtio-iommu) nothing changes.
     */
    default String msiAborted(long address, int data, dev.iommuemu.dma.MsiSource source) {
        return null;
    }

    /**
     * Puts the device in its service failure state, an IMPLEMENTATION DEFINED error a driver must
     * recover from (SMMUv3: service failure mode, SMMU_GERROR.SFM_ERR; the control API's Inject).
     * Returns whether it was entered now ({@code false}: already in it).
     */
    default boolean injectServiceFailure() {
        throw new UnsupportedOperationException(model() + " has no service failure mode");
    }

    /** Device reset (RESET_DEVICE, or virtio status 0): back to the reset state. */
    default void reset() {}

    /**
     * The walk recipe the VMM may use for {@code endpoint}'s translations without a substream
     * (docs/protocol.md §4.8 "Walk recipes", version 12): asked after such a translation succeeded,
     * for unprivileged requests. None by default (virtio-iommu: its mappings are no tables to walk).
     */
    default java.util.Optional<dev.iommuemu.pagetable.WalkRecipe> walkRecipe(int endpoint) {
        return java.util.Optional.empty();
    }

    /**
     * The command queue's state for the VMM's command-queue hand-off (docs/protocol.md §4.12,
     * version 13): {@code ok} (whether the VMM may consume commands itself), SMMU_CMDQ_BASE as the
     * model uses it, SMMU_CMDQ_PROD, SMMU_CMDQ_CONS, {@code features} (bit 0 MSI, bit 1 RIL), the
     * OAS in bits and the index of the line a CMD_SYNC with SIG_IRQ pulses (0xffffffff: none).
     */
    record CommandQueueState(boolean ok, long cmdqBase, int prod, int cons, int features, int oasBits, int syncLine) {}

    /** The state above, or empty for a model without a command queue (virtio-iommu): no hand-off. */
    default java.util.Optional<CommandQueueState> commandQueueState() {
        return java.util.Optional.empty();
    }

    /**
     * The commands the VMM consumed itself (§4.12), {@code count} of two words each in {@code words},
     * executed as the model's queue would have without signalling any completion again, then
     * SMMU_CMDQ_PROD and SMMU_CMDQ_CONS set to {@code prod} and {@code cons}. Returns how many
     * commands the model rejected and skipped; never throws for what the commands hold.
     */
    default int applyVmmCommands(long[] words, int count, int prod, int cons) {
        throw new UnsupportedOperationException(model() + " has no command queue the VMM could consume");
    }

    /**
     * The request queue's state for the VMM's virtio-iommu request hand-off (docs/protocol.md
     * §4.13, version 14), or empty for a model without one (SMMUv3): no hand-off.
     */
    default java.util.Optional<dev.iommuemu.virtio.iommu.RequestQueueHandOff> requestQueueHandOff() {
        return java.util.Optional.empty();
    }

    /** Domain {@code id} as the §4.13 mirror holds it, or empty when it has no mirror. */
    default java.util.Optional<dev.iommuemu.virtio.iommu.MirroredDomain> mirroredDomain(int id) {
        return java.util.Optional.empty();
    }

    /** Every domain the §4.13 mirror holds. */
    default List<dev.iommuemu.virtio.iommu.MirroredDomain> mirroredDomains() {
        return List.of();
    }

    /** The domains whose mirror changed since the last call (§4.13), then forgotten. */
    default dev.iommuemu.virtio.iommu.ChangedDomains takeChangedDomains() {
        return dev.iommuemu.virtio.iommu.ChangedDomains.NONE;
    }

    /**
     * The MAP and UNMAP requests the VMM served itself (§4.13), applied as the request queue would
     * have, then queue 0's next available and used indexes set to {@code nextAvail} and
     * {@code usedIdx}. Returns how many the model did not complete with S_OK; never throws for what
     * the requests hold.
     */
    default int applyVmmRequests(List<dev.iommuemu.virtio.iommu.VmmRequest> log, int nextAvail, int usedIdx) {
        throw new UnsupportedOperationException(model() + " has no request queue the VMM could serve");
    }

    /**
     * System reset (IOMMU_SYSTEM_RESET: the machine was reset): the power-on state. The same as
     * {@link #reset()} unless the model keeps state across a device reset (virtio-iommu's config
     * bypass, which "SHOULD NOT change on device reset" but returns to its initial value here).
     */
    default void systemReset() {
        reset();
    }

    /**
     * The model's own counters (e.g. "tlb_hits", "tlb_misses", "commands", "events") for the
     * control API; the daemon adds its own (translations, faults, messages).
     */
    default Map<String, Long> counters() {
        return Map.of();
    }

    /**
     * Sends the model's findings about the guest's driver ({@link Finding}: SMMUv3 strict mode) to
     * {@code sink} from now on, each as it is made, on the thread of the call that made it (the
     * daemon holds the session lock). Returns whether this device makes findings at all.
     */
    default boolean reportFindings(java.util.function.Consumer<Finding> sink) {
        return false;
    }

    /** Diagnostics for tools (decoded STE/CD, explained walks), or {@code null} if the model has none. */
    default Diagnostics diagnostics() {
        return null;
    }

    /**
     * Makes this device the physical IOMMU of a modelled host with the iommufd nesting model
     * (docs/nesting.md), its host structures in {@code [carveBase, carveBase + carveSize)}.
     */
    default dev.iommuemu.iommufd.Iommufd openIommufd(long carveBase, long carveSize, int streamTableLog2) {
        throw new UnsupportedOperationException(model() + " cannot be a nesting host's physical IOMMU");
    }

    /** The host opened by {@link #openIommufd}, or {@code null}. */
    default dev.iommuemu.iommufd.Iommufd iommufd() {
        return null;
    }

    /**
     * The device's architectural state as a versioned blob (docs/device-state.md: a serialized
     * iommuemu.devstate.v1.DeviceState), for live migration and daemon restart; caches are not in it. The
     * daemon calls it under the session's lock, like every call here, so no other call runs
     * meanwhile. A model that cannot save its state throws {@link UnsupportedOperationException}.
     */
    default byte[] saveState() {
        throw new UnsupportedOperationException(model() + " cannot save its device state (docs/device-state.md)");
    }

    /**
     * Replaces the device's state with {@code state}, a blob {@link #saveState()} produced on a
     * device of the same model and profile. A blob of another format version, model or profile, or a
     * state the model could not have produced, is refused with an {@link IllegalArgumentException}
     * whose message is a sentence, and the device is unchanged: a state is loaded whole or not at
     * all. Called under the session's lock; what quiescence a model needs besides is its own
     * documentation's. A model that cannot load a state throws {@link UnsupportedOperationException}.
     */
    default void loadState(byte[] state) {
        throw new UnsupportedOperationException(model() + " cannot load a device state (docs/device-state.md)");
    }

    /**
     * Whether a translation changes the device's state only with a {@link
     * dev.iommuemu.dma.DmaHost#checkpoint()} before the change is published (virtio-iommu: a fault
     * report), so that the daemon's restart journal (docs/protocol.md §4.10) need not save the
     * state after every translation. By default a translation may change it silently (SMMUv3:
     * an event record without an interrupt, a stall).
     */
    default boolean translationsCheckpoint() {
        return false;
    }

    /** Releases model resources; the daemon closes fds and memory itself afterwards. */
    @Override
    default void close() {}

    /**
     * A split virtqueue as SET_VRING_NUM/ADDR/BASE described it, with addresses already turned
     * from VMM virtual addresses into guest physical addresses (virtio 1.x §2.7).
     */
    record Vring(int size, long descTable, long availRing, long usedRing, int nextAvail) {}

    /**
     * A PCIe Page Request message (PCIe r6.0 §10.4.1): requester (stream) and PASID (substream, or
     * {@link dev.iommuemu.dma.IommuModel#NO_SUBSTREAM}), page address, the Page Request Group index
     * and its fields R, W, Execute, Privileged, L (last of the group) and whether it is a Stop PASID
     * marker (L = 1, R = W = 0, with a PASID).
     */
    record PageRequest(int streamId, int substreamId, long address, int groupIndex, boolean read, boolean write,
            boolean exec, boolean priv, boolean last, boolean stop) {

        /** A request for {@code access} (read when it is not a write: the protobuf Inject's form). */
        public static PageRequest of(int streamId, int substreamId, long address, dev.iommuemu.dma.DmaAccess access,
                int groupIndex, boolean last) {
            return new PageRequest(streamId, substreamId, address, groupIndex, !access.write(), access.write(),
                    access.instruction(), access.privileged(), last, false);
        }

        /** Why this is not a well-formed Page Request, or null. */
        public String malformed() {
            if (stop && substreamId == dev.iommuemu.dma.IommuModel.NO_SUBSTREAM) {
                return "a Stop PASID marker needs a PASID (substream)";
            }
            if (stop && (read || write)) {
                return "a Stop PASID marker has R = W = 0";
            }
            if (!stop && !read && !write) {
                return "a page request asks for read, write or both";
            }
            return null;
        }

        /** The PCIe fields for logs: "R W X P L S", '-' where clear. */
        public String fields() {
            return (read ? "R" : "-") + (write ? "W" : "-") + (exec ? "X" : "-") + (priv ? "P" : "-") + (last ? "L" : "-")
                    + (stop ? "S" : "-");
        }
    }
}
