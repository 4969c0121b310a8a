package dev.iommuemu.bridge.protocol;

import dev.iommuemu.bridge.device.PropertyRefusedException;
import dev.iommuemu.bridge.device.VmmProperties;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The payloads of IOMMU_SET_PROPERTIES and IOMMU_SET_ENDPOINTS (docs/protocol.md §4.7, version 7):
 * the VMM device's properties as a typed list of (key, value) entries, the reply that carries a
 * refusal as an errno and a sentence, and the endpoint topology. Framing errors (a count that
 * disagrees with the size, reserved bits set) are fatal {@link ProtocolException}s; a property
 * the daemon does not know or whose value is outside the VMM's own range is a
 * {@link PropertyRefusedException} that becomes the reply.
 */
public final class PropertyPayloads {
    private PropertyPayloads() {}

    // ---- property keys (docs/protocol.md §4.7; QEMU's names in docs/qemu-properties.md)
    /** virtio-iommu {@code boot-bypass}: a = 0 or 1. */
    public static final int VIRTIO_BOOT_BYPASS = 1;
    /** virtio-iommu {@code granule}: a = the granule in bytes, a power of two from 4 KiB to 64 KiB. */
    public static final int VIRTIO_GRANULE = 2;
    /** virtio-iommu {@code aw-bits}: a = 32..64. */
    public static final int VIRTIO_AW_BITS = 3;
    /** virtio-iommu {@code reserved-regions}: arg = n, the number of VIRTIO_RESERVED_REGION entries that follow (0: none). */
    public static final int VIRTIO_RESERVED_REGIONS = 4;
    /** One region of the list: arg = type (0 reserved, 1 MSI), a = low, b = high (inclusive). */
    public static final int VIRTIO_RESERVED_REGION = 5;
    /**
     * virtio-iommu, QEMU's behaviour (no QEMU property): a = 1, MAP ranges and addresses need not be
     * aligned on the granule (QEMU's device maps them; the spec's device SHOULD answer RANGE); a = 0 (or
     * absent), they must.
     */
    public static final int VIRTIO_UNALIGNED_MAPS = 6;
    /** arm-smmuv3 {@code stage}: a = 1 ("1"), 2 ("2") or 3 ("nested"). */
    public static final int SMMU_STAGE = 16;
    /** arm-smmuv3 {@code primary-bus} / {@code bus_num}: a = primary bus number, b = last bus number behind it. */
    public static final int SMMU_PCI_BUS = 17;

    /** An entry: {u32 key, u32 arg, u64 a, u64 b}. */
    public static final int ENTRY_SIZE = 24;
    /** {u32 count, u32 flags (0)}. */
    public static final int HEADER = 8;
    public static final int MAX_ENTRIES = 64;
    /** The reply: {u32 errno, u32 key, char message[248]}. */
    public static final int REPLY_SIZE = 256;
    public static final int MESSAGE = REPLY_SIZE - 8;

    /** One (key, value) entry as it travels. */
    public record Entry(int key, int arg, long a, long b) {
        public static Entry of(int key, long a) {
            return new Entry(key, 0, a, 0);
        }
    }

    /** The QEMU property name of a key, for sentences. */
    public static String name(int key) {
        return switch (key) {
            case VIRTIO_BOOT_BYPASS -> "boot-bypass";
            case VIRTIO_GRANULE -> "granule";
            case VIRTIO_AW_BITS -> "aw-bits";
            case VIRTIO_RESERVED_REGIONS, VIRTIO_RESERVED_REGION -> "reserved-regions";
            case VIRTIO_UNALIGNED_MAPS -> "unaligned-maps";
            case SMMU_STAGE -> "stage";
            case SMMU_PCI_BUS -> "primary-bus";
            default -> "property " + key;
        };
    }

    /** The key of a QEMU property name (0 for null or an unknown name). */
    public static int key(String name) {
        if (name == null) {
            return 0;
        }
        for (int k : new int[] {VIRTIO_BOOT_BYPASS, VIRTIO_GRANULE, VIRTIO_AW_BITS, VIRTIO_RESERVED_REGIONS,
                VIRTIO_UNALIGNED_MAPS, SMMU_STAGE, SMMU_PCI_BUS}) {
            if (name(k).equals(name)) {
                return k;
            }
        }
        return 0;
    }

