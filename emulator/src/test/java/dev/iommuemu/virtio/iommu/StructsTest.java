package dev.iommuemu.virtio.iommu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.field.Field;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The declared structures against the spec's C structs, as a table of (field, byte offset, bytes). */
class StructsTest {
    record Row(Field f, int offset, int bytes) {}

    static final List<Row> SPEC = List.of(
            // struct virtio_iommu_config
            new Row(Structs.Config.PAGE_SIZE_MASK, 0, 8),
            new Row(Structs.Config.INPUT_START, 8, 8),
            new Row(Structs.Config.INPUT_END, 16, 8),
            new Row(Structs.Config.DOMAIN_START, 24, 4),
            new Row(Structs.Config.DOMAIN_END, 28, 4),
            new Row(Structs.Config.PROBE_SIZE, 32, 4),
            new Row(Structs.Config.BYPASS, 36, 1),
            new Row(Structs.Config.RESERVED, 37, 3),
            // virtio_iommu_req_head / tail
            new Row(Structs.Head.TYPE, 0, 1),
            new Row(Structs.Head.RESERVED, 1, 3),
            new Row(Structs.Tail.STATUS, 0, 1),
            // virtio_iommu_req_attach
            new Row(Structs.Attach.DOMAIN, 4, 4),
            new Row(Structs.Attach.ENDPOINT, 8, 4),
            new Row(Structs.Attach.FLAGS, 12, 4),
            new Row(Structs.Attach.RESERVED, 16, 4),
            // virtio_iommu_req_detach
            new Row(Structs.Detach.DOMAIN, 4, 4),
            new Row(Structs.Detach.ENDPOINT, 8, 4),
            new Row(Structs.Detach.RESERVED_LO, 12, 4),
            new Row(Structs.Detach.RESERVED_HI, 16, 4),
            // virtio_iommu_req_map
            new Row(Structs.Map.DOMAIN, 4, 4),
            new Row(Structs.Map.VIRT_START, 8, 8),
            new Row(Structs.Map.VIRT_END, 16, 8),
            new Row(Structs.Map.PHYS_START, 24, 8),
            new Row(Structs.Map.FLAGS, 32, 4),
            // virtio_iommu_req_unmap
            new Row(Structs.Unmap.DOMAIN, 4, 4),
            new Row(Structs.Unmap.VIRT_START, 8, 8),
            new Row(Structs.Unmap.VIRT_END, 16, 8),
            new Row(Structs.Unmap.RESERVED, 24, 4),
            // virtio_iommu_req_probe
            new Row(Structs.Probe.ENDPOINT, 4, 4),
            // virtio_iommu_probe_resv_mem
            new Row(Structs.ProbeProperty.LENGTH, 2, 2),
            new Row(Structs.ResvMem.SUBTYPE, 4, 1),
            new Row(Structs.ResvMem.RESERVED, 5, 3),
            new Row(Structs.ResvMem.START, 8, 8),
            new Row(Structs.ResvMem.END, 16, 8),
            // virtio_iommu_fault
            new Row(Structs.Fault.REASON, 0, 1),
            new Row(Structs.Fault.RESERVED, 1, 3),
            new Row(Structs.Fault.FLAGS, 4, 4),
            new Row(Structs.Fault.ENDPOINT, 8, 4),
            new Row(Structs.Fault.RESERVED1, 12, 4),
            new Row(Structs.Fault.ADDRESS, 16, 8));

    @Test
    void fieldsSitWhereTheSpecPutsThem() {
        for (Row r : SPEC) {
            assertEquals(r.offset() * 8, r.f().word() * 64 + r.f().lsb(), r.f().name());
            assertEquals(r.bytes() * 8, r.f().width(), r.f().name());
        }
        // type is the low 12 bits of the first le16, reserved the top 4.
        assertEquals(12, Structs.ProbeProperty.TYPE.width());
        assertEquals(12, Structs.ProbeProperty.RESERVED.lsb());
        // Sizes: config 40, requests' device-readable parts, fault record 24.
        assertEquals(40, Structs.Config.SIZE);
        assertEquals(20, Structs.Attach.READABLE);
        assertEquals(20, Structs.Detach.READABLE);
        assertEquals(36, Structs.Map.READABLE);
        assertEquals(28, Structs.Unmap.READABLE);
        assertEquals(72, Structs.Probe.READABLE);
        assertEquals(24, Structs.Fault.SIZE);
    }

    @Test
    void faultRecordEncodesAndDecodes() {
        FaultEvent e = FaultEvent.of(Structs.Fault.R_MAPPING, 0x1234, 0xdead_beef_0000L, DmaAccess.PRIV_WRITE);
        byte[] b = e.encode();
        assertArrayEquals(new byte[] {2, 0, 0, 0, 2, 1, 0, 0, 0x34, 0x12, 0, 0, 0, 0, 0, 0,
            0, 0, (byte) 0xef, (byte) 0xbe, (byte) 0xad, (byte) 0xde, 0, 0}, b);
        assertEquals(e, FaultEvent.decode(b));
        assertEquals(0x105, FaultEvent.of(1, 0, 0, DmaAccess.EXEC).flags());
    }

    /** IotlbEntry blocks: (iova, mapping first, last, target) -> (block iova, block output, mask). */
    @Test
    void blocksAreTheLargestAlignedPowerOfTwoInsideTheMapping() {
        long[][] vectors = {
            {0x3abc, 0x1000, 0x4fff, 0x20_1000, 0x2000, 0x20_2000, 0x1fff},
            {0x1000, 0x1000, 0x4fff, 0x20_1000, 0x1000, 0x20_1000, 0xfff},
            {0x4fff, 0x1000, 0x4fff, 0x20_1000, 0x4000, 0x20_4000, 0xfff},
            {0x12_3456, 0, 0x3fff_ffff, 0x8000_0000L, 0, 0x8000_0000L, 0x3fff_ffff},
            // output only 4K-aligned relative to input: blocks stay 4K.
            {0x20_5000, 0x20_0000, 0x3f_ffff, 0x1000, 0x20_5000, 0x6000, 0xfff},
            // the whole 64-bit space, identity.
            {0x1234, 0, -1L, 0, 0, 0, -1L},
            // top of the space.
            {-2L, 0xffff_ffff_ffff_f000L, -1L, 0x5000, 0xffff_ffff_ffff_f000L, 0x5000, 0xfff},
        };
        for (long[] v : vectors) {
            IotlbEntry e = DomainTable.block(v[0], v[1], v[2], v[3], 1);
            assertEquals(new IotlbEntry(v[4], v[5], v[6], 1), e, "iova 0x" + Long.toHexString(v[0]));
            assertEquals(v[3] + (v[0] - v[1]), e.translate(v[0]));
        }
    }
}
