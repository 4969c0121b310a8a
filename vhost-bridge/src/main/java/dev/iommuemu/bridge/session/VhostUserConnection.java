package dev.iommuemu.bridge.session;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.PropertyRefusedException;
import dev.iommuemu.bridge.protocol.NestingPayloads;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.PropertyPayloads;
import dev.iommuemu.bridge.protocol.Protocol;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import dev.iommuemu.bridge.unix.Descriptors;
import dev.iommuemu.bridge.protocol.StatePayloads;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.bridge.unix.UnixSocket;
import java.io.EOFException;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One VMM connection: reads framed requests, checks them against their framing rule, hands them to
 * the session and answers (docs/protocol.md). Runs on its own thread with blocking calls. A fatal
 * error, a refused request nobody asked to hear about, a broken back-end channel or the peer
 * closing all end the connection, after which the session is torn down: device closed, regions
 * unmapped, every descriptor closed.
 */
public final class VhostUserConnection implements Runnable {
    private static final Logger LOG = Logger.getLogger(VhostUserConnection.class.getName());

    private final VhostUserChannel channel;
    private final DeviceSession session;
    private final SessionRegistry registry;
    private final ConnectionLimits limits;
    private final Runnable onClose;
    private long features;
    private long protocolFeatures;
    private boolean protocolFeaturesAcked;
    private final Map<Integer, VringState> vrings = new ConcurrentHashMap<>();
    private KickPoller poller;
    private TranslateRing ring;

    /** What SET_VRING_NUM/ADDR/BASE/ENABLE said about one queue. */
    private static final class VringState {
        int num;
        Payloads.VringAddr addr;
        int base;
        volatile boolean enabled;
        /** Read by the kick thread (kicked), written by the connection's. */
        volatile boolean started;
        /** A kick eventfd is watched for this ring (it may not be started: unconfigured, §3 of docs/protocol.md). */
        boolean kickSet;

        /**
         * Whether the driver configured the ring: a size and ring addresses (virtio 1.2 §2.7, §4.1.4.3:
         * a queue the driver leaves disabled has no rings; a VMM address 0 lies in no region).
         */
        boolean configured() {
            return addr != null && num != 0 && addr.desc() != 0 && addr.avail() != 0 && addr.used() != 0;
        }
    }

    public VhostUserConnection(UnixSocket socket, DeviceSession session, SessionRegistry registry, int ackTimeoutMs, Runnable onClose) {
        this(socket, session, registry, ConnectionLimits.of(ackTimeoutMs), onClose);
    }

    public VhostUserConnection(UnixSocket socket, DeviceSession session, SessionRegistry registry, ConnectionLimits limits, Runnable onClose) {
        this.channel = new VhostUserChannel(socket, limits.messageTimeoutMs());
        this.session = session;
        this.registry = registry;
        this.limits = limits;
        this.onClose = onClose;
        session.wakeOnFailure(this::shutdown);
    }

    public DeviceSession session() {
        return session;
    }

    /** Wakes the connection thread so that it tears down (daemon shutdown). */
    public void shutdown() {
        channel.socket().shutdown();
    }

