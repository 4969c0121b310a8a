package dev.iommuemu.bridge.protocol;

import dev.iommuemu.bridge.nesting.IommufdCall;
import dev.iommuemu.bridge.nesting.IommufdCalls;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * The payloads of the nesting messages 1040-1056 (docs/protocol.md §4.6): each request but
 * IOMMUFD_SET_EVENTQ_FD (an fd, which the control API cannot carry: {@link EventqFd}) is the fixed
 * little-endian form of one {@link IommufdCall}, each reply a {@link Reply}. Declared here
 * once, for both sides (the daemon decodes calls and encodes replies; VmmClient the reverse).
 */
public final class NestingPayloads {
    private NestingPayloads() {}

    // ---- request sizes
    /** {u64 carve_base, u64 carve_size, u32 stream_table_log2 (0 = 8), u32 reserved}. */
    public static final int OPEN_HOST = 24;
    /** {u32 stream_id, u32 reserved, char group[32] (empty: a group of its own)}. */
    public static final int PROBE = 40;
    public static final int GROUP = 32;
    /** {u32 a, u32 b}: BIND {stream_id, 0}, HW_INFO {dev_id, 0}, ATTACH {dev_id, hwpt_id}, DETACH {dev_id, 0},
     * ALLOC_VIOMMU {dev_id, hwpt_id}, ALLOC_VEVENTQ {viommu_id, depth}, READ_VEVENTS {veventq_id, max},
     * READ_FAULTS {fault_id, max}. */
    public static final int PAIR = 8;
    /** {u32 dev_id, u32 pt_id, u32 flags, u32 fault_id, u32 type (0 paging, 1 nested), u32 reserved, u64 vste[2]}. */
    public static final int ALLOC_HWPT = 40;
    public static final int HWPT_PAGING = 0;
    public static final int HWPT_NESTED = 1;
    /** {u32 hwpt_id, u32 flags (READ 1, WRITE 2, UNMAP 4), u64 iova, u64 phys, u64 length}. */
    public static final int MAP_HWPT = 32;
    public static final int MAP_READ = 1;
    public static final int MAP_WRITE = 2;
    public static final int MAP_UNMAP = 4;
    /** {u32 viommu_id, u32 dev_id, u64 virt_id}. */
    public static final int ALLOC_VDEVICE = 16;
    /** {u32 viommu_id, u32 count, u64 cmd[2 * count]}: at most 4095 commands in one message. */
    public static final int INVALIDATE_HEADER = 8;
    public static final int MAX_COMMANDS = (VhostUserHeader.MAX_PAYLOAD - INVALIDATE_HEADER) / 16;
    /** {u32 fault_id, u32 cookie, u32 code, u32 reserved}. */
    public static final int PAGE_RESPONSE = 16;
    /** {u32 queue_id, u32 flags}: IOMMUFD_SET_EVENTQ_FD. */
    public static final int SET_EVENTQ_FD = 8;
    /** IOMMUFD_SET_EVENTQ_FD flags bit 8: no fd, detach (VHOST_USER_VRING_NOFD_MASK's bit, as IOMMU_SET_IRQ_FD). */
    public static final int EVENTQ_NOFD = (int) Payloads.NOFD_MASK;

    /**
     * IOMMUFD_SET_EVENTQ_FD: the eventfd (sent with the message) that the daemon signals when
     * records become readable in vEVENT or fault queue {@code queueId}; {@code noFd}: detach.
     */
    public record EventqFd(int queueId, boolean noFd) {
        public byte[] encode() {
            return pair(queueId, noFd ? EVENTQ_NOFD : 0);
        }

