package dev.iommuemu.bridge.daemon;

import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.session.ConnectionLimits;
import dev.iommuemu.bridge.session.SessionRegistry;
import java.io.IOException;
import java.util.logging.Logger;

/** The running daemon: the session registry, the VMM socket and the control socket. */
public final class Daemon implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Daemon.class.getName());

    private final DaemonConfig config;
    private final SessionRegistry registry;
    private final VhostUserServer vmm;
    private final AutoCloseable control;

    private Daemon(DaemonConfig config, SessionRegistry registry, VhostUserServer vmm, AutoCloseable control) {
        this.config = config;
        this.registry = registry;
        this.vmm = vmm;
        this.control = control;
    }

    /** Starts serving; a model or profile that is not part of this build is an error. */
    public static Daemon start(DaemonConfig config, DeviceRegistry devices) throws IOException {
        return start(config, devices, null);
    }

    /**
     * Starts serving VMMs on an inherited listening socket {@code listenFd} (--fd, systemd socket
     * activation) instead of creating config.socket(); {@code null}: create it.
     */
    public static Daemon start(DaemonConfig config, DeviceRegistry devices, Integer listenFd) throws IOException {
        DeviceFactory f = devices.get(config.model());
        String profile = config.profile();
        if (f == null) {
            throw new IllegalArgumentException("no model '" + config.model() + "' in this build (have " + devices.models() + ")");
        } else if (!profile.isEmpty() && !f.profiles().contains(profile)) {
            throw new IllegalArgumentException("model " + f.model() + " has no profile '" + profile + "' (has " + f.profiles() + ")");
        }
        SessionRegistry registry = new SessionRegistry(devices, f, profile).requireMemorySeals(config.limits().requireMemorySeals())
                .record(config.recording());
        ConnectionLimits limits = config.limits().connection(config.ackTimeoutMs());
        VhostUserServer vmm = listenFd != null
                ? VhostUserServer.inherited(listenFd, registry, limits, config.maxConnections())
                : new VhostUserServer(config.socket(), registry, limits, config.maxConnections());
        AutoCloseable control = null;
        try {
            if (config.control() != null) {
                Limits l = config.limits();
                control = new dev.iommuemu.bridge.control.ControlServer(config.control(), registry,
                        listenFd != null ? "fd " + listenFd : config.socket().toString(),
                        new dev.iommuemu.bridge.control.ControlServer.Options(l.controlMaxConnections(), l.controlRequestTimeoutMs(), l.controlIdleTimeoutMs()));
            }
        } catch (IOException | RuntimeException e) {
            vmm.close();
            throw e;
        }
        LOG.info("iommu-emu daemon up: vmm socket " + (listenFd != null ? "inherited fd " + listenFd : config.socket()) + ", control socket " + (config.control() == null ? "none" : config.control())
                + ", model " + f.model() + (profile.isEmpty() ? "" : " profile " + profile));
        return new Daemon(config, registry, vmm, control);
    }

    public SessionRegistry registry() {
        return registry;
    }

    public DaemonConfig config() {
        return config;
    }

    public VhostUserServer vmmServer() {
        return vmm;
    }

    /** Stops both sockets (removing their files) and tears every session down. */
    @Override
    public void close() {
        vmm.close();
        if (control != null) {
            try {
                control.close();
            } catch (Exception e) {
                LOG.warning("closing the control socket: " + e);
            }
        }
        registry.closeAll();
        LOG.info("iommu-emu daemon stopped");
    }
}
