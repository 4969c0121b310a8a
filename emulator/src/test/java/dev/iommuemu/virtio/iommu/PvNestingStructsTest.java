package dev.iommuemu.virtio.iommu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.domain.Errno;
import dev.iommuemu.field.Field;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The paravirtual nesting structures (docs/nesting.md §6) as a table of (field, byte offset, bytes),
 * the 32-byte fault record byte for byte, and the errno-to-status table.
 */
class PvNestingStructsTest {
    record Row(Field f, int offset, int bytes) {}

    static final List<Row> LAYOUT = List.of(
            // PROBE property SMMUV3_NESTING: head, then struct iommu_hw_info_arm_smmuv3
            new Row(Structs.NestingProperty.FLAGS, 4, 4),
            new Row(Structs.NestingProperty.RESERVED, 8, 4),
            new Row(Structs.NestingProperty.IDR[0], 12, 4),
            new Row(Structs.NestingProperty.IDR[5], 32, 4),
            new Row(Structs.NestingProperty.IIDR, 36, 4),
            new Row(Structs.NestingProperty.AIDR, 40, 4),
            // ATTACH_TABLE
            new Row(Structs.AttachTable.DOMAIN, 4, 4),
            new Row(Structs.AttachTable.ENDPOINT, 8, 4),
            new Row(Structs.AttachTable.FORMAT, 12, 2),
            new Row(Structs.AttachTable.RESERVED, 14, 2),
            new Row(Structs.AttachTable.FLAGS, 16, 4),
            new Row(Structs.AttachTable.RESERVED1, 20, 4),
            new Row(Structs.AttachTable.STE0, 24, 8),
            new Row(Structs.AttachTable.STE1, 32, 8),
            // INVALIDATE
            new Row(Structs.Invalidate.DOMAIN, 4, 4),
            new Row(Structs.Invalidate.COUNT, 8, 4),
            new Row(Structs.Invalidate.RESERVED, 12, 4),
            new Row(Structs.Invalidate.HANDLED, 0, 4),
            // PAGE_RESP
            new Row(Structs.PageResp.ENDPOINT, 4, 4),
            new Row(Structs.PageResp.FLAGS, 8, 4),
            new Row(Structs.PageResp.PASID, 12, 4),
            new Row(Structs.PageResp.GRPID, 16, 4),
            new Row(Structs.PageResp.CODE, 20, 4),
            new Row(Structs.PageResp.RESERVED, 24, 4),
            // the 32-byte fault record
            new Row(Structs.Fault.PASID, 24, 4),
            new Row(Structs.Fault.GRPID, 28, 4));

    @Test
    void fieldsSitWhereTheDesignPutsThem() {
        for (Row r : LAYOUT) {
            assertEquals(r.offset() * 8, r.f().word() * 64 + r.f().lsb(), r.f().name());
            assertEquals(r.bytes() * 8, r.f().width(), r.f().name());
        }
        assertEquals(44, Structs.NestingProperty.SIZE);
        assertEquals(40, Structs.AttachTable.READABLE);
        assertEquals(16, Structs.Invalidate.HEADER);
        assertEquals(28, Structs.PageResp.READABLE);
        assertEquals(32, Structs.Fault.EXT_SIZE);
        assertEquals(7, VirtioIommuFeatures.NESTING_SMMUV3);
    }

    @Test
    void theExtendedFaultRecordByteForByte() {
        FaultEvent e = new FaultEvent(Structs.Fault.R_MAPPING, Structs.Fault.F_WRITE | Structs.Fault.F_ADDRESS
                | Structs.Fault.F_PASID_VALID | Structs.Fault.F_RECOVERABLE, 0x10, 0x4000_1000L, 3, 0x1234);
        byte[] want = {2, 0, 0, 0, 0x02, 0x07, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0,
            0, 0x10, 0, 0x40, 0, 0, 0, 0, 3, 0, 0, 0, 0x34, 0x12, 0, 0};
        assertArrayEquals(want, e.encode(32));
        assertEquals(e, FaultEvent.decode(want));
        byte[] short24 = e.encode();
        assertEquals(24, short24.length, "without the feature: the spec's 24 bytes, no PASID");
        assertEquals(new FaultEvent(e.reason(), e.flags(), e.endpoint(), e.address()), FaultEvent.decode(short24));
    }

    @Test
    void hostErrnosBecomeStatuses() {
        assertEquals(Status.INVAL, DomainTable.status(Errno.EIO));
        assertEquals(Status.INVAL, DomainTable.status(Errno.EINVAL));
        assertEquals(Status.UNSUPP, DomainTable.status(Errno.EOPNOTSUPP));
        assertEquals(Status.NOMEM, DomainTable.status(Errno.ENOMEM));
        assertEquals(Status.NOMEM, DomainTable.status(Errno.ENOSPC));
        assertEquals(Status.NOENT, DomainTable.status(Errno.ENOENT));
        assertEquals(Status.DEVERR, DomainTable.status(Errno.EBUSY));
        assertEquals(Status.DEVERR, DomainTable.status(Errno.EPERM));
    }
}
