package dev.iommuemu.bridge.control;

import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.session.BridgeEvent;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.unix.UnixServerSocket;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.ControlResponse;
import dev.iommuemu.proto.v1.Empty;
import dev.iommuemu.proto.v1.Error;
import dev.iommuemu.proto.v1.Event;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.handler.codec.protobuf.ProtobufDecoder;
import io.netty.handler.codec.protobuf.ProtobufEncoder;
import io.netty.handler.codec.protobuf.ProtobufVarint32LengthFieldPrepender;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.concurrent.DefaultEventExecutorGroup;
import io.netty.util.concurrent.EventExecutorGroup;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The control socket's transport: length-delimited {@link ControlRequest}s in, {@link ControlResponse}s
 * out (control.proto; protobuf varint32 length framing, as {@code writeDelimitedTo}), on Netty's
 * epoll unix-domain transport. {@link ControlService} answers the requests; this class only moves
 * them, with bounds (docs/daemon.md "Limits and timeouts"):
 * <ul>
 *   <li>at most {@link Options#maxConnections} clients; the next one's first request is answered
 *       with an EBUSY error saying so, then it is closed;</li>
 *   <li>a request begun must be complete within {@link Options#requestTimeoutMs}; a client silent
 *       between requests for {@link Options#idleTimeoutMs} is closed (event subscribers excepted);</li>
 *   <li>a request over {@link #MAX_REQUEST} bytes is refused before it is buffered;</li>
 *   <li>back-pressure: a client that does not read its responses stops being read (autoRead off
 *       above the write-buffer high-water mark); an event subscriber that does not keep up has its
 *       events dropped beyond a bounded queue, and a "lost" event says how many.</li>
 * </ul>
 * The socket file is made and bound by {@link UnixServerSocket} (owner-only 0600 from the start, a
 * probe that refuses a path another daemon serves) and its descriptor handed to Netty. Requests run
 * on a small executor group, never on the event loop: a request may wait (bounded) for a session
 * whose model is busy.
 */
public final class ControlServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(ControlServer.class.getName());
    /** Events queued per subscriber before they are dropped (and counted in a "lost" event). */
    static final int EVENT_QUEUE = 4096;
    /** Largest request accepted: a 1 MiB memory write plus framing. */
    static final int MAX_REQUEST = ControlService.MAX_MEMORY_IO + 4096;
    private static final int HIGH_WATER = 1 << 20;

    /**
     * The control server's bounds (milliseconds; 0 turns a timeout off).
     *
     * @param maxConnections clients served at once
     * @param requestTimeoutMs the rest of a request once its first byte arrived
     * @param idleTimeoutMs silence between requests (event subscribers are exempt)
     */
    public record Options(int maxConnections, int requestTimeoutMs, int idleTimeoutMs) {
        public static final Options DEFAULTS = new Options(64, 5000, 60_000);

        public Options {
            if (maxConnections <= 0 || requestTimeoutMs < 0 || idleTimeoutMs < 0) {
                throw new IllegalArgumentException("control limits: a positive connection count, timeouts >= 0");
            }
        }
    }

    private final UnixServerSocket socket;
    private final ControlService service;
    private final Options options;
    private final EventLoopGroup loop;
    private final EventExecutorGroup workers;
    private final Channel serverChannel;
    private final AtomicInteger clients = new AtomicInteger();
    private final io.netty.channel.group.ChannelGroup open = new io.netty.channel.group.DefaultChannelGroup(io.netty.util.concurrent.GlobalEventExecutor.INSTANCE);
    private volatile boolean closing;

    public ControlServer(Path path, SessionRegistry registry) throws IOException {
        this(path, registry, null);
    }

    public ControlServer(Path path, SessionRegistry registry, String vmmSocket) throws IOException {
        this(path, registry, vmmSocket, Options.DEFAULTS);
    }

    public ControlServer(Path path, SessionRegistry registry, String vmmSocket, Options options) throws IOException {
        if (!Epoll.isAvailable()) {
            throw new IOException("the control API needs Netty's epoll transport, unavailable here: " + Epoll.unavailabilityCause());
        }
        this.service = new ControlService(registry, vmmSocket);
        this.options = options;
        this.socket = UnixServerSocket.bind(path, 16);
        int fd = socket.detach();
        // Netty's accept loop reads until EAGAIN: the listening socket must not block (fcntl(2))
        dev.iommuemu.bridge.unix.LibC.fcntl(fd, dev.iommuemu.bridge.unix.LibC.F_SETFL, dev.iommuemu.bridge.unix.LibC.O_NONBLOCK);
        this.loop = new MultiThreadIoEventLoopGroup(1, (java.util.concurrent.ThreadFactory) r -> daemonThread(r, "iommu-emu-control-loop"),
                EpollIoHandler.newFactory());
        this.workers = new DefaultEventExecutorGroup(2, (java.util.concurrent.ThreadFactory) r -> daemonThread(r, "iommu-emu-control"));
        try {
            this.serverChannel = new ServerBootstrap().group(loop)
                    .channelFactory(() -> new EpollServerDomainSocketChannel(fd, true))
                    .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(HIGH_WATER / 4, HIGH_WATER))
                    .childHandler(new ChannelInitializer<Channel>() {
                        @Override
                        protected void initChannel(Channel ch) {
                            admit(ch);
                        }
                    })
                    .register().syncUninterruptibly().channel();
        } catch (RuntimeException e) {
            loop.shutdownGracefully(0, 0, TimeUnit.MILLISECONDS);
            workers.shutdownGracefully(0, 0, TimeUnit.MILLISECONDS);
            socket.close();
            throw new IOException("control socket " + path + ": " + e.getMessage(), e);
        }
        LOG.info("control API on " + path);
    }

    private static Thread daemonThread(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    /** Builds a client's pipeline: framing and protobuf codecs, timeouts, then the service or a refusal. */
    private void admit(Channel ch) {
        boolean refused = clients.incrementAndGet() > options.maxConnections();
        ch.closeFuture().addListener(f -> clients.decrementAndGet());
        open.add(ch);
        ChannelPipeline p = ch.pipeline();
        int tick = tick();
        if (tick > 0) {
            p.addLast("idle", new IdleStateHandler(false, tick, 0, 0, TimeUnit.MILLISECONDS));
        }
        DelimitedFrameDecoder frames = new DelimitedFrameDecoder(MAX_REQUEST);
        p.addLast("frames", frames);
        p.addLast("decoder", new ProtobufDecoder(ControlRequest.getDefaultInstance()));
        p.addLast("prepender", new ProtobufVarint32LengthFieldPrepender());
        p.addLast("encoder", new ProtobufEncoder());
        if (refused) {
            LOG.warning("refusing a control client: all " + options.maxConnections() + " control connections are in use (--control-max-connections)");
            p.addLast("refuse", new Refusal(frames));
        } else {
            p.addLast(workers, "service", new Client(frames));
        }
    }

    /** How often a silent client is looked at: the shorter of the two timeouts that are on. */
    private int tick() {
        int a = options.requestTimeoutMs();
        int b = options.idleTimeoutMs();
        return a == 0 ? b : b == 0 ? a : Math.min(a, b);
    }

    /** Timeouts shared by both handlers: a begun request must finish; a silent client is closed. */
    private abstract class Bounded extends SimpleChannelInboundHandler<ControlRequest> {
        final DelimitedFrameDecoder frames;
        volatile long lastRead = System.nanoTime();

        Bounded(DelimitedFrameDecoder frames) {
            this.frames = frames;
        }

        boolean exemptFromIdle() {
            return false;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
            lastRead = System.nanoTime();
            super.channelRead(ctx, msg);
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            if (!(evt instanceof IdleStateEvent)) {
                super.userEventTriggered(ctx, evt);
                return;
            }
            long silentMs = (System.nanoTime() - Math.max(lastRead, frames.lastBytesNanos())) / 1_000_000L;
            if (frames.hasPartialFrame() && options.requestTimeoutMs() > 0 && silentMs >= options.requestTimeoutMs()) {
                LOG.warning("control client sent an incomplete request and nothing more for " + silentMs + " ms (--control-request-timeout-ms); closing");
                ctx.close();
            } else if (!frames.hasPartialFrame() && !exemptFromIdle() && options.idleTimeoutMs() > 0 && silentMs >= options.idleTimeoutMs()) {
                LOG.info("control client idle for " + silentMs + " ms (--control-idle-timeout-ms); closing");
                ctx.close();
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            if (cause instanceof io.netty.handler.codec.DecoderException || cause instanceof com.google.protobuf.InvalidProtocolBufferException) {
                LOG.warning("control client sent a malformed message, closing: " + rootMessage(cause));
            } else if (cause instanceof IOException) {
                LOG.fine(() -> "control client gone: " + cause.getMessage());
            } else {
                LOG.log(Level.WARNING, "control client failed", cause);
            }
            ctx.close();
        }
    }

    private static String rootMessage(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && c.getCause() != c) {
            c = c.getCause();
        }
        return c.getMessage();
    }

    /** A client over the limit: its first request gets an EBUSY error that says why, then the connection ends. */
    private final class Refusal extends Bounded {
        Refusal(DelimitedFrameDecoder frames) {
            super(frames);
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ControlRequest req) {
            ctx.writeAndFlush(ControlResponse.newBuilder().setId(req.getId()).setError(Error.newBuilder().setErrno(ProtocolException.EBUSY)
                    .setMessage("the daemon serves at most " + options.maxConnections() + " control clients at once (--control-max-connections); try again later"))
                    .build()).addListener(f -> ctx.close());
        }
    }

    /** One client: requests answered in order on its worker; an event subscription streamed. */
    private final class Client extends Bounded {
        private final Set<Long> owned = new HashSet<>();
        private volatile Subscription subscription;

        Client(DelimitedFrameDecoder frames) {
            super(frames);
        }

        @Override
        boolean exemptFromIdle() {
            return subscription != null;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ControlRequest req) {
            if (subscription != null) {
                return; // a subscribed connection only streams (as before: requests after it are not read)
            }
            if (req.getRequestCase() == ControlRequest.RequestCase.SUBSCRIBE_EVENTS) {
                subscription = new Subscription(ctx.channel(), req);
                return;
            }
            ControlResponse r = service.handle(req, owned);
            ctx.writeAndFlush(r);
            if (!ctx.channel().isWritable()) {
                // back-pressure: a client that does not read its responses is not read either
                ctx.channel().config().setAutoRead(false);
            }
        }

        @Override
        public void channelWritabilityChanged(ChannelHandlerContext ctx) throws Exception {
            if (ctx.channel().isWritable()) {
                ctx.channel().config().setAutoRead(true);
                Subscription s = subscription;
                if (s != null) {
                    s.schedule();
                }
            }
            super.channelWritabilityChanged(ctx);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) throws Exception {
            Subscription s = subscription;
            if (s != null) {
                s.unsubscribe.run();
            }
            for (long id : owned) {
                DeviceSession d = service.registry().get(id);
                if (d != null) {
                    service.registry().close(d);
                }
            }
            owned.clear();
            super.channelInactive(ctx);
        }
    }

    /**
     * One event stream: models publish from their threads into a bounded queue (never blocking a
     * model); the channel's event loop writes while the channel is writable. Beyond the queue,
     * events are counted and reported as one "lost" event.
     */
    private final class Subscription {
        private final Channel ch;
        private final long id;
        private final long only;
        private final BlockingQueue<BridgeEvent> queue = new ArrayBlockingQueue<>(EVENT_QUEUE);
        private final AtomicLong lost = new AtomicLong();
        private final AtomicBoolean scheduled = new AtomicBoolean();
        final Runnable unsubscribe;

        Subscription(Channel ch, ControlRequest req) {
            this.ch = ch;
            this.id = req.getId();
            this.only = req.getSubscribeEvents().getSession();
            this.unsubscribe = service.registry().events().subscribe(e -> {
                if (only == 0 || e.sessionId() == only) {
                    if (!queue.offer(e)) {
                        lost.incrementAndGet();
                    }
                    schedule();
                }
            });
            // an empty first response confirms the subscription is in place
            ch.writeAndFlush(ControlResponse.newBuilder().setId(id).setEmpty(Empty.getDefaultInstance()).build());
        }

        void schedule() {
            if (scheduled.compareAndSet(false, true)) {
                ch.eventLoop().execute(this::drain);
            }
        }

        private void drain() {
            scheduled.set(false);
            if (!ch.isActive()) {
                return;
            }
            boolean wrote = false;
            long n = lost.get();
            if (n > 0 && ch.isWritable()) {
                lost.addAndGet(-n);
                ch.write(event(new BridgeEvent(System.currentTimeMillis(), 0, "lost", n + " events dropped (client too slow)")));
                wrote = true;
            }
            BridgeEvent e;
            while (ch.isWritable() && (e = queue.poll()) != null) {
                ch.write(event(e));
                wrote = true;
            }
            if (wrote) {
                ch.flush();
            }
            // more left (not writable): channelWritabilityChanged schedules the rest
        }

        private ControlResponse event(BridgeEvent e) {
            Event.Builder b = Event.newBuilder().setTimeMillis(e.timeMillis()).setSession(e.sessionId()).setKind(e.kind())
                    .setDetail(e.detail());
            if (e.finding() != null) {
                b.setFinding(ControlService.finding(e.finding()));
            }
            return ControlResponse.newBuilder().setId(id).setEvent(b).build();
        }
    }

    /** Control clients connected now (for tests and status). */
    public int clientCount() {
        return clients.get();
    }

    /** Stops accepting, closes every client (their sessions with them) and removes the socket file. */
    @Override
    public void close() {
        if (closing) {
            return;
        }
        closing = true;
        serverChannel.close().awaitUninterruptibly(2000);
        // clients first, while the executors still run their channelInactive (owned sessions closed)
        open.close().awaitUninterruptibly(2000);
        long deadline = System.nanoTime() + 2_000_000_000L;
        while (clients.get() > 0 && System.nanoTime() < deadline) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        loop.shutdownGracefully(0, 500, TimeUnit.MILLISECONDS).awaitUninterruptibly(3000);
        workers.shutdownGracefully(0, 500, TimeUnit.MILLISECONDS).awaitUninterruptibly(3000);
        socket.close();
    }
}