    @Override
    public void run() {
        String who = "session " + session.id() + " (" + session.origin() + ")";
        String why = "peer closed";
        boolean first = true;
        try {
            while (true) {
                // Admission (docs/daemon.md): a first message within the handshake timeout, and no
                // long silence before guest memory is shared; a slot is never held by an idle peer.
                int wait = first ? limits.handshakeTimeoutMs() : session.regions().isEmpty() ? limits.idleTimeoutMs() : 0;
                if (wait > 0 && !channel.socket().awaitReadable(wait)) {
                    why = first ? "no message within the handshake timeout (" + wait + " ms, --handshake-timeout-ms)"
                            : "idle for " + wait + " ms without sharing guest memory (--idle-timeout-ms)";
                    LOG.warning(who + ": closing: " + why);
                    break;
                }
                first = false;
                VhostUserMessage m = channel.read();
                if (m == null) {
                    if (session.failure() != null) {
                        why = session.failure(); // woken by shutdown() after a failure off this thread
                        LOG.warning(who + ": closing: " + why);
                    }
                    break;
                }
                session.counters().inc(Counter.MESSAGES);
                if (!handle(m)) {
                    why = "protocol error";
                    break;
                }
                if (session.failure() != null) {
                    why = session.failure();
                    LOG.warning(who + ": closing: " + why);
                    break;
                }
            }
        } catch (EOFException e) {
            why = e.getMessage();
            LOG.warning(who + ": truncated message: " + why);
            session.counters().inc(Counter.PROTOCOL_ERRORS);
        } catch (java.net.SocketTimeoutException e) {
            why = e.getMessage() + " (--message-timeout-ms " + limits.messageTimeoutMs() + ")";
            LOG.warning(who + ": closing: " + why);
            session.counters().inc(Counter.PROTOCOL_ERRORS);
        } catch (RejectedMessage e) {
            why = e.getMessage();
            LOG.warning(who + ": bad frame, closing: " + why);
            session.counters().inc(Counter.PROTOCOL_ERRORS);
            session.publish(BridgeEvent.PROTOCOL_ERROR, why);
            Request r = Request.of(e.request());
            if (e.needReply() || (r != null && r.hasReply())) {
                try {
                    channel.send(VhostUserMessage.ack(e.request(), e.errno()));
                } catch (IOException ignored) {
                    // the peer is gone already; the connection closes regardless
                }
            }
        } catch (InternalError e) {
            // A fault in an access to a mapping (SIGBUS: a memfd shrunk under the daemon, which
            // only an unsealed region allows, docs/daemon.md): the session's memory is unusable.
            why = "guest memory became inaccessible (a shared memory file was truncated?): " + e.getMessage();
            LOG.warning(who + ": closing: " + why);
        } catch (ProtocolException e) {
            why = e.getMessage();
            LOG.warning(who + ": bad frame, closing: " + why);
            session.counters().inc(Counter.PROTOCOL_ERRORS);
            session.publish(BridgeEvent.PROTOCOL_ERROR, why);
        } catch (DeviceSession.Failed e) {
            why = e.getMessage();
            LOG.warning(who + ": closing: " + why);
        } catch (IOException | RuntimeException e) {
            why = e.toString();
            LOG.log(Level.WARNING, who + ": connection failed", e);
        } finally {
            if (poller != null) {
                poller.close();
            }
            if (ring != null) {
                ring.close();
            }
            registry.close(session);
            channel.close();
            LOG.info(who + ": closed (" + why + ")");
            onClose.run();
        }
    }

    /** Handles one message; false when the connection must close. */
    private boolean handle(VhostUserMessage m) throws IOException {
        Request r = Request.of(m.request());
        try {
            if (r == null) {
                throw ProtocolException.fatal(ProtocolException.ENOSYS, "unknown request " + m.request());
            }
            if (m.isReply()) {
                throw ProtocolException.fatal(ProtocolException.EPROTO, r + " carries the REPLY flag");
            }
            r.validate(m);
            if (r.usesDevice()) {
                session.markUsed();
            }
            VhostUserMessage reply = dispatch(r, m);
            if (reply != null) {
                channel.send(reply);
            } else if (m.needReply()) {
                channel.send(VhostUserMessage.ack(m.request(), 0));
            }
            return true;
        } catch (ProtocolException e) {
            session.counters().inc(Counter.PROTOCOL_ERRORS);
            session.publish(BridgeEvent.PROTOCOL_ERROR, (r != null ? r.name() : "request " + m.request()) + ": " + e.getMessage());
            boolean answer = (r != null && r.hasReply()) || m.needReply();
            // An error nobody hears about must not go unnoticed: without a reply, the connection ends.
            boolean close = e.isFatal() || !answer;
            LOG.warning("session " + session.id() + ": " + (r != null ? r.name() : "request " + m.request()) + " "
                    + (close ? "failed, closing" : "refused") + " (errno " + e.errno() + "): " + e.getMessage());
            if (answer) {
                channel.send(VhostUserMessage.ack(m.request(), e.errno()));
            }
            return !close;
        } finally {
            for (int fd : m.fds()) {
                LibC.closeQuietly(fd);
            }
        }
    }

