package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.interval.Mapping;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.virtio.iommu.Structs.Config;
import dev.iommuemu.virtqueue.DescriptorChain;
import dev.iommuemu.virtqueue.SplitVirtqueue;
import dev.iommuemu.virtqueue.VirtqRing;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * The virtio-iommu device (virtio spec, IOMMU device; device ID 23) as the transport sees it:
 * feature negotiation, the 40-byte config space, the request queue (0) and the event queue (1)
 * as split virtqueues in guest memory, reset, and DMA translation for the VMM.
 *
 * <p>How the daemon drives it (vhost-user): {@link #deviceFeatures()} / {@link #setDriverFeatures}
 * (GET/SET_FEATURES), {@link #readConfig} / {@link #writeConfig} (GET/SET_CONFIG),
 * {@link #setQueueSize}, {@link #setQueueAddresses} (guest-physical), {@link #setQueueNextAvail} /
 * {@link #queueNextAvail} (SET/GET_VRING_BASE), {@link #setQueueEnabled} (SET_VRING_ENABLE), and
 * {@link #queueNotified} on every kick. Used buffer notifications go out as
 * {@code DmaHost.raiseIrq("vq0")} / {@code "vq1"} (the daemon writes the queue's call eventfd);
 * {@link #queueNotified} also returns whether it raised one. A fault produced by
 * {@link #translate} goes to the event queue and may raise {@code "vq1"} from the calling thread.
 *
 * <p>Every public method takes the device lock, so the daemon may call from several threads.
 */
public final class VirtioIommuDevice implements IommuModel {
    public static final int DEVICE_ID = 23;
    /** Virtqueues ("Virtqueues"): 0 requestq, 1 eventq. */
    public static final int REQUEST_QUEUE = 0;
    public static final int EVENT_QUEUE = 1;
    public static final int QUEUE_COUNT = 2;

    private final VirtioIommuConfig cfg;
    private final DmaHost host;
    private final SplitVirtqueue[] queues;
    private final VirtioIommuCounters counters = new VirtioIommuCounters();
    private final DomainTable table;
    private final RequestQueue requests;
    private final EventQueue events;
    private final long offered;
    private final PvNesting nesting;
    private long negotiated;

    public VirtioIommuDevice(VirtioIommuConfig cfg, GuestMemory memory, DmaHost host) {
        this(cfg, memory, host, null);
    }

    /**
     * A device whose endpoints (those {@code nesting} knows) sit behind the emulated SMMUv3 and may
     * be given a guest-owned stage 1 (docs/nesting.md §6): offers VIRTIO_IOMMU_F_NESTING_SMMUV3,
     * which needs PROBE (a probe_size that holds the RESV_MEM properties and the 44-byte
     * SMMUV3_NESTING property). {@code nesting == null} is the plain device.
     */
    public VirtioIommuDevice(VirtioIommuConfig cfg, GuestMemory memory, DmaHost host, PvNesting nesting) {
        if (nesting != null && cfg.probeSize() < Structs.NestingProperty.SIZE) {
            throw new IllegalArgumentException("NESTING_SMMUV3 needs PROBE with room for the SMMUV3_NESTING property");
        }
        this.cfg = cfg;
        this.host = host;
        this.nesting = nesting;
        this.queues = new SplitVirtqueue[] {new SplitVirtqueue(memory, cfg.maxQueueSize()), new SplitVirtqueue(memory, cfg.maxQueueSize())};
        this.table = new DomainTable(cfg, host, counters, nesting);
        this.requests = new RequestQueue(memory, table, counters, cfg.probeSize(), nesting != null);
        this.events = new EventQueue(queues[EVENT_QUEUE], memory, counters, cfg.maxPendingFaults());
        long f = VirtioIommuFeatures.bit(VirtioIommuFeatures.INPUT_RANGE)
                | VirtioIommuFeatures.bit(VirtioIommuFeatures.DOMAIN_RANGE)
                | VirtioIommuFeatures.bit(VirtioIommuFeatures.MAP_UNMAP)
                | 1L << VirtqRing.F_INDIRECT_DESC
                | 1L << VirtqRing.F_EVENT_IDX
                | 1L << VirtqRing.F_VERSION_1;
        // "Feature bits", device requirements: new devices offer BYPASS_CONFIG, never both.
        f |= VirtioIommuFeatures.bit(cfg.legacyBypass() ? VirtioIommuFeatures.BYPASS : VirtioIommuFeatures.BYPASS_CONFIG);
        if (cfg.probeSize() > 0) {
            f |= VirtioIommuFeatures.bit(VirtioIommuFeatures.PROBE);
        }
        if (cfg.mmio()) {
            f |= VirtioIommuFeatures.bit(VirtioIommuFeatures.MMIO);
        }
        if (cfg.accessPlatform()) {
            f |= 1L << VirtqRing.F_ACCESS_PLATFORM;
        }
        if (nesting != null) {
            f |= VirtioIommuFeatures.bit(VirtioIommuFeatures.NESTING_SMMUV3);
        }
        this.offered = f;
    }

    public VirtioIommuConfig config() {
        return cfg;
    }

    // ---- features (virtio 1.2 §2.2, §3.1.1) ----

    /** The device feature bits offered. */
    public long deviceFeatures() {
        return offered;
    }

    /**
     * The driver's accepted features. Returns {@code false} (FEATURES_OK must not be set, and
     * nothing changes) when they include a bit not offered or lack VIRTIO_F_VERSION_1: this is a
     * non-transitional device (§6.1: a device that offers VERSION_1 may fail a driver that does not
     * accept it).
     */
    public synchronized boolean setDriverFeatures(long features) {
        if ((features & ~offered) != 0 || (features & 1L << VirtqRing.F_VERSION_1) == 0) {
            return false;
        }
        if (VirtioIommuFeatures.has(features, VirtioIommuFeatures.NESTING_SMMUV3)
                && !VirtioIommuFeatures.has(features, VirtioIommuFeatures.PROBE)) {
            return false; // docs/nesting.md §6: NESTING_SMMUV3 requires PROBE
        }
        negotiated = features;
        table.setNegotiated(features);
        requests.setNegotiated(features);
        events.setRecordSize(VirtioIommuFeatures.has(features, VirtioIommuFeatures.NESTING_SMMUV3)
                ? Structs.Fault.EXT_SIZE : Structs.Fault.SIZE);
        boolean eventIdx = (features & 1L << VirtqRing.F_EVENT_IDX) != 0;
        boolean indirect = (features & 1L << VirtqRing.F_INDIRECT_DESC) != 0;
        for (SplitVirtqueue q : queues) {
            q.setFeatures(eventIdx, indirect);
        }
        return true;
    }

    public synchronized long driverFeatures() {
        return negotiated;
    }

    // ---- config space ("Device configuration layout") ----

    public int configSize() {
        return Config.SIZE;
    }

    /** The 40 config bytes as the driver reads them. */
    public synchronized byte[] configBytes() {
        long[] w = new long[Config.LAYOUT.words()];
        Config.PAGE_SIZE_MASK.set(w, cfg.pageSizeMask());
        Config.INPUT_START.set(w, cfg.inputStart());
        Config.INPUT_END.set(w, cfg.inputEnd());
        Config.DOMAIN_START.set(w, cfg.domainStart() & 0xffff_ffffL);
        Config.DOMAIN_END.set(w, cfg.domainEnd() & 0xffff_ffffL);
        Config.PROBE_SIZE.set(w, cfg.probeSize());
        Config.BYPASS.set(w, table.bypassField() ? 1 : 0);
        return Structs.toBytes(w, Config.SIZE);
    }

    /** A little-endian read of {@code size} bytes at {@code offset}; bytes beyond the space read as zero. */
    public synchronized long readConfig(int offset, int size) {
        byte[] b = configBytes();
        long v = 0;
        for (int i = 0; i < size && i < 8; i++) {
            int o = offset + i;
            if (o >= 0 && o < b.length) {
                v |= (b[o] & 0xffL) << (8 * i);
            }
        }
        return v;
    }

    /**
     * A driver write. Only {@code bypass} is writable, and only with BYPASS_CONFIG negotiated and a
     * value of 0 or 1 ("Device configuration layout", driver requirements); anything else is
     * ignored and counted.
     */
    public synchronized void writeConfig(int offset, int size, long value) {
        int rel = Config.BYPASS_OFFSET - offset;
        boolean coversBypass = rel >= 0 && rel < size;
        if (!coversBypass || !VirtioIommuFeatures.has(negotiated, VirtioIommuFeatures.BYPASS_CONFIG)) {
            counters.configWritesIgnored++;
            return;
        }
        long v = (value >>> (8 * rel)) & 0xff;
        if (v > 1) {
            counters.configWritesIgnored++;
            return;
        }
        table.setBypassField(v == 1);
    }

    // ---- queues ----

    public int queueCount() {
        return QUEUE_COUNT;
    }

    public int maxQueueSize() {
        return cfg.maxQueueSize();
    }

    public synchronized boolean setQueueSize(int q, int size) {
        return validQueue(q) && queues[q].setSize(size);
    }

    public synchronized int queueSize(int q) {
        return validQueue(q) ? queues[q].size() : 0;
    }

    /** Guest-physical addresses of the descriptor table, available ring and used ring. */
    public synchronized boolean setQueueAddresses(int q, long desc, long avail, long used) {
        return validQueue(q) && queues[q].setAddresses(desc, avail, used);
    }

    public synchronized void setQueueEnabled(int q, boolean enabled) {
        if (validQueue(q)) {
            queues[q].setEnabled(enabled);
        }
    }

    public synchronized boolean queueEnabled(int q) {
        return validQueue(q) && queues[q].enabled();
    }

    /** vhost-user SET_VRING_BASE: the next available-ring index to read. */
    public synchronized void setQueueNextAvail(int q, int idx) {
        if (validQueue(q)) {
            queues[q].setNextAvail(idx);
        }
    }

    /** vhost-user GET_VRING_BASE. */
    public synchronized int queueNextAvail(int q) {
        return validQueue(q) ? queues[q].nextAvail() : 0;
    }

    /**
     * Whether queue {@code q} was loaded running ({@link #loadState}: a restart journal's state)
     * and has not been started again since ({@link #resumeQueue}).
     */
    public synchronized boolean queueResumable(int q) {
        return validQueue(q) && queues[q].resumable();
    }

    /**
     * A daemon restart's front-end starts queue {@code q} again with this layout (vhost-user
     * SET_VRING_NUM/ADDR/BASE/KICK after IOMMU_LOAD_STATE; docs/device-state-virtio.md "Restart").
     * If the queue was loaded running, has not been started since, and the layout is the saved
     * one, it resumes: it keeps its saved next available index (the front-end's SET_VRING_BASE is
     * not used), publishes each used element that was waiting whose slot the guest's used->idx
     * does not cover yet, exactly once ({@link SplitVirtqueue#resume}), and runs; the caller then
     * serves what is available ({@link #queueNotified}: kicks sent while no daemon ran may be
     * lost), which also sends the notification the published elements call for. Returns
     * {@code false} otherwise; the caller then sets the queue up afresh
     * ({@link #setQueueSize}, {@link #setQueueAddresses}, {@link #setQueueNextAvail},
     * {@link #setQueueEnabled}).
     */
    public synchronized boolean resumeQueue(int q, int size, long desc, long avail, long used) {
        if (!validQueue(q) || !queues[q].resume(size, desc, avail, used)) {
            return false;
        }
        publish(queues[q]);
        return true;
    }

    /** Whether a ring fault stopped the queue (the device needs a reset, virtio §2.1.2). */
    public synchronized boolean queueBroken(int q) {
        return validQueue(q) && queues[q].broken();
    }

    /** The queue's counters (chains, malformed chains by kind, notifications). */
    public synchronized Map<String, Long> queueCounters(int q) {
        return validQueue(q) ? queues[q].counters() : Map.of();
    }

    /**
     * The driver notified queue {@code q}: process every available buffer (requests on queue 0;
     * new event buffers on queue 1 let pending fault reports out). Returns whether a used buffer
     * notification was raised ({@code DmaHost.raiseIrq("vq" + q)}).
     */
    public synchronized boolean queueNotified(int q) {
        if (q == REQUEST_QUEUE) {
            return processRequests();
        }
        if (q == EVENT_QUEUE) {
            events.flush();
            return signal(EVENT_QUEUE, publishEvents());
        }
        return false;
    }

    /**
     * Every available request is handled before any is returned: the batch's used elements wait
     * in the queue (its saved state counts them), the host saves the state
     * ({@link DmaHost#checkpoint()}), then they are published (docs/device-state-virtio.md
     * "Restart": a restarted device either has a request's effects and its used element, or
     * neither).
     */
    private boolean processRequests() {
        SplitVirtqueue vq = queues[REQUEST_QUEUE];
        boolean notify = false;
        do {
            DescriptorChain c;
            // pop() stops once every used slot has an element waiting (§2.7.8: size slots).
            while ((c = vq.pop()) != null) {
                if (!c.returnable()) {
                    // A head index beyond the table names no buffer: nothing to answer or return.
                    counters.malformedChains++;
                    counters.skippedHeads++;
                    continue;
                }
                vq.complete(c.head(), requests.handle(c));
            }
            publish(vq);
            // Publishing avail_event happens in needsNotification; re-check for buffers the
            // driver added meanwhile (§2.7.10), so none is left without a kick.
            notify |= vq.needsNotification();
        } while (vq.hasAvailable());
        return signal(REQUEST_QUEUE, notify);
    }

    /** The event queue's returned buffers go to the guest; whether the driver wants a notification. */
    private boolean publishEvents() {
        SplitVirtqueue vq = queues[EVENT_QUEUE];
        publish(vq);
        return vq.needsNotification();
    }

    /**
     * The used elements waiting in {@code vq} become visible to the guest (§2.7.8), after the host
     * has had the chance to save the state that includes them ({@link DmaHost#checkpoint()}).
     */
    private void publish(SplitVirtqueue vq) {
        if (vq.completedCount() > 0) {
            host.checkpoint();
            vq.publish();
        }
    }

    private boolean signal(int q, boolean notify) {
        if (notify) {
            host.raiseIrq("vq" + q);
        }
        return notify;
    }

    private boolean validQueue(int q) {
        return q >= 0 && q < QUEUE_COUNT;
    }

    // ---- topology ----

    /**
     * The endpoints that have a device on the VMM's bus (its PCI requester IDs behind this IOMMU),
     * given at start and after every hotplug or unplug. Until the first call every endpoint of the
     * configured ranges exists. ATTACH, DETACH, PROBE (and the nesting requests) naming an endpoint
     * not in the set answer VIRTIO_IOMMU_S_NOENT ("Device operations": the device MUST), an
     * endpoint that left is detached from its domain, and DMA of an unknown endpoint is aborted
     * without a fault record (there is no valid endpoint ID to report, "Fault reporting").
     * The topology is the bus's, so resets keep it.
     */
    public synchronized void setEndpoints(java.util.Set<Integer> present) {
        table.setTopology(present);
    }

    /** Whether endpoint {@code ep} exists (configured ranges and the VMM's topology). */
    public synchronized boolean endpointExists(int ep) {
        return table.exists(ep);
    }

    // ---- reset ----

    /**
     * Device reset (virtio §2.1, §2.4): queues and negotiated features cleared, every endpoint
     * detached, pending fault reports discarded. Config bypass keeps its value ("SHOULD NOT change on
     * device reset"); cached translations are invalidated.
     */
    public synchronized void reset() {
        for (SplitVirtqueue q : queues) {
            q.reset();
        }
        negotiated = 0;
        table.reset();
        requests.setNegotiated(0);
        events.reset();
        events.setRecordSize(Structs.Fault.SIZE);
    }

    /** System reset: a device reset that also restores config bypass to its initial value. */
    public synchronized void systemReset() {
        reset();
        table.setBypassField(cfg.bypass());
    }

    // ---- translation ----

    /**
     * IommuModel: {@code endpoint} is the virtio-iommu endpoint ID; {@code substream} (the PASID)
     * matters only for an endpoint in a table domain (docs/nesting.md §6), else it is ignored.
     */
    @Override
    public DmaResult translate(int endpoint, int substream, long iova, DmaAccess access) {
        return translateDetailed(endpoint, substream, iova, access).result();
    }

    /** IommuModel: a mapping's translation for the VMM's cache, without any fault report. */
    @Override
    public synchronized IotlbEntry speculate(int endpoint, int substream, long iova, DmaAccess access) {
        return table.speculate(endpoint, substream, iova, access);
    }

    /**
     * Translates one access and tells whether it targets an MMIO mapping. A fault is posted to the
     * event queue (or held / dropped, see {@link EventQueue}) before this returns.
     */
    public synchronized Translation translateDetailed(int endpoint, long iova, DmaAccess access) {
        return translateDetailed(endpoint, -1, iova, access);
    }

    /** As {@link #translateDetailed(int, long, DmaAccess)} with a PASID ({@code -1}: none). */
    public synchronized Translation translateDetailed(int endpoint, int pasid, long iova, DmaAccess access) {
        Translation t = table.translate(endpoint, pasid, iova, access);
        if (t.fault() != null) {
            events.post(t.fault());
            signal(EVENT_QUEUE, publishEvents());
        }
        if (nesting != null && !(t.result() instanceof DmaResult.Translated)) {
            // Faults the host forwarded (docs/nesting.md §6) become fault records, in order. The
            // host model only records events for an access that did not translate.
            List<FaultEvent> forwarded = nesting.drainFaults();
            for (FaultEvent e : forwarded) {
                events.post(e);
            }
            if (!forwarded.isEmpty()) {
                signal(EVENT_QUEUE, publishEvents());
            }
            if (t.fault() == null && !forwarded.isEmpty()) {
                t = new Translation(t.result(), t.mmio(), forwarded.get(0));
            }
        }
        return t;
    }

    /** The nesting host, or {@code null}. */
    public PvNesting nesting() {
        return nesting;
    }

    // ---- saved state (live migration, back-end restart: docs/device-state-virtio.md) ----

    /**
     * The device's state now (an immutable snapshot; the device keeps running). Called from
     * {@link DmaHost#checkpoint()} (same thread, this lock is re-entrant), it includes the batch
     * about to be published: each queue's next available index past the batch's chains, its used
     * index past the batch's used elements, and those elements ({@link SplitVirtqueue.State}).
     */
    public synchronized VirtioIommuState saveState() {
        return new VirtioIommuState(VirtioIommuState.Identity.of(cfg, offered), negotiated, table.bypassField(),
                table.savedTopology(), table.savedDomains(), events.savedPending(),
                List.of(queues[REQUEST_QUEUE].state(), queues[EVENT_QUEUE].state()),
                nesting == null ? null : nesting.saveState());
    }

    /** {@link #loadState(VirtioIommuState, PvNesting)} of a device without nesting. */
    public synchronized void loadState(VirtioIommuState s) {
        loadState(s, null);
    }

    /**
     * Makes {@code s} the device's state, entirely or not at all: every check runs before anything
     * changes, and a state this device could not have produced, or one saved by a device built
     * differently, is refused with an {@link IllegalArgumentException} whose message is a sentence
     * (docs/device-state-virtio.md lists them). Call it with the rings stopped (vhost-user: after
     * GET_VRING_BASE, before the rings are started again), or on a fresh device after a daemon
     * restart: it takes the device lock, so no request or translation runs during the swap. A
     * queue saved running is marked for {@link #resumeQueue} (a later load or a reset drops the
     * mark); one saved with used elements waiting does nothing until then.
     *
     * @param restored for a nesting device, the nesting host rebuilt from the saved iommufd state
     *                 (whose {@link PvNesting#saveState()} is {@code s.nesting()}); it replaces this
     *                 device's nesting host in place. {@code null} for a device without nesting.
     */
    public synchronized void loadState(VirtioIommuState s, PvNesting restored) {
        String why = refusal(s, restored);
        if (why != null) {
            throw new IllegalArgumentException("virtio-iommu state refused: " + why + ".");
        }
        if (nesting != null) {
            nesting.adopt(restored);
        }
        long f = s.driverFeatures();
        table.restore(s);
        requests.setNegotiated(f);
        int size = VirtioIommuFeatures.has(f, VirtioIommuFeatures.NESTING_SMMUV3) ? Structs.Fault.EXT_SIZE : Structs.Fault.SIZE;
        events.restore(s.pendingFaults(), size);
        boolean eventIdx = (f & 1L << VirtqRing.F_EVENT_IDX) != 0;
        boolean indirect = (f & 1L << VirtqRing.F_INDIRECT_DESC) != 0;
        for (int q = 0; q < QUEUE_COUNT; q++) {
            queues[q].setFeatures(eventIdx, indirect);
            queues[q].restore(s.queues().get(q));
        }
        negotiated = f;
    }

    private String refusal(VirtioIommuState s, PvNesting restored) {
        VirtioIommuState.Identity mine = VirtioIommuState.Identity.of(cfg, offered);
        String differs = mine.difference(s.identity());
        if (differs != null) {
            return "it was saved by a device built differently: " + differs
                    + "; start the destination with the source's profile and properties";
        }
        long f = s.driverFeatures();
        if (f != 0 && ((f & ~offered) != 0 || (f & 1L << VirtqRing.F_VERSION_1) == 0
                || (VirtioIommuFeatures.has(f, VirtioIommuFeatures.NESTING_SMMUV3) && !VirtioIommuFeatures.has(f, VirtioIommuFeatures.PROBE)))) {
            return "its driver features 0x" + Long.toHexString(f) + " are not a set this device accepts from a driver (offered 0x"
                    + Long.toHexString(offered) + ")";
        }
        if ((nesting == null) != (s.nesting() == null) || (nesting == null) != (restored == null)) {
            return nesting == null ? "it carries paravirtual nesting state, and this device has no nesting host"
                    : "it has no paravirtual nesting state, and this device has a nesting host";
        }
        if (s.queues().size() != QUEUE_COUNT) {
            return "it has " + s.queues().size() + " virtqueues, and virtio-iommu has " + QUEUE_COUNT;
        }
        for (int q = 0; q < QUEUE_COUNT; q++) {
            String why = queues[q].refusal(s.queues().get(q));
            if (why != null) {
                return "virtqueue " + q + ": " + why;
            }
        }
        int size = VirtioIommuFeatures.has(f, VirtioIommuFeatures.NESTING_SMMUV3) ? Structs.Fault.EXT_SIZE : Structs.Fault.SIZE;
        String why = events.refusal(s.pendingFaults(), size);
        return why != null ? why : table.refusal(s, restored);
    }

    // ---- the VMM's request hand-off (docs/protocol.md §4.13, version 14) ----

    /** The request queue's state for the VMM's hand-off ({@link RequestQueueHandOff}). */
    public synchronized RequestQueueHandOff requestQueueHandOff() {
        SplitVirtqueue q = queues[REQUEST_QUEUE];
        return new RequestQueueHandOff(q.running() && !q.resumable(), q.descAddr(), q.availAddr(), q.usedAddr(), q.size(),
                q.nextAvail(), q.usedIdx(), q.eventIdx(), q.indirect(), VirtioIommuFeatures.has(negotiated,
                VirtioIommuFeatures.MAP_UNMAP), cfg.inputStart(), cfg.inputEnd(),
                cfg.granuleAlignedMaps() ? cfg.granule() - 1 : 0, table.totalMappings(), cfg.maxMappings(),
                maxMirroredMappings(), nesting != null);
    }

    /** §4.13 max_per_domain: the device's bound on one domain's mappings, at most a slot's 1024. */
    private int maxMirroredMappings() {
        return Math.min(MirroredDomain.MAX_MAPPINGS, cfg.maxMappingsPerDomain());
    }

    /** Domain {@code id} as the hand-off mirrors it, or empty when it has no mirror ({@link DomainTable#mirrored}). */
    public synchronized Optional<MirroredDomain> mirroredDomain(int id) {
        return Optional.ofNullable(table.mirrored(id, maxMirroredMappings()));
    }

    /** Every domain the hand-off mirrors, in no particular order. */
    public synchronized List<MirroredDomain> mirroredDomains() {
        List<MirroredDomain> out = new ArrayList<>();
        for (int id : table.domainIds()) {
            MirroredDomain m = table.mirrored(id, maxMirroredMappings());
            if (m != null) {
                out.add(m);
            }
        }
        return out;
    }

    /** The domains whose endpoints or mappings changed since the last call (then forgotten). */
    public synchronized ChangedDomains takeChangedDomains() {
        return table.takeChanged();
    }

    /**
     * The requests the VMM served itself (§4.13), applied in order as the request queue would
     * have ({@link RequestQueue#applyLogged}: the same MAP / UNMAP, the same counters); then queue
     * 0 continues from {@code nextAvail} and {@code usedIdx}, the used index also being the one its
     * next notification is decided from ({@link SplitVirtqueue#handOver}). Returns how many requests
     * the device did not complete with S_OK, plus 1 when the queue refused the positions: a VMM
     * fault, after which the device's state stands. Every domain a logged request names is marked
     * changed, so its slot is rewritten from the model before the lock is given back (after a
     * restart the log is a replay the new daemon's slots never saw).
     */
    public synchronized int applyVmmRequests(List<VmmRequest> log, int nextAvail, int usedIdx) {
        int rejected = 0;
        for (VmmRequest r : log) {
            // every domain a logged request names is rewritten from the model: a log replayed after
            // a restart (§4.10) changed mirrors the new daemon's memory never had
            table.markChanged(r.domain());
            if (requests.applyLogged(r) != Status.OK) {
                rejected++;
            }
        }
        if (!queues[REQUEST_QUEUE].handOver(nextAvail, usedIdx)) {
            counters.handOversRefused++;
            rejected++; // positions that would put the VMM's completions over the device's own
        }
        return rejected;
    }

    // ---- introspection (control API, tests) ----

    public VirtioIommuCounters counters() {
        return counters;
    }

    public synchronized OptionalInt domainOf(int endpoint) {
        DomainTable.Domain d = table.domainOf(endpoint);
        return d == null ? OptionalInt.empty() : OptionalInt.of(d.id);
    }

    public synchronized boolean domainIsBypass(int domain) {
        DomainTable.Domain d = table.domain(domain);
        return d != null && d.bypass;
    }

    public synchronized int domainCount() {
        return table.domainCount();
    }

    public synchronized long mappingCount() {
        return table.totalMappings();
    }

    public synchronized List<Mapping> mappings(int domain) {
        return table.mappings(domain);
    }

    public synchronized int pendingFaults() {
        return events.pendingCount();
    }
}
