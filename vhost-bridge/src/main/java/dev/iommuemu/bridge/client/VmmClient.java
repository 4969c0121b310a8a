package dev.iommuemu.bridge.client;

import dev.iommuemu.bridge.memory.MappedGuestMemory;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.nesting.IommufdCall;
import dev.iommuemu.bridge.protocol.BackendRequest;
import dev.iommuemu.bridge.protocol.NestingPayloads;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.PropertyPayloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Protocol;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.StatePayloads;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import dev.iommuemu.bridge.session.VhostUserChannel;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.bridge.unix.UnixSocket;
import dev.iommuemu.memory.GuestMemory;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.logging.Logger;

/**
 * The front-end side of docs/protocol.md in Java: what a VMM does, for guest-tests, tools and
 * benchmarks. Guest RAM is created here as memfds, mapped locally (so a test's driver writes its
 * tables into {@link #memory()}) and shared with the daemon; the VMM virtual address of a region is
 * its guest physical address. Requests are synchronous; one caller at a time.
 */
public final class VmmClient implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(VmmClient.class.getName());

    private final VhostUserChannel channel;
    private final MappedGuestMemory memory = new MappedGuestMemory(Protocol.MAX_MEM_SLOTS);
    private final List<Payloads.MemRegion> userRegions = new java.util.ArrayList<>();
    private final List<dev.iommuemu.bridge.memory.MappedRegion> sharedMappings = new java.util.ArrayList<>();
    private BackendThread backend;

    private VmmClient(UnixSocket s) {
        this.channel = new VhostUserChannel(s);
    }

    /** Connects and negotiates protocol features (REPLY_ACK, BACKEND_REQ, CONFIG, mem slots, IOMMU). */
    public static VmmClient connect(Path socket) throws IOException {
        VmmClient c = new VmmClient(UnixSocket.connect(socket.toString()));
        try {
            long offered = Payloads.u64(c.call(Request.GET_PROTOCOL_FEATURES, new byte[0]));
            c.ack(Request.SET_PROTOCOL_FEATURES, Payloads.u64(offered & Protocol.PROTOCOL_FEATURES));
            c.ack(Request.SET_OWNER, new byte[0]);
        } catch (IOException e) {
            c.close();
            throw e;
        }
        return c;
    }

    private VhostUserMessage read(Request r) throws IOException {
        VhostUserMessage m;
        try {
            m = channel.read();
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
        if (m == null) {
            throw new IOException("the daemon closed the connection (" + r + ")");
        }
        for (int fd : m.fds()) {
            LibC.closeQuietly(fd);
        }
        if (m.request() != r.code() || !m.isReply()) {
            throw new IOException("unexpected reply " + m + " to " + r);
        }
        return m;
    }

    /** A request with a reply of its own: returns the payload; an 8-byte error reply throws. */
    public byte[] call(Request r, byte[] payload, int... fds) throws IOException {
        channel.send(VhostUserMessage.request(r.code(), false, payload, fds));
        byte[] p = read(r).payload();
        // every IOMMU reply is longer than 8 bytes: an 8-byte one is an error (docs/protocol.md §6)
        if (r.code() >= Protocol.IOMMU_BASE && p.length == 8) {
            throw new RequestRefusedException(r.name(), (int) Payloads.u64(p));
        }
        return p;
    }

    /** A request sent with NEED_REPLY; a nonzero ack throws. */
    public void ack(Request r, byte[] payload, int... fds) throws IOException {
        channel.send(VhostUserMessage.request(r.code(), true, payload, fds));
        long st = Payloads.u64(read(r).payload());
        if (st != 0) {
            throw new RequestRefusedException(r.name(), (int) st);
        }
    }

    public Payloads.IommuInfo info() throws IOException {
        try {
            return Payloads.IommuInfo.decode(call(Request.IOMMU_GET_INFO, new byte[0]));
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /** IOMMU_SET_MODEL (before the device is used). */
    public void selectModel(int model, String profile) throws IOException {
        ack(Request.IOMMU_SET_MODEL, new Payloads.ModelSelect(model, profile).encode());
    }

    /** Guest RAM at {@code gpa}: a memfd mapped here and shared with the daemon (ADD_MEM_REG). */
    public void addMemory(long gpa, long size) throws IOException {
        addMemory(gpa, size, gpa);
    }

    /**
     * Guest RAM at {@code gpa} that the VMM says it has mapped at virtual address {@code userAddr}
     * (ADD_MEM_REG userspace_addr, docs/protocol.md §3.1): the address space in which
     * {@link #setVringAddr} gives ring addresses, as QEMU gives its own virtual addresses.
     */
    public void addMemory(long gpa, long size, long userAddr) throws IOException {
        MappedRegion r = MappedRegion.allocate("iommu-emu-vmm", gpa, size);
        try {
            ack(Request.ADD_MEM_REG, new Payloads.SingleMemRegion(new Payloads.MemRegion(gpa, size, userAddr, 0)).encode(), r.fd());
            memory.add(r);
            userRegions.add(new Payloads.MemRegion(gpa, size, userAddr, 0));
        } catch (IOException | RuntimeException e) {
            r.unmap();
            throw e;
        }
    }

    /** The VMM virtual address of guest physical {@code gpa} (per the regions given so far). */
    public long userAddress(long gpa) {
        for (Payloads.MemRegion m : userRegions) {
            if (Long.compareUnsigned(gpa - m.gpa(), m.size()) < 0) {
                return m.userAddr() + (gpa - m.gpa());
            }
        }
        throw new IllegalArgumentException(String.format("guest physical 0x%x is in no region", gpa));
    }

    // ---- virtio device set-up (vhost-user standard messages, docs/protocol.md §3)

    /** GET_FEATURES: the device's virtio features and bit 30 (VHOST_USER_F_PROTOCOL_FEATURES). */
    public long features() throws IOException {
        return Payloads.u64(call(Request.GET_FEATURES, new byte[0]));
    }

    /** SET_FEATURES (acknowledged; a refused feature set throws). */
    public void setFeatures(long features) throws IOException {
        ack(Request.SET_FEATURES, Payloads.u64(features));
    }

    /** GET_CONFIG of {@code size} bytes at {@code offset}. */
    public byte[] getConfig(int offset, int size) throws IOException {
        byte[] p = call(Request.GET_CONFIG, new Payloads.Config(offset, 0, new byte[size]).encode());
        if (p.length == 8) { // a config reply has a 12-byte header: 8 bytes is the errno (docs/protocol.md §6)
            throw new RequestRefusedException(Request.GET_CONFIG.name(), (int) Payloads.u64(p));
        }
        try {
            return Payloads.Config.decode(p).data();
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /** SET_CONFIG of {@code data} at {@code offset}. */
    public void setConfig(int offset, byte[] data) throws IOException {
        ack(Request.SET_CONFIG, new Payloads.Config(offset, 0, data).encode());
    }

    public void setVringNum(int index, int num) throws IOException {
        ack(Request.SET_VRING_NUM, new Payloads.VringState(index, num).encode());
    }

    /** SET_VRING_ADDR with guest physical ring addresses, sent as this VMM's virtual addresses. */
    public void setVringAddr(int index, long descGpa, long availGpa, long usedGpa) throws IOException {
        ack(Request.SET_VRING_ADDR, new Payloads.VringAddr(index, 0, userAddress(descGpa), userAddress(usedGpa), userAddress(availGpa), 0).encode());
    }

    public void setVringBase(int index, int nextAvail) throws IOException {
        ack(Request.SET_VRING_BASE, new Payloads.VringState(index, nextAvail).encode());
    }

    /** GET_VRING_BASE: stops the ring and returns its next available index. */
    public int getVringBase(int index) throws IOException {
        try {
            return Payloads.VringState.decode(call(Request.GET_VRING_BASE, new Payloads.VringState(index, 0).encode())).num();
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    public void setVringEnable(int index, boolean enable) throws IOException {
        ack(Request.SET_VRING_ENABLE, new Payloads.VringState(index, enable ? 1 : 0).encode());
    }

    /** SET_VRING_CALL with a new eventfd, returned (the caller polls and closes it). */
    public int vringCallEventFd(int index) throws IOException {
        return sendEventFd(Request.SET_VRING_CALL, index);
    }

    /** SET_VRING_KICK with a new eventfd, returned (the caller signals and closes it); starts the ring. */
    public int vringKickEventFd(int index) throws IOException {
        return sendEventFd(Request.SET_VRING_KICK, index);
    }

    private int sendEventFd(Request r, int index) throws IOException {
        int fd = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        try {
            ack(r, Payloads.u64(index), fd);
        } catch (IOException e) {
            LibC.closeQuietly(fd);
            throw e;
        }
        return fd;
    }

    /** Adds 1 to an eventfd (a kick, eventfd(2)). */
    public static void signalEventFd(int fd) throws IOException {
        com.sun.jna.Memory m = new com.sun.jna.Memory(8);
        m.setLong(0, 1);
        try {
            if (LibC.write(fd, m, 8) != 8) {
                throw new IOException("short eventfd write on fd " + fd);
            }
        } catch (com.sun.jna.LastErrorException e) {
            throw new IOException("eventfd write on fd " + fd + ": errno " + e.getErrorCode(), e);
        }
    }

    /**
     * Waits up to {@code timeoutMs} for an eventfd (an interrupt line or a call eventfd) to be
     * signalled; reads and resets its counter. Returns the count, 0 if it was not signalled in time.
     */
    public static long awaitEventFd(int fd, int timeoutMs) throws IOException {
        if (!UnixSocket.pollIn(fd, timeoutMs)) {
            return 0;
        }
        com.sun.jna.Memory m = new com.sun.jna.Memory(8);
        try {
            return LibC.read(fd, m, 8) == 8 ? m.getLong(0) : 0;
        } catch (com.sun.jna.LastErrorException e) {
            throw new IOException("eventfd read on fd " + fd + ": errno " + e.getErrorCode(), e);
        }
    }

    /** Closes a descriptor this client returned (an eventfd); -1 is ignored. */
    public static void closeFd(int fd) {
        LibC.closeQuietly(fd);
    }

    /**
     * IOMMU_SET_PROPERTIES (docs/protocol.md §4.7): the VMM device's properties; returns the reply,
     * whose errno is 0 when they were applied, else the refusal with its sentence.
     */
    public PropertyPayloads.Reply setProperties(List<PropertyPayloads.Entry> entries) throws IOException {
        try {
            return PropertyPayloads.Reply.decode(call(Request.IOMMU_SET_PROPERTIES, PropertyPayloads.encode(entries)));
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /** IOMMU_SET_ENDPOINTS (docs/protocol.md §4.7): {@code op} set / add / remove of endpoint IDs or StreamIDs. */
    public void setEndpoints(int op, List<Integer> ids) throws IOException {
        ack(Request.IOMMU_SET_ENDPOINTS, new PropertyPayloads.Endpoints(op, ids).encode());
    }

    /**
     * IOMMU_MSI_ABORTED (docs/protocol.md §4, version 8): the VMM found neither memory nor a device
     * at the address of {@code msi}, an IOMMU_MSI the daemon sent; returned as it came, source
     * included. Sent with NEED_REPLY; returns once the model has taken it.
     */
    public void msiAborted(Payloads.MsiWrite msi) throws IOException {
        ack(Request.IOMMU_MSI_ABORTED, msi.encode());
    }

    /** IOMMU_SYSTEM_RESET: rings stopped, model in its power-on state. */
    public void systemReset() throws IOException {
        ack(Request.IOMMU_SYSTEM_RESET, new byte[0]);
    }

    /** RESET_DEVICE: rings stopped, model reset. */
    public void resetDevice() throws IOException {
        ack(Request.RESET_DEVICE, new byte[0]);
    }

    /** The guest RAM this client shares, as the guest (a test's driver) sees it. */
    public GuestMemory memory() {
        return memory;
    }

    public long mmioRead(long offset, int size) throws IOException {
        try {
            return Payloads.MmioReadReply.decode(call(Request.IOMMU_MMIO_READ, new Payloads.MmioRead(offset, size).encode())).value();
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /** A non-posted MMIO write: returns when its side effects (and their invalidations) are done. */
    public void mmioWrite(long offset, int size, long value) throws IOException {
        ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(offset, size, value).encode());
    }

    /** {@code substream} -1: none. {@code access}: Payloads.ACCESS_* bits. */
    /**
     * IOMMU_SAVE_STATE (docs/protocol.md §4.9): the device state blob (docs/device-state.md).
     * A refusal throws with the daemon's sentence.
     */
    public byte[] saveState() throws IOException {
        int fd = LibC.memfd_create("iommu-emu-state", LibC.MFD_CLOEXEC);
        try {
            StatePayloads.Reply r = stateReply(call(Request.IOMMU_SAVE_STATE, new byte[StatePayloads.SAVE_SIZE], fd));
            if (r.errno() != 0) {
                throw new IOException("IOMMU_SAVE_STATE refused (errno " + r.errno() + "): " + r.message());
            }
            dev.iommuemu.bridge.memory.MappedRegion m = dev.iommuemu.bridge.memory.MappedRegion.map(0, r.size(), 0, 0, LibC.dup(fd));
            try {
                byte[] blob = new byte[(int) r.size()];
                m.read(0, blob, 0, blob.length);
                return blob;
            } finally {
                m.unmap();
            }
        } finally {
            LibC.closeQuietly(fd);
        }
    }

    /** IOMMU_LOAD_STATE (docs/protocol.md §4.9): the daemon's reply (errno 0, or why it refused). */
    public StatePayloads.Reply loadState(byte[] blob) throws IOException {
        dev.iommuemu.bridge.memory.MappedRegion m = dev.iommuemu.bridge.memory.MappedRegion.allocate("iommu-emu-state", 0, Math.max(blob.length, 1));
        try {
            m.write(0, blob, 0, blob.length);
            return stateReply(call(Request.IOMMU_LOAD_STATE, new StatePayloads.Load(blob.length, 0).encode(), m.fd()));
        } finally {
            m.unmap();
        }
    }

    private static StatePayloads.Reply stateReply(byte[] p) throws IOException {
        try {
            return StatePayloads.Reply.decode(p);
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /**
     * IOMMU_SET_STATE_JOURNAL (docs/protocol.md §4.10): a memfd of {@code size} bytes the daemon
     * keeps the device state in; the returned supplier reads what a VMM would find there after the
     * daemon died. The mapping lives until the client closes.
     */
    public java.util.function.Supplier<dev.iommuemu.bridge.restart.StateJournal.Found> stateJournal(long size) throws IOException {
        dev.iommuemu.bridge.memory.MappedRegion j = dev.iommuemu.bridge.memory.MappedRegion.allocate("iommu-emu-journal", 0, size);
        try {
            ack(Request.IOMMU_SET_STATE_JOURNAL, new StatePayloads.Journal(size, 0).encode(), j.fd());
        } catch (IOException e) {
            j.unmap();
            throw e;
        }
        sharedMappings.add(j);
        return () -> {
            byte[] copy = new byte[(int) size];
            j.read(0, copy, 0, copy.length);
            return dev.iommuemu.bridge.restart.StateJournal.Found.read(java.nio.ByteBuffer.wrap(copy));
        };
    }

    /**
     * IOMMU_SET_DIRTY_LOG (docs/protocol.md §4.11): the daemon marks the pages it writes in the
     * bitmap of {@code size} bytes at the start of {@code fd} (a memfd, sealed against shrinking
     * unless the daemon runs with --require-memory-seals false; it gets a copy of the descriptor,
     * the caller keeps its own). A refusal throws with the errno.
     */
    public void setDirtyLog(int fd, long size) throws IOException {
        ack(Request.IOMMU_SET_DIRTY_LOG, new StatePayloads.DirtyLog(size, 0).encode(), fd);
    }

    /** IOMMU_SET_DIRTY_LOG with mmap_size 0 and no descriptor: logging stops (§4.11). */
    public void stopDirtyLog() throws IOException {
        ack(Request.IOMMU_SET_DIRTY_LOG, StatePayloads.DirtyLog.STOP.encode());
    }

    /** IOMMU_SYNC_DIRTY_LOG (§4.11): returns once the daemon's writes so far have marked the log. */
    public void syncDirtyLog() throws IOException {
        ack(Request.IOMMU_SYNC_DIRTY_LOG, new byte[0]);
    }

    /**
     * IOMMU_SET_SHARED_CACHE (docs/protocol.md §4.8): a memfd of {@code sets} x {@code ways}
     * entries the daemon fills and invalidates; the returned view reads it without a message. The
     * mapping lives until the client closes.
     */
    public dev.iommuemu.bridge.fastpath.SharedCacheView sharedCache(int sets, int ways) throws IOException {
        return sharedCache(sets, ways, 0, dev.iommuemu.bridge.fastpath.SharedCache.size(sets, ways));
    }

    /**
     * IOMMU_SET_SHARED_CACHE with the walk recipe table (flags RECIPES, §4.8 version 12): the view
     * reads recipes and walks with them ({@link dev.iommuemu.bridge.fastpath.SharedCacheView#walk}).
     */
    public dev.iommuemu.bridge.fastpath.SharedCacheView sharedCacheWithRecipes(int sets, int ways) throws IOException {
        return sharedCache(sets, ways, dev.iommuemu.bridge.fastpath.SharedCache.FLAG_RECIPES,
                dev.iommuemu.bridge.fastpath.SharedCache.sizeWithRecipes(sets, ways));
    }

    /**
     * IOMMU_SET_SHARED_CACHE with the walk recipe table and the command-queue hand-off region (flags
     * RECIPES | CMDQ, §4.12 version 13): the memfd is C0 + 16640 bytes.
     */
    public dev.iommuemu.bridge.fastpath.SharedCacheView sharedCacheWithCommandHandOff(int sets, int ways) throws IOException {
        return sharedCache(sets, ways, dev.iommuemu.bridge.fastpath.SharedCache.FLAG_RECIPES
                | dev.iommuemu.bridge.fastpath.SharedCache.FLAG_CMDQ,
                dev.iommuemu.bridge.fastpath.SharedCache.sizeWithCommandHandOff(sets, ways));
    }

    /**
     * IOMMU_SET_SHARED_CACHE with the walk recipe table and the virtio-iommu request hand-off region
     * (flags RECIPES | REQUESTS, §4.13 version 14): the memfd is C0 + 0x8D000 bytes.
     */
    public dev.iommuemu.bridge.fastpath.SharedCacheView sharedCacheWithRequestHandOff(int sets, int ways) throws IOException {
        return sharedCache(sets, ways, dev.iommuemu.bridge.fastpath.SharedCache.FLAG_RECIPES
                | dev.iommuemu.bridge.fastpath.SharedCache.FLAG_REQUESTS,
                dev.iommuemu.bridge.fastpath.SharedCache.sizeWithRequestHandOff(sets, ways));
    }

    /** IOMMU_SET_SHARED_CACHE with {@code flags} and a memfd of {@code bytes} (tests give wrong ones on purpose). */
    public dev.iommuemu.bridge.fastpath.SharedCacheView sharedCache(int sets, int ways, int flags, long bytes) throws IOException {
        dev.iommuemu.bridge.memory.MappedRegion shm = dev.iommuemu.bridge.memory.MappedRegion.allocate("iommu-emu-vmm-cache", 0, bytes);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(sets).putInt(ways)
                .putInt(flags);
        try {
            ack(Request.IOMMU_SET_SHARED_CACHE, b.array(), shm.fd());
        } catch (IOException e) {
            shm.unmap();
            throw e;
        }
        sharedMappings.add(shm);
        return new dev.iommuemu.bridge.fastpath.SharedCacheView(shm);
    }

    public Payloads.TranslateReply translate(int streamId, int substream, long iova, int access) throws IOException {
        try {
            return Payloads.TranslateReply.decode(call(Request.IOMMU_TRANSLATE, new Payloads.TranslateRequest(streamId, substream, iova, access).encode()));
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /** IOMMU_TRANSLATE_RUN: the translation of {@code iova} and up to {@code maxPages} pages of entries after it. */
    public Payloads.TranslateRunReply translateRun(int streamId, int substream, long iova, int access, int maxPages) throws IOException {
        try {
            return Payloads.TranslateRunReply.decode(call(Request.IOMMU_TRANSLATE_RUN,
                    new Payloads.TranslateRunRequest(new Payloads.TranslateRequest(streamId, substream, iova, access), maxPages).encode()));
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    public List<Payloads.TranslateResult> translateBatch(List<Payloads.TranslateRequest> reqs) throws IOException {
        try {
            return Payloads.decodeBatchReply(call(Request.IOMMU_TRANSLATE_BATCH, Payloads.encodeBatch(reqs)));
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /**
     * Gives interrupt line {@code line} a new eventfd and returns it (the caller polls and closes
     * it; the daemon holds its own copy).
     */
    public int irqEventFd(int line) throws IOException {
        int fd = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        try {
            ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(line), fd);
        } catch (IOException e) {
            LibC.closeQuietly(fd);
            throw e;
        }
        return fd;
    }

    /**
     * IOMMU_PRI_PAGE_REQUEST (docs/protocol.md §4.4) with NEED_REPLY: {@code flags} are
     * Payloads.PAGE_REQUEST_* (R, W, exec, priv, last, Stop); {@code substreamId} ~0 = none.
     */
    public void pageRequest(int streamId, int substreamId, long address, int flags, int groupIndex) throws IOException {
        ack(Request.IOMMU_PRI_PAGE_REQUEST, new Payloads.PageRequestMsg(streamId, substreamId, address, flags, groupIndex).encode());
    }

    /**
     * One call of the host-side nesting model (docs/protocol.md §4.6): its message, its reply. A
     * refused call is the reply's errno (0 = done), not an exception.
     */
    public NestingPayloads.Reply iommufd(IommufdCall call) throws IOException {
        try {
            return NestingPayloads.Reply.decode(call(NestingPayloads.request(call), NestingPayloads.encode(call)));
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /**
     * IOMMUFD_SET_EVENTQ_FD (docs/protocol.md §4.6): sends {@code fd} for vEVENT or fault queue
     * {@code queueId} ({@code fd} -1: detach, flag NOFD). The caller keeps its own descriptor. A
     * refused call is the reply's errno (ENOENT, EINVAL, ENODEV), not an exception.
     */
    public NestingPayloads.Reply setEventqFd(int queueId, int fd) throws IOException {
        byte[] p = new NestingPayloads.EventqFd(queueId, fd < 0).encode();
        try {
            return NestingPayloads.Reply.decode(fd < 0 ? call(Request.IOMMUFD_SET_EVENTQ_FD, p)
                    : call(Request.IOMMUFD_SET_EVENTQ_FD, p, fd));
        } catch (ProtocolException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /**
     * Gives vEVENT or fault queue {@code queueId} a new eventfd and returns it (the caller awaits
     * and closes it); a refusal closes it and throws {@link RequestRefusedException} with the errno.
     */
    public int eventqEventFd(int queueId) throws IOException {
        int fd = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        try {
            int errno = setEventqFd(queueId, fd).errno();
            if (errno != 0) {
                throw new RequestRefusedException(Request.IOMMUFD_SET_EVENTQ_FD.name(), errno);
            }
        } catch (IOException e) {
            LibC.closeQuietly(fd);
            throw e;
        }
        return fd;
    }

    /** What the daemon asks of the VMM on the back-end channel. Called on the channel's thread. */
    public interface BackendListener {
        /** Drop cached translations; the ack is sent when this returns (0 = done). */
        default long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
            return 0;
        }

        default long atcInvalidate(Payloads.AtcInvalidate inv) {
            return 0;
        }

        default void msi(Payloads.MsiWrite msi) {}

        default void pageResponse(Payloads.PriResponse r) {}

        /** A stalled translation was resumed (retry) or terminated; the VMM releases the held access. */
        default void stallResolved(Payloads.StallResolved r) {}
    }

    /** Opens the back-end channel (SET_BACKEND_REQ_FD) and serves it on a thread with {@code listener}. */
    public void serveBackend(BackendListener listener) throws IOException {
        int[] sv = new int[2];
        LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0, sv);
        try {
            ack(Request.SET_BACKEND_REQ_FD, new byte[0], sv[1]);
        } catch (IOException e) {
            LibC.closeQuietly(sv[0]);
            throw e;
        } finally {
            LibC.closeQuietly(sv[1]);
        }
        if (backend != null) {
            backend.close();
        }
        backend = new BackendThread(new VhostUserChannel(new UnixSocket(sv[0])), listener);
    }

    private static final class BackendThread implements AutoCloseable {
        private final VhostUserChannel channel;
        private final Thread thread;

        BackendThread(VhostUserChannel channel, BackendListener l) {
            this.channel = channel;
            this.thread = new Thread(() -> {
                try {
                    VhostUserMessage m;
                    while ((m = channel.read()) != null) {
                        for (int fd : m.fds()) {
                            LibC.closeQuietly(fd);
                        }
                        BackendRequest r = BackendRequest.of(m.request());
                        long status = 0;
                        if (r == BackendRequest.IOMMU_IOTLB_INVALIDATE) {
                            status = l.iotlbInvalidate(Payloads.IotlbInvalidate.decode(m.payload()));
                        } else if (r == BackendRequest.IOMMU_ATC_INVALIDATE) {
                            status = l.atcInvalidate(Payloads.AtcInvalidate.decode(m.payload()));
                        } else if (r == BackendRequest.IOMMU_MSI) {
                            l.msi(Payloads.MsiWrite.decode(m.payload()));
                        } else if (r == BackendRequest.IOMMU_PRI_RESPONSE) {
                            l.pageResponse(Payloads.PriResponse.decode(m.payload()));
                        } else if (r == BackendRequest.IOMMU_STALL_RESOLVED) {
                            l.stallResolved(Payloads.StallResolved.decode(m.payload()));
                        } else {
                            status = ProtocolException.ENOSYS;
                        }
                        if (m.needReply()) {
                            channel.send(VhostUserMessage.ack(m.request(), (int) status));
                        }
                    }
                } catch (IOException | ProtocolException e) {
                    LOG.fine(() -> "back-end channel ended: " + e.getMessage());
                }
            }, "iommu-emu-vmm-backend");
            thread.setDaemon(true);
            thread.start();
        }

        @Override
        public void close() {
            channel.socket().shutdown();
            try {
                thread.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            channel.close();
        }
    }

    /** Disconnects (the daemon tears the device down) and unmaps this side's memory. */
    @Override
    public void close() {
        channel.socket().shutdown();
        if (backend != null) {
            backend.close();
        }
        channel.close();
        memory.close();
        sharedMappings.forEach(dev.iommuemu.bridge.memory.MappedRegion::unmap);
    }
}
