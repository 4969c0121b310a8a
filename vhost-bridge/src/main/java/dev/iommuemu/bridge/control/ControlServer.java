package dev.iommuemu.bridge.control;

import dev.iommuemu.bridge.session.BridgeEvent;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.unix.UnixServerSocket;
import dev.iommuemu.bridge.unix.UnixSocket;
import dev.iommuemu.bridge.unix.UnixSocketStreams;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.ControlResponse;
import dev.iommuemu.proto.v1.Event;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The control socket: length-delimited {@link ControlRequest}s in, {@link ControlResponse}s out
 * (control.proto), one thread per client. The socket file is owner-only, like the VMM socket: the
 * API can write guest memory. A client's event subscription is fed through a bounded queue so a
 * slow reader never blocks a model; when the queue overflows, events are dropped and a "lost" event
 * says how many.
 */
public final class ControlServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(ControlServer.class.getName());
    private static final int EVENT_QUEUE = 4096;

    private final UnixServerSocket server;
    private final ControlService service;
    private final Thread acceptor;
    private final Set<UnixSocket> clients = ConcurrentHashMap.newKeySet();
    private volatile boolean closing;

    public ControlServer(Path path, SessionRegistry registry) throws IOException {
        this(path, registry, null);
    }

    public ControlServer(Path path, SessionRegistry registry, String vmmSocket) throws IOException {
        this.server = UnixServerSocket.bind(path, 16);
        this.service = new ControlService(registry, vmmSocket);
        this.acceptor = new Thread(this::acceptLoop, "iommu-emu-control-accept");
        acceptor.setDaemon(true);
        acceptor.start();
        LOG.info("control API on " + path);
    }

    private void acceptLoop() {
        while (!closing) {
            UnixSocket s;
            try {
                s = server.accept();
            } catch (IOException e) {
                if (!closing) {
                    LOG.severe("control accept failed: " + e.getMessage());
                }
                return;
            }
            clients.add(s);
            Thread t = new Thread(() -> serve(s), "iommu-emu-control-" + s.fd());
            t.setDaemon(true);
            t.start();
        }
    }

    private void serve(UnixSocket s) {
        Set<Long> owned = new HashSet<>();
        try (s) {
            InputStream in = new BufferedInputStream(UnixSocketStreams.in(s));
            OutputStream out = new BufferedOutputStream(UnixSocketStreams.out(s));
            while (true) {
                ControlRequest req;
                try {
                    req = readRequest(in);
                } catch (com.google.protobuf.InvalidProtocolBufferException e) {
                    LOG.warning("control client sent a malformed message, closing: " + e.getMessage());
                    return;
                }
                if (req == null) {
                    return;
                }
                if (req.getRequestCase() == ControlRequest.RequestCase.SUBSCRIBE_EVENTS) {
                    streamEvents(req, out);
                    return;
                }
                service.handle(req, owned).writeDelimitedTo(out);
                out.flush();
            }
        } catch (IOException e) {
            LOG.fine(() -> "control client gone: " + e.getMessage());
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "control client failed", e);
        } finally {
            clients.remove(s);
            for (long id : owned) {
                DeviceSession d = service.registry().get(id);
                if (d != null) {
                    service.registry().close(d);
                }
            }
        }
    }

    /** Largest request accepted: a 1 MiB memory write plus framing. */
    static final int MAX_REQUEST = ControlService.MAX_MEMORY_IO + 4096;

    /** A delimited request, refusing a length over {@link #MAX_REQUEST} before reading it; null at end of stream. */
    static ControlRequest readRequest(InputStream in) throws IOException {
        int first = in.read();
        if (first < 0) {
            return null;
        }
        int size = com.google.protobuf.CodedInputStream.readRawVarint32(first, in);
        if (size < 0 || size > MAX_REQUEST) {
            throw new com.google.protobuf.InvalidProtocolBufferException("request of " + Integer.toUnsignedString(size) + " bytes exceeds " + MAX_REQUEST);
        }
        byte[] b = in.readNBytes(size);
        if (b.length != size) {
            throw new com.google.protobuf.InvalidProtocolBufferException("truncated request: " + b.length + " of " + size + " bytes");
        }
        return ControlRequest.parseFrom(b);
    }

    private void streamEvents(ControlRequest req, OutputStream out) throws IOException {
        long only = req.getSubscribeEvents().getSession();
        BlockingQueue<BridgeEvent> q = new ArrayBlockingQueue<>(EVENT_QUEUE);
        AtomicLong lost = new AtomicLong();
        Runnable unsubscribe = service.registry().events().subscribe(e -> {
            if ((only == 0 || e.sessionId() == only) && !q.offer(e)) {
                lost.incrementAndGet();
            }
        });
        try {
            // an empty first response confirms the subscription is in place
            ControlResponse.newBuilder().setId(req.getId()).setEmpty(dev.iommuemu.proto.v1.Empty.getDefaultInstance()).build().writeDelimitedTo(out);
            out.flush();
            while (!closing) {
                BridgeEvent e = q.poll(200, TimeUnit.MILLISECONDS);
                long n = lost.getAndSet(0);
                if (n > 0) {
                    write(out, req.getId(), new BridgeEvent(System.currentTimeMillis(), 0, "lost", n + " events dropped (client too slow)"));
                }
                if (e != null) {
                    write(out, req.getId(), e);
                    while ((e = q.poll()) != null) {
                        write(out, req.getId(), e);
                    }
                }
                out.flush();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            unsubscribe.run();
        }
    }

    private static void write(OutputStream out, long id, BridgeEvent e) throws IOException {
        ControlResponse.newBuilder().setId(id).setEvent(Event.newBuilder().setTimeMillis(e.timeMillis()).setSession(e.sessionId())
                .setKind(e.kind()).setDetail(e.detail())).build().writeDelimitedTo(out);
    }

    @Override
    public void close() {
        closing = true;
        server.close();
        for (UnixSocket c : clients) {
            c.shutdown();
        }
    }
}
