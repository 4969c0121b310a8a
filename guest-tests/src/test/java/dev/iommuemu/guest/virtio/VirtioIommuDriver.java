package dev.iommuemu.guest.virtio;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.virtio.iommu.FaultEvent;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.DriverRing.Buf;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A virtio-iommu guest driver written from the virtio spec (IOMMU device, and §3.1 device
 * initialization), independent of the device's own declarations: requests are encoded here
 * byte by byte at the spec's offsets. It negotiates features, reads the config space the way a
 * driver does (field by field), lays the request and event queues out in guest memory, fills the
 * event queue, and sends each request as a chain of descriptors split in a chosen way (one
 * descriptor per part, byte-sized pieces, random pieces, or an indirect table), kicking the
 * device only when avail_event / used->flags say so.
 */
public final class VirtioIommuDriver {
    // Request types and constants (spec "Device operations").
    public static final int T_ATTACH = 1;
    public static final int T_DETACH = 2;
    public static final int T_MAP = 3;
    public static final int T_UNMAP = 4;
    public static final int T_PROBE = 5;
    // Paravirtual nesting (docs/nesting.md §6).
    public static final int T_ATTACH_TABLE = 6;
    public static final int T_INVALIDATE = 7;
    public static final int T_PAGE_RESP = 8;
    public static final int PROBE_T_SMMUV3_NESTING = 0x800;

    // Feature bits (spec "Feature bits", virtio §6).
    public static final long F_INPUT_RANGE = 1L << 0;
    public static final long F_DOMAIN_RANGE = 1L << 1;
    public static final long F_MAP_UNMAP = 1L << 2;
    public static final long F_BYPASS = 1L << 3;
    public static final long F_PROBE = 1L << 4;
    public static final long F_MMIO = 1L << 5;
    public static final long F_BYPASS_CONFIG = 1L << 6;
    public static final long F_NESTING_SMMUV3 = 1L << 7;
    public static final long F_INDIRECT_DESC = 1L << 28;
    public static final long F_EVENT_IDX = 1L << 29;
    public static final long F_VERSION_1 = 1L << 32;
    public static final long F_ACCESS_PLATFORM = 1L << 33;

    /** How a request is spread over descriptors (§2.7.4: any split is legal). */
    public enum Split { ONE_EACH, BYTES, RANDOM, INDIRECT }

    /** A returned request: the used length and the device-writable bytes. */
    public record Reply(int usedLen, byte[] written) {
        public int status(int tailOffset) {
            return written[tailOffset] & 0xff;
        }
    }

    /** The PROBE result: status, used length and the RESV_MEM properties parsed as the spec says. */
    public record ProbeReply(int status, int usedLen, List<long[]> resvMem, byte[] raw) {}

    private static final long REQ_RING = 0x1_0000;
    private static final long EVT_RING = 0x2_0000;
    private static final long EVT_BUFS = 0x3_0000;
    private static final long BUFS = 0x10_0000;
    private static final long INDIRECT_TABLE = 0x8_0000;

    private final VirtioTransport dev;
    private final GuestMemory mem;
    private final Random rnd;
    private DriverRing req;
    private DriverRing evt;
    private long features;
    private long bufNext;
    private Split split = Split.ONE_EACH;
    private int kicks;
    private final java.util.Map<Integer, long[]> eventBufs = new java.util.HashMap<>();

    // Config fields as read.
    public long pageSizeMask;
    public long inputStart;
    public long inputEnd;
    public int domainStart;
    public int domainEnd;
    public int probeSize;
    public int bypass;

    public VirtioIommuDriver(VirtioTransport transport, GuestMemory mem, long seed) {
        this.dev = transport;
        this.mem = mem;
        this.rnd = new Random(seed);
    }

    public void split(Split s) {
        split = s;
    }

    public long features() {
        return features;
    }

    public int kicks() {
        return kicks;
    }

    public DriverRing requestRing() {
        return req;
    }

    public DriverRing eventRing() {
        return evt;
    }

    /**
     * Device initialization (§3.1.1): reset, negotiate {@code wanted & offered}, read the config,
     * set up both queues and give the event queue {@code eventBuffers} buffers of
     * {@code eventBufLen} bytes. Returns {@code false} when the device refuses the features.
     */
    public boolean init(long wanted, int queueSize, int eventBuffers, int eventBufLen) {
        return init(wanted, queueSize, eventBuffers, eventBufLen, true);
    }