        /** Flag bits other than {@link #EVENTQ_NOFD} are refused with EINVAL. */
        public static EventqFd decode(byte[] p) throws ProtocolException {
            ByteBuffer b = Payloads.le(p);
            int id = b.getInt(), flags = b.getInt();
            if ((flags & ~EVENTQ_NOFD) != 0) {
                throw ProtocolException.refused(ProtocolException.EINVAL, String.format("IOMMUFD_SET_EVENTQ_FD: flags 0x%x", flags));
            }
            return new EventqFd(id, flags != 0);
        }
    }

    // ---- reply records
    /** struct iommu_hw_info_arm_smmuv3: {u32 flags, u32 reserved, u32 idr[6], u32 iidr, u32 aidr}. */
    public static final int HW_INFO_RECORD = 40;
    /** An unmap's bytes: {u64 length}. */
    public static final int LENGTH_RECORD = 8;
    /** struct iommufd_vevent_header + iommu_vevent_arm_smmuv3: {u32 flags, u32 sequence, u64 evt[4], u64 reserved}. */
    public static final int VEVENT_RECORD = 48;
    /** struct iommu_hwpt_pgfault: {u32 flags, dev_id, pasid, grpid, perm, reserved; u64 addr; u32 length, cookie}. */
    public static final int FAULT_RECORD = 40;

    private static final java.util.Map<Class<?>, Request> REQUESTS = java.util.Map.ofEntries(
            java.util.Map.entry(IommufdCall.OpenHost.class, Request.IOMMUFD_OPEN_HOST),
            java.util.Map.entry(IommufdCall.Probe.class, Request.IOMMUFD_PROBE),
            java.util.Map.entry(IommufdCall.Bind.class, Request.IOMMUFD_BIND),
            java.util.Map.entry(IommufdCall.HwInfo.class, Request.IOMMUFD_HW_INFO),
            java.util.Map.entry(IommufdCall.AllocHwpt.class, Request.IOMMUFD_ALLOC_HWPT),
            java.util.Map.entry(IommufdCall.Attach.class, Request.IOMMUFD_ATTACH),
            java.util.Map.entry(IommufdCall.Detach.class, Request.IOMMUFD_DETACH),
            java.util.Map.entry(IommufdCall.Map.class, Request.IOMMUFD_MAP_HWPT),
            java.util.Map.entry(IommufdCall.AllocViommu.class, Request.IOMMUFD_ALLOC_VIOMMU),
            java.util.Map.entry(IommufdCall.AllocVdevice.class, Request.IOMMUFD_ALLOC_VDEVICE),
            java.util.Map.entry(IommufdCall.Invalidate.class, Request.IOMMUFD_INVALIDATE),
            java.util.Map.entry(IommufdCall.AllocVeventq.class, Request.IOMMUFD_ALLOC_VEVENTQ),
            java.util.Map.entry(IommufdCall.ReadVevents.class, Request.IOMMUFD_READ_VEVENTS),
            java.util.Map.entry(IommufdCall.AllocFaultQueue.class, Request.IOMMUFD_ALLOC_FAULT_QUEUE),
            java.util.Map.entry(IommufdCall.ReadFaults.class, Request.IOMMUFD_READ_FAULTS),
            java.util.Map.entry(IommufdCall.PageResponse.class, Request.IOMMUFD_PAGE_RESPONSE));

    /** The request that carries {@code call}. */
    public static Request request(IommufdCall call) {
        return REQUESTS.get(call.getClass());
    }

