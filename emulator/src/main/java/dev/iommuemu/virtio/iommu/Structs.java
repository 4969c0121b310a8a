package dev.iommuemu.virtio.iommu;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Layout;

/**
 * The virtio-iommu structures in guest memory and config space, declared once as fields (virtio
 * spec, IOMMU device). Bit positions count from the first byte of each structure, little-endian,
 * in 64-bit words, so a {@code le32} at byte 4 is bits [63:32].
 */
public final class Structs {
    private Structs() {}

    /** Request types, {@code virtio_iommu_req_head.type} ("Device operations"). */
    public static final int T_ATTACH = 1;
    public static final int T_DETACH = 2;
    public static final int T_MAP = 3;
    public static final int T_UNMAP = 4;
    public static final int T_PROBE = 5;
    /**
     * Paravirtual nesting requests (docs/nesting.md §6; experimental, behind
     * {@link VirtioIommuFeatures#NESTING_SMMUV3}): ATTACH_TABLE, INVALIDATE, PAGE_RESP.
     */
    public static final int T_ATTACH_TABLE = 6;
    public static final int T_INVALIDATE = 7;
    public static final int T_PAGE_RESP = 8;

    /** struct virtio_iommu_req_head { u8 type; u8 reserved[3]; }. */
    public static final class Head {
        public static final int SIZE = 4;
        public static final Field TYPE = Field.bits("type", 7, 0);
        public static final Field RESERVED = Field.bits("reserved", 31, 8);

        private Head() {}
    }

    /** struct virtio_iommu_req_tail { u8 status; u8 reserved[3]; }. */
    public static final class Tail {
        public static final int SIZE = 4;
        public static final Field STATUS = Field.bits("status", 7, 0);
        public static final Field RESERVED = Field.bits("reserved", 31, 8);

        private Tail() {}
    }

    /** struct virtio_iommu_req_attach: head, le32 domain, le32 endpoint, le32 flags, u8 reserved[4]. */
    public static final class Attach {
        public static final int READABLE = 20;
        public static final Field DOMAIN = Field.bits("domain", 63, 32);
        public static final Field ENDPOINT = Field.bits("endpoint", 95, 64);
        public static final Field FLAGS = Field.bits("flags", 127, 96);
        public static final Field RESERVED = Field.bits("reserved", 159, 128);
        public static final Layout LAYOUT = new Layout("virtio_iommu_req_attach", 3, Head.TYPE, Head.RESERVED, DOMAIN, ENDPOINT, FLAGS, RESERVED);
        /** VIRTIO_IOMMU_ATTACH_F_BYPASS. */
        public static final int F_BYPASS = 1;

        private Attach() {}
    }

    /** struct virtio_iommu_req_detach: head, le32 domain, le32 endpoint, u8 reserved[8]. */
    public static final class Detach {
        public static final int READABLE = 20;
        public static final Field DOMAIN = Field.bits("domain", 63, 32);
        public static final Field ENDPOINT = Field.bits("endpoint", 95, 64);
        public static final Field RESERVED_LO = Field.bits("reserved[0:3]", 127, 96);
        public static final Field RESERVED_HI = Field.bits("reserved[4:7]", 159, 128);
        public static final Layout LAYOUT = new Layout("virtio_iommu_req_detach", 3, Head.TYPE, Head.RESERVED, DOMAIN, ENDPOINT, RESERVED_LO, RESERVED_HI);

        private Detach() {}
    }

    /** struct virtio_iommu_req_map: head, le32 domain, le64 virt_start, virt_end, phys_start, le32 flags. */
    public static final class Map {
        public static final int READABLE = 36;
        public static final Field DOMAIN = Field.bits("domain", 63, 32);
        public static final Field VIRT_START = Field.bits("virt_start", 127, 64);
        public static final Field VIRT_END = Field.bits("virt_end", 191, 128);
        public static final Field PHYS_START = Field.bits("phys_start", 255, 192);
        public static final Field FLAGS = Field.bits("flags", 287, 256);
        public static final Layout LAYOUT = new Layout("virtio_iommu_req_map", 5, Head.TYPE, Head.RESERVED, DOMAIN, VIRT_START, VIRT_END, PHYS_START, FLAGS);
        /** VIRTIO_IOMMU_MAP_F_READ, _WRITE, _MMIO. */
        public static final int F_READ = 1;
        public static final int F_WRITE = 2;
        public static final int F_MMIO = 4;