    /**
     * Refuses (EINVAL) a message whose descriptor {@code i} is not an eventfd; makes it
     * non-blocking otherwise, so signalling it never blocks (eventfd(2)). A pipe, /dev/null or a
     * memfd as a kick or interrupt fd would block the writer or spin the poller.
     */
    private static void requireEventFd(VhostUserMessage m, int i, String what) throws ProtocolException {
        if (i >= m.fds().length) {
            throw ProtocolException.refused(ProtocolException.EBADF, what + " is missing");
        }
        String bad = Descriptors.requireEventFd(m.fds()[i], what);
        if (bad != null) {
            throw ProtocolException.refused(ProtocolException.EINVAL, bad);
        }
    }

    /** Takes ownership of descriptor {@code i} of {@code m} (it will not be closed after handling). */
    private static int take(VhostUserMessage m, int i) {
        int fd = m.fds()[i];
        m.fds()[i] = -1;
        return fd;
    }

    private VringState vring(int index) throws ProtocolException {
        int n = session.readDevice(BridgedDevice::numQueues);
        if (index < 0 || index >= n) {
            throw ProtocolException.refused(ProtocolException.EINVAL, "vring " + index + " does not exist (" + n + " queues)");
        }
        return vrings.computeIfAbsent(index, i -> new VringState());
    }