    public static byte[] encode(IommufdCall call) {
        if (call instanceof IommufdCall.OpenHost o) {
            return Payloads.alloc(OPEN_HOST).putLong(o.carveBase()).putLong(o.carveSize()).putInt(o.streamTableLog2()).putInt(0).array();
        } else if (call instanceof IommufdCall.Probe p) {
            return Payloads.alloc(PROBE).putInt(p.streamId()).putInt(0)
                    .put(Payloads.fixedString(p.group() == null ? "" : p.group(), GROUP)).array();
        } else if (call instanceof IommufdCall.Bind b) {
            return pair(b.streamId(), 0);
        } else if (call instanceof IommufdCall.HwInfo h) {
            return pair(h.devId(), 0);
        } else if (call instanceof IommufdCall.AllocHwpt a) {
            boolean nested = a.vste() != null;
            return Payloads.alloc(ALLOC_HWPT).putInt(a.devId()).putInt(a.ptId()).putInt(a.flags()).putInt(a.faultId())
                    .putInt(nested ? HWPT_NESTED : HWPT_PAGING).putInt(0).putLong(nested ? a.vste()[0] : 0)
                    .putLong(nested ? a.vste()[1] : 0).array();
        } else if (call instanceof IommufdCall.Attach a) {
            return pair(a.devId(), a.hwptId());
        } else if (call instanceof IommufdCall.Detach d) {
            return pair(d.devId(), 0);
        } else if (call instanceof IommufdCall.Map m) {
            return Payloads.alloc(MAP_HWPT).putInt(m.hwptId())
                    .putInt((m.read() ? MAP_READ : 0) | (m.write() ? MAP_WRITE : 0) | (m.unmap() ? MAP_UNMAP : 0))
                    .putLong(m.iova()).putLong(m.phys()).putLong(m.length()).array();
        } else if (call instanceof IommufdCall.AllocViommu v) {
            return pair(v.devId(), v.hwptId());
        } else if (call instanceof IommufdCall.AllocVdevice v) {
            return Payloads.alloc(ALLOC_VDEVICE).putInt(v.viommuId()).putInt(v.devId()).putLong(v.virtId()).array();
        } else if (call instanceof IommufdCall.Invalidate i) {
            ByteBuffer b = Payloads.alloc(INVALIDATE_HEADER + 8 * i.cmds().length).putInt(i.viommuId()).putInt(i.cmds().length / 2);
            for (long w : i.cmds()) {
                b.putLong(w);
            }
            return b.array();
        } else if (call instanceof IommufdCall.AllocVeventq v) {
            return pair(v.viommuId(), v.depth());
        } else if (call instanceof IommufdCall.ReadVevents r) {
            return pair(r.veventqId(), r.max());
        } else if (call instanceof IommufdCall.AllocFaultQueue) {
            return new byte[0];
        } else if (call instanceof IommufdCall.ReadFaults r) {
            return pair(r.faultId(), r.max());
        } else if (call instanceof IommufdCall.PageResponse p) {
            return Payloads.alloc(PAGE_RESPONSE).putInt(p.faultId()).putInt(p.cookie()).putInt(p.code()).putInt(0).array();
        }
        throw new AssertionError(call);
    }

    private static byte[] pair(int a, int b) {
        return Payloads.alloc(PAIR).putInt(a).putInt(b).array();
    }

