package dev.iommuemu.bridge.protocol;

/**
 * Front-end to back-end requests this back-end understands, with vhost-user's numbers
 * (docs/interop/vhost-user.rst "Front-end message types") and, from {@value Protocol#IOMMU_BASE}, the
 * iommu-emu IOMMU range (docs/protocol.md). Each carries its framing rule: the payload sizes it may
 * have and the file descriptors that must come with it. A request not in this table is answered
 * with ENOSYS and the connection is closed.
 */
public enum Request {
    GET_FEATURES(1, 0, 0, Fds.NONE),
    SET_FEATURES(2, 8, 8, Fds.NONE),
    SET_OWNER(3, 0, 0, Fds.NONE),
    SET_MEM_TABLE(5, 8, 8 + 8 * Payloads.MemRegion.SIZE, Fds.PER_REGION),
    SET_VRING_NUM(8, 8, 8, Fds.NONE),
    SET_VRING_ADDR(9, Payloads.VringAddr.SIZE, Payloads.VringAddr.SIZE, Fds.NONE),
    SET_VRING_BASE(10, 8, 8, Fds.NONE),
    GET_VRING_BASE(11, 8, 8, Fds.NONE),
    SET_VRING_KICK(12, 8, 8, Fds.ONE_UNLESS_NOFD),
    SET_VRING_CALL(13, 8, 8, Fds.ONE_UNLESS_NOFD),
    SET_VRING_ERR(14, 8, 8, Fds.ONE_UNLESS_NOFD),
    GET_PROTOCOL_FEATURES(15, 0, 0, Fds.NONE),
    SET_PROTOCOL_FEATURES(16, 8, 8, Fds.NONE),
    GET_QUEUE_NUM(17, 0, 0, Fds.NONE),
    SET_VRING_ENABLE(18, 8, 8, Fds.NONE),
    SET_BACKEND_REQ_FD(21, 0, 0, Fds.ONE),
    GET_CONFIG(24, Payloads.Config.HEADER, Payloads.Config.HEADER + Payloads.Config.MAX_DATA, Fds.NONE),
    SET_CONFIG(25, Payloads.Config.HEADER, Payloads.Config.HEADER + Payloads.Config.MAX_DATA, Fds.NONE),
    RESET_DEVICE(34, 0, 0, Fds.NONE),
    GET_MAX_MEM_SLOTS(36, 0, 0, Fds.NONE),
    ADD_MEM_REG(37, 8 + Payloads.MemRegion.SIZE, 8 + Payloads.MemRegion.SIZE, Fds.ONE),
    /** QEMU sends the region's fd along; it is closed unused. */
    REM_MEM_REG(38, 8 + Payloads.MemRegion.SIZE, 8 + Payloads.MemRegion.SIZE, Fds.ZERO_OR_ONE),

