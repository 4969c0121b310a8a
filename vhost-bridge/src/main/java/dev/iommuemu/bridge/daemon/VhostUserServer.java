package dev.iommuemu.bridge.daemon;

import dev.iommuemu.bridge.session.ConnectionLimits;
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

    private final UnixServerSocket server;
    private final Path path;
    private final SessionRegistry registry;
    private final ConnectionLimits limits;
    private final int maxConnections;
    /** Stack of a connection thread: its handlers are shallow; 500 connections must not cost 500 MiB. */
    private static final long STACK_BYTES = 512 * 1024;
    private final Set<VhostUserConnection> connections = ConcurrentHashMap.newKeySet();
    private final Thread acceptor;
    private volatile boolean closing;

    public VhostUserServer(Path socket, SessionRegistry registry, int ackTimeoutMs) throws IOException {
        this(socket, registry, ackTimeoutMs, 64);
    }

    public VhostUserServer(Path socket, SessionRegistry registry, int ackTimeoutMs, int maxConnections) throws IOException {
        this(socket, registry, ConnectionLimits.of(ackTimeoutMs), maxConnections);
    }

    /**
     * Serves {@code socket} (refusing a path another daemon serves: {@link UnixServerSocket#bind}),
     * at most {@code maxConnections} at once, each bounded by {@code limits}.
     */
    public VhostUserServer(Path socket, SessionRegistry registry, ConnectionLimits limits, int maxConnections) throws IOException {
        this(UnixServerSocket.bind(socket, 64), socket, registry, limits, maxConnections);
    }

    /**
     * Serves on a listening unix socket this process inherited (--fd, systemd socket activation),
     * with the same admission limits as a socket it creates.
     */
    public static VhostUserServer inherited(int fd, SessionRegistry registry, ConnectionLimits limits, int maxConnections) {
        return new VhostUserServer(UnixServerSocket.inherited(fd), Path.of("/proc/self/fd/" + fd), registry, limits, maxConnections);
    }

    private VhostUserServer(UnixServerSocket server, Path socket, SessionRegistry registry, ConnectionLimits limits, int maxConnections) {
        this.server = server;
        this.path = socket;
        this.registry = registry;
        this.limits = limits;
        this.maxConnections = maxConnections;
        this.acceptor = new Thread(this::acceptLoop, "iommu-emu-accept");
        acceptor.setDaemon(true);
        acceptor.start();
        LOG.info("listening for VMMs on " + (server.path() == null ? "inherited fd " + server.fd() : socket));
    }

    public Path path() {
        return path;
    }

    private void acceptLoop() {
        while (!closing) {
            UnixSocket s;
            try {
                s = server.accept();
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
                // One line per refusal; the peer sees the connection closed before any message.
                // Silent or idle peers do not hold their slots: the handshake and idle timeouts free them.
                LOG.warning("refusing a VMM connection: all " + maxConnections + " connections are in use (--max-connections)");
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
            VhostUserConnection c = new VhostUserConnection(s, session, registry, limits, () -> connections.remove(self[0]));
            self[0] = c;
            connections.add(c);
            LOG.info("session " + session.id() + ": VMM connected, model " + session.model() + " profile " + session.profile());
            Thread t = new Thread(null, c, "iommu-emu-vmm-" + session.id(), STACK_BYTES);
            t.setDaemon(true);
            t.start();
        }
    }

    /** Live connections (for tests and status). */
    public int connectionCount() {
        return connections.size();
    }

    /** Stops accepting, closes every connection (each tears its session down) and removes the socket file it created (an inherited one stays). */
    @Override
    public void close() {
        closing = true;
        server.close();
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