    private VhostUserMessage dispatch(Request r, VhostUserMessage m) throws ProtocolException {
        byte[] p = m.payload();
        int code = m.request();
        if (r == Request.IOMMUFD_SET_EVENTQ_FD) {
            // docs/protocol.md §4.6: the descriptor is the daemon's only once accepted; a refused
            // one stays in the message and is closed with it.
            NestingPayloads.EventqFd q = NestingPayloads.EventqFd.decode(p);
            String bad = q.noFd() ? null : Descriptors.requireEventFd(m.fds()[0], "the eventfd of queue " + q.queueId());
            if (bad != null) {
                LOG.warning("session " + session.id() + ": " + r + " refused (EINVAL): " + bad);
                return VhostUserMessage.reply(code, new NestingPayloads.Reply(ProtocolException.EINVAL, 0, 0, 0, new byte[0]).encode());
            }
            int errno = session.setEventqFd(q.queueId(), q.noFd() ? -1 : m.fds()[0]);
            if (errno == 0 && !q.noFd()) {
                take(m, 0);
            }
            return VhostUserMessage.reply(code, new NestingPayloads.Reply(errno, 0, 0, 0, new byte[0]).encode());
        }
        if (r.isNesting()) {
            // docs/protocol.md §4.6: a refused call is the reply's errno, not an error reply
            return VhostUserMessage.reply(code, NestingPayloads.Reply.of(session.iommufd(NestingPayloads.decode(r, p))).encode());
        }
        switch (r) {
            case GET_FEATURES -> {
                long f = session.readDevice(BridgedDevice::virtioFeatures) | (1L << Protocol.F_PROTOCOL_FEATURES);
                return VhostUserMessage.reply(code, Payloads.u64(f));
            }
            case SET_FEATURES -> {
                features = Payloads.u64(p);
                long dev = features & ~(1L << Protocol.F_PROTOCOL_FEATURES);
                session.withDevice(d -> {
                    d.setVirtioFeatures(dev);
                    return null;
                });
                return null;
            }
            case SET_OWNER -> {
                return null;
            }
            case GET_PROTOCOL_FEATURES -> {
                return VhostUserMessage.reply(code, Payloads.u64(Protocol.PROTOCOL_FEATURES));
            }
            case SET_PROTOCOL_FEATURES -> {
                long f = Payloads.u64(p);
                if ((f & ~Protocol.PROTOCOL_FEATURES) != 0) {
                    throw ProtocolException.refused(ProtocolException.EINVAL, String.format("protocol features 0x%x not offered", f & ~Protocol.PROTOCOL_FEATURES));
                }
                protocolFeatures = f;
                protocolFeaturesAcked = true;
                return null;
            }
            case GET_QUEUE_NUM -> {
                return VhostUserMessage.reply(code, Payloads.u64(session.readDevice(BridgedDevice::numQueues)));
            }
            case GET_MAX_MEM_SLOTS -> {
                return VhostUserMessage.reply(code, Payloads.u64(Protocol.MAX_MEM_SLOTS));
            }
            case SET_MEM_TABLE -> {
                Payloads.MemTable t = Payloads.MemTable.decode(p);
                int[] fds = new int[m.fds().length];
                for (int i = 0; i < fds.length; i++) {
                    fds[i] = take(m, i);
                }
                session.setMemTable(t.regions(), fds);
                return null;
            }
            case ADD_MEM_REG -> {
                Payloads.SingleMemRegion s = Payloads.SingleMemRegion.decode(p);
                session.addRegion(s.region(), take(m, 0));
                return null;
            }
            case REM_MEM_REG -> {
                session.removeRegion(Payloads.SingleMemRegion.decode(p).region());
                return null;
            }
            case SET_BACKEND_REQ_FD -> {
                session.setBackendFd(take(m, 0), limits.ackTimeoutMs());
                return null;
            }
            case GET_CONFIG -> {
                Payloads.Config c = Payloads.Config.decode(p);
                byte[] data = session.readDevice(d -> d.readConfig(c.offset(), c.data().length));
                return VhostUserMessage.reply(code, new Payloads.Config(c.offset(), c.flags(), data).encode());
            }
            case SET_CONFIG -> {
                Payloads.Config c = Payloads.Config.decode(p);
                session.withDevice(d -> {
                    d.writeConfig(c.offset(), c.data());
                    return null;
                });
                return null;
            }
            case RESET_DEVICE -> {
                reset(false);
                return null;
            }
            case IOMMU_SYSTEM_RESET -> {
                reset(true);
                return null;
            }
            case SET_VRING_NUM -> {
                Payloads.VringState s = Payloads.VringState.decode(p);
                vring(s.index()).num = s.num();
                startWhenConfigured(s.index());
                return null;
            }
            case SET_VRING_ADDR -> {
                Payloads.VringAddr a = Payloads.VringAddr.decode(p);
                vring(a.index()).addr = a;
                startWhenConfigured(a.index());
                return null;
            }
            case SET_VRING_BASE -> {
                Payloads.VringState s = Payloads.VringState.decode(p);
                vring(s.index()).base = s.num();
                return null;
            }
            case SET_VRING_ENABLE -> {
                Payloads.VringState s = Payloads.VringState.decode(p);
                VringState v = vring(s.index());
                boolean was = v.enabled;
                v.enabled = s.num() != 0;
                // vhost-user "Ring states": a kick taken while the ring was disabled was not served;
                // the buffers it announced are processed now, so no notification is lost.
                if (v.enabled && !was && v.started) {
                    kicked(s.index());
                }
                return null;
            }
            case GET_VRING_BASE -> {
                Payloads.VringState s = Payloads.VringState.decode(p);
                vring(s.index());
                int next = stopRing(s.index());
                return VhostUserMessage.reply(code, new Payloads.VringState(s.index(), next).encode());
            }
            case SET_VRING_KICK -> {
                long u = Payloads.u64(p);
                int index = (int) (u & Payloads.INDEX_MASK);
                VringState v = vring(index);
                if ((u & Payloads.NOFD_MASK) != 0) {
                    throw ProtocolException.refused(ProtocolException.ENOSYS, "polling vrings (no kick fd) are not supported");
                }
                // an eventfd whether or not the ring is configured yet: it is polled either way
                requireEventFd(m, 0, "the kick fd of vring " + index);
                int kickFd = take(m, 0);
                if (!v.configured()) {
                    // virtio 1.2 §2.7/§4.1.4.3: a queue the driver did not configure is not an
                    // error; it is watched and starts when its size and rings arrive.
                    if (v.started) {
                        stopRing(index);
                    }
                    watchKick(index, v, kickFd);
                    return null;
                }
                startRing(index, v, kickFd);
                return null;
            }
            case SET_VRING_CALL -> {
                long u = Payloads.u64(p);
                int index = (int) (u & Payloads.INDEX_MASK);
                vring(index);
                if ((u & Payloads.NOFD_MASK) == 0) {
                    requireEventFd(m, 0, "the call fd of vring " + index);
                }
                session.setCallFd(index, (u & Payloads.NOFD_MASK) != 0 ? -1 : take(m, 0));
                return null;
            }
            case SET_VRING_ERR -> {
                vring((int) (Payloads.u64(p) & Payloads.INDEX_MASK));
                return null; // the fd (if any) is closed: this back-end reports no vring errors
            }
            case IOMMU_GET_INFO -> {
                return VhostUserMessage.reply(code, session.info().encode());
            }
            case IOMMU_SET_MODEL -> {
                Payloads.ModelSelect s = Payloads.ModelSelect.decode(p);
                DeviceFactory f = registry.devices().byNumber(s.model());
                if (f == null) {
                    throw ProtocolException.refused(ProtocolException.EINVAL, "model " + s.model() + " is not available (have " + registry.devices().models() + ")");
                }
                session.selectModel(f, s.profile());
                return null;
            }
            case IOMMU_MMIO_READ -> {
                Payloads.MmioRead rd = Payloads.MmioRead.decode(p);
                long v = session.mmioRead(rd.offset(), rd.size());
                return VhostUserMessage.reply(code, new Payloads.MmioReadReply(0, v).encode());
            }
            case IOMMU_MMIO_WRITE -> {
                Payloads.MmioWrite w = Payloads.MmioWrite.decode(p);
                session.mmioWrite(w.offset(), w.size(), w.value());
                return null;
            }
            case IOMMU_TRANSLATE -> {
                return VhostUserMessage.reply(code, session.translate(Payloads.TranslateRequest.decode(p)).encode());
            }
            case IOMMU_TRANSLATE_RUN -> {
                return VhostUserMessage.reply(code, session.translateRun(Payloads.TranslateRunRequest.decode(p)).encode());
            }
            case IOMMU_TRANSLATE_BATCH -> {
                return VhostUserMessage.reply(code, Payloads.encodeBatchReply(session.translateBatch(Payloads.decodeBatch(p))));
            }
            case IOMMU_ATS_TRANSLATE -> {
                return VhostUserMessage.reply(code, session.atsTranslate(Payloads.TranslateRequest.decode(p)).encode());
            }
            case IOMMU_PRI_PAGE_REQUEST -> {
                Payloads.PageRequestMsg q = Payloads.PageRequestMsg.decode(p);
                if ((q.flags() & ~Payloads.PAGE_REQUEST_FLAGS) != 0) {
                    throw ProtocolException.refused(ProtocolException.EINVAL, String.format("IOMMU_PRI_PAGE_REQUEST: undefined flags 0x%x", q.flags()));
                }
                session.pageRequest(new BridgedDevice.PageRequest(q.streamId(),
                        q.substreamId() == Payloads.NO_SUBSTREAM ? dev.iommuemu.dma.IommuModel.NO_SUBSTREAM : q.substreamId(),
                        q.address(), q.groupIndex(), q.read(), q.write(), q.exec(), q.priv(), q.last(), q.stop()));
                return null;
            }
            case IOMMU_SET_TRANSLATE_RING -> {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(p).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                int entries = b.getInt(0);
                requireEventFd(m, 1, "the translation ring's doorbell");
                int ringFd = take(m, 0);
                int bell = take(m, 1);
                if (ring != null) {
                    ring.close();
                    ring = null;
                }
                ring = TranslateRing.start(session, entries, ringFd, bell, this::shutdown);
                return null;
            }
            case IOMMU_SET_SHARED_CACHE -> {
                // docs/protocol.md §4.8 {u32 sets, u32 ways, u32 flags, u32 reserved} and the memfd
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(p).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                int fd = take(m, 0);
                // flags bit 0 RECIPES (version 12); DeviceSession refuses the undefined ones
                session.setSharedCache(fd, b.getInt(0), b.getInt(4), b.getInt(8));
                return null;
            }
            case IOMMU_SET_STATE_JOURNAL -> {
                // docs/protocol.md §4.10 {u64 size, u32 flags, u32 reserved} and the memfd
                StatePayloads.Journal q = StatePayloads.Journal.decode(p);
                int fd = take(m, 0);
                if (q.flags() != 0) {
                    LibC.closeQuietly(fd);
                    throw ProtocolException.refused(ProtocolException.EINVAL, String.format("IOMMU_SET_STATE_JOURNAL: undefined flags 0x%x", q.flags()));
                }
                session.setStateJournal(fd, q.size());
                return null;
            }
            case IOMMU_SET_DIRTY_LOG -> {
                // docs/protocol.md §4.11: vhost-user's struct vhost_user_log and the log's memfd;
                // mmap_size 0 with no fd stops logging
                StatePayloads.DirtyLog q = StatePayloads.DirtyLog.decode(p);
                if (q.mmapSize() == 0 && m.fds().length != 0) {
                    throw ProtocolException.refused(ProtocolException.EINVAL,
                            "IOMMU_SET_DIRTY_LOG: mmap_size 0 stops logging and carries no file descriptor, but one came");
                }
                if (q.mmapSize() != 0 && m.fds().length == 0) {
                    throw ProtocolException.refused(ProtocolException.EBADF,
                            "IOMMU_SET_DIRTY_LOG: a log of " + q.mmapSize() + " bytes needs its memfd, and none came");
                }
                session.setDirtyLog(q.mmapSize() == 0 ? -1 : take(m, 0), q.mmapSize(), q.mmapOffset());
                return null;
            }
            case IOMMU_SYNC_DIRTY_LOG -> {
                // docs/protocol.md §4.11: the ack says every earlier write has marked the log
                long marked = session.syncDirtyLog();
                LOG.fine(() -> "session " + session.id() + ": dirty log synchronised (" + marked + " pages marked so far)");
                return null;
            }
            case IOMMU_SAVE_STATE -> {
                // docs/protocol.md §4.9: the blob into the VMM's memfd, its size in the reply
                int fd = take(m, 0);
                StatePayloads.Reply reply = session.saveState(fd);
                return VhostUserMessage.reply(code, reply.encode());
            }
            case IOMMU_LOAD_STATE -> {
                // docs/protocol.md §4.9: a refusal is the reply's errno and sentence; nothing loaded
                int fd = take(m, 0);
                StatePayloads.Reply reply = session.loadState(fd, StatePayloads.Load.decode(p));
                if (reply.errno() != 0) {
                    LOG.warning("session " + session.id() + ": IOMMU_LOAD_STATE refused (errno " + reply.errno() + "): " + reply.message());
                    session.publish(BridgeEvent.PROTOCOL_ERROR, "IOMMU_LOAD_STATE: " + reply.message());
                }
                return VhostUserMessage.reply(code, reply.encode());
            }
            case IOMMU_SET_PROPERTIES -> {
                // docs/protocol.md §4.7: a refused property is the reply's errno and sentence
                List<PropertyPayloads.Entry> entries = PropertyPayloads.decode(p);
                PropertyPayloads.Reply reply;
                try {
                    reply = session.setProperties(PropertyPayloads.properties(entries));
                } catch (PropertyRefusedException e) {
                    reply = new PropertyPayloads.Reply(e.errno(),
                            PropertyPayloads.key(e.property()), e.getMessage());
                }
                if (reply.errno() != 0) {
                    LOG.warning("session " + session.id() + ": IOMMU_SET_PROPERTIES refused (errno " + reply.errno() + "): " + reply.message());
                    session.publish(BridgeEvent.PROTOCOL_ERROR, "IOMMU_SET_PROPERTIES: " + reply.message());
                }
                return VhostUserMessage.reply(code, reply.encode());
            }
            case IOMMU_SET_ENDPOINTS -> {
                PropertyPayloads.Endpoints e = PropertyPayloads.Endpoints.decode(p);
                session.setEndpoints(e.op(), e.ids());
                return null;
            }
            case IOMMU_MSI_ABORTED -> {
                Payloads.MsiWrite w = Payloads.MsiWrite.decode(p);
                session.msiAborted(w.address(), w.data(), w.source());
                return null;
            }
            case IOMMU_SET_IRQ_FD -> {
                long u = Payloads.u64(p);
                if ((u & Payloads.NOFD_MASK) == 0) {
                    requireEventFd(m, 0, "the fd of interrupt line " + (u & Payloads.INDEX_MASK));
                }
                session.setIrqFd((int) (u & Payloads.INDEX_MASK), (u & Payloads.NOFD_MASK) != 0 ? -1 : take(m, 0));
                return null;
            }
            default -> throw ProtocolException.fatal(ProtocolException.ENOSYS, r + " is not handled");
        }
    }