    // ---- the iommu-emu IOMMU range (docs/protocol.md §4)
    IOMMU_GET_INFO(Protocol.IOMMU_BASE, 0, 0, Fds.NONE),
    IOMMU_SET_MODEL(Protocol.IOMMU_BASE + 1, Payloads.ModelSelect.SIZE, Payloads.ModelSelect.SIZE, Fds.NONE),
    IOMMU_MMIO_READ(Protocol.IOMMU_BASE + 2, Payloads.MmioRead.SIZE, Payloads.MmioRead.SIZE, Fds.NONE),
    IOMMU_MMIO_WRITE(Protocol.IOMMU_BASE + 3, Payloads.MmioWrite.SIZE, Payloads.MmioWrite.SIZE, Fds.NONE),
    IOMMU_TRANSLATE(Protocol.IOMMU_BASE + 4, Payloads.TranslateRequest.SIZE, Payloads.TranslateRequest.SIZE, Fds.NONE),
    IOMMU_TRANSLATE_BATCH(Protocol.IOMMU_BASE + 5, 8, 8 + Payloads.MAX_BATCH * Payloads.TranslateRequest.SIZE, Fds.NONE),
    IOMMU_SET_IRQ_FD(Protocol.IOMMU_BASE + 6, 8, 8, Fds.ONE_UNLESS_NOFD),
    IOMMU_ATS_TRANSLATE(Protocol.IOMMU_BASE + 7, Payloads.TranslateRequest.SIZE, Payloads.TranslateRequest.SIZE, Fds.NONE),
    IOMMU_PRI_PAGE_REQUEST(Protocol.IOMMU_BASE + 8, Payloads.PageRequestMsg.SIZE, Payloads.PageRequestMsg.SIZE, Fds.NONE),
    /** u32 entries, u32 flags; the ring's memfd and the doorbell eventfd. */
    IOMMU_SET_TRANSLATE_RING(Protocol.IOMMU_BASE + 9, 8, 8, Fds.TWO),
    /** A translate request and the cacheable entries of the addresses after it (§4.3, version 6). */
    IOMMU_TRANSLATE_RUN(Protocol.IOMMU_BASE + 10, Payloads.TranslateRunRequest.SIZE, Payloads.TranslateRunRequest.SIZE, Fds.NONE),
    /** The machine was reset: the model's power-on state (§4.1, version 6). */
    IOMMU_SYSTEM_RESET(Protocol.IOMMU_BASE + 11, 0, 0, Fds.NONE),
    /** The VMM device's properties, a typed (key, value) list (§4.7, version 7); a reply of its own. */
    IOMMU_SET_PROPERTIES(Protocol.IOMMU_BASE + 12, PropertyPayloads.HEADER,
            PropertyPayloads.HEADER + PropertyPayloads.ENTRY_SIZE * PropertyPayloads.MAX_ENTRIES, Fds.NONE),
    /** The endpoints that have devices: {u32 op, u32 count, u32 id[count]} (§4.7, version 7). */
    IOMMU_SET_ENDPOINTS(Protocol.IOMMU_BASE + 13, 8, 8 + 4 * PropertyPayloads.MAX_ENDPOINT_IDS, Fds.NONE),
    /**
     * The VMM found neither memory nor a device at an IOMMU_MSI's address: {u64 address, u32 data,
     * u32 source} as the IOMMU_MSI it answers (§4, version 8); posted.
     */
    IOMMU_MSI_ABORTED(Protocol.IOMMU_BASE + 14, Payloads.MsiWrite.SIZE, Payloads.MsiWrite.SIZE, Fds.NONE),
    /**
     * The VMM's translation cache and register mirror in shared memory: {u32 sets, u32 ways, u32
     * flags, u32 reserved} and its memfd (§4.8, version 9).
     */
    IOMMU_SET_SHARED_CACHE(Protocol.IOMMU_BASE + 15, 16, 16, Fds.ONE),
    /** The device state into the given memfd (§4.9, version 9); a StatePayloads.Reply. */
    IOMMU_SAVE_STATE(Protocol.IOMMU_BASE + 33, StatePayloads.SAVE_SIZE, StatePayloads.SAVE_SIZE, Fds.ONE),
    /** The device state from the given memfd (§4.9, version 9); a StatePayloads.Reply. */
    IOMMU_LOAD_STATE(Protocol.IOMMU_BASE + 34, StatePayloads.LOAD_SIZE, StatePayloads.LOAD_SIZE, Fds.ONE),
    /** The restart journal: {u64 size, u32 flags (0), u32 reserved} and its memfd (§4.10, version 10). */
    IOMMU_SET_STATE_JOURNAL(Protocol.IOMMU_BASE + 35, StatePayloads.JOURNAL_SIZE, StatePayloads.JOURNAL_SIZE, Fds.ONE),
    /**
     * The dirty log (§4.11, version 11): vhost-user's struct vhost_user_log {u64 mmap_size, u64
     * mmap_offset} and the log's memfd; mmap_size 0 and no fd stop logging.
     */
    IOMMU_SET_DIRTY_LOG(Protocol.IOMMU_BASE + 36, StatePayloads.DIRTY_LOG_SIZE, StatePayloads.DIRTY_LOG_SIZE, Fds.ZERO_OR_ONE),
    /** Answered once every earlier daemon write to guest RAM has marked the dirty log (§4.11, version 11). */
    IOMMU_SYNC_DIRTY_LOG(Protocol.IOMMU_BASE + 37, 0, 0, Fds.NONE),