    /**
     * The call a nesting request carries. Sizes were checked by the request's framing rule; an
     * INVALIDATE whose count disagrees with its size is fatal (as a batch's), a field outside its
     * values (type, map flags) refused with EINVAL.
     */
    public static IommufdCall decode(Request r, byte[] p) throws ProtocolException {
        ByteBuffer b = Payloads.le(p);
        return switch (r) {
            case IOMMUFD_OPEN_HOST -> new IommufdCall.OpenHost(b.getLong(), b.getLong(), b.getInt());
            case IOMMUFD_PROBE -> {
                int sid = b.getInt();
                b.getInt();
                yield new IommufdCall.Probe(sid, Payloads.fixedString(b, GROUP));
            }
            case IOMMUFD_BIND -> new IommufdCall.Bind(b.getInt());
            case IOMMUFD_HW_INFO -> new IommufdCall.HwInfo(b.getInt());
            case IOMMUFD_ALLOC_HWPT -> {
                int dev = b.getInt(), pt = b.getInt(), flags = b.getInt(), fault = b.getInt(), type = b.getInt();
                b.getInt();
                long[] vste = {b.getLong(), b.getLong()};
                if (type != HWPT_PAGING && type != HWPT_NESTED) {
                    throw ProtocolException.refused(ProtocolException.EINVAL, "IOMMUFD_ALLOC_HWPT: type " + Integer.toUnsignedString(type));
                }
                yield new IommufdCall.AllocHwpt(dev, pt, flags, type == HWPT_NESTED ? vste : null, fault);
            }
            case IOMMUFD_ATTACH -> new IommufdCall.Attach(b.getInt(), b.getInt());
            case IOMMUFD_DETACH -> new IommufdCall.Detach(b.getInt());
            case IOMMUFD_MAP_HWPT -> {
                int hwpt = b.getInt(), flags = b.getInt();
                if ((flags & ~(MAP_READ | MAP_WRITE | MAP_UNMAP)) != 0) {
                    throw ProtocolException.refused(ProtocolException.EINVAL, String.format("IOMMUFD_MAP_HWPT: flags 0x%x", flags));
                }
                yield new IommufdCall.Map(hwpt, b.getLong(), b.getLong(), b.getLong(), (flags & MAP_READ) != 0,
                        (flags & MAP_WRITE) != 0, (flags & MAP_UNMAP) != 0);
            }
            case IOMMUFD_ALLOC_VIOMMU -> new IommufdCall.AllocViommu(b.getInt(), b.getInt());
            case IOMMUFD_ALLOC_VDEVICE -> new IommufdCall.AllocVdevice(b.getInt(), b.getInt(), b.getLong());
            case IOMMUFD_INVALIDATE -> {
                int viommu = b.getInt(), n = b.getInt();
                if (n < 0 || n > MAX_COMMANDS || p.length != INVALIDATE_HEADER + 16 * n) {
                    throw ProtocolException.fatal(ProtocolException.EINVAL, "IOMMUFD_INVALIDATE: count " + Integer.toUnsignedString(n)
                            + " does not match a payload of " + p.length + " bytes");
                }
                long[] cmds = new long[2 * n];
                for (int i = 0; i < cmds.length; i++) {
                    cmds[i] = b.getLong();
                }
                yield new IommufdCall.Invalidate(viommu, cmds);
            }
            case IOMMUFD_ALLOC_VEVENTQ -> new IommufdCall.AllocVeventq(b.getInt(), b.getInt());
            case IOMMUFD_READ_VEVENTS -> new IommufdCall.ReadVevents(b.getInt(), b.getInt());
            case IOMMUFD_ALLOC_FAULT_QUEUE -> new IommufdCall.AllocFaultQueue();
            case IOMMUFD_READ_FAULTS -> new IommufdCall.ReadFaults(b.getInt(), b.getInt());
            case IOMMUFD_PAGE_RESPONSE -> new IommufdCall.PageResponse(b.getInt(), b.getInt(), b.getInt());
            default -> throw new IllegalArgumentException(r + " is not a nesting request");
        };
    }

    /**
     * Every nesting reply: {u32 errno (0 = done), u32 id, u32 handled, u32 count} then {@code count}
     * records of {@code records.length / count} bytes each: HW_INFO one {@link #HW_INFO_RECORD},
     * an unmap one {@link #LENGTH_RECORD}, READ_VEVENTS {@link #VEVENT_RECORD}s, READ_FAULTS
     * {@link #FAULT_RECORD}s.
     */
    public record Reply(int errno, int id, int handled, int count, byte[] records) {
        public static final int HEADER = 16;

