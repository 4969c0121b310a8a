package dev.iommuemu.bridge.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.iommufd.FaultQueue;
import dev.iommuemu.iommufd.Iommufd;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import dev.iommuemu.proto.devstate.v1.IommufdObject;
import dev.iommuemu.proto.devstate.v1.NestingState;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * nesting_state.proto: every kind of iommufd object, queued vEVENTs with a LOST_EVENTS header, a
 * fault queue with unread faults, owed responses (a stall and a PRI group) and an open PRI group,
 * and nest parent regions survive encode, bytes, decode unchanged and re-encode byte for byte.
 */
class NestingStateCodecTest {

    static Iommufd.State everyKind() {
        return new Iommufd.State(List.of(
                new Iommufd.DeviceObject(1, 5, 8),
                new Iommufd.DeviceObject(2, 6, 0),
                new Iommufd.PagingHwptObject(3, true, List.of(new HostPageTable.Run(0, 0x2_0000_0000L, 0x80_0000L, 3),
                        new HostPageTable.Run(0x100_0000L, 0x3_0000_0000L, 0x1000, 1))),
                new Iommufd.ViommuObject(4, 3),
                new Iommufd.VdeviceObject(5, 4, 1, 0xffff_ffffL),
                new Iommufd.VeventqObject(6, 4, 2, List.of(new Vevent(0, 7, new long[] {0x10, 0x42L << 32, 0x4000_0000L, 0}),
                        new Vevent(0, 8, new long[] {0x10, 0, 0, 0}), new Vevent(Vevent.LOST_EVENTS, 9, null)), 11),
                new Iommufd.FaultQueueObject(7, new FaultQueue.State(
                        List.of(new PageFault(PageFault.LAST_PAGE | PageFault.PASID_VALID, 1, 3, 0x11, PageFault.PERM_WRITE, 0x4000_0000L,
                                0, 4)),
                        List.of(new FaultQueue.Pending(2, 5, 17, -1, -1), new FaultQueue.Pending(4, 5, -1, 3, 0x11)),
                        List.of(new FaultQueue.OpenGroup(new FaultQueue.Group(5, -1, 0x12), 5)), 6)),
                new Iommufd.NestedHwptObject(8, 4, new long[] {0x1_0000_0000_0a01L, 1L << 31}, 7)), 9);
    }

    @Test
    void everyObjectKindRoundTripsByteForByte() throws Exception {
        Map<Long, Long> regions = new LinkedHashMap<>();
        regions.put(0x4000_0000L, 0x1000L); // not ascending: a sorted or hashed map would reorder them
        regions.put(0L, 0x80_0000L);
        byte[] bytes = NestingStateCodec.encode(everyKind(), regions).toByteArray();
        NestingStateCodec.Decoded d = NestingStateCodec.decode(NestingState.parseFrom(bytes));
        assertEquals(everyKind(), d.iommufd());
        assertEquals(regions, d.nestParentRegions());
        assertEquals(List.copyOf(regions.keySet()), List.copyOf(d.nestParentRegions().keySet()), "region order kept");
        assertArrayEquals(bytes, NestingStateCodec.encode(d.iommufd(), d.nestParentRegions()).toByteArray());
    }

    @Test
    void whatTheRecordsCannotSayIsRefused() throws Exception {
        NestingState m = NestingStateCodec.encode(everyKind(), Map.of());
        NestingState.Builder noKind = m.toBuilder();
        noKind.getIommufdBuilder().setObjects(1, IommufdObject.newBuilder().setId(2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NestingStateCodec.decode(noKind.build()));
        assertEquals("iommufd state refused: object 2 is of no kind.", e.getMessage());
        NestingState.Builder threeWords = m.toBuilder();
        threeWords.getIommufdBuilder().getObjectsBuilder(7).getNestedHwptBuilder().addSte(0);
        e = assertThrows(IllegalArgumentException.class, () -> NestingStateCodec.decode(threeWords.build()));
        assertEquals("iommufd state refused: nested hwpt 8 has 3 STE words, and struct iommu_hwpt_arm_smmuv3 has 2.", e.getMessage());
    }
}