    // ---- nesting (docs/protocol.md §4.6; payloads in NestingPayloads), each one IommufdCall
    IOMMUFD_OPEN_HOST(Protocol.IOMMU_BASE + 16, NestingPayloads.OPEN_HOST, NestingPayloads.OPEN_HOST, Fds.NONE),
    IOMMUFD_PROBE(Protocol.IOMMU_BASE + 17, NestingPayloads.PROBE, NestingPayloads.PROBE, Fds.NONE),
    IOMMUFD_BIND(Protocol.IOMMU_BASE + 18, NestingPayloads.PAIR, NestingPayloads.PAIR, Fds.NONE),
    IOMMUFD_HW_INFO(Protocol.IOMMU_BASE + 19, NestingPayloads.PAIR, NestingPayloads.PAIR, Fds.NONE),
    IOMMUFD_ALLOC_HWPT(Protocol.IOMMU_BASE + 20, NestingPayloads.ALLOC_HWPT, NestingPayloads.ALLOC_HWPT, Fds.NONE),
    IOMMUFD_ATTACH(Protocol.IOMMU_BASE + 21, NestingPayloads.PAIR, NestingPayloads.PAIR, Fds.NONE),
    IOMMUFD_DETACH(Protocol.IOMMU_BASE + 22, NestingPayloads.PAIR, NestingPayloads.PAIR, Fds.NONE),
    IOMMUFD_MAP_HWPT(Protocol.IOMMU_BASE + 23, NestingPayloads.MAP_HWPT, NestingPayloads.MAP_HWPT, Fds.NONE),
    IOMMUFD_ALLOC_VIOMMU(Protocol.IOMMU_BASE + 24, NestingPayloads.PAIR, NestingPayloads.PAIR, Fds.NONE),
    IOMMUFD_ALLOC_VDEVICE(Protocol.IOMMU_BASE + 25, NestingPayloads.ALLOC_VDEVICE, NestingPayloads.ALLOC_VDEVICE, Fds.NONE),
    IOMMUFD_INVALIDATE(Protocol.IOMMU_BASE + 26, NestingPayloads.INVALIDATE_HEADER,
            NestingPayloads.INVALIDATE_HEADER + 16 * NestingPayloads.MAX_COMMANDS, Fds.NONE),
    IOMMUFD_ALLOC_VEVENTQ(Protocol.IOMMU_BASE + 27, NestingPayloads.PAIR, NestingPayloads.PAIR, Fds.NONE),
    IOMMUFD_READ_VEVENTS(Protocol.IOMMU_BASE + 28, NestingPayloads.PAIR, NestingPayloads.PAIR, Fds.NONE),
    IOMMUFD_ALLOC_FAULT_QUEUE(Protocol.IOMMU_BASE + 29, 0, 0, Fds.NONE),
    IOMMUFD_READ_FAULTS(Protocol.IOMMU_BASE + 30, NestingPayloads.PAIR, NestingPayloads.PAIR, Fds.NONE),
    IOMMUFD_PAGE_RESPONSE(Protocol.IOMMU_BASE + 31, NestingPayloads.PAGE_RESPONSE, NestingPayloads.PAGE_RESPONSE, Fds.NONE),
    /**
     * An eventfd for a vEVENT or fault queue (§4.6, version 6): {u32 queue_id, u32 flags (bit 8
     * no fd: detach)}; the daemon's form of the fd IOMMU_VEVENTQ_ALLOC / IOMMU_FAULT_QUEUE_ALLOC return.
     */
    IOMMUFD_SET_EVENTQ_FD(Protocol.IOMMU_BASE + 32, NestingPayloads.SET_EVENTQ_FD, NestingPayloads.SET_EVENTQ_FD,
            Fds.ONE_UNLESS_NOFD_FLAG);

    /** Which descriptors a request carries. */
    public enum Fds {
        NONE,
        ONE,
        ZERO_OR_ONE,
        /** One unless bit 8 (VHOST_USER_VRING_NOFD_MASK) of the u64 payload is set. */
        ONE_UNLESS_NOFD,
        /** One unless bit 8 (the same mask) of the u32 flags at byte 4 is set (IOMMUFD_SET_EVENTQ_FD). */
        ONE_UNLESS_NOFD_FLAG,
        TWO,
        /** One per memory region of a SET_MEM_TABLE. */
        PER_REGION
    }