        public static Reply of(IommufdCalls.Outcome o) {
            if (o.hwInfo() != null) {
                HwInfo h = o.hwInfo();
                ByteBuffer b = Payloads.alloc(HW_INFO_RECORD).putInt(h.flags()).putInt(0);
                for (int i = 0; i < 6; i++) {
                    b.putInt(i < h.idr().length ? h.idr()[i] : 0);
                }
                return new Reply(o.errno(), o.id(), o.handled(), 1, b.putInt(h.iidr()).putInt(h.aidr()).array());
            }
            if (o.length() != 0) {
                return new Reply(o.errno(), o.id(), o.handled(), 1, Payloads.alloc(LENGTH_RECORD).putLong(o.length()).array());
            }
            if (o.vevents() != null) {
                ByteBuffer b = Payloads.alloc(VEVENT_RECORD * o.vevents().size());
                for (Vevent v : o.vevents()) {
                    b.putInt(v.flags()).putInt(v.sequence());
                    for (int i = 0; i < 4; i++) {
                        b.putLong(v.evt() != null && i < v.evt().length ? v.evt()[i] : 0);
                    }
                    b.putLong(0);
                }
                return new Reply(o.errno(), o.id(), o.handled(), o.vevents().size(), b.array());
            }
            if (o.faults() != null) {
                ByteBuffer b = Payloads.alloc(FAULT_RECORD * o.faults().size());
                for (PageFault f : o.faults()) {
                    b.putInt(f.flags()).putInt(f.devId()).putInt(f.pasid()).putInt(f.grpid()).putInt(f.perm()).putInt(0)
                            .putLong(f.addr()).putInt(f.length()).putInt(f.cookie());
                }
                return new Reply(o.errno(), o.id(), o.handled(), o.faults().size(), b.array());
            }
            return new Reply(o.errno(), o.id(), o.handled(), 0, new byte[0]);
        }

        public byte[] encode() {
            return Payloads.alloc(HEADER + records.length).putInt(errno).putInt(id).putInt(handled).putInt(count).put(records).array();
        }

        public static Reply decode(byte[] p) throws ProtocolException {
            if (p.length < HEADER) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "nesting reply of " + p.length + " bytes");
            }
            ByteBuffer b = Payloads.le(p);
            int errno = b.getInt(), id = b.getInt(), handled = b.getInt(), count = b.getInt();
            int rest = p.length - HEADER;
            if (count < 0 || (count == 0 ? rest != 0 : rest % count != 0)) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "nesting reply: " + count + " records in " + rest + " bytes");
            }
            byte[] records = new byte[rest];
            b.get(records);
            return new Reply(errno, id, handled, count, records);
        }

        private ByteBuffer records(int size) {
            if (count != 0 && records.length != size * count) {
                throw new IllegalStateException("records of " + records.length / count + " bytes, not " + size);
            }
            return Payloads.le(records);
        }

        /** HW_INFO's record. */
        public HwInfo hwInfo() {
            ByteBuffer b = records(HW_INFO_RECORD);
            int flags = b.getInt();
            b.getInt();
            int[] idr = new int[6];
            for (int i = 0; i < 6; i++) {
                idr[i] = b.getInt();
            }
            return new HwInfo(flags, idr, b.getInt(), b.getInt());
        }

        /** An unmap's bytes (0 without a record). */
        public long length() {
            return count == 0 ? 0 : records(LENGTH_RECORD).getLong();
        }

        public List<Vevent> vevents() {
            ByteBuffer b = records(VEVENT_RECORD);
            List<Vevent> out = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                int flags = b.getInt(), seq = b.getInt();
                long[] evt = {b.getLong(), b.getLong(), b.getLong(), b.getLong()};
                b.getLong();
                out.add(new Vevent(flags, seq, (flags & Vevent.LOST_EVENTS) != 0 ? null : evt));
            }
            return out;
        }

        public List<PageFault> faults() {
            ByteBuffer b = records(FAULT_RECORD);
            List<PageFault> out = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                int flags = b.getInt(), dev = b.getInt(), pasid = b.getInt(), grpid = b.getInt(), perm = b.getInt();
                b.getInt();
                long addr = b.getLong();
                out.add(new PageFault(flags, dev, pasid, grpid, perm, addr, b.getInt(), b.getInt()));
            }
            return out;
        }
    }
}
