package dev.iommuemu.bridge.daemon;

import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.session.VhostUserConnection;
import dev.iommuemu.bridge.unix.UnixServerSocket;
import dev.iommuemu.bridge.unix.UnixSocket;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.logging.Logger;

/**
 * The VMM-facing listener: accepts connections on the unix socket and gives each its own session
 * (one device instance) and thread. Blocking calls on a thread per connection measure within 20%
 * of a C server (shared/notes/java-stack.md) and keep the handlers simple.
 */
public final class VhostUserServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(VhostUserServer.class.getName());

    private final UnixServerSocket server; // null when serving an inherited socket
    private final InheritedListener inherited;
    private final Path path;
    private final SessionRegistry registry;
    private final int ackTimeoutMs;
    private final int maxConnections;
    private final Set<VhostUserConnection> connections = ConcurrentHashMap.newKeySet();
    private final Thread acceptor;
    private volatile boolean closing;

    public VhostUserServer(Path socket, SessionRegistry registry, int ackTimeoutMs) throws IOException {
        this(socket, registry, ackTimeoutMs, 64);
    }

    public VhostUserServer(Path socket, SessionRegistry registry, int ackTimeoutMs, int maxConnections) throws IOException {
        this(UnixServerSocket.bind(socket, 64), null, socket, registry, ackTimeoutMs, maxConnections);
    }

    /** Serves on a listening unix socket this process inherited (--fd, systemd socket activation). */
    public static VhostUserServer inherited(int fd, SessionRegistry registry, int ackTimeoutMs, int maxConnections) {
        return new VhostUserServer(null, new InheritedListener(fd), Path.of("/proc/self/fd/" + fd), registry, ackTimeoutMs,
                maxConnections);
    }

    private VhostUserServer(UnixServerSocket server, InheritedListener inherited, Path socket, SessionRegistry registry,
            int ackTimeoutMs, int maxConnections) {
        this.server = server;
        this.inherited = inherited;
        this.path = socket;
        this.registry = registry;
        this.ackTimeoutMs = ackTimeoutMs;
        this.maxConnections = maxConnections;
        this.acceptor = new Thread(this::acceptLoop, "iommu-emu-accept");
        acceptor.setDaemon(true);
        acceptor.start();
        LOG.info("listening for VMMs on " + (inherited != null ? "inherited fd " + inherited.fd() : socket));
    }

    public Path path() {
        return path;
    }

    private void acceptLoop() {
        while (!closing) {
            UnixSocket s;
            try {
                s = server != null ? server.accept() : inherited.accept();
            } catch (IOException e) {
                if (closing) {
                    return;
                }
                // e.g. EMFILE: keep serving the connections we have and retry shortly
                LOG.severe("accept failed: " + e.getMessage());
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ie) {
                    return;
                }
                continue;
            }
            if (connections.size() >= maxConnections) {
                LOG.warning("refusing a VMM connection: all " + maxConnections + " connections are in use");
                s.close();
                continue;
            }
            DeviceSession session;
            try {
                session = registry.open("vhost-user fd " + s.fd(), null, null);
            } catch (RuntimeException e) {
                LOG.log(java.util.logging.Level.SEVERE, "cannot create a device for a new VMM connection", e);
                s.close();
                continue;
            }
            VhostUserConnection[] self = new VhostUserConnection[1];
            VhostUserConnection c = new VhostUserConnection(s, session, registry, ackTimeoutMs, () -> connections.remove(self[0]));
            self[0] = c;
            connections.add(c);
            LOG.info("session " + session.id() + ": VMM connected, model " + session.model() + " profile " + session.profile());
            Thread t = new Thread(c, "iommu-emu-vmm-" + session.id());
            t.setDaemon(true);
            t.start();
        }
    }

    /** Live connections (for tests and status). */
    public int connectionCount() {
        return connections.size();
    }

    /** Stops accepting, closes every connection (each tears its session down) and removes the socket file. */
    @Override
    public void close() {
        closing = true;
        if (server != null) {
            server.close();
        } else {
            inherited.close();
        }
        try {
            acceptor.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (VhostUserConnection c : connections) {
            c.shutdown();
        }
        long deadline = System.currentTimeMillis() + 3000;
        while (!connections.isEmpty() && System.currentTimeMillis() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
    }
}