    /**
     * As {@link #init(long, int, int, int)}; without {@code eventQueue} the driver sets up the
     * request queue only and leaves the event queue unconfigured, as a minimal driver that does not
     * want fault reports may (virtio 1.2 §2.7: a driver need not enable every queue).
     */
    public boolean init(long wanted, int queueSize, int eventBuffers, int eventBufLen, boolean eventQueue) {
        dev.reset();
        eventBufs.clear();
        long offered = dev.deviceFeatures();
        features = offered & wanted;
        if (!dev.setDriverFeatures(features)) {
            return false;
        }
        readConfig();
        req = new DriverRing(mem, queueSize, REQ_RING);
        evt = new DriverRing(mem, queueSize, EVT_RING);
        boolean eventIdx = (features & F_EVENT_IDX) != 0;
        req.setEventIdx(eventIdx);
        evt.setEventIdx(eventIdx);
        for (int q = 0; q < (eventQueue ? 2 : 1); q++) {
            DriverRing r = q == 0 ? req : evt;
            if (!dev.setQueueSize(q, queueSize) || !dev.setQueueAddresses(q, r.descAddr(), r.availAddr(), r.usedAddr())) {
                return false;
            }
            dev.setQueueEnabled(q, true);
        }
        if (eventQueue) {
            fillEventQueue(eventBuffers, eventBufLen);
        }
        return true;
    }

    /** Gives the event queue {@code eventBuffers} buffers of {@code eventBufLen} bytes and kicks it. */
    public void fillEventQueue(int eventBuffers, int eventBufLen) {
        for (int i = 0; i < eventBuffers; i++) {
            addEventBuffer(EVT_BUFS + 0x40L * i, eventBufLen);
        }
        kick(evt, 1);
    }

    /** Reads struct virtio_iommu_config field by field (spec "Device configuration layout"). */
    public void readConfig() {
        pageSizeMask = dev.readConfig(0, 8);
        inputStart = dev.readConfig(8, 8);
        inputEnd = dev.readConfig(16, 8);
        domainStart = (int) dev.readConfig(24, 4);
        domainEnd = (int) dev.readConfig(28, 4);
        probeSize = (int) dev.readConfig(32, 4);
        bypass = (int) dev.readConfig(36, 1);
    }

    public void writeBypass(int value) {
        dev.writeConfig(36, 1, value);
    }

    public void addEventBuffer(long addr, int len) {
        int head = evt.add(List.of(Buf.in(addr, len)));
        eventBufs.put(head, new long[] {addr, len});
        evt.publish(head);
    }

    private void kick(DriverRing r, int q) {
        if (r.kickNeeded()) {
            kicks++;
            dev.notify(q);
        }
    }

    /** Kicks the event queue regardless of suppression (after adding buffers by hand). */
    public void kickEvents() {
        kick(evt, 1);
    }

    // ---- requests ----

    private static ByteBuffer le(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }

    public static byte[] attachReq(int domain, int endpoint, int flags, int reserved) {
        return le(20).put((byte) T_ATTACH).put(new byte[3]).putInt(domain).putInt(endpoint).putInt(flags).putInt(reserved).array();
    }

    public static byte[] detachReq(int domain, int endpoint) {
        return le(20).put((byte) T_DETACH).put(new byte[3]).putInt(domain).putInt(endpoint).putLong(0).array();
    }

    public static byte[] mapReq(int domain, long virtStart, long virtEnd, long physStart, int flags) {
        return le(36).put((byte) T_MAP).put(new byte[3]).putInt(domain).putLong(virtStart).putLong(virtEnd).putLong(physStart).putInt(flags).array();
    }

    public static byte[] unmapReq(int domain, long virtStart, long virtEnd, int reserved) {
        return le(28).put((byte) T_UNMAP).put(new byte[3]).putInt(domain).putLong(virtStart).putLong(virtEnd).putInt(reserved).array();
    }

    public static byte[] probeReq(int endpoint) {
        return le(72).put((byte) T_PROBE).put(new byte[3]).putInt(endpoint).put(new byte[64]).array();
    }

    /** ATTACH_TABLE: {head; le32 domain; le32 endpoint; le16 format; le16 reserved; le32 flags; le32 reserved1; le64 ste[2]}. */
    public static byte[] attachTableReq(int domain, int endpoint, int format, int flags, long ste0, long ste1) {
        return le(40).put((byte) T_ATTACH_TABLE).put(new byte[3]).putInt(domain).putInt(endpoint).putShort((short) format)
                .putShort((short) 0).putInt(flags).putInt(0).putLong(ste0).putLong(ste1).array();
    }

    /** INVALIDATE: {head; le32 domain; le32 count; le32 reserved; le64 cmd[2 * count]}. */
    public static byte[] invalidateReq(int domain, int count, long... cmds) {
        ByteBuffer b = le(16 + 8 * cmds.length).put((byte) T_INVALIDATE).put(new byte[3]).putInt(domain).putInt(count).putInt(0);
        for (long c : cmds) {
            b.putLong(c);
        }
        return b.array();
    }