    private void startRing(int index, VringState v, int kickFd) throws ProtocolException {
        try {
            if (v.started) {
                stopRing(index);
            }
            queueStart(index, v);
        } catch (ProtocolException e) {
            LibC.closeQuietly(kickFd);
            throw e;
        }
        watchKick(index, v, kickFd);
    }

    /** The model starts serving ring {@code index} as configured. */
    private void queueStart(int index, VringState v) throws ProtocolException {
        BridgedDevice.Vring ring = new BridgedDevice.Vring(v.num, session.userToGuestPhysical(v.addr.desc()),
                session.userToGuestPhysical(v.addr.avail()), session.userToGuestPhysical(v.addr.used()), v.base);
        session.withDevice(d -> {
            d.queueStart(index, ring);
            return null;
        });
        v.started = true;
    }

    private void watchKick(int index, VringState v, int kickFd) {
        if (poller == null) {
            poller = new KickPoller("iommu-emu-kick-" + session.id(), this::kicked);
        }
        poller.set(index, kickFd);
        v.kickSet = true;
    }

    /**
     * A ring that got its kick eventfd while unconfigured starts once SET_VRING_NUM/ADDR complete
     * it (vhost-user: a ring starts with its kick; the driver configured the queue later), and
     * serves what the driver made available meanwhile.
     */
    private void startWhenConfigured(int index) throws ProtocolException {
        VringState v = vrings.get(index);
        if (v == null || v.started || !v.kickSet || !v.configured()) {
            return;
        }
        queueStart(index, v);
        kicked(index);
    }