        private Map() {}
    }

    /** struct virtio_iommu_req_unmap: head, le32 domain, le64 virt_start, virt_end, u8 reserved[4]. */
    public static final class Unmap {
        public static final int READABLE = 28;
        public static final Field DOMAIN = Field.bits("domain", 63, 32);
        public static final Field VIRT_START = Field.bits("virt_start", 127, 64);
        public static final Field VIRT_END = Field.bits("virt_end", 191, 128);
        public static final Field RESERVED = Field.bits("reserved", 223, 192);
        public static final Layout LAYOUT = new Layout("virtio_iommu_req_unmap", 4, Head.TYPE, Head.RESERVED, DOMAIN, VIRT_START, VIRT_END, RESERVED);

        private Unmap() {}
    }

    /** struct virtio_iommu_req_probe: head, le32 endpoint, u8 reserved[64]; then properties[probe_size], tail. */
    public static final class Probe {
        public static final int READABLE = 72;
        public static final Field ENDPOINT = Field.bits("endpoint", 63, 32);
        public static final Layout LAYOUT = new Layout("virtio_iommu_req_probe", 9, Head.TYPE, Head.RESERVED, ENDPOINT);

        private Probe() {}
    }

    /** struct virtio_iommu_probe_property { le16 type:12, reserved:4; le16 length; } ("PROBE request"). */
    public static final class ProbeProperty {
        public static final int HEADER_SIZE = 4;
        public static final Field TYPE = Field.bits("type", 11, 0);
        public static final Field RESERVED = Field.bits("reserved", 15, 12);
        public static final Field LENGTH = Field.bits("length", 31, 16);
        /** VIRTIO_IOMMU_PROBE_T_RESV_MEM. */
        public static final int T_RESV_MEM = 1;

        private ProbeProperty() {}
    }

    /** struct virtio_iommu_probe_resv_mem: property head, u8 subtype, u8 reserved[3], le64 start, le64 end. */
    public static final class ResvMem {
        public static final int SIZE = 24;
        public static final Field SUBTYPE = Field.bits("subtype", 39, 32);
        public static final Field RESERVED = Field.bits("reserved", 63, 40);
        public static final Field START = Field.bits("start", 127, 64);
        public static final Field END = Field.bits("end", 191, 128);
        public static final Layout LAYOUT = new Layout("virtio_iommu_probe_resv_mem", 3,
                ProbeProperty.TYPE, ProbeProperty.RESERVED, ProbeProperty.LENGTH, SUBTYPE, RESERVED, START, END);
        /** VIRTIO_IOMMU_RESV_MEM_T_RESERVED and _MSI. */
        public static final int T_RESERVED = 0;
        public static final int T_MSI = 1;

        private ResvMem() {}
    }

    /** struct virtio_iommu_fault ("Fault reporting"): 24 bytes. */
    public static final class Fault {
        public static final int SIZE = 24;
        public static final Field REASON = Field.bits("reason", 7, 0);
        public static final Field RESERVED = Field.bits("reserved", 31, 8);
        public static final Field FLAGS = Field.bits("flags", 63, 32);
        public static final Field ENDPOINT = Field.bits("endpoint", 95, 64);
        public static final Field RESERVED1 = Field.bits("reserved1", 127, 96);
        public static final Field ADDRESS = Field.bits("address", 191, 128);
        public static final Layout LAYOUT = new Layout("virtio_iommu_fault", 3, REASON, RESERVED, FLAGS, ENDPOINT, RESERVED1, ADDRESS);
        /** VIRTIO_IOMMU_FAULT_R_UNKNOWN, _DOMAIN, _MAPPING. */
        public static final int R_UNKNOWN = 0;
        public static final int R_DOMAIN = 1;
        public static final int R_MAPPING = 2;
        /**
         * VIRTIO_IOMMU_FAULT_F_READ, _WRITE, _ADDRESS (spec); _EXEC (1 << 2) is the value of the
         * Linux uAPI header include/uapi/linux/virtio_iommu.h.
         */
        public static final int F_READ = 1;
        public static final int F_WRITE = 1 << 1;
        public static final int F_EXEC = 1 << 2;
        public static final int F_ADDRESS = 1 << 8;
        /**
         * With NESTING_SMMUV3 negotiated (docs/nesting.md §6) the record is {@link #EXT_SIZE} bytes:
         * le32 pasid and le32 grpid follow {@code address}; F_PASID_VALID says pasid is
         * meaningful, F_RECOVERABLE that the access is held until a PAGE_RESP with this grpid.
         */
        public static final int EXT_SIZE = 32;
        public static final Field PASID = Field.bits("pasid", 223, 192);
        public static final Field GRPID = Field.bits("grpid", 255, 224);
        public static final Layout EXT_LAYOUT = new Layout("virtio_iommu_fault (nesting)", 4, REASON, RESERVED, FLAGS,
                ENDPOINT, RESERVED1, ADDRESS, PASID, GRPID);
        public static final int F_PASID_VALID = 1 << 9;
        public static final int F_RECOVERABLE = 1 << 10;