    /** PAGE_RESP: {head; le32 endpoint; le32 flags; le32 pasid; le32 grpid; le32 code; le32 reserved}. */
    public static byte[] pageRespReq(int endpoint, int flags, int pasid, int grpid, int code) {
        return le(28).put((byte) T_PAGE_RESP).put(new byte[3]).putInt(endpoint).putInt(flags).putInt(pasid).putInt(grpid)
                .putInt(code).putInt(0).array();
    }

    public int attachTable(int domain, int endpoint, long ste0, long ste1) {
        return send(attachTableReq(domain, endpoint, 1, 0, ste0, ste1), 4).status(0);
    }

    /** INVALIDATE with the device-writable {le32 handled; tail}: returns {status, handled}. */
    public int[] invalidate(int domain, long... cmds) {
        Reply r = send(invalidateReq(domain, cmds.length / 2, cmds), 8);
        ByteBuffer b = ByteBuffer.wrap(r.written()).order(ByteOrder.LITTLE_ENDIAN);
        return new int[] {b.get(4) & 0xff, b.getInt(0)};
    }

    public int pageResp(int endpoint, int flags, int pasid, int grpid, int code) {
        return send(pageRespReq(endpoint, flags, pasid, grpid, code), 4).status(0);
    }

    /**
     * The SMMUV3_NESTING property of a PROBE reply, walked like any property list: {flags,
     * reserved, idr[0..5], iidr, aidr}, or {@code null} when absent.
     */
    public static int[] nestingProperty(ProbeReply p, int propertiesLen) {
        ByteBuffer b = ByteBuffer.wrap(p.raw(), 0, propertiesLen).order(ByteOrder.LITTLE_ENDIAN);
        int off = 0;
        while (p.status() == 0 && off + 4 <= propertiesLen) {
            int type = b.getShort(off) & 0xfff;
            int len = b.getShort(off + 2) & 0xffff;
            if (type == 0) {
                break;
            }
            if (type == PROBE_T_SMMUV3_NESTING && len == 40) {
                int[] v = new int[10];
                for (int i = 0; i < 10; i++) {
                    v[i] = b.getInt(off + 4 + 4 * i);
                }
                return v;
            }
            off += 4 + len;
        }
        return null;
    }

    public int attach(int domain, int endpoint, int flags) {
        return send(attachReq(domain, endpoint, flags, 0), 4).status(0);
    }

    public int detach(int domain, int endpoint) {
        return send(detachReq(domain, endpoint), 4).status(0);
    }

    public int map(int domain, long virtStart, long virtEnd, long physStart, int flags) {
        return send(mapReq(domain, virtStart, virtEnd, physStart, flags), 4).status(0);
    }

    public int unmap(int domain, long virtStart, long virtEnd) {
        return send(unmapReq(domain, virtStart, virtEnd, 0), 4).status(0);
    }

    /** PROBE with a properties buffer of probe_size bytes, parsed per "PROBE request". */
    public ProbeReply probe(int endpoint) {
        return probe(endpoint, probeSize);
    }

    public ProbeReply probe(int endpoint, int propertiesLen) {
        Reply r = send(probeReq(endpoint), propertiesLen + 4);
        if (r.usedLen() == 0) {
            return new ProbeReply(-1, 0, List.of(), r.written());
        }
        int status = r.written()[Math.min(propertiesLen, r.written().length - 4)] & 0xff;
        List<long[]> resv = new ArrayList<>();
        ByteBuffer b = ByteBuffer.wrap(r.written(), 0, propertiesLen).order(ByteOrder.LITTLE_ENDIAN);
        int off = 0;
        while (status == 0 && off + 4 <= propertiesLen) {
            int typeWord = b.getShort(off) & 0xffff;
            int len = b.getShort(off + 2) & 0xffff;
            int type = typeWord & 0xfff;
            if (type == 0) {
                break; // an empty property ends the list
            }
            if (type == 1 && (typeWord & 0xf000) == 0 && len >= 20) {
                resv.add(new long[] {b.get(off + 4) & 0xff, b.getLong(off + 8), b.getLong(off + 16)});
            }
            off += 4 + len;
        }
        return new ProbeReply(status, r.usedLen(), resv, r.written());
    }

