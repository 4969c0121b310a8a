package dev.iommuemu.bridge.protocol;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The payload layouts of docs/protocol.md, each a small record with its exact encoding
 * (little-endian, natural alignment, no implicit padding). Decoders check sizes and throw a
 * fatal {@link ProtocolException} on a mismatch; they never read past the payload.
 */
public final class Payloads {
    private Payloads() {}

    /** vhost-user VHOST_USER_VRING_IDX_MASK / VHOST_USER_VRING_NOFD_MASK of u64 vring payloads. */
    public static final long INDEX_MASK = 0xff;
    public static final long NOFD_MASK = 1L << 8;
    /** Largest IOMMU_TRANSLATE_BATCH. */
    public static final int MAX_BATCH = 1024;

    static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }

    static ByteBuffer alloc(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static void exact(byte[] p, int size, String what) throws ProtocolException {
        if (p.length != size) {
            throw ProtocolException.fatal(ProtocolException.EINVAL, what + ": payload of " + p.length + " bytes, expected " + size);
        }
    }

    /** A u64 payload (features, vring index with NOFD, REPLY_ACK status). */
    public static byte[] u64(long v) {
        return alloc(8).putLong(v).array();
    }

    public static long u64(byte[] p) {
        return p.length >= 8 ? le(p).getLong(0) : 0;
    }

    static byte[] fixedString(String s, int n) {
        byte[] out = new byte[n];
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        System.arraycopy(b, 0, out, 0, Math.min(b.length, n - 1));
        return out;
    }

    static String fixedString(ByteBuffer in, int n) {
        byte[] b = new byte[n];
        in.get(b);
        int len = 0;
        while (len < n && b[len] != 0) {
            len++;
        }
        return new String(b, 0, len, StandardCharsets.UTF_8);
    }

    /** VhostUserMemoryRegion: u64 guest_phys_addr, memory_size, userspace_addr, mmap_offset. */
    public record MemRegion(long gpa, long size, long userAddr, long mmapOffset) {
        public static final int SIZE = 32;

        void encode(ByteBuffer b) {
            b.putLong(gpa).putLong(size).putLong(userAddr).putLong(mmapOffset);
        }

        static MemRegion decode(ByteBuffer b) {
            return new MemRegion(b.getLong(), b.getLong(), b.getLong(), b.getLong());
        }
    }

    /** VhostUserMemory (SET_MEM_TABLE): u32 nregions, u32 padding, regions[nregions]. */
    public record MemTable(List<MemRegion> regions) {
        public static final int MAX_REGIONS = 8;

        public byte[] encode() {
            ByteBuffer b = alloc(8 + MemRegion.SIZE * regions.size());
            b.putInt(regions.size()).putInt(0);
            regions.forEach(r -> r.encode(b));
            return b.array();
        }

        /** nregions as the fd rule needs it; a count that disagrees with the size is fatal. */
        static int regionCount(byte[] p) throws ProtocolException {
            int n = le(p).getInt(0);
            if (n < 0 || n > MAX_REGIONS || p.length != 8 + MemRegion.SIZE * n) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "SET_MEM_TABLE: nregions " + Integer.toUnsignedString(n) + " does not match a payload of " + p.length + " bytes (max " + MAX_REGIONS + ")");
            }
            return n;
        }

        public static MemTable decode(byte[] p) throws ProtocolException {
            int n = regionCount(p);
            ByteBuffer b = le(p);
            b.position(8);
            List<MemRegion> list = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                list.add(MemRegion.decode(b));
            }
            return new MemTable(List.copyOf(list));
        }
    }

    /** VhostUserMemRegMsg (ADD_MEM_REG, REM_MEM_REG): u64 padding, one region. */
    public record SingleMemRegion(MemRegion region) {
        public static final int SIZE = 8 + MemRegion.SIZE;

        public byte[] encode() {
            ByteBuffer b = alloc(SIZE);
            b.putLong(0);
            region.encode(b);
            return b.array();
        }

        public static SingleMemRegion decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "memory region message");
            ByteBuffer b = le(p);
            b.position(8);
            return new SingleMemRegion(MemRegion.decode(b));
        }
    }

    /** struct vhost_vring_state: u32 index, u32 num (SET_VRING_NUM, SET/GET_VRING_BASE, SET_VRING_ENABLE). */
    public record VringState(int index, int num) {
        public static final int SIZE = 8;

        public byte[] encode() {
            return alloc(SIZE).putInt(index).putInt(num).array();
        }

        public static VringState decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "vring state");
            ByteBuffer b = le(p);
            return new VringState(b.getInt(), b.getInt());
        }
    }

    /** struct vhost_vring_addr: u32 index, flags; u64 desc, used, avail (VMM virtual addresses), log. */
    public record VringAddr(int index, int flags, long desc, long used, long avail, long log) {
        public static final int SIZE = 40;

        public byte[] encode() {
            return alloc(SIZE).putInt(index).putInt(flags).putLong(desc).putLong(used).putLong(avail).putLong(log).array();
        }

        public static VringAddr decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "vring address");
            ByteBuffer b = le(p);
            return new VringAddr(b.getInt(), b.getInt(), b.getLong(), b.getLong(), b.getLong(), b.getLong());
        }
    }

    /** VhostUserConfig (GET_CONFIG, SET_CONFIG): u32 offset, size, flags; u8 region[size]. */
    public record Config(int offset, int flags, byte[] data) {
        public static final int HEADER = 12;
        public static final int MAX_DATA = 256;

        public byte[] encode() {
            return alloc(HEADER + data.length).putInt(offset).putInt(data.length).putInt(flags).put(data).array();
        }

        public static Config decode(byte[] p) throws ProtocolException {
            ByteBuffer b = le(p);
            int offset = b.getInt();
            int size = b.getInt();
            int flags = b.getInt();
            if (size < 0 || size > MAX_DATA || p.length != HEADER + size) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "config: size " + Integer.toUnsignedString(size) + " does not match a payload of " + p.length + " bytes");
            }
            byte[] data = new byte[size];
            b.get(data);
            return new Config(offset, flags, data);
        }
    }

    /** IOMMU_GET_INFO reply. */
    public record IommuInfo(int model, int version, long mmioSize, int numQueues, String profile, List<String> irqLines) {
        public static final int NAME = 16;
        public static final int PROFILE = 32;

        public byte[] encode() {
            ByteBuffer b = alloc(56 + NAME * irqLines.size());
            b.putInt(model).putInt(version).putLong(mmioSize).putInt(irqLines.size()).putInt(numQueues);
            b.put(fixedString(profile, PROFILE));
            irqLines.forEach(l -> b.put(fixedString(l, NAME)));
            return b.array();
        }

        public static IommuInfo decode(byte[] p) throws ProtocolException {
            if (p.length < 56) {
                exact(p, 56, "IOMMU_GET_INFO reply");
            }
            ByteBuffer b = le(p);
            int model = b.getInt();
            int version = b.getInt();
            long mmio = b.getLong();
            int lines = b.getInt();
            int queues = b.getInt();
            String profile = fixedString(b, PROFILE);
            if (lines < 0 || lines > 64 || p.length != 56 + NAME * lines) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "IOMMU_GET_INFO reply: " + lines + " lines in " + p.length + " bytes");
            }
            List<String> names = new ArrayList<>();
            for (int i = 0; i < lines; i++) {
                names.add(fixedString(b, NAME));
            }
            return new IommuInfo(model, version, mmio, queues, profile, List.copyOf(names));
        }
    }

    /** IOMMU_SET_MODEL: u32 model, u32 reserved, char profile[32] (empty = the daemon's default). */
    public record ModelSelect(int model, String profile) {
        public static final int SIZE = 40;

        public byte[] encode() {
            return alloc(SIZE).putInt(model).putInt(0).put(fixedString(profile, 32)).array();
        }

        public static ModelSelect decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_SET_MODEL");
            ByteBuffer b = le(p);
            int model = b.getInt();
            b.getInt();
            return new ModelSelect(model, fixedString(b, 32));
        }
    }

    /** IOMMU_MMIO_READ: u64 offset, u32 size (1, 2, 4, 8), u32 reserved. */
    public record MmioRead(long offset, int size) {
        public static final int SIZE = 16;

        public byte[] encode() {
            return alloc(SIZE).putLong(offset).putInt(size).putInt(0).array();
        }

        public static MmioRead decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_MMIO_READ");
            ByteBuffer b = le(p);
            return new MmioRead(b.getLong(), b.getInt());
        }
    }

    /** IOMMU_MMIO_READ reply: i32 status (0 or -errno), u32 reserved, u64 value. */
    public record MmioReadReply(int status, long value) {
        public static final int SIZE = 16;

        public byte[] encode() {
            return alloc(SIZE).putInt(status).putInt(0).putLong(value).array();
        }

        public static MmioReadReply decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_MMIO_READ reply");
            ByteBuffer b = le(p);
            int st = b.getInt();
            b.getInt();
            return new MmioReadReply(st, b.getLong());
        }
    }

    /** IOMMU_MMIO_WRITE: u64 offset, u32 size, u32 reserved, u64 value. */
    public record MmioWrite(long offset, int size, long value) {
        public static final int SIZE = 24;

        public byte[] encode() {
            return alloc(SIZE).putLong(offset).putInt(size).putInt(0).putLong(value).array();
        }

        public static MmioWrite decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_MMIO_WRITE");
            ByteBuffer b = le(p);
            long off = b.getLong();
            int size = b.getInt();
            b.getInt();
            return new MmioWrite(off, size, b.getLong());
        }
    }

    /** Access bits of a translation request (IHI 0070 §3.2 RnW, InD, PnU). */
    public static final int ACCESS_WRITE = 1;
    public static final int ACCESS_EXEC = 2;
    public static final int ACCESS_PRIV = 4;
    /** Substream field value meaning "no substream". */
    public static final int NO_SUBSTREAM = 0xffff_ffff;

    /** IOMMU_TRANSLATE (and each batch entry): u32 stream_id, u32 substream_id, u64 iova, u32 access, u32 reserved. */
    public record TranslateRequest(int streamId, int substreamId, long iova, int access) {
        public static final int SIZE = 24;

        void encode(ByteBuffer b) {
            b.putInt(streamId).putInt(substreamId).putLong(iova).putInt(access).putInt(0);
        }

        public byte[] encode() {
            ByteBuffer b = alloc(SIZE);
            encode(b);
            return b.array();
        }

        static TranslateRequest decode(ByteBuffer b) {
            TranslateRequest r = new TranslateRequest(b.getInt(), b.getInt(), b.getLong(), b.getInt());
            b.getInt();
            return r;
        }

        public static TranslateRequest decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_TRANSLATE");
            return decode(le(p));
        }
    }

    /** Status of a translation result. */
    public static final int TRANSLATED = 0;
    public static final int ABORTED = 1;
    public static final int STALLED = 2;

    /**
     * A translation result: u32 status, u32 perm (dev.iommuemu.dma.Perm bits), u64 output address
     * (of the requested IOVA), u64 address mask, u32 stall tag, u32 reserved.
     */
    public record TranslateResult(int status, int perm, long output, long addrMask, int stag) {
        public static final int SIZE = 32;

        void encode(ByteBuffer b) {
            b.putInt(status).putInt(perm).putLong(output).putLong(addrMask).putInt(stag).putInt(0);
        }

        static TranslateResult decode(ByteBuffer b) {
            TranslateResult r = new TranslateResult(b.getInt(), b.getInt(), b.getLong(), b.getLong(), b.getInt());
            b.getInt();
            return r;
        }
    }

    /** IOMMU_TRANSLATE reply: a result then char reason[32] (the fault name, empty when translated). */
    public record TranslateReply(TranslateResult result, String reason) {
        public static final int SIZE = TranslateResult.SIZE + 32;

        public byte[] encode() {
            ByteBuffer b = alloc(SIZE);
            result.encode(b);
            b.put(fixedString(reason, 32));
            return b.array();
        }

        public static TranslateReply decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_TRANSLATE reply");
            ByteBuffer b = le(p);
            return new TranslateReply(TranslateResult.decode(b), fixedString(b, 32));
        }
    }

    /** Most pages one IOMMU_TRANSLATE_RUN may ask for beyond its own (docs/protocol.md §4.3). */
    public static final int MAX_RUN_PAGES = 1024;

    /** IOMMU_TRANSLATE_RUN: a translate request, then u32 max_pages, u32 reserved. */
    public record TranslateRunRequest(TranslateRequest request, int maxPages) {
        public static final int SIZE = TranslateRequest.SIZE + 8;

        public byte[] encode() {
            ByteBuffer b = alloc(SIZE);
            request.encode(b);
            b.putInt(maxPages).putInt(0);
            return b.array();
        }

        public static TranslateRunRequest decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_TRANSLATE_RUN");
            ByteBuffer b = le(p);
            TranslateRequest r = TranslateRequest.decode(b);
            int max = b.getInt();
            if (max < 0 || max > MAX_RUN_PAGES) {
                throw ProtocolException.refused(ProtocolException.EINVAL, "IOMMU_TRANSLATE_RUN: max_pages " + Integer.toUnsignedString(max) + " above " + MAX_RUN_PAGES);
            }
            return new TranslateRunRequest(r, max);
        }
    }

    /** One entry of an IOMMU_TRANSLATE_RUN reply: u64 iova, u64 output, u64 address mask, u32 perm, u32 reserved. */
    public record RunEntry(long iova, long output, long addrMask, int perm) {
        public static final int SIZE = 32;
    }

    /**
     * IOMMU_TRANSLATE_RUN reply: the IOMMU_TRANSLATE reply of the request, u32 count, u32 reserved,
     * then {@code count} entries for the addresses after the requested one's entry.
     */
    public record TranslateRunReply(TranslateReply reply, List<RunEntry> entries) {
        public byte[] encode() {
            ByteBuffer b = alloc(TranslateReply.SIZE + 8 + RunEntry.SIZE * entries.size());
            reply.result().encode(b);
            b.put(fixedString(reply.reason(), 32));
            b.putInt(entries.size()).putInt(0);
            for (RunEntry e : entries) {
                b.putLong(e.iova()).putLong(e.output()).putLong(e.addrMask()).putInt(e.perm()).putInt(0);
            }
            return b.array();
        }

        public static TranslateRunReply decode(byte[] p) throws ProtocolException {
            ByteBuffer b = le(p);
            int n = p.length >= TranslateReply.SIZE + 8 ? b.getInt(TranslateReply.SIZE) : -1;
            if (n < 0 || n > dev.iommuemu.dma.IommuModel.MAX_PREFETCH_ENTRIES || p.length != TranslateReply.SIZE + 8 + RunEntry.SIZE * n) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "IOMMU_TRANSLATE_RUN reply: " + p.length + " bytes do not hold count " + n);
            }
            TranslateReply r = new TranslateReply(TranslateResult.decode(b), fixedString(b, 32));
            b.position(TranslateReply.SIZE + 8);
            List<RunEntry> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                RunEntry e = new RunEntry(b.getLong(), b.getLong(), b.getLong(), b.getInt());
                b.getInt();
                out.add(e);
            }
            return new TranslateRunReply(r, out);
        }
    }

    /** IOMMU_TRANSLATE_BATCH: u32 count, u32 reserved, requests[count]. */
    public static byte[] encodeBatch(List<TranslateRequest> reqs) {
        ByteBuffer b = alloc(8 + TranslateRequest.SIZE * reqs.size());
        b.putInt(reqs.size()).putInt(0);
        reqs.forEach(r -> r.encode(b));
        return b.array();
    }

    public static List<TranslateRequest> decodeBatch(byte[] p) throws ProtocolException {
        ByteBuffer b = le(p);
        int n = b.getInt();
        if (n < 0 || n > MAX_BATCH || p.length != 8 + TranslateRequest.SIZE * n) {
            throw ProtocolException.fatal(ProtocolException.EINVAL, "IOMMU_TRANSLATE_BATCH: count " + Integer.toUnsignedString(n) + " does not match a payload of " + p.length + " bytes (max " + MAX_BATCH + ")");
        }
        b.position(8);
        List<TranslateRequest> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(TranslateRequest.decode(b));
        }
        return out;
    }

    /** IOMMU_TRANSLATE_BATCH reply: u32 count, u32 reserved, results[count]. */
    public static byte[] encodeBatchReply(List<TranslateResult> results) {
        ByteBuffer b = alloc(8 + TranslateResult.SIZE * results.size());
        b.putInt(results.size()).putInt(0);
        results.forEach(r -> r.encode(b));
        return b.array();
    }

    public static List<TranslateResult> decodeBatchReply(byte[] p) throws ProtocolException {
        ByteBuffer b = le(p);
        int n = p.length >= 8 ? b.getInt() : -1;
        if (n < 0 || n > MAX_BATCH || p.length != 8 + TranslateResult.SIZE * n) {
            throw ProtocolException.fatal(ProtocolException.EINVAL, "IOMMU_TRANSLATE_BATCH reply of " + p.length + " bytes");
        }
        b.position(8);
        List<TranslateResult> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(TranslateResult.decode(b));
        }
        return out;
    }

    /** Back-end IOMMU_IOTLB_INVALIDATE: u32 endpoint (~0 = all), u32 flags, u64 iova, u64 size (~0 = all). */
    public record IotlbInvalidate(int endpoint, int flags, long iova, long size) {
        public static final int SIZE = 24;

        public byte[] encode() {
            return alloc(SIZE).putInt(endpoint).putInt(flags).putLong(iova).putLong(size).array();
        }

        public static IotlbInvalidate decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_IOTLB_INVALIDATE");
            ByteBuffer b = le(p);
            return new IotlbInvalidate(b.getInt(), b.getInt(), b.getLong(), b.getLong());
        }
    }

    /**
     * Back-end IOMMU_MSI and front-end IOMMU_MSI_ABORTED (version 8): u64 address, u32 data, u32
     * source ({@link dev.iommuemu.dma.MsiSource} codes: 0 other, 1 CMD_SYNC completion, 2 event
     * queue, 3 PRI queue, 4 GERROR; before version 8 the field was reserved, 0).
     */
    public record MsiWrite(long address, int data, int source) {
        public static final int SIZE = 16;

        /** An MSI of source 0 (other). */
        public MsiWrite(long address, int data) {
            this(address, data, 0);
        }

        public byte[] encode() {
            return alloc(SIZE).putLong(address).putInt(data).putInt(source).array();
        }

        public static MsiWrite decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_MSI");
            ByteBuffer b = le(p);
            return new MsiWrite(b.getLong(), b.getInt(), b.getInt());
        }
    }

    // IOMMU_PRI_PAGE_REQUEST flags: the fields of a PCIe Page Request Message (PCIe r6.0 §10.4.1;
    // SMMUv3 PRI queue entry, IHI 0070 §8). Bits 0-2 are a translate request's access bits.
    /** W: Write Access Requested. */
    public static final int PAGE_REQUEST_WRITE = ACCESS_WRITE;
    /** Execute Requested (PASID TLP prefix). */
    public static final int PAGE_REQUEST_EXEC = ACCESS_EXEC;
    /** Privileged Mode Requested (PASID TLP prefix). */
    public static final int PAGE_REQUEST_PRIV = ACCESS_PRIV;
    /** L: the last request of its Page Request Group. */
    public static final int PAGE_REQUEST_LAST = 8;
    /** R: Read Access Requested (version 3; before, read was "not write", which still holds when R, W and Stop are clear). */
    public static final int PAGE_REQUEST_READ = 16;
    /** A Stop PASID marker (L = 1, R = W = 0 with a PASID): needs a substream, excludes R and W (version 3). */
    public static final int PAGE_REQUEST_STOP = 32;
    /** Every defined flag; other bits are refused (EINVAL). */
    public static final int PAGE_REQUEST_FLAGS = 0x3f;

    /**
     * IOMMU_PRI_PAGE_REQUEST: u32 stream_id, u32 substream_id (~0 = none), u64 address, u32 flags
     * (bit 0 W, 1 exec, 2 priv, 3 last of group, 4 R, 5 Stop PASID marker), u32 group_index.
     */
    public record PageRequestMsg(int streamId, int substreamId, long address, int flags, int groupIndex) {
        public static final int SIZE = 24;

        public byte[] encode() {
            return alloc(SIZE).putInt(streamId).putInt(substreamId).putLong(address).putInt(flags).putInt(groupIndex).array();
        }

        public static PageRequestMsg decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_PRI_PAGE_REQUEST");
            ByteBuffer b = le(p);
            return new PageRequestMsg(b.getInt(), b.getInt(), b.getLong(), b.getInt(), b.getInt());
        }

        public boolean stop() {
            return (flags & PAGE_REQUEST_STOP) != 0;
        }

        public boolean write() {
            return (flags & PAGE_REQUEST_WRITE) != 0;
        }

        /** R; a version-1 request (R, W and Stop clear) is a read. */
        public boolean read() {
            return (flags & PAGE_REQUEST_READ) != 0 || (flags & (PAGE_REQUEST_WRITE | PAGE_REQUEST_STOP)) == 0;
        }

        public boolean exec() {
            return (flags & PAGE_REQUEST_EXEC) != 0;
        }

        public boolean priv() {
            return (flags & PAGE_REQUEST_PRIV) != 0;
        }

        /** L; a Stop marker is always the last of its group. */
        public boolean last() {
            return (flags & PAGE_REQUEST_LAST) != 0 || stop();
        }
    }

    /** IOMMU_ATC_INVALIDATE flag G: CMD_ATC_INV.G (IHI 0070 §4.5.1), the PCIe Global Invalidate of every PASID (version 4). */
    public static final int ATC_INVALIDATE_GLOBAL = 1;

    /**
     * Back-end IOMMU_ATC_INVALIDATE: u32 stream_id, u32 substream_id (~0 = none: a request without
     * PASID), u64 address, u64 size (~0 = all), u32 flags (bit 0 G), u32 reserved (version 4; 24
     * bytes without flags before).
     */
    public record AtcInvalidate(int streamId, int substreamId, long address, long size, int flags) {
        public static final int SIZE = 32;

        public boolean global() {
            return (flags & ATC_INVALIDATE_GLOBAL) != 0;
        }

        public byte[] encode() {
            return alloc(SIZE).putInt(streamId).putInt(substreamId).putLong(address).putLong(size).putInt(flags).putInt(0).array();
        }

        public static AtcInvalidate decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_ATC_INVALIDATE");
            ByteBuffer b = le(p);
            return new AtcInvalidate(b.getInt(), b.getInt(), b.getLong(), b.getLong(), b.getInt());
        }
    }

    /** Back-end IOMMU_PRI_RESPONSE: u32 stream_id, u32 substream_id, u32 group_index, u32 code. */
    public record PriResponse(int streamId, int substreamId, int groupIndex, int code) {
        public static final int SIZE = 16;

        public byte[] encode() {
            return alloc(SIZE).putInt(streamId).putInt(substreamId).putInt(groupIndex).putInt(code).array();
        }

        public static PriResponse decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_PRI_RESPONSE");
            ByteBuffer b = le(p);
            return new PriResponse(b.getInt(), b.getInt(), b.getInt(), b.getInt());
        }
    }

    /** IOMMU_STALL_RESOLVED flag: the stalled transaction is retried (CMD_RESUME Action Retry); clear: aborted. */
    public static final int STALL_RETRY = 1;

    /**
     * Back-end IOMMU_STALL_RESOLVED: u32 stream_id, u32 stag, u32 flags (bit 0 retry, else abort),
     * u32 reserved. The guest resumed (CMD_RESUME, IHI 0070 §4.7.1) or terminated (CMD_STALL_TERM,
     * §4.7.2) the stalled transaction that IOMMU_TRANSLATE answered with status 2 and {@code stag}.
     */
    public record StallResolved(int streamId, int stag, int flags) {
        public static final int SIZE = 16;

        public boolean retry() {
            return (flags & STALL_RETRY) != 0;
        }

        public byte[] encode() {
            return alloc(SIZE).putInt(streamId).putInt(stag).putInt(flags).putInt(0).array();
        }

        public static StallResolved decode(byte[] p) throws ProtocolException {
            exact(p, SIZE, "IOMMU_STALL_RESOLVED");
            ByteBuffer b = le(p);
            return new StallResolved(b.getInt(), b.getInt(), b.getInt());
        }
    }
}
