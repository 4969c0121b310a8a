package dev.iommuemu.bridge.session;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.Diagnostics;
import dev.iommuemu.bridge.device.PropertyRefusedException;
import dev.iommuemu.bridge.device.VmmProperties;
import dev.iommuemu.bridge.memory.MappedGuestMemory;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.Payloads.TranslateReply;
import dev.iommuemu.bridge.protocol.Payloads.TranslateRequest;
import dev.iommuemu.bridge.protocol.Payloads.TranslateResult;
import dev.iommuemu.bridge.protocol.PropertyPayloads;
import dev.iommuemu.bridge.protocol.Protocol;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;
import java.util.logging.Logger;

/**
 * One emulated IOMMU instance with its guest memory and host callbacks: what a VMM connection (or
 * a control-API client acting as the VMM) drives. Every call into the device or the memory holds
 * the session lock, so the model runs single-threaded and memory is never unmapped under it.
 * Errors in arguments come back as refused {@link ProtocolException}s with a Linux errno.
 */
public final class DeviceSession implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(DeviceSession.class.getName());

    private final long id;
    private final String origin;
    private final ReentrantLock lock = new SessionLock();
    private final MappedGuestMemory memory = new MappedGuestMemory(Protocol.MAX_MEM_SLOTS);
    private final SessionHost host = new SessionHost(this);
    /** docs/recording.md: the model's memory and host as the recorder sees them (pass-through when not recording). */
    private final dev.iommuemu.memory.RecordingGuestMemory tapped = new dev.iommuemu.memory.RecordingGuestMemory(memory);
    private final dev.iommuemu.bridge.recording.OperationRecorder recorder = new dev.iommuemu.bridge.recording.OperationRecorder();
    private final dev.iommuemu.bridge.recording.RecordingHost recordingHost = new dev.iommuemu.bridge.recording.RecordingHost(host, host, recorder);
    /** The session's recording (docs/recording.md), or null; guarded by the lock. */
    private dev.iommuemu.bridge.recording.SessionRecording recording;
    /** Whether the recording began after the model was used (its header says so). */
    private boolean recordingMidSession;
    private final Counters counters;
    private final EventBus events;
    /** The device's findings about the guest's driver (strict mode), kept across device resets and rebuilds. */
    private final SessionFindings findings;
    private DeviceFactory factory;
    /** The VMM's shared translation cache and register mirror (docs/protocol.md §4.8), or null; guarded by the lock. */
    private dev.iommuemu.bridge.fastpath.SharedCache shared;
    /** The bound on waiting for the VMM's command-queue lock (docs/protocol.md §4.12; 5 s, settable for tests). */
    private volatile long commandLockTimeoutNanos = dev.iommuemu.bridge.fastpath.CommandHandOff.DEFAULT_TIMEOUT_NANOS;
    /** The shared memory's walked_pages (§4.8 version 12) when last counted; guarded by the lock. */
    private long walkedSeen;
    /** The restart journal (docs/protocol.md §4.10), or null; and the MMIO writes applied since it was set. */
    private dev.iommuemu.bridge.restart.StateJournal journal;
    private long journalWrites;
    /**
     * docs/protocol.md §4.13: every domain slot must be written afresh at the next release of the
     * request hand-off's lock (a new shared memory, another model); guarded by the lock.
     */
    private boolean requestSlotsStale;
    /** Whether the VMM's logged requests are being applied (their invalidations republish no slot). */
    private boolean drainingRequests;
    /** Applying a request log with the region's lock given back (§4.13): the shared memory is the VMM's. */
    private boolean applyingUnlocked;
    /** A log at least this long is applied with the region's lock given back (§4.13; the VMM kicks at 512). */
    public static final int APPLY_UNLOCKED = 64;
    /** Tests only: runs after a log was applied with the region's lock given back, before it is taken again. */
    private static volatile Runnable unlockedApplyHook;

    /** Tests only (RequestHandOffSessionTest): what the VMM does while the daemon applies a long log unlocked. */
    public static void unlockedApplyHook(Runnable r) {
        unlockedApplyHook = r;
    }
    /** The VMM's dirty log (docs/protocol.md §4.11), or null; guarded by the lock. */
    private dev.iommuemu.bridge.memory.DirtyLog dirtyLog;
    /** Its counts go into the session's counters (the log calls under the lock). */
    private final dev.iommuemu.bridge.memory.DirtyLog.Listener dirtyLogCounts = new dev.iommuemu.bridge.memory.DirtyLog.Listener() {
        @Override
        public void marked(long pages) {
            counters.add(Counter.DIRTY_LOG_PAGES, pages);
        }

        @Override
        public void overflow() {
            counters.inc(Counter.DIRTY_LOG_OVERFLOWS);
        }
    };
    /**
     * Whether a translation may change the device's state without a checkpoint, so that the journal
     * saves after each (SMMUv3: event records, stalls); virtio-iommu checkpoints its fault reports.
     */
    private boolean translationsChange = true;
    /** The model journaled a checkpoint during the current call (DmaHost#checkpoint). */
    private boolean checkpointed;
    private BridgedDevice device;
    private boolean touched;
    /** Whether the driver's set-up of the device began (Request#usesDevice): properties are fixed from then. */
    private boolean used;
    /** The VMM device's properties the device was built with (IOMMU_SET_PROPERTIES). */
    private VmmProperties properties = VmmProperties.NONE;
    /** The endpoints with devices (IOMMU_SET_ENDPOINTS), or null when the VMM never said. */
    private Set<Integer> endpoints;
    /** The nesting host the queue eventfds of {@link #setEventqFd} belong to, or null. */
    private dev.iommuemu.iommufd.Iommufd eventqOwner;
    private volatile String failure;
    /** Wakes the connection thread after a failure off it (VhostUserConnection#shutdown). */
    private volatile Runnable failWaker = () -> { };
    /** close() is under way: the session lock no longer needs the VMM's command-queue lock. */
    private volatile boolean closing;
    private volatile boolean closed;
    /** Whether shared memory must be a memfd sealed against shrinking (docs/daemon.md). */
    private volatile boolean requireSeals = true;

    public DeviceSession(long id, String origin, DeviceFactory factory, String profile, Counters totals, EventBus events) {
        this.id = id;
        this.origin = origin;
        this.counters = new Counters(totals);
        this.events = events;
        this.findings = new SessionFindings(id, events::publish);
        install(factory, profile);
    }

    private void install(DeviceFactory f, String profile) {
        install(f, profile, VmmProperties.NONE);
    }

    private void install(DeviceFactory f, String profile, VmmProperties props) {
        String p = profile == null || profile.isEmpty() ? f.profiles().get(0) : profile;
        BridgedDevice raw = f.create(p, props, new DeviceContext(tapped, recordingHost, recordingHost));
        BridgedDevice d = new dev.iommuemu.bridge.recording.RecordingDevice(raw, recorder, this::unrecordable);
        if (endpoints != null) {
            try {
                raw.setEndpoints(endpoints); // the bus did not change with the device
            } catch (UnsupportedOperationException e) {
                // a model without endpoint topology: every endpoint is its own business
            } catch (RuntimeException e) {
                d.close();
                throw e;
            }
        }
        properties = props;
        if (device != null) {
            device.close();
        }
        factory = f;
        device = d;
        requestSlotsStale = true;
        translationsChange = !d.translationsCheckpoint();
        findings.enable(d.reportFindings(findings::found));
        host.setLines(d.irqLines());
        if (shared != null) {
            // another model: nothing it translated is cached, and it mirrors its own registers
            shared.clearAll();
            shared.mirror(d.mirroredRegisters(), this::peek);
        }
        if (recording != null && recording.hasHeader()) {
            // a recording already under way sees the rebuilt model as an operation of its own
            recorder.standalone(op -> op.setCreate(dev.iommuemu.proto.v1.CreateOp.newBuilder().setModel(f.model())
                    .setProfile(d.profile()).setProperties(dev.iommuemu.bridge.recording.RecordingCodec.properties(props))
                    .mergeFrom(endpointsMessage())));
        }
    }

    // ---- recording (docs/recording.md)

    private dev.iommuemu.proto.v1.CreateOp endpointsMessage() {
        dev.iommuemu.proto.v1.CreateOp.Builder b = dev.iommuemu.proto.v1.CreateOp.newBuilder();
        if (endpoints != null) {
            b.setEndpoints(dev.iommuemu.bridge.recording.RecordingCodec.endpoints(endpoints));
        }
        return b.build();
    }

    /** The header of a recording beginning now (under the lock). */
    private dev.iommuemu.proto.v1.RecordingHeader recordingHeader() {
        dev.iommuemu.proto.v1.RecordingHeader.Builder h = dev.iommuemu.proto.v1.RecordingHeader.newBuilder()
                .setFormatVersion(dev.iommuemu.bridge.recording.RecordingFile.FORMAT_VERSION)
                .setDaemonVersion(dev.iommuemu.bridge.control.ControlService.VERSION).setProtocolVersion(Protocol.VERSION)
                .setSession(id).setOrigin(origin).setStartedUnixMs(System.currentTimeMillis()).setModel(factory.model())
                .setProfile(device.profile()).setProperties(dev.iommuemu.bridge.recording.RecordingCodec.properties(properties))
                .setMidSession(recordingMidSession).addAllRam(ramLayout());
        if (endpoints != null) {
            h.setEndpoints(dev.iommuemu.bridge.recording.RecordingCodec.endpoints(endpoints));
        }
        return h.build();
    }

    private List<dev.iommuemu.proto.v1.RamRegion> ramLayout() {
        List<dev.iommuemu.proto.v1.RamRegion> l = new ArrayList<>();
        for (MappedRegion r : memory.regions()) {
            l.add(dev.iommuemu.proto.v1.RamRegion.newBuilder().setGuestPhysAddr(r.base()).setSize(r.size()).build());
        }
        return l;
    }

    /** Guest RAM changed: a recording under way gets the new layout (under the lock). */
    private void layoutChanged() {
        if (recording != null && recording.hasHeader()) {
            recorder.standalone(op -> op.setLayout(dev.iommuemu.proto.v1.LayoutOp.newBuilder().addAllRam(ramLayout())));
        }
    }

    /** The model did something recordings do not cover: the recording ends, saying why. */
    private void unrecordable(String why) {
        if (recording != null) {
            recording.stop(why);
        }
    }

    /**
     * Starts recording this session to {@code path} (created or replaced), at most {@code maxBytes}
     * of file. A recording that starts after the model was used says so in its header (it
     * replays from its first system reset).
     */
    public dev.iommuemu.bridge.recording.SessionRecording.Status startRecording(java.nio.file.Path path, long maxBytes)
            throws ProtocolException {
        lock.lock();
        try {
            if (closed) {
                throw ProtocolException.refused(ProtocolException.ENODEV, "session " + id + " is closed");
            }
            if (recording != null && recording.active()) {
                throw ProtocolException.refused(ProtocolException.EBUSY, "session " + id + " is already recording to " + recording.path()
                        + "; stop that recording first");
            }
            if (device.iommufd() != null) {
                throw ProtocolException.refused(dev.iommuemu.domain.Errno.EOPNOTSUPP.code, "session " + id + " has an iommufd nesting host "
                        + "(docs/nesting.md), whose calls recordings do not cover");
            }
            recordingMidSession = touched || used;
            try {
                recording = dev.iommuemu.bridge.recording.SessionRecording.start(path, maxBytes, "session " + id,
                        this::recordingHeader, recorder);
            } catch (IOException e) {
                throw ProtocolException.refused(ProtocolException.EIO, e.getMessage());
            }
            tapped.tap(recorder);
            return recording.status();
        } finally {
            lock.unlock();
        }
    }

    /** Stops the recording under way (ENOENT when there is none) and returns its final state. */
    public dev.iommuemu.bridge.recording.SessionRecording.Status stopRecording() throws ProtocolException {
        lock.lock();
        try {
            if (recording == null || !recording.active()) {
                throw ProtocolException.refused(ProtocolException.ENOENT, "session " + id + " is not recording");
            }
            recording.finish("stopped through the control API");
            tapped.tap(null);
            return recording.status();
        } finally {
            lock.unlock();
        }
    }

    /** The current (or last) recording's state, or null if the session never recorded. */
    public dev.iommuemu.bridge.recording.SessionRecording.Status recordingStatus() {
        lock.lock();
        try {
            return recording == null ? null : recording.status();
        } finally {
            lock.unlock();
        }
    }

    public long id() {
        return id;
    }

    public String origin() {
        return origin;
    }

    public Counters counters() {
        return counters;
    }

    /** What the device found about the guest's driver (strict mode), for the control API. */
    public SessionFindings findings() {
        return findings;
    }

    void publish(String kind, String detail) {
        events.publish(BridgeEvent.now(id, kind, detail));
    }

    /**
     * The session failed where no request could say so (docs/protocol.md §4.12: the VMM held the
     * command-queue lock past the bound): whatever wanted the session lock gets this, with a
     * sentence, and the connection closes.
     */
    public static final class Failed extends RuntimeException {
        Failed(String why) {
            super(why, null, false, false);
        }
    }

    /** The connection's wake-up for failures off its thread (it then reads failure() and closes). */
    void wakeOnFailure(Runnable waker) {
        failWaker = waker;
    }

    /** Marks the session broken (e.g. the VMM stopped acknowledging invalidations); its connection closes. */
    void fail(String why) {
        if (failure == null) {
            failure = why;
        }
    }

    /** Sets the memory sealing policy (SessionRegistry, from --require-memory-seals). */
    void requireSeals(boolean require) {
        requireSeals = require;
    }

    public boolean requiresSeals() {
        return requireSeals;
    }

    /**
     * A fault in an access to shared memory (SIGBUS from a mapping of a file that was shrunk, which
     * only unsealed memory allows): the JVM reports it as an InternalError. The session's memory can
     * no longer be trusted: it fails and its connection closes.
     */
    ProtocolException memoryFault(InternalError e) {
        String why = "guest memory became inaccessible (was a shared memory file truncated?): " + e.getMessage();
        fail(why);
        return ProtocolException.fatal(ProtocolException.EFAULT, why);
    }

    /** Why the session must close, or null. */
    public String failure() {
        return failure;
    }

    /**
     * Runs {@code f} on the device with the session lock held; then the nesting host's interrupt
     * work ({@link #hostInterrupts}), and, with the lock released, the signals of the queues that
     * got records.
     */
    public <T> T withDevice(Function<BridgedDevice, T> f) throws ProtocolException {
        return call(f, true);
    }

    /**
     * {@link #withDevice} for a call that changes nothing of the device's state (a register read,
     * the device's description, its counters): no restart-journal save after it (§4.10).
     */
    public <T> T readDevice(Function<BridgedDevice, T> f) throws ProtocolException {
        return call(f, false);
    }

    private <T> T call(Function<BridgedDevice, T> f, boolean changes) throws ProtocolException {
        List<dev.iommuemu.iommufd.Iommufd.Readable> ready = List.of();
        lock.lock();
        try {
            if (closed) {
                throw ProtocolException.refused(ProtocolException.ENODEV, "session " + id + " is closed");
            }
            try {
                return f.apply(device);
            } finally {
                // the nesting host routes records into its queues (state) before the save
                ready = hostInterrupts();
                // §4.10: the state the guest may see next is in the journal first. A model that
                // checkpointed changed nothing after it but what it published (virtio-iommu: its
                // used ring, which a resume reconciles), so that state stands.
                if (changes && !checkpointed) {
                    journalNow();
                }
                checkpointed = false;
                refreshMirror();
            }
        } catch (UnsupportedOperationException e) {
            throw ProtocolException.refused(ProtocolException.ENOSYS, e.getMessage());
        } catch (dev.iommuemu.bridge.state.DeviceStateBusyException e) {
            throw ProtocolException.refused(ProtocolException.EBUSY, e.getMessage()); // §4.9: not quiescent now
        } catch (IllegalArgumentException e) {
            throw ProtocolException.refused(ProtocolException.EINVAL, e.getMessage());
        } catch (InternalError e) {
            throw memoryFault(e);
        } finally {
            lock.unlock();
            if (!ready.isEmpty()) {
                host.eventqsReadable(ready);
            }
        }
    }

    /**
     * The threaded half of the nesting host's Event/PRI queue interrupt (docs/nesting.md §2.6):
     * when the host SMMU raised either during the call (its lines are wired to the host while one
     * is open, Smmuv3Bridge), the host reads the queues and routes the records, as arm-smmu-v3's
     * arm_smmu_evtq_thread / arm_smmu_priq_thread run after the hard IRQ. Returns the queues that
     * got records by any route (interrupt, read, DMA). Queue eventfds of a host that is gone (a
     * device reset drops it) are retired here. Holds the session lock.
     */
    private List<dev.iommuemu.iommufd.Iommufd.Readable> hostInterrupts() {
        dev.iommuemu.iommufd.Iommufd f = device.iommufd();
        if (eventqOwner != null && f != eventqOwner) {
            host.clearEventqFds();
            eventqOwner = null;
        }
        if (f == null) {
            return List.of();
        }
        f.serviceInterrupts();
        return f.takeReadable();
    }

    /**
     * IOMMUFD_SET_EVENTQ_FD (docs/protocol.md §4.6): {@code fd} (-1: detach) for vEVENT or fault
     * queue {@code queueId}. Returns 0, or the errno of a refusal (ENODEV without a host, ENOENT for
     * no object, EINVAL for an object of another kind); the session owns {@code fd} only on 0.
     */
    public int setEventqFd(int queueId, int fd) throws ProtocolException {
        return withDevice(d -> {
            touch();
            dev.iommuemu.iommufd.Iommufd f = d.iommufd();
            if (f == null) {
                return dev.iommuemu.domain.Errno.ENODEV.code;
            }
            dev.iommuemu.domain.Errno e = f.checkEventQueue(queueId);
            if (e != null) {
                return e.code;
            }
            eventqOwner = f;
            host.setEventqFd(queueId, fd);
            return 0;
        });
    }

    public String model() {
        lock.lock();
        try {
            return device.model();
        } finally {
            lock.unlock();
        }
    }

    public String profile() {
        lock.lock();
        try {
            return device.profile();
        } finally {
            lock.unlock();
        }
    }

    // ---- model selection (docs/protocol.md §4.1)

    public Payloads.IommuInfo info() throws ProtocolException {
        return readDevice(d -> new Payloads.IommuInfo(factory.modelNumber(), Protocol.VERSION, d.mmioSize(), d.numQueues(), d.profile(), d.irqLines()));
    }

    /** Replaces the device with another model/profile; only before the device was used. */
    public void selectModel(DeviceFactory f, String profile) throws ProtocolException {
        lock.lock();
        try {
            if (touched) {
                throw ProtocolException.refused(ProtocolException.EBUSY, "the model can only be chosen before the device is used");
            }
            if (!profile.isEmpty() && !f.profiles().contains(profile)) {
                throw ProtocolException.refused(ProtocolException.EINVAL, "model " + f.model() + " has no profile '" + profile + "' (has " + f.profiles() + ")");
            }
            install(f, profile);
            LOG.info("session " + id + ": model " + f.model() + " profile " + device.profile());
        } finally {
            lock.unlock();
        }
    }

    private void touch() {
        touched = true;
    }

    /** The driver's set-up of the device began (a request of Request#usesDevice): properties are fixed. */
    public void markUsed() {
        lock.lock();
        try {
            used = true;
        } finally {
            lock.unlock();
        }
    }

    /** The VMM device's properties in force. */
    public VmmProperties properties() {
        lock.lock();
        try {
            return properties;
        } finally {
            lock.unlock();
        }
    }

    // ---- the VMM's device: properties and topology (docs/protocol.md §4.7)

    /**
     * IOMMU_SET_PROPERTIES: rebuilds the device from its profile with {@code props} over it (the
     * profile supplies only what the VMM's device does not define). Refused, with the device
     * unchanged, once the driver began to use the device (EBUSY) or when the model cannot honour
     * a property (the factory's errno and sentence).
     */
    public PropertyPayloads.Reply setProperties(VmmProperties props) {
        lock.lock();
        try {
            if (closed) {
                return new PropertyPayloads.Reply(ProtocolException.ENODEV, 0, "session " + id + " is closed");
            }
            if (used || touched) {
                return new PropertyPayloads.Reply(ProtocolException.EBUSY, 0, "the device's properties must be set before the "
                        + "driver uses the device (before SET_FEATURES, SET_CONFIG, vring set-up, MMIO and translations)");
            }
            try {
                install(factory, device.profile(), props);
            } catch (PropertyRefusedException e) {
                return new PropertyPayloads.Reply(e.errno(), PropertyPayloads.key(e.property()), e.getMessage());
            } catch (IllegalArgumentException e) {
                return new PropertyPayloads.Reply(ProtocolException.EINVAL, 0, e.getMessage());
            }
            LOG.info("session " + id + ": " + device.model() + " profile " + device.profile() + " with the VMM's properties " + props);
            return PropertyPayloads.Reply.OK;
        } finally {
            lock.unlock();
        }
    }

    /**
     * IOMMU_SET_ENDPOINTS: the endpoints (virtio-iommu endpoint IDs, SMMUv3 StreamIDs) that have
     * devices; {@code op} sets the whole set, adds to or removes from the set so far (empty before
     * the first message). A model without topology answers ENOSYS, an unknown op EINVAL.
     */
    public void setEndpoints(int op, List<Integer> ids) throws ProtocolException {
        withDevice(d -> {
            Set<Integer> next = new HashSet<>(op == PropertyPayloads.ENDPOINTS_SET || endpoints == null
                    ? Set.of() : endpoints);
            switch (op) {
                case PropertyPayloads.ENDPOINTS_SET, PropertyPayloads.ENDPOINTS_ADD -> next.addAll(ids);
                case PropertyPayloads.ENDPOINTS_REMOVE -> next.removeAll(ids);
                default -> throw new IllegalArgumentException("IOMMU_SET_ENDPOINTS: op " + op + " is not 0 (set), 1 (add) or 2 (remove)");
            }
            d.setEndpoints(next);
            endpoints = Set.copyOf(next);
            return null;
        });
        LOG.fine(() -> "session " + id + ": " + endpoints.size() + " endpoints have devices");
    }

    /**
     * IOMMU_MSI_ABORTED (docs/protocol.md §4, version 8): the VMM found neither memory nor a device
     * at the address of an IOMMU_MSI of {@code source}. Counted and published; the model decides
     * what it means (SMMUv3: the source's MSI_*_ABT_ERR in SMMU_GERROR). An unknown source code is
     * EINVAL.
     */
    public void msiAborted(long address, int data, int source) throws ProtocolException {
        dev.iommuemu.dma.MsiSource s = dev.iommuemu.dma.MsiSource.of(source);
        if (s == null) {
            throw ProtocolException.refused(ProtocolException.EINVAL, "IOMMU_MSI_ABORTED: source " + source
                    + " is not 0 (other), 1 (CMD_SYNC), 2 (event queue), 3 (PRI queue) or 4 (GERROR)");
        }
        String activated = withDevice(d -> d.msiAborted(address, data, s));
        counters.inc(Counter.MSI_ABORTS);
        String detail = String.format("address=0x%x data=0x%x source=%s%s", address, data,
                s.name().toLowerCase(java.util.Locale.ROOT), activated == null ? "" : " activated=" + activated);
        publish(BridgeEvent.MSI_ABORTED, detail);
        LOG.warning("session " + id + ": the VMM could not deliver an MSI (" + detail + ")");
    }

    /** The control API's Inject service_failure: the model's service failure state (SMMUv3 SFM). */
    public void injectServiceFailure() throws ProtocolException {
        boolean entered = withDevice(BridgedDevice::injectServiceFailure);
        publish(BridgeEvent.SERVICE_FAILURE,
                entered ? "entered (injected)" : "already in service failure mode");
        LOG.warning("session " + id + ": service failure " + (entered ? "injected" : "injected again (already in it)"));
    }

    // ---- MMIO (docs/protocol.md §4.2)

    private static void checkMmio(BridgedDevice d, long offset, int size) {
        if (size != 1 && size != 2 && size != 4 && size != 8) {
            throw new IllegalArgumentException("MMIO access size " + size + " (1, 2, 4 or 8)");
        }
        if ((offset & (size - 1)) != 0) {
            throw new IllegalArgumentException(String.format("unaligned MMIO access of %d bytes at 0x%x", size, offset));
        }
        if (offset < 0 || offset + size > d.mmioSize()) {
            throw new IllegalArgumentException(String.format("MMIO offset 0x%x outside the 0x%x-byte register space", offset, d.mmioSize()));
        }
    }

    public long mmioRead(long offset, int size) throws ProtocolException {
        counters.inc(Counter.MMIO_READS);
        return readDevice(d -> {
            touch();
            checkMmio(d, offset, size);
            return d.mmioRead(offset, size);
        });
    }

    public void mmioWrite(long offset, int size, long value) throws ProtocolException {
        counters.inc(Counter.MMIO_WRITES);
        try {
            withDevice(d -> {
                try {
                    touch();
                    checkMmio(d, offset, size);
                    d.mmioWrite(offset, size, value);
                } finally {
                    // §4.10: the journal's count includes this write once its effects are in the state
                    journalWrites++;
                }
                return null;
            });
        } finally {
            // §4.8 writes_applied counts every IOMMU_MMIO_WRITE, refused ones too (the VMM counts what it sent)
            lock.lock();
            try {
                if (shared != null) {
                    shared.writeApplied();
                }
            } finally {
                lock.unlock();
            }
        }
    }

    // ---- device state (docs/protocol.md §4.9, docs/device-state.md)

    /**
     * IOMMU_SAVE_STATE: the device's state blob written into {@code fd} (a memfd the VMM gave,
     * truncated to the blob's size); closes {@code fd}. A model that cannot save answers ENOSYS
     * with a sentence.
     */
    public dev.iommuemu.bridge.protocol.StatePayloads.Reply saveState(int fd) throws ProtocolException {
        byte[] blob;
        try {
            blob = withDevice(BridgedDevice::saveState);
        } catch (ProtocolException e) {
            LibC.closeQuietly(fd);
            if (e.isFatal()) {
                throw e;
            }
            return new dev.iommuemu.bridge.protocol.StatePayloads.Reply(e.errno(), 0, e.getMessage());
        }
        try {
            LibC.ftruncate(fd, blob.length);
            MappedRegion r = MappedRegion.map(0, Math.max(blob.length, 1), 0, 0, fd);
            try {
                r.write(0, blob, 0, blob.length);
            } finally {
                r.unmap();
            }
        } catch (com.sun.jna.LastErrorException e) {
            LibC.closeQuietly(fd);
            return new dev.iommuemu.bridge.protocol.StatePayloads.Reply(ProtocolException.EFAULT, 0, String.format(
                    "the device state (%d bytes) could not be written: the descriptor the VMM gave cannot be resized"
                    + " (errno %d); give a memfd without size seals", blob.length, e.getErrorCode()));
        } catch (IOException e) {
            LibC.closeQuietly(fd);
            return new dev.iommuemu.bridge.protocol.StatePayloads.Reply(ProtocolException.EFAULT, 0,
                    "the device state could not be written to the VMM's memfd: " + e.getMessage());
        }
        LOG.info("session " + id + ": device state saved (" + blob.length + " bytes)");
        return new dev.iommuemu.bridge.protocol.StatePayloads.Reply(0, blob.length, "");
    }

    /**
     * IOMMU_LOAD_STATE: the state blob of {@code q.size()} bytes at the start of {@code fd}, loaded
     * whole or not at all (the model checks it before anything changes); closes {@code fd}.
     */
    public dev.iommuemu.bridge.protocol.StatePayloads.Reply loadState(int fd, dev.iommuemu.bridge.protocol.StatePayloads.Load q)
            throws ProtocolException {
        if (q.flags() != 0 || q.size() <= 0 || q.size() > dev.iommuemu.bridge.protocol.StatePayloads.MAX_STATE) {
            LibC.closeQuietly(fd);
            return new dev.iommuemu.bridge.protocol.StatePayloads.Reply(ProtocolException.EINVAL, 0, q.flags() != 0
                    ? String.format("IOMMU_LOAD_STATE: undefined flags 0x%x", q.flags())
                    : "a device state of " + q.size() + " bytes (1.." + dev.iommuemu.bridge.protocol.StatePayloads.MAX_STATE + ")");
        }
        byte[] blob;
        try {
            // mapped first: a memfd shorter than the size it claims is refused before any allocation
            MappedRegion r = MappedRegion.map(0, q.size(), 0, 0, fd);
            try {
                blob = new byte[(int) q.size()];
                r.read(0, blob, 0, blob.length);
            } finally {
                r.unmap();
            }
        } catch (IOException e) {
            LibC.closeQuietly(fd);
            return new dev.iommuemu.bridge.protocol.StatePayloads.Reply(ProtocolException.EFAULT, 0,
                    "the device state could not be read from the VMM's memfd: " + e.getMessage());
        }
        try {
            withDevice(d -> {
                touch();
                d.loadState(blob);
                return null;
            });
        } catch (ProtocolException e) {
            if (e.isFatal()) {
                throw e;
            }
            return new dev.iommuemu.bridge.protocol.StatePayloads.Reply(e.errno(), 0, e.getMessage());
        }
        LOG.info("session " + id + ": device state loaded (" + blob.length + " bytes)");
        return new dev.iommuemu.bridge.protocol.StatePayloads.Reply(0, blob.length, "");
    }

    // ---- the shared translation cache and register mirror (docs/protocol.md §4.8)

    /**
     * IOMMU_SET_SHARED_CACHE: maps the VMM's memfd as its translation cache of {@code sets} x
     * {@code ways} entries and its register mirror, replacing any earlier one. Takes ownership of
     * {@code fd}.
     */
    public void setSharedCache(int fd, int sets, int ways) throws ProtocolException {
        setSharedCache(fd, sets, ways, 0);
    }

    /**
     * IOMMU_SET_SHARED_CACHE with its {@code flags}: bit 0 RECIPES (§4.8 version 12) adds the walk
     * recipe table, bit 1 CMDQ (§4.12 version 13, with RECIPES, for a model with a command queue)
     * the command-queue hand-off region; any other bit is refused (EINVAL).
     */
    public void setSharedCache(int fd, int sets, int ways, int flags) throws ProtocolException {
        if ((flags & ~dev.iommuemu.bridge.fastpath.SharedCache.FLAGS) != 0) {
            LibC.closeQuietly(fd);
            throw ProtocolException.refused(ProtocolException.EINVAL, String.format("IOMMU_SET_SHARED_CACHE: undefined flags 0x%x"
                    + " (only bit 0, RECIPES, bit 1, CMDQ, and bit 2, REQUESTS, are defined)", flags));
        }
        lock.lock();
        try {
            if (closed) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.ENODEV, "session " + id + " is closed");
            }
            if ((flags & dev.iommuemu.bridge.fastpath.SharedCache.FLAG_CMDQ) != 0 && device.commandQueueState().isEmpty()) {
                // §4.12: only an SMMUv3 has a command queue the VMM could consume
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.EINVAL, "IOMMU_SET_SHARED_CACHE: flag CMDQ (bit 1) is for a"
                        + " model with a command queue (smmuv3), but this session's model is " + device.model()
                        + ": leave out CMDQ (docs/protocol.md §4.12)");
            }
            if ((flags & dev.iommuemu.bridge.fastpath.SharedCache.FLAG_REQUESTS) != 0 && device.requestQueueHandOff().isEmpty()) {
                // §4.13: only a virtio-iommu has a request queue the VMM could serve
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.EINVAL, "IOMMU_SET_SHARED_CACHE: flag REQUESTS (bit 2) is for a"
                        + " model with a virtio-iommu request queue (virtio-iommu), but this session's model is " + device.model()
                        + ": leave out REQUESTS (docs/protocol.md §4.13)");
            }
            dev.iommuemu.bridge.fastpath.SharedCache c;
            try {
                c = dev.iommuemu.bridge.fastpath.SharedCache.map(fd, sets, ways, requireSeals, flags);
            } catch (IllegalArgumentException e) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.EINVAL, e.getMessage());
            } catch (IOException e) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.EFAULT, "the shared cache does not map: " + e.getMessage());
            }
            if (shared != null) {
                syncWalkedPages();
                letGoOfHandOff();
                shared.close();
            }
            shared = c;
            if (c.commandHandOff() != null) {
                // held (lock = 2) since the memory was cleared: the session's unlock publishes the fields
                c.commandHandOff().label("session " + id);
            }
            if (c.requestHandOff() != null) {
                // likewise (§4.13), and every domain's slot is written then
                c.requestHandOff().label("session " + id);
                requestSlotsStale = true;
            }
            if (c.handOffLock() != null) {
                c.handOffLock().timeout(commandLockTimeoutNanos);
            }
            walkedSeen = c.hasRecipes() ? c.walkedPages() : 0;
            c.mirror(device.mirroredRegisters(), this::peek);
            LOG.fine(() -> "session " + id + ": shared translation cache of " + sets + " x " + ways + " entries");
        } finally {
            lock.unlock();
        }
    }

    // ---- the VMM's command-queue hand-off (docs/protocol.md §4.12, version 13)

    /**
     * The session lock. With a shared memory holding the command-queue hand-off (§4.12) the daemon
     * holds the region's lock whenever it holds this one: taken when the hold count goes from 0 to 1
     * (and then the VMM's log drained into the model before anything else runs), given back, with
     * the model's command-queue state written first, when it goes from 1 to 0.
     */
    private final class SessionLock extends ReentrantLock {
        @Override
        public void lock() {
            super.lock();
            if (getHoldCount() == 1) {
                boolean held;
                try {
                    held = takeHandOff();
                } catch (RuntimeException | InternalError e) {
                    // never out of lock() with the lock held and no caller's finally to release it
                    LOG.warning("session " + id + ": the VMM's hand-off log could not be drained (" + e
                            + "); the device goes on");
                    // on only with the region's lock too (§4.12, §4.13), whatever the drain did
                    held = shared == null || shared.handOffLock() == null || shared.handOffLock().held();
                    if (!held && failure == null) {
                        fail("the VMM's hand-off log could not be drained and the daemon does not hold the region's lock"
                                + " (docs/protocol.md §4.13): the connection closes; a VMM that reconnects takes over from its"
                                + " restart journal");
                    }
                }
                if (!held) {
                    super.unlock();
                    throw new Failed("session " + id + ": " + failure);
                }
            }
        }

        @Override
        public void unlock() {
            if (getHoldCount() == 1 && isHeldByCurrentThread()) {
                try {
                    giveHandOff();
                } finally {
                    super.unlock();
                }
            } else {
                super.unlock();
            }
        }

        @Override
        public boolean tryLock() {
            // never waits for the VMM's lock: not used by the session, refused rather than half done
            throw new UnsupportedOperationException("the session lock is taken with lock() (docs/protocol.md §4.12)");
        }

        @Override
        public boolean tryLock(long timeout, java.util.concurrent.TimeUnit unit) {
            throw new UnsupportedOperationException("the session lock is taken with lock() (docs/protocol.md §4.12)");
        }

        @Override
        public void lockInterruptibly() {
            throw new UnsupportedOperationException("the session lock is taken with lock() (docs/protocol.md §4.12)");
        }
    }

    /**
     * The bound on waiting for a command-queue lock the VMM holds (§4.12: 5 s), for this session's
     * shared memories from now on and the current one.
     */
    public void commandLockTimeout(java.time.Duration bound) {
        commandLockTimeoutNanos = bound.toNanos();
        lock.lock();
        try {
            if (shared != null && shared.handOffLock() != null) {
                shared.handOffLock().timeout(commandLockTimeoutNanos);
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Right after the session lock was taken (hold count 1): the region's lock, then the VMM's log
     * (§4.12), executed by the model (the TLB, the configuration cache, the shared cache through
     * DmaHost#invalidate), its PROD and CONS set, its batches counted among the journal's applied
     * writes (§4.10; not in writes_applied, which counts the VMM's messages), the log zeroed; then
     * the mirror and the journal, so whatever request follows sees the drained queue.
     */
    private boolean takeHandOff() {
        dev.iommuemu.bridge.fastpath.HandOffLock l = shared == null ? null : shared.handOffLock();
        if (l == null || closed || closing) {
            return true;
        }
        if (!l.acquire()) {
            // §4.12, §4.13: nothing runs the model without the lock (the VMM may still be inside a batch
            // whose log only a drain applies): the session fails, and a VMM that reconnects takes over
            // from the restart journal, its handed-off batches replayed as queue positions (§4.10)
            fail(shared.commandHandOff() != null ? "the VMM held the command-queue lock (docs/protocol.md §4.12) past the bound"
                    : "the VMM held the request hand-off lock (docs/protocol.md §4.13) past the bound");
            failWaker.run();
            return false;
        }
        if (shared.requestHandOff() != null) {
            dev.iommuemu.bridge.fastpath.RequestHandOff h = shared.requestHandOff();
            dev.iommuemu.bridge.fastpath.RequestHandOff.Log log = h.readLog(0, false);
            if (log != null && log.requests().size() >= APPLY_UNLOCKED && !requestSlotsStale) {
                // §4.13: a long log goes into the model with the region's lock given back, so the
                // VMM serves the guest meanwhile (its vCPU would otherwise wait for the daemon inside
                // the guest's request lock); its slots already hold what the log did. The log stays
                // (count untouched: the VMM appends after it, within the 1024 its §4.10 write log
                // keeps); then the lock again, and what the VMM logged in between.
                int applied = log.requests().size();
                boolean again = false;
                l.releaseUnchanged();
                try {
                    applyRequestLog(log, false);
                    if (unlockedApplyHook != null) {
                        unlockedApplyHook.run();
                    }
                } finally {
                    // never on with the session lock and not the region's (an error or not), and the
                    // log taken (count zeroed) even after an error: its first part is in the model
                    again = l.acquire();
                    if (again) {
                        applyRequestLog(h.readLog(applied, true), true);
                    } else {
                        fail("the VMM held the request hand-off lock (docs/protocol.md §4.13) past the bound");
                        failWaker.run();
                    }
                }
                return again;
            }
            applyRequestLog(h.readLog(0, true), true);
            return true;
        }
        dev.iommuemu.bridge.fastpath.CommandHandOff.Log log = shared.commandHandOff().takeLog();
        if (log == null) {
            return true;
        }
        int rejected = 0;
        try {
            if (device.commandQueueState().isPresent()) {
                unrecordable("the VMM consumed commands itself (docs/protocol.md §4.12), which recordings do not hold");
                rejected = device.applyVmmCommands(log.words(), log.count(), log.prod(), log.cons());
            } else {
                rejected = log.count();
            }
        } catch (RuntimeException | InternalError e) {
            LOG.warning("session " + id + ": the commands the VMM consumed itself could not be applied (" + e
                    + "); the device goes on");
        }
        if (rejected > 0) {
            int r = rejected;
            LOG.warning(() -> "session " + id + ": " + r + " of the " + log.count() + " commands the VMM consumed itself"
                    + " (docs/protocol.md §4.12) are not commands this SMMU executes; they were skipped (the VMM completed"
                    + " their CMD_SYNC already)");
        }
        journalWrites += log.batches();
        counters.add(Counter.VMM_CMDQ_BATCHES, log.batches());
        counters.add(Counter.VMM_CMDQ_COMMANDS, log.count());
        refreshMirror();
        journalNow();
        return true;
    }

    /**
     * A log taken from the region right after its lock was taken (§4.13, {@code locked} false when
     * the lock was given back meanwhile): applied to the model as the request queue would have
     * (DomainTable#map / #unmap through BridgedDevice#applyVmmRequests; a request the model does
     * not complete with S_OK is a VMM fault: logged, counted, the model's state stands), queue 0's
     * indexes set to the VMM's, the requests counted among the journal's applied writes (§4.10; not
     * in writes_applied); then the journal.
     */
    private void applyRequestLog(dev.iommuemu.bridge.fastpath.RequestHandOff.Log log, boolean locked) {
        if (log == null) {
            return;
        }
        int n = log.requests().size();
        int rejected = n;
        applyingUnlocked = !locked;
        drainingRequests = true;
        try {
            if (device.requestQueueHandOff().isPresent()) {
                unrecordable("the VMM served virtio-iommu requests itself (docs/protocol.md §4.13), which recordings do not hold");
                rejected = device.applyVmmRequests(log.requests(), log.nextAvail(), log.usedIdx());
            }
        } catch (RuntimeException | InternalError e) {
            LOG.warning("session " + id + ": the requests the VMM served itself could not be applied (" + e
                    + "); the device goes on");
        } finally {
            drainingRequests = false;
            applyingUnlocked = false;
        }
        if (rejected > 0) {
            int r = rejected;
            LOG.warning(() -> "session " + id + ": " + r + " of the " + n + " virtio-iommu requests the VMM served itself"
                    + " (docs/protocol.md §4.13) are not requests this device completes with S_OK; the device's state"
                    + " stands (the VMM completed them already: is it serving requests correctly?)");
        }
        journalWrites += n;
        counters.add(Counter.VMM_REQUESTS, n);
        counters.add(Counter.VMM_REQUESTS_REJECTED, rejected);
        journalNow();
    }

    /** Right before the session lock is given back (hold count 1): whichever hand-off the shared memory has. */
    private void giveHandOff() {
        if (shared != null && shared.requestHandOff() != null) {
            giveRequestHandOff(shared.requestHandOff());
        } else {
            giveCommandHandOff();
        }
    }

    /**
     * The domains' slots that changed (all of them after a new memory, a reset, a load or another
     * model), the request queue's state and {@code ok} into the region (§4.13), then its lock. ok
     * is 1 only when the model says the queue is servable (queue 0 running, MAP_UNMAP negotiated,
     * no "+strict", no paravirtual nesting) and no recording runs (docs/recording.md: it holds
     * every request the model handles).
     */
    private void giveRequestHandOff(dev.iommuemu.bridge.fastpath.RequestHandOff h) {
        if (!h.held()) {
            return;
        }
        dev.iommuemu.virtio.iommu.RequestQueueHandOff s = null;
        boolean ok = false;
        try {
            s = closed ? null : device.requestQueueHandOff().orElse(null);
            if (s != null) {
                publishRequestSlots(h);
            }
            ok = s != null && s.servable() && !(recording != null && recording.active());
        } catch (RuntimeException e) {
            LOG.warning("session " + id + ": the request queue's state could not be read (" + e + "); the VMM's hand-off is off");
            s = null;
        }
        h.release(s, ok);
    }

    /**
     * §4.13: rewrites the slots of the domains that changed since the last publication (every slot
     * when they are stale). Under the lock, with the hand-off's lock held: called before the lock is
     * given back and from the model's invalidations (DmaHost#invalidate, {@link #invalidateShared}),
     * which come before any request that removes a mapping or an endpoint completes.
     */
    private void publishRequestSlots(dev.iommuemu.bridge.fastpath.RequestHandOff h) {
        if (!h.held()) {
            return;
        }
        dev.iommuemu.virtio.iommu.ChangedDomains c = device.takeChangedDomains();
        if (requestSlotsStale || c.all()) {
            requestSlotsStale = false;
            h.publishAll(device.mirroredDomains());
            return;
        }
        for (int d : c.ids()) {
            h.publish(d, device.mirroredDomain(d).orElse(null));
        }
    }

    /**
     * Right before the session lock is given back (hold count 1): the model's command-queue state
     * into the region (§4.12; ok = 0 for a model without one), then the region's lock.
     */
    private void giveCommandHandOff() {
        dev.iommuemu.bridge.fastpath.CommandHandOff h = shared == null ? null : shared.commandHandOff();
        if (h == null || !h.held()) {
            return;
        }
        BridgedDevice.CommandQueueState s = null;
        try {
            s = closed ? null : device.commandQueueState().orElse(null);
            if (s != null && s.ok() && recording != null && recording.active()) {
                // docs/recording.md: a recording holds every command the model executes, so while one
                // runs the VMM posts its writes (ok = 0) instead of consuming commands the recording
                // would not see
                s = new BridgedDevice.CommandQueueState(false, s.cmdqBase(), s.prod(), s.cons(), s.features(), s.oasBits(),
                        s.syncLine());
            }
        } catch (RuntimeException e) {
            LOG.warning("session " + id + ": the command queue's state could not be read (" + e + "); the VMM's hand-off is off");
        }
        h.release(s);
    }

    /** A shared memory being replaced or closed: the VMM may not consume commands or serve requests with it any more (ok = 0). */
    private void letGoOfHandOff() {
        if (shared != null && shared.commandHandOff() != null) {
            shared.commandHandOff().release(null);
        }
        if (shared != null && shared.requestHandOff() != null) {
            shared.requestHandOff().release(null, false);
        }
    }

    // ---- the restart journal (docs/protocol.md §4.10)

    /**
     * IOMMU_SET_STATE_JOURNAL: maps the VMM's memfd of {@code size} bytes as the restart journal,
     * replacing any earlier one, and writes the current state into it. Takes ownership of {@code fd}.
     */
    public void setStateJournal(int fd, long size) throws ProtocolException {
        lock.lock();
        try {
            if (closed) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.ENODEV, "session " + id + " is closed");
            }
            dev.iommuemu.bridge.restart.StateJournal j;
            try {
                j = dev.iommuemu.bridge.restart.StateJournal.map(fd, size, requireSeals);
            } catch (IllegalArgumentException e) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.EINVAL, e.getMessage());
            } catch (IOException e) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.EFAULT, "the restart journal does not map: " + e.getMessage());
            }
            if (journal != null) {
                journal.close();
            }
            journal = j;
            journalWrites = 0;
            journalNow();
            LOG.fine(() -> "session " + id + ": restart journal of " + size + " bytes");
        } finally {
            lock.unlock();
        }
    }

    // ---- the dirty log (docs/protocol.md §4.11)

    /**
     * IOMMU_SET_DIRTY_LOG: from now on every write of the daemon into guest RAM marks its pages in
     * the VMM's bitmap of {@code mmapSize} bytes at {@code mmapOffset} of {@code fd} (vhost-user.rst
     * "Migration": the back-end logs its writes to guest memory in the dirty pages log while
     * logging is on); it replaces an earlier log. {@code mmapSize} 0 (and {@code fd} -1) stops
     * logging. A log that does not reach the end of every region mapped now is refused (EINVAL,
     * {@link dev.iommuemu.bridge.memory.DirtyLog#coverage}) and an earlier log stays. Writes run
     * under the lock, so no write marks a log being unmapped. Takes ownership of {@code fd}.
     */
    public void setDirtyLog(int fd, long mmapSize, long mmapOffset) throws ProtocolException {
        lock.lock();
        try {
            if (closed) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.ENODEV, "session " + id + " is closed");
            }
            dev.iommuemu.bridge.memory.DirtyLog next = null;
            if (mmapSize != 0) {
                // §4.11: refused unless it covers every region mapped now, before anything is mapped
                String bad = dev.iommuemu.bridge.memory.DirtyLog.check(mmapSize, mmapOffset);
                if (bad == null) {
                    long ramEnd = 0;
                    for (MappedRegion r : memory.regions()) {
                        ramEnd = Math.max(ramEnd, r.base() + r.size());
                    }
                    bad = dev.iommuemu.bridge.memory.DirtyLog.coverage(mmapSize, ramEnd);
                }
                if (bad != null) {
                    LibC.closeQuietly(fd);
                    throw ProtocolException.refused(ProtocolException.EINVAL, bad);
                }
                try {
                    next = dev.iommuemu.bridge.memory.DirtyLog.map(fd, mmapSize, mmapOffset, requireSeals, "session " + id, dirtyLogCounts);
                } catch (IllegalArgumentException e) {
                    LibC.closeQuietly(fd);
                    throw ProtocolException.refused(ProtocolException.EINVAL, e.getMessage());
                } catch (IOException e) {
                    LibC.closeQuietly(fd);
                    throw ProtocolException.refused(ProtocolException.EFAULT, "the dirty log does not map: " + e.getMessage());
                }
            }
            memory.dirtyLog(next);
            stopDirtyLog();
            dirtyLog = next;
            if (next != null) {
                LOG.info(String.format("session %d: dirty log of %d bytes (pages below GPA 0x%x) started", id, next.size(), next.limit()));
            }
        } finally {
            lock.unlock();
        }
    }

    /** Ends the current dirty log, if any (under the lock, after the regions stopped marking it). */
    private void stopDirtyLog() {
        if (dirtyLog != null) {
            LOG.info("session " + id + ": dirty log stopped after " + dirtyLog.marked() + " pages marked");
            dirtyLog.close();
            dirtyLog = null;
        }
    }

    /**
     * IOMMU_SYNC_DIRTY_LOG: returns once every write made so far has marked its pages. Requests
     * before it ran on the connection thread already; the lock waits for model work under way on
     * another thread (a queue kick, the translation ring, the control API), whose marks are made
     * before it releases the lock. Valid without a log. Returns the pages the log marked so far
     * (0 without one).
     */
    public long syncDirtyLog() {
        lock.lock();
        try {
            return dirtyLog == null ? 0 : dirtyLog.marked();
        } finally {
            lock.unlock();
        }
    }

    /** DmaHost#checkpoint: the model is about to publish; its state goes into the journal now. */
    void checkpoint() {
        journalNow();
        checkpointed = journal != null;
    }

    /**
     * Writes the device's state into the restart journal, if there is one (§4.10): after every
     * request and before anything the guest can see (an interrupt, an MSI, a virtio used buffer).
     * A model that cannot save now leaves the journal without a state, with the reason.
     */
    void journalNow() {
        if (journal == null || !lock.isHeldByCurrentThread()) {
            return;
        }
        long before = journal.saves();
        int prev = journal.reason();
        int reason = 0;
        try {
            journal.write(device.saveState(), journalWrites);
            reason = journal.reason();
        } catch (UnsupportedOperationException e) {
            reason = ProtocolException.ENOSYS;
        } catch (dev.iommuemu.bridge.state.DeviceStateBusyException e) {
            // e.g. a modelled nesting host open on the SMMU: no state until it is closed
            reason = ProtocolException.EBUSY;
        } catch (RuntimeException e) {
            LOG.warning("session " + id + ": the device state could not be saved for a restart (" + e + "); please report it");
            reason = ProtocolException.EINVAL;
        }
        if (reason != 0 && journal.reason() != reason) {
            journal.unavailable(reason);
        }
        if (reason != 0 && reason != prev) {
            String why = switch (reason) {
                case ProtocolException.ENOSPC -> "the state is larger than a slot of the VMM's journal";
                case ProtocolException.ENOSYS -> "this model cannot save its state";
                case ProtocolException.EBUSY -> "a modelled nesting host is open on the SMMU";
                default -> "the save failed";
            };
            LOG.warning("session " + id + ": the restart journal holds no state now (" + why + "): if the daemon dies now,"
                    + " the VMM cannot hand its state to a new one");
        }
        if (journal.saves() != before) {
            counters.inc(Counter.JOURNAL_SAVES);
        }
    }

    /**
     * Before an interrupt or MSI (SessionHost): the state that raised it goes into the journal,
     * unless the model checkpointed in this call already (§4.10).
     */
    void journalBeforeSignal() {
        if (!checkpointed) {
            journalNow();
        }
    }

    private long peek(dev.iommuemu.bridge.device.MirroredRegister r) {
        return device.peekRegister(r.offset(), r.size());
    }

    /**
     * Removes what an invalidation covers from the shared cache (§4.8), if there is one; returns
     * whether the VMM also needs the invalidation as a message (no shared cache, or IOMMU
     * notifiers). Model calls hold the session lock already; the lock makes the daemon the cache's
     * one writer in any case.
     */
    boolean invalidateShared(dev.iommuemu.dma.IotlbInvalidation inv) {
        lock.lock();
        try {
            if (shared == null) {
                return true;
            }
            if (!applyingUnlocked) {
                // (a logged UNMAP applied without the region's lock: the VMM dropped its entries and
                // bumped inv_gen when it served it, §4.13, and the daemon cached nothing since)
                shared.invalidate(inv.endpoint(), inv.iova(), inv.size());
            }
            if (shared.requestHandOff() != null && !drainingRequests) {
                // §4.13: a request that removes a mapping or an endpoint from a domain (UNMAP, DETACH,
                // ATTACH moving it, reset, topology) invalidates before it completes: its slot first
                publishRequestSlots(shared.requestHandOff());
            }
            return shared.notifiersPresent();
        } finally {
            lock.unlock();
        }
    }

    /** A translation the model offers before any access (DmaHost#prefill): into the shared cache, if any. */
    void prefillShared(int endpoint, IotlbEntry e) {
        lock.lock();
        try {
            if (shared != null) {
                shared.insert(endpoint, e.iova(), e.translatedAddr(), e.addrMask(), e.perm());
                counters.inc(Counter.PREFILLS);
                counters.add(Counter.PREFILLED_PAGES, pages(e.addrMask()));
            }
        } finally {
            lock.unlock();
        }
    }

    /** Brings the register mirror up to date (under the lock): after each model call and before each interrupt. */
    void refreshMirror() {
        if (shared != null && lock.isHeldByCurrentThread()) {
            shared.refresh(this::peek);
        }
    }

    /** Drops every shared cache entry (a device reset: the VMM's translations are gone with the model's). */
    public void clearSharedCache() {
        lock.lock();
        try {
            if (shared != null) {
                shared.clearAll();
            }
        } finally {
            lock.unlock();
        }
    }

    /** A translation the VMM may now take from the shared cache (only without a substream: §4.8 keys). */
    private void cache(TranslateRequest r, IotlbEntry e) {
        if (shared != null && r.substreamId() == Payloads.NO_SUBSTREAM) {
            shared.insert(r.streamId(), e.iova(), e.translatedAddr(), e.addrMask(), e.perm());
        }
    }

    /**
     * After a translated request without a substream (§4.8 "Walk recipes", version 12): the
     * endpoint's recipe, when the model has one (BridgedDevice#walkRecipe) and the request was
     * unprivileged, as every recipe's transactions are (flags UNPRIV). Under the lock.
     */
    private void publishRecipe(TranslateRequest r) {
        if (shared == null || !shared.hasRecipes() || r.substreamId() != Payloads.NO_SUBSTREAM
                || (r.access() & Payloads.ACCESS_PRIV) != 0) {
            return;
        }
        if (shared.hasRecipe(r.streamId())) {
            // still current: whatever could change it (DmaHost#configurationChanged) emptied every recipe
            return;
        }
        java.util.Optional<dev.iommuemu.pagetable.WalkRecipe> w = device.walkRecipe(r.streamId());
        if (w.isPresent() && shared.publishRecipe(r.streamId(), w.get())) {
            counters.inc(Counter.RECIPES_PUBLISHED);
        }
        syncWalkedPages();
    }

    /**
     * Empties every walk recipe (DmaHost#configurationChanged: a CMD_CFGI_*, a register write, a
     * reset; §4.8), before the change completes.
     */
    void clearRecipes() {
        lock.lock();
        try {
            if (shared != null) {
                shared.clearRecipes();
            }
        } finally {
            lock.unlock();
        }
    }

    /** The VMM's walked_pages count (§4.8 header 0x20) since the last look, into the counters (under the lock). */
    private void syncWalkedPages() {
        if (shared != null && shared.hasRecipes()) {
            long now = shared.walkedPages();
            if (Long.compareUnsigned(now, walkedSeen) > 0) {
                counters.add(Counter.WALKED_PAGES, now - walkedSeen);
            }
            walkedSeen = now;
        }
    }

    // ---- translation (docs/protocol.md §4.3)

    public static DmaAccess access(int bits) {
        return new DmaAccess((bits & Payloads.ACCESS_WRITE) != 0, (bits & Payloads.ACCESS_EXEC) != 0, (bits & Payloads.ACCESS_PRIV) != 0);
    }

    private TranslateReply translateLocked(IommuModel m, TranslateRequest r) {
        int ssid = r.substreamId() == Payloads.NO_SUBSTREAM ? IommuModel.NO_SUBSTREAM : r.substreamId();
        DmaResult res = m.translate(r.streamId(), ssid, r.iova(), access(r.access()));
        counters.inc(Counter.TRANSLATIONS);
        if (res instanceof DmaResult.Translated t) {
            counters.add(Counter.TRANSLATED_PAGES, pages(t.entry().addrMask()));
        }
        return reply(r, ssid, res);
    }

    /**
     * 4 KiB pages of an entry of {@code addrMask}, counted up to 1 GiB (a sub-page entry is one).
     * The mask is unsigned: an identity or bypass entry's all-ones mask covers the whole space and
     * counts as 1 GiB, not as a negative number.
     */
    static long pages(long addrMask) {
        return (Long.compareUnsigned(addrMask, (1L << 30) - 1) < 0 ? addrMask >>> 12 : ((1L << 30) - 1) >>> 12) + 1;
    }

    private TranslateReply reply(TranslateRequest r, int ssid, DmaResult res) {
        if (res instanceof DmaResult.Translated t) {
            IotlbEntry e = t.entry();
            cache(r, e);
            publishRecipe(r);
            return new TranslateReply(new TranslateResult(Payloads.TRANSLATED, e.perm(), e.translate(r.iova()), e.addrMask(), 0), "");
        }
        if (res instanceof DmaResult.Stalled s) {
            counters.inc(Counter.TRANSLATION_STALLS);
            publish(BridgeEvent.STALL, String.format("sid=%d iova=0x%x stag=%d", r.streamId(), r.iova(), s.stag()));
            return new TranslateReply(new TranslateResult(Payloads.STALLED, 0, 0, 0, s.stag()), "STALL");
        }
        DmaResult.Aborted a = (DmaResult.Aborted) res;
        counters.inc(Counter.TRANSLATION_FAULTS);
        publish(BridgeEvent.FAULT, String.format("%s sid=%d ssid=%d iova=0x%x %s", a.reason(), r.streamId(), ssid, r.iova(), access(r.access())));
        return new TranslateReply(new TranslateResult(Payloads.ABORTED, 0, 0, 0, 0), a.reason());
    }

    public TranslateReply translate(TranslateRequest r) throws ProtocolException {
        return call(d -> {
            touch();
            return translateLocked(d.iommu(), r);
        }, translationsChange);
    }

    /**
     * IOMMU_TRANSLATE_RUN (docs/protocol.md §4.3): the request's own translation, and when it
     * translated, the model's prefetch of the addresses after its entry (IommuModel#prefetch:
     * nothing recorded for them).
     */
    public Payloads.TranslateRunReply translateRun(Payloads.TranslateRunRequest q) throws ProtocolException {
        return call(d -> {
            touch();
            IommuModel m = d.iommu();
            TranslateRequest r = q.request();
            int ssid = r.substreamId() == Payloads.NO_SUBSTREAM ? IommuModel.NO_SUBSTREAM : r.substreamId();
            DmaResult res = m.translate(r.streamId(), ssid, r.iova(), access(r.access()));
            counters.inc(Counter.TRANSLATIONS);
            List<Payloads.RunEntry> run = List.of();
            if (res instanceof DmaResult.Translated t) {
                counters.add(Counter.TRANSLATED_PAGES, pages(t.entry().addrMask()));
            }
            if (res instanceof DmaResult.Translated t && q.maxPages() > 0) {
                long last = t.entry().iova() | t.entry().addrMask();
                if (last != -1L) {
                    List<dev.iommuemu.dma.IotlbEntry> es = m.prefetch(r.streamId(), ssid, last + 1, access(r.access()), q.maxPages());
                    run = new ArrayList<>(es.size());
                    long pages = 0;
                    for (dev.iommuemu.dma.IotlbEntry e : es) {
                        run.add(new Payloads.RunEntry(e.iova(), e.translatedAddr(), e.addrMask(), e.perm()));
                        cache(r, e);
                        pages += pages(e.addrMask());
                    }
                    counters.add(Counter.PREFETCHED_PAGES, pages);
                    counters.add(Counter.TRANSLATED_PAGES, pages);
                }
            }
            return new Payloads.TranslateRunReply(reply(r, ssid, res), run);
        }, translationsChange);
    }

    public List<TranslateResult> translateBatch(List<TranslateRequest> reqs) throws ProtocolException {
        return call(d -> {
            touch();
            IommuModel m = d.iommu();
            List<TranslateResult> out = new ArrayList<>(reqs.size());
            for (TranslateRequest r : reqs) {
                out.add(translateLocked(m, r).result());
            }
            return out;
        }, translationsChange);
    }

    /** An endpoint's ATS Translation Request (docs/protocol.md §4.4). */
    public TranslateReply atsTranslate(TranslateRequest r) throws ProtocolException {
        return withDevice(d -> {
            touch();
            int ssid = r.substreamId() == Payloads.NO_SUBSTREAM ? IommuModel.NO_SUBSTREAM : r.substreamId();
            int a = r.access(); // PCIe fields: W (NW == 0) and Exe may come together (IHI 0070 §13.7)
            DmaResult res = d.atsTranslate(r.streamId(), ssid, r.iova(), (a & Payloads.ACCESS_WRITE) != 0,
                    (a & Payloads.ACCESS_EXEC) != 0, (a & Payloads.ACCESS_PRIV) != 0);
            counters.inc(Counter.ATS_TRANSLATIONS);
            return reply(r, ssid, res);
        });
    }

    /** A call of the host-side nesting model (docs/protocol.md §4.6, docs/nesting.md). */
    public dev.iommuemu.bridge.nesting.IommufdCalls.Outcome iommufd(dev.iommuemu.bridge.nesting.IommufdCall call) throws ProtocolException {
        return withDevice(d -> {
            touch();
            return dev.iommuemu.bridge.nesting.IommufdCalls.handle(d, call);
        });
    }

    /** An endpoint's PRI Page Request (docs/protocol.md §4.4). */
    public void pageRequest(BridgedDevice.PageRequest req) throws ProtocolException {
        String bad = req.malformed();
        if (bad != null) {
            throw ProtocolException.refused(ProtocolException.EINVAL, "page request: " + bad);
        }
        withDevice(d -> {
            touch();
            d.pageRequest(req);
            counters.inc(Counter.PAGE_REQUESTS);
            publish(BridgeEvent.PAGE_REQUEST, String.format("sid=%d ssid=%d address=0x%x group=%d%s %s", req.streamId(), req.substreamId(),
                    req.address(), req.groupIndex(), req.last() ? " last" : "", req.fields()));
            return null;
        });
    }

    // ---- guest memory (docs/protocol.md §3.1)

    /** Maps a region the VMM shared (takes ownership of {@code fd} in every case). */
    public void addRegion(Payloads.MemRegion r, int fd) throws ProtocolException {
        lock.lock();
        try {
            MappedRegion m;
            try {
                if (requireSeals) {
                    MappedRegion.requireShrinkSeal(fd);
                }
                m = MappedRegion.map(r.gpa(), r.size(), r.userAddr(), r.mmapOffset(), fd);
            } catch (IOException e) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.EFAULT, "region " + r + " does not map: " + e.getMessage());
            }
            try {
                memory.add(m);
            } catch (IllegalArgumentException e) {
                m.unmap();
                throw ProtocolException.refused(ProtocolException.EINVAL, e.getMessage());
            }
            LOG.fine(() -> "session " + id + ": mapped " + m);
            layoutChanged();
        } finally {
            lock.unlock();
        }
    }

    /** Allocates a region of daemon memory (control API: a VMM without fds). */
    public void allocateRegion(long gpa, long size) throws ProtocolException {
        lock.lock();
        try {
            MappedRegion m;
            try {
                m = MappedRegion.allocate("iommu-emu-s" + id, gpa, size);
            } catch (IOException e) {
                throw ProtocolException.refused(ProtocolException.ENOMEM, "cannot allocate region: " + e.getMessage());
            }
            try {
                memory.add(m);
            } catch (IllegalArgumentException e) {
                m.unmap();
                throw ProtocolException.refused(ProtocolException.EINVAL, e.getMessage());
            }
            layoutChanged();
        } finally {
            lock.unlock();
        }
    }

    public void removeRegion(Payloads.MemRegion r) throws ProtocolException {
        lock.lock();
        try {
            if (!memory.remove(r.gpa(), r.size())) {
                throw ProtocolException.refused(ProtocolException.ENOENT, "no region at " + r);
            }
            layoutChanged();
        } finally {
            lock.unlock();
        }
    }

    /** SET_MEM_TABLE: replaces every region; takes ownership of all {@code fds}. */
    public void setMemTable(List<Payloads.MemRegion> regions, int[] fds) throws ProtocolException {
        lock.lock();
        try {
            memory.clear();
            layoutChanged();
            ProtocolException first = null;
            for (int i = 0; i < regions.size(); i++) {
                if (first != null) {
                    LibC.closeQuietly(fds[i]);
                    continue;
                }
                try {
                    addRegion(regions.get(i), fds[i]);
                } catch (ProtocolException e) {
                    first = e;
                }
            }
            if (first != null) {
                memory.clear();
                layoutChanged();
                throw first;
            }
        } finally {
            lock.unlock();
        }
    }

    public List<MappedRegion> regions() {
        return memory.regions();
    }

    /** The guest physical address of a VMM virtual address, for vring addresses. */
    public long userToGuestPhysical(long uaddr) throws ProtocolException {
        return memory.userToGuestPhysical(uaddr).orElseThrow(() ->
                ProtocolException.refused(ProtocolException.EFAULT, String.format("VMM address 0x%x is in no memory region", uaddr)));
    }

    public byte[] readMemory(long gpa, int len) throws ProtocolException {
        lock.lock();
        try {
            byte[] b = new byte[len];
            if (!memory.read(gpa, b, 0, len)) {
                throw ProtocolException.refused(ProtocolException.EFAULT, String.format("guest memory [0x%x, +0x%x) is not all mapped", gpa, len));
            }
            return b;
        } catch (InternalError e) {
            throw memoryFault(e);
        } finally {
            lock.unlock();
        }
    }

    public void writeMemory(long gpa, byte[] data) throws ProtocolException {
        lock.lock();
        try {
            if (!memory.write(gpa, data, 0, data.length)) {
                throw ProtocolException.refused(ProtocolException.EFAULT, String.format("guest memory [0x%x, +0x%x) is not all mapped", gpa, data.length));
            }
        } catch (InternalError e) {
            throw memoryFault(e);
        } finally {
            lock.unlock();
        }
    }

    // ---- host wiring

    public void setIrqFd(int line, int fd) throws ProtocolException {
        lock.lock();
        try {
            int n = device.irqLines().size();
            if (line < 0 || line >= n) {
                LibC.closeQuietly(fd);
                throw ProtocolException.refused(ProtocolException.EINVAL, "interrupt line " + line + " does not exist (" + device.model() + " has " + n + ")");
            }
            host.setIrqFd(line, fd);
        } finally {
            lock.unlock();
        }
    }

    public void setCallFd(int queue, int fd) {
        host.setCallFd(queue, fd);
    }

    public void setBackendFd(int fd, int ackTimeoutMs) {
        host.setBackend(new BackendChannel(fd, ackTimeoutMs));
    }

    /** Daemon counters merged with the model's own. */
    public Map<String, Long> allCounters() throws ProtocolException {
        lock.lock();
        try {
            syncWalkedPages(); // §4.8 walked_pages: the VMM's count, read when asked (and at each translation)
        } finally {
            lock.unlock();
        }
        Map<String, Long> m = new LinkedHashMap<>(counters.snapshot());
        m.putAll(readDevice(BridgedDevice::counters));
        return m;
    }

    public Diagnostics diagnostics() throws ProtocolException {
        return readDevice(BridgedDevice::diagnostics);
    }

    /** Tears down: the device, every mapping and every fd. Idempotent. */
    @Override
    public void close() {
        closing = true; // even after the VMM kept the command-queue lock (§4.12), the session tears down
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            if (recording != null) {
                recording.finish("the session closed");
                tapped.tap(null);
            }
            try {
                device.close();
            } finally {
                if (shared != null) {
                    syncWalkedPages();
                    letGoOfHandOff();
                    shared.close();
                    shared = null;
                }
                if (journal != null) {
                    journal.close();
                    journal = null;
                }
                memory.dirtyLog(null);
                stopDirtyLog();
                memory.close();
                host.close();
            }
        } finally {
            lock.unlock();
        }
        findings.summarise();
        publish(BridgeEvent.SESSION_CLOSE, origin);
    }
}