    /**
     * Sends one request: {@code readable} as the device-readable part and a device-writable part
     * of {@code writableLen} bytes (pre-filled with 0xee so unwritten bytes show), split per the
     * current {@link Split}; kicks if needed and waits for the used entry.
     */
    public Reply send(byte[] readable, int writableLen) {
        bufNext = BUFS;
        List<Buf> bufs = new ArrayList<>();
        List<long[]> writable = new ArrayList<>();
        for (int[] piece : pieces(readable.length)) {
            long a = place(piece[1]);
            mem.write(a, readable, piece[0], piece[1]);
            bufs.add(Buf.out(a, piece[1]));
        }
        for (int[] piece : pieces(writableLen)) {
            long a = place(piece[1]);
            byte[] fill = new byte[piece[1]];
            java.util.Arrays.fill(fill, (byte) 0xee);
            mem.write(a, fill, 0, fill.length);
            bufs.add(Buf.in(a, piece[1]));
            writable.add(new long[] {a, piece[1]});
        }
        int head = split == Split.INDIRECT ? req.addIndirect(bufs, INDIRECT_TABLE) : req.add(bufs);
        if (head < 0) {
            throw new IllegalStateException("ring full");
        }
        req.publish(head);
        return complete(head, writable, writableLen);
    }

    /** Waits for {@code head} on the used ring (after kicking) and reads back the writable part. */
    public Reply complete(int head, List<long[]> writable, int writableLen) {
        kick(req, 0);
        DriverRing.Used u = req.popUsed();
        if (u == null) {
            throw new IllegalStateException("the device did not return the request");
        }
        if (u.id() != head) {
            throw new IllegalStateException("used id " + u.id() + " != head " + head);
        }
        byte[] out = new byte[writableLen];
        int o = 0;
        for (long[] w : writable) {
            mem.read(w[0], out, o, (int) w[1]);
            o += (int) w[1];
        }
        return new Reply(u.len(), out);
    }

    private List<int[]> pieces(int len) {
        List<int[]> out = new ArrayList<>();
        if (len == 0) {
            return out;
        }
        switch (split) {
            case ONE_EACH, INDIRECT -> out.add(new int[] {0, len});
            case BYTES -> {
                int step = Math.max(1, len / 12); // keep chains within the queue size
                for (int o = 0; o < len; o += step) {
                    out.add(new int[] {o, Math.min(step, len - o)});
                }
            }
            case RANDOM -> {
                int o = 0;
                while (o < len) {
                    int n = 1 + rnd.nextInt(Math.min(len - o, 24));
                    if (out.size() >= 6) {
                        n = len - o;
                    }
                    out.add(new int[] {o, n});
                    o += n;
                }
            }
        }
        return out;
    }

    /** A fresh buffer address, with a gap after each piece so pieces are never contiguous. */
    private long place(int len) {
        long a = bufNext;
        bufNext = (bufNext + len + 0x40) & ~0xfL;
        return a;
    }

    /**
     * Consumes used event buffers, decoding each report at the spec's offsets ("Fault reporting":
     * u8 reason, u8 reserved[3], le32 flags, le32 endpoint, le32 reserved1, le64 address) and, if
     * {@code recycle}, giving each buffer back to the device.
     */
    public List<FaultEvent> events(boolean recycle) {
        List<FaultEvent> out = new ArrayList<>();
        DriverRing.Used u;
        List<long[]> back = new ArrayList<>();
        while ((u = evt.popUsed()) != null) {
            long[] buf = eventBufs.remove(u.id());
            if (u.len() >= 24) {
                // With NESTING_SMMUV3 the record is 32 bytes: le32 pasid and le32 grpid follow address.
                boolean ext = (features & F_NESTING_SMMUV3) != 0 && u.len() >= 32;
                byte[] b = new byte[ext ? 32 : 24];
                mem.read(buf[0], b, 0, b.length);
                ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
                if ((bb.getInt(0) & 0xffffff00) == 0) { // reserved must be zero, else ignore the report
                    out.add(new FaultEvent(b[0] & 0xff, bb.getInt(4), bb.getInt(8), bb.getLong(16),
                            ext ? bb.getInt(24) : 0, ext ? bb.getInt(28) : 0));
                }
            }
            back.add(buf);
        }
        if (recycle && !back.isEmpty()) {
            for (long[] buf : back) {
                addEventBuffer(buf[0], (int) buf[1]);
            }
            kick(evt, 1);
        }
        return out;
    }

    /** The 32 raw bytes of event buffer {@code i} (the NESTING_SMMUV3 record). */
    public byte[] eventBytes32(int i) {
        byte[] b = new byte[32];
        mem.read(EVT_BUFS + 0x40L * i, b, 0, 32);
        return b;
    }

    /** The 24 raw bytes of event buffer {@code i}. */
    public byte[] eventBytes(int i) {
        byte[] b = new byte[24];
        mem.read(EVT_BUFS + 0x40L * i, b, 0, 24);
        return b;
    }
}