    private final int code;
    private final int minPayload;
    private final int maxPayload;
    private final Fds fds;

    Request(int code, int minPayload, int maxPayload, Fds fds) {
        this.code = code;
        this.minPayload = minPayload;
        this.maxPayload = maxPayload;
        this.fds = fds;
    }

    public int code() {
        return code;
    }

    public Fds fds() {
        return fds;
    }

    public int minPayload() {
        return minPayload;
    }

    public int maxPayload() {
        return maxPayload;
    }

    /**
     * Whether the request has a reply of its own (the others are answered only with NEED_REPLY,
     * REPLY_ACK style).
     */
    public boolean hasReply() {
        return switch (this) {
            case GET_FEATURES, GET_PROTOCOL_FEATURES, GET_VRING_BASE, GET_QUEUE_NUM, GET_CONFIG, GET_MAX_MEM_SLOTS,
                    IOMMU_GET_INFO, IOMMU_MMIO_READ, IOMMU_TRANSLATE, IOMMU_TRANSLATE_BATCH, IOMMU_ATS_TRANSLATE,
                    IOMMU_TRANSLATE_RUN, IOMMU_SET_PROPERTIES, IOMMU_SAVE_STATE, IOMMU_LOAD_STATE -> true;
            default -> isNesting();
        };
    }

    /**
     * Whether the request sets up or drives the device as the driver configured it, after which
     * the device's properties can no longer change (IOMMU_SET_PROPERTIES answers EBUSY, §4.7).
     * Reading features or config, the memory table and the call/err eventfds do not count:
     * a VMM may send them while it initialises its back-end.
     */
    public boolean usesDevice() {
        return switch (this) {
            case SET_FEATURES, SET_CONFIG, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_KICK,
                    SET_VRING_ENABLE, IOMMU_MMIO_READ, IOMMU_MMIO_WRITE, IOMMU_TRANSLATE, IOMMU_TRANSLATE_BATCH,
                    IOMMU_ATS_TRANSLATE, IOMMU_PRI_PAGE_REQUEST, IOMMU_TRANSLATE_RUN, IOMMU_LOAD_STATE -> true;
            default -> isNesting();
        };
    }

    /** One of the nesting requests (docs/protocol.md §4.6, 1040-1056), all with a NestingPayloads.Reply. */
    public boolean isNesting() {
        return code >= Protocol.IOMMU_BASE + 16 && code <= Protocol.IOMMU_BASE + 32;
    }

    /** The request with this number, or null. */
    public static Request of(int code) {
        for (Request r : values()) {
            if (r.code == code) {
                return r;
            }
        }
        return null;
    }

    /**
     * Checks a received message against this request's framing rule: payload size and fd count.
     * A mismatch is fatal (the peer and we disagree on the protocol).
     */
    public void validate(VhostUserMessage m) throws ProtocolException {
        int n = m.payload().length;
        if (n < minPayload || n > maxPayload) {
            throw ProtocolException.fatal(ProtocolException.EINVAL, name() + ": payload of " + n + " bytes, expected "
                    + (minPayload == maxPayload ? Integer.toString(minPayload) : minPayload + ".." + maxPayload));
        }
        int want;
        switch (fds) {
            case NONE -> want = 0;
            case ONE -> want = 1;
            case TWO -> want = 2;
            case ZERO_OR_ONE -> want = Math.min(m.fds().length, 1);
            case ONE_UNLESS_NOFD -> want = (Payloads.u64(m.payload()) & Payloads.NOFD_MASK) != 0 ? 0 : 1;
            case ONE_UNLESS_NOFD_FLAG -> want = (Payloads.le(m.payload()).getInt(4) & Payloads.NOFD_MASK) != 0 ? 0 : 1;
            case PER_REGION -> want = Payloads.MemTable.regionCount(m.payload());
            default -> throw new AssertionError(fds);
        }
        if (m.fds().length != want) {
            throw ProtocolException.fatal(ProtocolException.EBADF, name() + ": " + m.fds().length + " file descriptors, expected " + want);
        }
    }
}
