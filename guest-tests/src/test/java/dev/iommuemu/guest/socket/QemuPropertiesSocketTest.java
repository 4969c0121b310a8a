package dev.iommuemu.guest.socket;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.protocol.PropertyPayloads;
import dev.iommuemu.bridge.protocol.PropertyPayloads.Entry;
import dev.iommuemu.bridge.protocol.Protocol;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * QEMU's device properties reach the model (IOMMU_SET_PROPERTIES, docs/protocol.md §4.7,
 * docs/qemu-properties.md), read back the way a guest sees them: SMMU_IDR0/IDR1 over MMIO
 * (IHI 0070 §6.3.1-2), virtio-iommu config space over GET_CONFIG (virtio spec "Device
 * configuration layout"). A property the daemon cannot honour is a reply with an errno and a
 * sentence, and the device stays as it was.
 */
class QemuPropertiesSocketTest {
    static final int EINVAL = 22, EBUSY = 16, EOPNOTSUPP = 95;

    private static long idr(VmmClient vmm, int offset) throws Exception {
        return vmm.mmioRead(offset, 4);
    }

    @Test
    void smmuv3StageSelectsWhichStagesTheIdRegistersAdvertise() throws Exception {
        // (profile, stage) -> SMMU_IDR0 S1P, S2P, ASID16, VMID16, CD2L and IDR1.SSIDSIZE
        Object[][] vectors = {
            {"default", 1, 1, 0, 1, 0, 0, 0},
            {"default", 2, 0, 1, 0, 1, 0, 0},
            {"default", 3, 1, 1, 1, 1, 0, 0},
            {"max", 1, 1, 0, 1, 0, 1, 20},
            {"max", 2, 0, 1, 0, 1, 0, 0},
            {"max", 3, 1, 1, 1, 1, 1, 20},
            {"s1-only", 1, 1, 0, 1, 0, 0, 0},
            {"s2-only", 2, 0, 1, 0, 1, 0, 0},
        };
        for (Object[] v : vectors) {
            try (GuestDaemon daemon = new GuestDaemon("smmuv3", (String) v[0]); VmmClient vmm = daemon.connect()) {
                PropertyPayloads.Reply r = vmm.setProperties(List.of(Entry.of(PropertyPayloads.SMMU_STAGE, (int) v[1]),
                        new Entry(PropertyPayloads.SMMU_PCI_BUS, 0, 0, 0)));
                assertEquals(PropertyPayloads.Reply.OK, r, v[0] + " stage " + v[1]);
                long idr0 = idr(vmm, 0x0);
                long idr1 = idr(vmm, 0x4);
                String what = v[0] + " stage " + v[1];
                assertEquals((int) v[2], Smmuv3Regs.IDR0_S1P.get(idr0), what + " S1P");
                assertEquals((int) v[3], Smmuv3Regs.IDR0_S2P.get(idr0), what + " S2P");
                assertEquals((int) v[4], Smmuv3Regs.IDR0_ASID16.get(idr0), what + " ASID16");
                assertEquals((int) v[5], Smmuv3Regs.IDR0_VMID16.get(idr0), what + " VMID16");
                assertEquals((int) v[6], Smmuv3Regs.IDR0_CD2L.get(idr0), what + " CD2L");
                assertEquals((int) v[7], Smmuv3Regs.IDR1_SSIDSIZE.get(idr1), what + " SSIDSIZE");
            }
        }
    }

    @Test
    void aStageTheProfileLacksIsRefusedWithASentence() throws Exception {
        try (GuestDaemon daemon = new GuestDaemon("smmuv3", "s1-only"); VmmClient vmm = daemon.connect()) {
            PropertyPayloads.Reply r = vmm.setProperties(List.of(Entry.of(PropertyPayloads.SMMU_STAGE, 2)));
            assertEquals(EOPNOTSUPP, r.errno());
            assertEquals(PropertyPayloads.SMMU_STAGE, r.key());
            assertEquals("arm-smmuv3 stage=2 needs stage 2 translation (SMMU_IDR0.S2P), which the daemon's profile 's1-only' "
                    + "does not have; start the daemon with --profile default, max, max52, s2-only, nesting-host, or set stage= to what the profile has",
                    r.message());
            long idr0 = idr(vmm, 0x0);
            assertEquals(1, Smmuv3Regs.IDR0_S1P.get(idr0), "the device is the profile's, unchanged");
            assertEquals(0, Smmuv3Regs.IDR0_S2P.get(idr0));
            assertEquals(Protocol.VERSION, vmm.info().version(), "the connection goes on");
        }
        try (GuestDaemon daemon = new GuestDaemon("smmuv3", "s2-only"); VmmClient vmm = daemon.connect()) {
            PropertyPayloads.Reply r = vmm.setProperties(List.of(Entry.of(PropertyPayloads.SMMU_STAGE, 3)));
            assertEquals(EOPNOTSUPP, r.errno());
            assertTrue(r.message().startsWith("arm-smmuv3 stage=nested needs stage 1 and stage 2 translation (SMMU_IDR0.S1P)"), r.message());
        }
    }

    @Test
    void propertiesOfTheOtherModelAndLateOnesAreRefused() throws Exception {
        try (GuestDaemon daemon = new GuestDaemon("smmuv3", "default"); VmmClient vmm = daemon.connect()) {
            PropertyPayloads.Reply r = vmm.setProperties(List.of(Entry.of(PropertyPayloads.VIRTIO_GRANULE, 0x1000)));
            assertEquals(EINVAL, r.errno());
            assertEquals(PropertyPayloads.VIRTIO_GRANULE, r.key());
            assertEquals("virtio-iommu properties were sent for the daemon's arm-smmuv3 device; "
                    + "start the daemon with --model virtio-iommu for a virtio-iommu", r.message());
            // StreamIDs beyond SMMU_IDR1.SIDSIZE (16 bits in this profile) cannot have a device
            RequestRefusedException e = assertThrows(RequestRefusedException.class,
                    () -> vmm.setEndpoints(PropertyPayloads.ENDPOINTS_SET, List.of(8, 0x1_0000)));
            assertEquals(EINVAL, e.errno());
            vmm.setEndpoints(PropertyPayloads.ENDPOINTS_SET, List.of(8, 0xffff));
            vmm.mmioRead(0x0, 4); // the driver reads the ID registers: the device is in use
            PropertyPayloads.Reply late = vmm.setProperties(List.of(Entry.of(PropertyPayloads.SMMU_STAGE, 1)));
            assertEquals(EBUSY, late.errno());
            assertTrue(late.message().startsWith("the device's properties must be set before the driver uses the device"), late.message());
        }
    }

    @Test
    void virtioIommuPropertiesReachConfigAndProbe() throws Exception {
        try (GuestDaemon daemon = new GuestDaemon("virtio-iommu", "default"); VmmClient vmm = daemon.connect()) {
            PropertyPayloads.Reply r = vmm.setProperties(List.of(
                    Entry.of(PropertyPayloads.VIRTIO_BOOT_BYPASS, 0),
                    Entry.of(PropertyPayloads.VIRTIO_GRANULE, 0x1_0000),
                    Entry.of(PropertyPayloads.VIRTIO_AW_BITS, 48)));
            assertEquals(PropertyPayloads.Reply.OK, r);
            // struct virtio_iommu_config: page_size_mask at 0, input_range.end at 16, bypass at 36
            assertEquals(-0x1_0000L, java.nio.ByteBuffer.wrap(vmm.getConfig(0, 8)).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong());
            assertEquals((1L << 48) - 1, java.nio.ByteBuffer.wrap(vmm.getConfig(16, 8)).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong());
            assertEquals(0, vmm.getConfig(36, 1)[0]);
            // sent again, before use: the last set wins, on the profile (not on the previous set)
            assertEquals(PropertyPayloads.Reply.OK, vmm.setProperties(List.of(Entry.of(PropertyPayloads.VIRTIO_BOOT_BYPASS, 1))));
            assertEquals(0x1000L | 0x20_0000L | 0x4000_0000L,
                    java.nio.ByteBuffer.wrap(vmm.getConfig(0, 8)).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(), "the profile's mask again");
            assertEquals(1, vmm.getConfig(36, 1)[0]);
            PropertyPayloads.Reply stage = vmm.setProperties(List.of(Entry.of(PropertyPayloads.SMMU_STAGE, 1)));
            assertEquals(EINVAL, stage.errno());
            assertEquals(PropertyPayloads.SMMU_STAGE, stage.key());
            PropertyPayloads.Reply unknown = vmm.setProperties(List.of(Entry.of(42, 1)));
            assertEquals(EINVAL, unknown.errno());
            assertEquals("the daemon does not know property key 42 (protocol version " + Protocol.VERSION
                    + "); update the daemon or drop the property", unknown.message());
        }
        try (GuestDaemon daemon = new GuestDaemon("virtio-iommu", "nesting"); VmmClient vmm = daemon.connect()) {
            PropertyPayloads.Reply r = vmm.setProperties(List.of(Entry.of(PropertyPayloads.VIRTIO_GRANULE, 0x2000)));
            assertEquals(EOPNOTSUPP, r.errno());
            assertEquals("virtio-iommu granule=8k cannot be honoured by the daemon's profile 'nesting', whose endpoints sit behind "
                    + "an SMMUv3 with 4k, 16k and 64k granules; use granule=4k, 16k or 64k", r.message());
        }
    }
}