        private Fault() {}
    }

    /**
     * PROBE property SMMUV3_NESTING (docs/nesting.md §6): the property head, then struct
     * iommu_hw_info_arm_smmuv3 {le32 flags; le32 __reserved; le32 idr[6]; le32 iidr; le32 aidr}
     * (include/uapi/linux/iommufd.h): 4 + 40 bytes.
     */
    public static final class NestingProperty {
        public static final int TYPE = 0x800;
        public static final int SIZE = 44;
        public static final Field FLAGS = Field.bits("flags", 63, 32);
        public static final Field RESERVED = Field.bits("__reserved", 95, 64);
        /** idr[i] at byte 12 + 4i. */
        public static final Field[] IDR = {
            Field.bits("idr[0]", 127, 96), Field.bits("idr[1]", 159, 128), Field.bits("idr[2]", 191, 160),
            Field.bits("idr[3]", 223, 192), Field.bits("idr[4]", 255, 224), Field.bits("idr[5]", 287, 256)};
        public static final Field IIDR = Field.bits("iidr", 319, 288);
        public static final Field AIDR = Field.bits("aidr", 351, 320);
        public static final Layout LAYOUT = new Layout("virtio_iommu_probe_smmuv3_nesting", 6,
                ProbeProperty.TYPE, ProbeProperty.RESERVED, ProbeProperty.LENGTH, FLAGS, RESERVED,
                IDR[0], IDR[1], IDR[2], IDR[3], IDR[4], IDR[5], IIDR, AIDR);

        private NestingProperty() {}
    }

    /**
     * ATTACH_TABLE (docs/nesting.md §6): head, le32 domain, le32 endpoint, le16 format, le16
     * reserved, le32 flags, le32 reserved1, le64 ste[2] (struct iommu_hwpt_arm_smmuv3); 40 bytes
     * device-readable (the le64 words naturally aligned), then the tail.
     */
    public static final class AttachTable {
        public static final int READABLE = 40;
        public static final Field DOMAIN = Field.bits("domain", 63, 32);
        public static final Field ENDPOINT = Field.bits("endpoint", 95, 64);
        public static final Field FORMAT = Field.bits("format", 111, 96);
        public static final Field RESERVED = Field.bits("reserved", 127, 112);
        public static final Field FLAGS = Field.bits("flags", 159, 128);
        public static final Field RESERVED1 = Field.bits("reserved1", 191, 160);
        public static final Field STE0 = Field.bits("ste[0]", 255, 192);
        public static final Field STE1 = Field.bits("ste[1]", 319, 256);
        public static final Layout LAYOUT = new Layout("virtio_iommu_req_attach_table", 5, Head.TYPE, Head.RESERVED,
                DOMAIN, ENDPOINT, FORMAT, RESERVED, FLAGS, RESERVED1, STE0, STE1);
        /** VIRTIO_IOMMU_TABLE_FMT_SMMUV3_STE: ste[] are SMMUv3 STE words 0 and 1. */
        public static final int FMT_SMMUV3_STE = 1;

        private AttachTable() {}
    }

