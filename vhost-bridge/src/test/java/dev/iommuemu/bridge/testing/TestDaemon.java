package dev.iommuemu.bridge.testing;

import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.session.SessionRegistry;
import java.io.IOException;
import java.nio.file.Path;

/** A VMM-facing server with the fake device as its default model, on a unique socket. */
public final class TestDaemon implements AutoCloseable {
    public final FakeDevice.Factory fake = new FakeDevice.Factory();
    public final SessionRegistry registry;
    public final VhostUserServer server;
    public final Path socket;

    public TestDaemon(String tag) throws IOException {
        this(tag, 2000);
    }

    public TestDaemon(String tag, int ackTimeoutMs) throws IOException {
        this(tag, ackTimeoutMs, new dev.iommuemu.bridge.device.DeviceFactory[0]);
    }

    /** A daemon that also serves {@code extra} models (e.g. the real SMMUv3). */
    public TestDaemon(String tag, int ackTimeoutMs, dev.iommuemu.bridge.device.DeviceFactory... extra) throws IOException {
        this(tag, dev.iommuemu.bridge.session.ConnectionLimits.of(ackTimeoutMs), 64, extra);
    }

    /** A daemon with these connection bounds and connection limit. */
    public TestDaemon(String tag, dev.iommuemu.bridge.session.ConnectionLimits limits, int maxConnections,
            dev.iommuemu.bridge.device.DeviceFactory... extra) throws IOException {
        DeviceRegistry devices = new DeviceRegistry().register(new dev.iommuemu.bridge.device.IdentityDevice.Factory()).register(fake).register(new FakeDevice.Factory("fake-virtio", 2));
        for (dev.iommuemu.bridge.device.DeviceFactory f : extra) {
            devices.register(f);
        }
        registry = new SessionRegistry(devices, fake, "default");
        socket = FakeVmm.socketPath(tag);
        server = new VhostUserServer(socket, registry, limits, maxConnections);
    }

    public FakeVmm connect() throws IOException {
        return new FakeVmm(socket);
    }

    /**
     * Waits (at most 5 s) until the server has no live connection and the registry no session left
     * (teardown finished: a connection leaves the server's set only after its session is closed);
     * returns whether it got there.
     */
    public boolean awaitNoConnections() throws InterruptedException {
        long deadline = System.currentTimeMillis() + 5000;
        while (server.connectionCount() > 0 || !registry.list().isEmpty()) {
            if (System.currentTimeMillis() >= deadline) {
                return false;
            }
            Thread.sleep(5);
        }
        return true;
    }

    @Override
    public void close() {
        server.close();
    }
}
