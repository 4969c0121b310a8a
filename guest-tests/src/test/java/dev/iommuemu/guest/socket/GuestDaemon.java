package dev.iommuemu.guest.socket;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.Daemon;
import dev.iommuemu.bridge.daemon.DaemonConfig;
import dev.iommuemu.bridge.device.DeviceRegistry;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Level;

/**
 * The real daemon (every built-in model, {@link DeviceRegistry#discover()}) started in this JVM on
 * a unique short socket under /tmp (sun_path holds 107 bytes), for guest drivers that program the
 * emulated hardware through the socket. No control socket.
 */
public final class GuestDaemon implements AutoCloseable {
    private static final AtomicInteger SEQ = new AtomicInteger();
    public final Path socket;
    public final Daemon daemon;

    public GuestDaemon(String model, String profile) throws IOException {
        this(model, profile, false, DaemonConfig.Recording.NONE);
    }

    /** A daemon recording every session as {@code --record} says (docs/recording.md). */
    public GuestDaemon(String model, String profile, DaemonConfig.Recording recording) throws IOException {
        this(model, profile, false, recording);
    }

    /** With {@code control}, the daemon also serves its control API on {@link #control}. */
    public GuestDaemon(String model, String profile, boolean control) throws IOException {
        this(model, profile, control, DaemonConfig.Recording.NONE);
    }

    private GuestDaemon(String model, String profile, boolean control, DaemonConfig.Recording recording) throws IOException {
        int n = SEQ.incrementAndGet();
        socket = Path.of("/tmp/ieg-" + ProcessHandle.current().pid() + "-" + n + ".sock");
        this.control = control ? Path.of("/tmp/iegc-" + ProcessHandle.current().pid() + "-" + n + ".sock") : null;
        daemon = Daemon.start(new DaemonConfig(socket, this.control, model, profile, Level.WARNING, 2000, 8,
                dev.iommuemu.bridge.daemon.Limits.DEFAULTS, recording), DeviceRegistry.discover());
    }

    /** The control socket, or null. */
    public final Path control;

    public VmmClient connect() throws IOException {
        return VmmClient.connect(socket);
    }

    /** Waits (at most 5 s) until every VMM connection is torn down; whether they all were. */
    public boolean awaitNoConnections() throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (daemon.vmmServer().connectionCount() > 0 || !daemon.registry().list().isEmpty()) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(2);
        }
        return true;
    }

    @Override
    public void close() {
        daemon.close();
    }
}