    public static byte[] encode(List<Entry> entries) {
        ByteBuffer b = Payloads.alloc(HEADER + ENTRY_SIZE * entries.size()).putInt(entries.size()).putInt(0);
        for (Entry e : entries) {
            b.putInt(e.key).putInt(e.arg).putLong(e.a).putLong(e.b);
        }
        return b.array();
    }

    /** The entries of an IOMMU_SET_PROPERTIES payload; a count that disagrees with the size is fatal. */
    public static List<Entry> decode(byte[] p) throws ProtocolException {
        ByteBuffer b = Payloads.le(p);
        long count = Integer.toUnsignedLong(b.getInt());
        int flags = b.getInt();
        if (count > MAX_ENTRIES || p.length != HEADER + ENTRY_SIZE * count) {
            throw ProtocolException.fatal(ProtocolException.EINVAL, "IOMMU_SET_PROPERTIES: " + count + " entries in a payload of "
                    + p.length + " bytes (8 + 24 per entry, at most " + MAX_ENTRIES + ")");
        }
        if (flags != 0) {
            throw ProtocolException.fatal(ProtocolException.EINVAL, String.format("IOMMU_SET_PROPERTIES: flags 0x%x (none is defined)", flags));
        }
        List<Entry> out = new ArrayList<>((int) count);
        for (int i = 0; i < count; i++) {
            out.add(new Entry(b.getInt(), b.getInt(), b.getLong(), b.getLong()));
        }
        return out;
    }

    private static PropertyRefusedException bad(int key, String sentence) {
        return new PropertyRefusedException(ProtocolException.EINVAL, name(key), sentence);
    }