    /**
     * INVALIDATE (docs/nesting.md §6): head, le32 domain, le32 count, le32 reserved, then
     * {@code count} 16-byte SMMUv3 commands (le64 cmd[2], IHI 0070 §4.1); device-writable: le32
     * handled, then the tail.
     */
    public static final class Invalidate {
        public static final int HEADER = 16;
        public static final int CMD_SIZE = 16;
        /** At most this many commands in one request. */
        public static final int MAX_COMMANDS = 256;
        public static final Field DOMAIN = Field.bits("domain", 63, 32);
        public static final Field COUNT = Field.bits("count", 95, 64);
        public static final Field RESERVED = Field.bits("reserved", 127, 96);
        public static final Layout LAYOUT = new Layout("virtio_iommu_req_invalidate", 2, Head.TYPE, Head.RESERVED,
                DOMAIN, COUNT, RESERVED);
        /** The device-writable part: le32 handled, then the tail at byte 4. */
        public static final int WRITABLE = 8;
        public static final Field HANDLED = Field.bits("handled", 31, 0);

        private Invalidate() {}
    }

    /**
     * PAGE_RESP (docs/nesting.md §6; mirrors struct iommu_hwpt_page_response and the endpoint's
     * view of a PRI response): head, le32 endpoint, le32 flags, le32 pasid, le32 grpid, le32 code,
     * le32 reserved; 28 bytes device-readable, then the tail.
     */
    public static final class PageResp {
        public static final int READABLE = 28;
        public static final Field ENDPOINT = Field.bits("endpoint", 63, 32);
        public static final Field FLAGS = Field.bits("flags", 95, 64);
        public static final Field PASID = Field.bits("pasid", 127, 96);
        public static final Field GRPID = Field.bits("grpid", 159, 128);
        public static final Field CODE = Field.bits("code", 191, 160);
        public static final Field RESERVED = Field.bits("reserved", 223, 192);
        public static final Layout LAYOUT = new Layout("virtio_iommu_req_page_resp", 4, Head.TYPE, Head.RESERVED,
                ENDPOINT, FLAGS, PASID, GRPID, CODE, RESERVED);
        /** VIRTIO_IOMMU_PAGE_RESP_PASID_VALID. */
        public static final int F_PASID_VALID = 1;
        /** Response codes (enum iommufd_page_response_code, and FAILURE). */
        public static final int SUCCESS = 0;
        public static final int INVALID = 1;
        public static final int FAILURE = 2;

        private PageResp() {}
    }

    /** struct virtio_iommu_config ("Device configuration layout"): 40 bytes. */
    public static final class Config {
        public static final int SIZE = 40;
        public static final Field PAGE_SIZE_MASK = Field.bits("page_size_mask", 63, 0);
        public static final Field INPUT_START = Field.bits("input_range.start", 127, 64);
        public static final Field INPUT_END = Field.bits("input_range.end", 191, 128);
        public static final Field DOMAIN_START = Field.bits("domain_range.start", 223, 192);
        public static final Field DOMAIN_END = Field.bits("domain_range.end", 255, 224);
        public static final Field PROBE_SIZE = Field.bits("probe_size", 287, 256);
        public static final Field BYPASS = Field.bits("bypass", 295, 288);
        public static final Field RESERVED = Field.bits("reserved", 319, 296);
        public static final Layout LAYOUT = new Layout("virtio_iommu_config", 5,
                PAGE_SIZE_MASK, INPUT_START, INPUT_END, DOMAIN_START, DOMAIN_END, PROBE_SIZE, BYPASS, RESERVED);
        /** Byte offset of {@code bypass}, the one field a driver may write. */
        public static final int BYPASS_OFFSET = 36;

        private Config() {}
    }

    // ---- little-endian bytes <-> 64-bit words ----

    /** The first {@code words * 8} bytes of {@code b} (zero-padded) as little-endian words. */
    public static long[] toWords(byte[] b, int words) {
        long[] w = new long[words];
        for (int i = 0; i < Math.min(b.length, words * 8); i++) {
            w[i >>> 3] |= (b[i] & 0xffL) << ((i & 7) * 8);
        }
        return w;
    }

    /** The first {@code len} bytes of the little-endian words. */
    public static byte[] toBytes(long[] w, int len) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) (w[i >>> 3] >>> ((i & 7) * 8));
        }
        return b;
    }
}
