package dev.iommuemu.bridge.session;

import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.DeviceRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Every live session of the daemon, whether a VMM connection or a control-API client acting as the
 * VMM, with the daemon-wide counters and event bus, and the model a new session gets by default.
 */
public final class SessionRegistry {
    private final Map<Long, DeviceSession> sessions = new ConcurrentHashMap<>();
    private final AtomicLong ids = new AtomicLong();
    private final Counters totals = new Counters(null);
    private final EventBus events = new EventBus();
    private final DeviceRegistry devices;
    private final DeviceFactory defaultModel;
    private final String defaultProfile;
    private volatile boolean requireMemorySeals = true;
    private volatile dev.iommuemu.bridge.daemon.DaemonConfig.Recording recording = dev.iommuemu.bridge.daemon.DaemonConfig.Recording.NONE;

    public SessionRegistry(DeviceRegistry devices, DeviceFactory defaultModel, String defaultProfile) {
        this.devices = devices;
        this.defaultModel = defaultModel;
        this.defaultProfile = defaultProfile;
    }

    /** A new session with the default model (or {@code factory}/{@code profile} if given). */
    public DeviceSession open(String origin, DeviceFactory factory, String profile) {
        long id = ids.incrementAndGet();
        DeviceFactory f = factory != null ? factory : defaultModel;
        String p = profile != null && !profile.isEmpty() ? profile : (f == defaultModel ? defaultProfile : "");
        DeviceSession s = new DeviceSession(id, origin, f, p, totals, events);
        s.requireSeals(requireMemorySeals);
        dev.iommuemu.bridge.daemon.DaemonConfig.Recording rec = recording;
        if (rec.file() != null) {
            try {
                s.startRecording(rec.file(id), rec.maxBytes());
            } catch (dev.iommuemu.bridge.protocol.ProtocolException e) {
                // the session runs unrecorded; the one line says why
                java.util.logging.Logger.getLogger(SessionRegistry.class.getName()).warning("session " + id + ": not recorded: " + e.getMessage());
            }
        }
        sessions.put(id, s);
        events.publish(BridgeEvent.now(id, BridgeEvent.SESSION_OPEN, origin + " model=" + s.model() + " profile=" + s.profile()));
        return s;
    }

    /**
     * Whether new sessions accept only memfds sealed against shrinking as guest RAM and translation
     * rings (default true; docs/daemon.md, --require-memory-seals).
     */
    public SessionRegistry requireMemorySeals(boolean require) {
        requireMemorySeals = require;
        return this;
    }

    /** --record (docs/recording.md): every new session records to its file. */
    public SessionRegistry record(dev.iommuemu.bridge.daemon.DaemonConfig.Recording r) {
        recording = r;
        return this;
    }

    /** The recording settings (--record, --record-max-mib). */
    public dev.iommuemu.bridge.daemon.DaemonConfig.Recording recording() {
        return recording;
    }

    /** Closes and forgets a session. */
    public void close(DeviceSession s) {
        sessions.remove(s.id());
        s.close();
    }

    public DeviceSession get(long id) {
        return sessions.get(id);
    }

    public List<DeviceSession> list() {
        List<DeviceSession> l = new ArrayList<>(sessions.values());
        l.sort((a, b) -> Long.compare(a.id(), b.id()));
        return l;
    }

    public Counters totals() {
        return totals;
    }

    public EventBus events() {
        return events;
    }

    public DeviceRegistry devices() {
        return devices;
    }

    public DeviceFactory defaultModel() {
        return defaultModel;
    }

    public String defaultProfile() {
        return defaultProfile;
    }

    public void closeAll() {
        for (DeviceSession s : list()) {
            close(s);
        }
    }
}