    /** RESET_DEVICE, or IOMMU_SYSTEM_RESET (docs/protocol.md §4.1): every ring stopped, then the model reset. */
    private void reset(boolean system) throws ProtocolException {
        for (int i : vrings.keySet()) {
            stopRing(i);
        }
        vrings.clear();
        session.withDevice(d -> {
            if (system) {
                d.systemReset();
            } else {
                d.reset();
            }
            session.clearSharedCache();
            return null;
        });
    }

    private int stopRing(int index) throws ProtocolException {
        VringState v = vrings.get(index);
        if (poller != null) {
            poller.set(index, -1);
        }
        if (v != null) {
            v.kickSet = false;
        }
        if (v == null || !v.started) {
            return v == null ? 0 : v.base;
        }
        v.started = false;
        v.base = session.withDevice(d -> d.queueStop(index));
        return v.base;
    }

    private void kicked(int index) {
        VringState v = vrings.get(index);
        // vhost-user: with VHOST_USER_F_PROTOCOL_FEATURES, rings start disabled until SET_VRING_ENABLE.
        boolean featuresNegotiated = (features & (1L << Protocol.F_PROTOCOL_FEATURES)) != 0;
        if (v != null && ((featuresNegotiated && !v.enabled) || !v.started)) {
            return; // disabled, or not configured yet: served when it starts
        }
        session.counters().inc(Counter.QUEUE_KICKS);
        try {
            session.withDevice(d -> {
                d.queueNotified(index);
                return null;
            });
            if (session.failure() != null) {
                shutdown(); // e.g. an invalidation the VMM did not acknowledge: the connection ends the session
            }
        } catch (ProtocolException e) {
            LOG.warning("session " + session.id() + ": queue " + index + " notification: " + e.getMessage());
            if (session.failure() != null) {
                shutdown(); // e.g. a memory fault: the connection thread ends the session
            }
        } catch (InternalError e) {
            session.memoryFault(e);
            shutdown();
        } catch (RuntimeException e) {
            // a model bug: the session can no longer be trusted; its connection closes
            LOG.log(Level.SEVERE, "session " + session.id() + ": queue " + index + " notification failed", e);
            session.fail("queue " + index + " notification failed: " + e);
            shutdown();
        }
    }

    /** Protocol features the front-end acknowledged (for tests and the control API). */
    public long protocolFeatures() {
        return protocolFeaturesAcked ? protocolFeatures : 0;
    }
}
