package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.device.PropertyRefusedException;
import dev.iommuemu.bridge.device.VmmProperties;
import dev.iommuemu.bridge.protocol.PropertyPayloads;
import dev.iommuemu.bridge.protocol.PropertyPayloads.Entry;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/** IOMMU_SET_PROPERTIES and IOMMU_SET_ENDPOINTS (docs/protocol.md §4.7) byte for byte, and the property checks. */
class PropertyPayloadsTest {
    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }

    @Test
    void numbersAndFraming() throws Exception {
        assertEquals(Request.IOMMU_SET_PROPERTIES, Request.of(1036));
        assertEquals(Request.IOMMU_SET_ENDPOINTS, Request.of(1037));
        assertTrue(Request.IOMMU_SET_PROPERTIES.hasReply());
        assertTrue(!Request.IOMMU_SET_ENDPOINTS.hasReply());
        assertEquals(8 + 24 * 64, Request.IOMMU_SET_PROPERTIES.maxPayload());
        assertEquals(65536, Request.IOMMU_SET_ENDPOINTS.maxPayload());
        // version 8: IOMMU_MSI_ABORTED, posted, {u64 address, u32 data, u32 source}
        assertEquals(Request.IOMMU_MSI_ABORTED, Request.of(1038));
        assertTrue(!Request.IOMMU_MSI_ABORTED.hasReply());
        assertEquals(16, Request.IOMMU_MSI_ABORTED.minPayload());
        assertEquals(16, Request.IOMMU_MSI_ABORTED.maxPayload());
        // version 9: IOMMU_SET_SHARED_CACHE {u32 sets, u32 ways, u32 flags, u32 reserved} and a memfd
        assertEquals(Request.IOMMU_SET_SHARED_CACHE, Request.of(1039));
        assertEquals(16, Request.IOMMU_SET_SHARED_CACHE.minPayload());
        assertEquals(16, Request.IOMMU_SET_SHARED_CACHE.maxPayload());
        assertTrue(!Request.IOMMU_SET_SHARED_CACHE.isNesting());
        // version 9: the device state (§4.9)
        assertEquals(Request.IOMMU_SAVE_STATE, Request.of(1057));
        assertEquals(Request.IOMMU_LOAD_STATE, Request.of(1058));
        assertEquals(256, dev.iommuemu.bridge.protocol.StatePayloads.REPLY_SIZE);
        // version 10: the restart journal (§4.10), {u64 size, u32 flags, u32 reserved} and a memfd
        assertEquals(Request.IOMMU_SET_STATE_JOURNAL, Request.of(1059));
        assertEquals(16, Request.IOMMU_SET_STATE_JOURNAL.minPayload());
        assertTrue(!Request.IOMMU_SET_STATE_JOURNAL.hasReply());
        assertEquals("0000030000000000" + "00000000" + "00000000",
                hex(new dev.iommuemu.bridge.protocol.StatePayloads.Journal(0x30000, 0).encode()));
        // version 11: the dirty log (§4.11), vhost-user's struct vhost_user_log {u64 mmap_size, u64 mmap_offset}
        assertEquals(Request.IOMMU_SET_DIRTY_LOG, Request.of(1060));
        assertEquals(16, Request.IOMMU_SET_DIRTY_LOG.minPayload());
        assertEquals(16, Request.IOMMU_SET_DIRTY_LOG.maxPayload());
        assertEquals(Request.Fds.ZERO_OR_ONE, Request.IOMMU_SET_DIRTY_LOG.fds());
        assertTrue(!Request.IOMMU_SET_DIRTY_LOG.hasReply());
        assertEquals("0000200000000000" + "0010000000000000",
                hex(new dev.iommuemu.bridge.protocol.StatePayloads.DirtyLog(0x20_0000, 0x1000).encode()));
        assertEquals(Request.IOMMU_SYNC_DIRTY_LOG, Request.of(1061));
        assertEquals(0, Request.IOMMU_SYNC_DIRTY_LOG.maxPayload());
        assertEquals(Request.Fds.NONE, Request.IOMMU_SYNC_DIRTY_LOG.fds());
        assertTrue(!Request.IOMMU_SYNC_DIRTY_LOG.hasReply());
        assertEquals(null, Request.of(1062), "1062 stays unassigned");
    }

    @Test
    void propertiesLayout() throws Exception {
        List<Entry> es = List.of(Entry.of(PropertyPayloads.VIRTIO_BOOT_BYPASS, 1),
                new Entry(PropertyPayloads.VIRTIO_RESERVED_REGIONS, 1, 0, 0),
                new Entry(PropertyPayloads.VIRTIO_RESERVED_REGION, 1, 0xfee0_0000L, 0xfeef_ffffL));
        byte[] p = PropertyPayloads.encode(es);
        assertEquals("03000000" + "00000000"
                + "01000000" + "00000000" + "0100000000000000" + "0000000000000000"
                + "04000000" + "01000000" + "0000000000000000" + "0000000000000000"
                + "05000000" + "01000000" + "0000e0fe00000000" + "ffffeffe00000000", hex(p));
        assertEquals(es, PropertyPayloads.decode(p));
        VmmProperties v = PropertyPayloads.properties(es);
        assertEquals(new VmmProperties(true, null, null, List.of(new VmmProperties.ReservedRegion(0xfee0_0000L, 0xfeef_ffffL, 1)), null, null, null), v);
        // a count that disagrees with the size, or a flag: fatal (the peer speaks another protocol)
        byte[] lying = p.clone();
        lying[0] = 4;
        assertTrue(assertThrows(ProtocolException.class, () -> PropertyPayloads.decode(lying)).isFatal());
        byte[] flagged = p.clone();
        flagged[4] = 1;
        assertTrue(assertThrows(ProtocolException.class, () -> PropertyPayloads.decode(flagged)).isFatal());
    }

    @Test
    void replyLayout() throws Exception {
        PropertyPayloads.Reply r = new PropertyPayloads.Reply(95, 16, "no");
        byte[] b = r.encode();
        assertEquals(256, b.length);
        assertEquals("5f000000" + "10000000" + "6e6f00", hex(b).substring(0, 22));
        assertEquals(r, PropertyPayloads.Reply.decode(b));
        String longer = "x".repeat(300);
        assertEquals(247, PropertyPayloads.Reply.decode(new PropertyPayloads.Reply(22, 0, longer).encode()).message().length(),
                "the sentence is cut to 247 bytes and NUL-terminated");
    }

    @Test
    void endpointsLayout() throws Exception {
        PropertyPayloads.Endpoints e = new PropertyPayloads.Endpoints(PropertyPayloads.ENDPOINTS_ADD, List.of(8, 0x0110));
        assertEquals("01000000" + "02000000" + "08000000" + "10010000", hex(e.encode()));
        assertEquals(e, PropertyPayloads.Endpoints.decode(e.encode()));
        byte[] lying = e.encode();
        lying[4] = 3;
        assertTrue(assertThrows(ProtocolException.class, () -> PropertyPayloads.Endpoints.decode(lying)).isFatal());
        Request.IOMMU_SET_ENDPOINTS.validate(new VhostUserMessage(1037, 1, e.encode(), new int[0]));
    }

    /** Each value outside QEMU's own range for it, refused with EINVAL, the key and a sentence. */
    @Test
    void valuesQemuWouldRefuseAreRefused() {
        Object[][] bad = {
            {Entry.of(PropertyPayloads.VIRTIO_BOOT_BYPASS, 2), "boot-bypass"},
            {Entry.of(PropertyPayloads.VIRTIO_GRANULE, 0x3000), "granule"},
            {Entry.of(PropertyPayloads.VIRTIO_GRANULE, 0x800), "granule"},
            {Entry.of(PropertyPayloads.VIRTIO_GRANULE, 0x20_0000), "granule"},
            {Entry.of(PropertyPayloads.VIRTIO_AW_BITS, 31), "aw-bits"},
            {Entry.of(PropertyPayloads.VIRTIO_AW_BITS, 65), "aw-bits"},
            {Entry.of(PropertyPayloads.VIRTIO_UNALIGNED_MAPS, 2), "unaligned-maps"},
            {Entry.of(PropertyPayloads.SMMU_STAGE, 0), "stage"},
            {Entry.of(PropertyPayloads.SMMU_STAGE, 4), "stage"},
            {new Entry(PropertyPayloads.SMMU_PCI_BUS, 0, 3, 2), "primary-bus"},
            {Entry.of(99, 1), "property 99"},
            {new Entry(PropertyPayloads.VIRTIO_RESERVED_REGION, 0, 0, 1), "reserved-regions"},
        };
        for (Object[] c : bad) {
            PropertyRefusedException e = assertThrows(PropertyRefusedException.class, () -> PropertyPayloads.properties(List.of((Entry) c[0])),
                    c[0]::toString);
            assertEquals(ProtocolException.EINVAL, e.errno());
            assertEquals(c[1], e.property() == null ? null : e.property());
        }
        PropertyRefusedException twice = assertThrows(PropertyRefusedException.class, () -> PropertyPayloads.properties(List.of(
                Entry.of(PropertyPayloads.VIRTIO_AW_BITS, 48), Entry.of(PropertyPayloads.VIRTIO_AW_BITS, 40))));
        assertEquals("aw-bits is given twice", twice.getMessage());
        PropertyRefusedException shortList = assertThrows(PropertyRefusedException.class, () -> PropertyPayloads.properties(List.of(
                new Entry(PropertyPayloads.VIRTIO_RESERVED_REGIONS, 2, 0, 0), new Entry(PropertyPayloads.VIRTIO_RESERVED_REGION, 0, 0, 0xfff))));
        assertEquals("reserved-regions announces 2 regions but 1 entries follow", shortList.getMessage());
        PropertyRefusedException backwards = assertThrows(PropertyRefusedException.class, () -> PropertyPayloads.properties(List.of(
                new Entry(PropertyPayloads.VIRTIO_RESERVED_REGIONS, 1, 0, 0), new Entry(PropertyPayloads.VIRTIO_RESERVED_REGION, 0, 0x2000, 0x1000))));
        assertEquals("reserved region [0x2000, 0x1000] ends before it starts", backwards.getMessage());
        assertEquals(new VmmProperties(null, null, null, null, null, VmmProperties.SmmuStage.NESTED, new VmmProperties.PciBus(0, 3)),
                PropertyPayloads.properties(List.of(Entry.of(PropertyPayloads.SMMU_STAGE, 3), new Entry(PropertyPayloads.SMMU_PCI_BUS, 0, 0, 3))));
    }
}