    /**
     * The typed properties of the entries, each checked against the VMM's own range for it (QEMU
     * refuses the same values at realize: aw-bits outside [32, 64], an unknown granule or stage).
     * An unknown key, a key given twice or a value outside its range is refused (EINVAL).
     */
    public static VmmProperties properties(List<Entry> entries) {
        Boolean bypass = null;
        Long granule = null;
        Integer aw = null;
        List<VmmProperties.ReservedRegion> resv = null;
        Boolean unaligned = null;
        VmmProperties.SmmuStage stage = null;
        VmmProperties.PciBus bus = null;
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < entries.size(); i++) {
            Entry e = entries.get(i);
            if (e.key != VIRTIO_RESERVED_REGION && !seen.add(e.key)) {
                throw bad(e.key, name(e.key) + " is given twice");
            }
            switch (e.key) {
                case VIRTIO_BOOT_BYPASS -> {
                    if (e.a != 0 && e.a != 1) {
                        throw bad(e.key, "virtio-iommu boot-bypass=" + e.a + " is neither on (1) nor off (0)");
                    }
                    bypass = e.a == 1;
                }
                case VIRTIO_GRANULE -> {
                    if (Long.bitCount(e.a) != 1 || e.a < 0x1000 || e.a > 0x1_0000) {
                        throw bad(e.key, String.format("virtio-iommu granule of 0x%x bytes is not one of QEMU's (4k, 8k, 16k, 64k, "
                                + "or the host page size)", e.a));
                    }
                    granule = e.a;
                }
                case VIRTIO_AW_BITS -> {
                    if (e.a < 32 || e.a > 64) {
                        throw bad(e.key, "virtio-iommu aw-bits=" + e.a + " is outside [32, 64]");
                    }
                    aw = (int) e.a;
                }
                case VIRTIO_RESERVED_REGIONS -> {
                    long n = Integer.toUnsignedLong(e.arg);
                    if (n > entries.size() - i - 1) {
                        throw bad(e.key, "reserved-regions announces " + n + " regions but " + (entries.size() - i - 1) + " entries follow");
                    }
                    resv = new ArrayList<>();
                    for (int j = 1; j <= n; j++) {
                        Entry r = entries.get(i + j);
                        if (r.key != VIRTIO_RESERVED_REGION) {
                            throw bad(VIRTIO_RESERVED_REGIONS, "reserved-regions announces " + n + " regions but entry " + (i + j)
                                    + " is " + name(r.key));
                        }
                        // virtio spec "Property RESV_MEM": subtypes 0 (RESERVED) and 1 (MSI).
                        if (r.arg != 0 && r.arg != 1) {
                            throw bad(VIRTIO_RESERVED_REGIONS, String.format("reserved region [0x%x, 0x%x] has type %d (0 reserved, 1 MSI)",
                                    r.a, r.b, r.arg));
                        }
                        if (Long.compareUnsigned(r.a, r.b) > 0) {
                            throw bad(VIRTIO_RESERVED_REGIONS, String.format("reserved region [0x%x, 0x%x] ends before it starts", r.a, r.b));
                        }
                        resv.add(new VmmProperties.ReservedRegion(r.a, r.b, r.arg));
                    }
                    i += (int) n;
                }
                case VIRTIO_UNALIGNED_MAPS -> {
                    if (e.a != 0 && e.a != 1) {
                        throw bad(e.key, "virtio-iommu unaligned-maps=" + e.a + " is neither on (1) nor off (0)");
                    }
                    unaligned = e.a == 1;
                }
                case VIRTIO_RESERVED_REGION -> throw bad(e.key, "a reserved region outside a reserved-regions list");
                case SMMU_STAGE -> {
                    if (e.a < 1 || e.a > 3) {
                        throw bad(e.key, "arm-smmuv3 stage value " + e.a + " is not 1 (\"1\"), 2 (\"2\") or 3 (\"nested\")");
                    }
                    stage = VmmProperties.SmmuStage.values()[(int) e.a - 1];
                }
                case SMMU_PCI_BUS -> {
                    if (e.a < 0 || e.a > 255 || e.b < e.a || e.b > 255) {
                        throw bad(e.key, "arm-smmuv3 PCI buses " + e.a + ".." + e.b + " are not bus numbers (0..255, primary first)");
                    }
                    bus = new VmmProperties.PciBus((int) e.a, (int) e.b);
                }
                default -> throw bad(e.key, "the daemon does not know property key " + e.key
                        + " (protocol version " + Protocol.VERSION + "); update the daemon or drop the property");
            }
        }
        return new VmmProperties(bypass, granule, aw, resv, unaligned, stage, bus);
    }

    /** The reply of IOMMU_SET_PROPERTIES: errno 0 (applied) or the refusal, with its key and sentence. */
    public record Reply(int errno, int key, String message) {
        public static final Reply OK = new Reply(0, 0, "");

        public byte[] encode() {
            return Payloads.alloc(REPLY_SIZE).putInt(errno).putInt(key).put(Payloads.fixedString(message, MESSAGE)).array();
        }

        public static Reply decode(byte[] p) throws ProtocolException {
            if (p.length != REPLY_SIZE) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "IOMMU_SET_PROPERTIES reply of " + p.length + " bytes, expected " + REPLY_SIZE);
            }
            ByteBuffer b = Payloads.le(p);
            return new Reply(b.getInt(), b.getInt(), Payloads.fixedString(b, MESSAGE));
        }
    }

    // ---- IOMMU_SET_ENDPOINTS

    /** Operations: the whole set, endpoints added (hotplug), endpoints removed (unplug). */
    public static final int ENDPOINTS_SET = 0;
    public static final int ENDPOINTS_ADD = 1;
    public static final int ENDPOINTS_REMOVE = 2;
    /** IDs one message holds (the 65536-byte payload limit). */
    public static final int MAX_ENDPOINT_IDS = (65536 - 8) / 4;

    /** {u32 op, u32 count, u32 id[count]}. */
    public record Endpoints(int op, List<Integer> ids) {
        public Endpoints {
            ids = List.copyOf(ids);
        }

        public byte[] encode() {
            ByteBuffer b = Payloads.alloc(8 + 4 * ids.size()).putInt(op).putInt(ids.size());
            ids.forEach(b::putInt);
            return b.array();
        }

        /** A count that disagrees with the size is fatal; the op is checked by the handler. */
        public static Endpoints decode(byte[] p) throws ProtocolException {
            ByteBuffer b = Payloads.le(p);
            int op = b.getInt();
            long count = Integer.toUnsignedLong(b.getInt());
            if (p.length != 8 + 4 * count) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "IOMMU_SET_ENDPOINTS: " + count + " IDs in a payload of "
                        + p.length + " bytes (8 + 4 per ID)");
            }
            List<Integer> ids = new ArrayList<>((int) count);
            for (int i = 0; i < count; i++) {
                ids.add(b.getInt());
            }
            return new Endpoints(op, ids);
        }
    }
}
