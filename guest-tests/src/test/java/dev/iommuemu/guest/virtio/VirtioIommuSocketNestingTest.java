package dev.iommuemu.guest.virtio;

import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_EVENT_IDX;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_NESTING_SMMUV3;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.guest.socket.GuestDaemon;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.virtio.iommu.FaultEvent;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Paravirtual nesting (docs/nesting.md §6) through the real daemon: {@code --model virtio-iommu
 * --profile nesting}. The test is the VMM (memfd guest RAM at a VMM virtual address unlike its
 * guest physical one, IOMMU_TRANSLATE for endpoint DMA) and, through {@link VhostUserTransport},
 * the guest, whose STE words, CD table and stage 1 tables live in the shared RAM. The session's
 * nest parent maps that RAM IPA = PA, so a translated address is the guest physical address the
 * guest's stage 1 names.
 */
class VirtioIommuSocketNestingTest {
    static final int OK = 0;
    static final long VMM_VA = 0x7f3a_0000_0000L;
    static final long RAM = 8L << 20;
    static final long ALL = (VirtioIommuGuestTest.ALL & ~F_EVENT_IDX) | F_NESTING_SMMUV3;
    static final int EP = 0x10;
    static final int ASID = 7;
    static final long CD_TABLE = 0x50_0000L;
    static final long VA = 0x4000_0000L;
    static final long DATA = 0x60_0000L;
    static final long RW = PageTableBuilder.S1_RW | PageTableBuilder.S1_USER | Descriptor.NG.prep(1);
    // Fault record reason and flags ("Fault reporting"; PASID_VALID: docs/nesting.md §6).
    static final int R_MAPPING = 2;
    static final int F_READ = 1;
    static final int F_WRITE = 2;
    static final int F_ADDRESS = 1 << 8;

    GuestDaemon daemon;
    VmmClient vmm;
    VhostUserTransport transport;
    VirtioIommuDriver d;
    GuestMemory mem;
    PageTableBuilder s1;

    /** The daemon under test; a subclass records it and replays every session (docs/recording.md). */
    GuestDaemon newDaemon(String model, String profile) throws java.io.IOException {
        return new GuestDaemon(model, profile);
    }

    @BeforeEach
    void start() throws Exception {
        daemon = newDaemon("virtio-iommu", "nesting");
        vmm = daemon.connect();
        vmm.addMemory(0, RAM, VMM_VA);
        transport = new VhostUserTransport(vmm, true);
        vmm.serveBackend(new VmmClient.BackendListener() {
            @Override
            public long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
                transport.log.add(String.format("invalidate ep=%d iova=0x%x size=0x%x", inv.endpoint(), inv.iova(), inv.size()));
                return 0;
            }
        });
        mem = vmm.memory();
        d = new VirtioIommuDriver(transport, mem, 1);
        assertTrue(d.init(ALL, 64, 8, 32));
        // The guest's stage 1 (4 KiB granule, 48-bit VA and IPA) and CD 0 in its own RAM.
        s1 = PageTableBuilder.stage1(mem, new PageTableBuilder.Bump(0x40_0000L, 0x10_0000L), Granule.G4K, 16, 48, 48);
        long[] w = new long[Cd.WORDS];
        Cd.V.set(w, 1);
        Cd.T0SZ.set(w, 16);
        Cd.EPD1.set(w, 1);
        Cd.IPS.set(w, 5);
        Cd.AA64.set(w, 1);
        Cd.R.set(w, 1);
        Cd.A.set(w, 1);
        Cd.ASID.set(w, ASID);
        Cd.TTB0.set(w, s1.ttb() >>> 4);
        for (int i = 0; i < Cd.WORDS; i++) {
            assertTrue(mem.store(CD_TABLE + 8L * i, 8, w[i]));
        }
    }

    @AfterEach
    void stop() {
        if (transport != null) {
            transport.close();
        }
        if (vmm != null) {
            vmm.close();
        }
        if (daemon != null) {
            daemon.close();
        }
    }

    /** STE words 0-1: stage 1 with a linear CD table of one CD (S1CDMAX 0). */
    static long[] guestSte() {
        return new long[] {Ste.V.prep(1) | Ste.CONFIG.prep(Ste.CONFIG_S1) | Ste.S1CONTEXTPTR.prep(CD_TABLE >>> 6), 0};
    }

    @Test
    void featureProbePropertyAttachTableTranslateAndStage1FaultThroughTheSocket() throws Exception {
        // Bit 7 NESTING_SMMUV3 offered (with vhost-user's bit 30 in GET_FEATURES) and accepted.
        assertEquals(0x1_3000_00f7L | VhostUserTransport.F_PROTOCOL_FEATURES, vmm.features());
        assertEquals(F_NESTING_SMMUV3, d.features() & F_NESTING_SMMUV3);

        // PROBE: property 0x800 SMMUV3_NESTING = struct iommu_hw_info_arm_smmuv3 of the session's SMMUv3 max.
        VirtioIommuDriver.ProbeReply p = d.probe(EP);
        assertEquals(OK, p.status());
        int[] got = VirtioIommuDriver.nestingProperty(p, d.probeSize);
        HwInfo want = HwInfo.of(Smmuv3Profile.MAX).get();
        int[] expect = new int[10];
        System.arraycopy(want.idr(), 0, expect, 2, 6);
        expect[8] = want.iidr();
        expect[9] = want.aidr();
        assertArrayEquals(expect, got);
        assertEquals(6, d.probe(0x100).status(), "NOENT: the profile's endpoints are 0-255 (StreamIDs 0-255)");

        // ATTACH_TABLE with the guest's STE; the VMM is told to drop what it cached for the endpoint.
        s1.map(VA, DATA, 3, RW);
        s1.map(VA + 0x1000, DATA + 0x3000, 3, PageTableBuilder.S1_RO | RW);
        long[] ste = guestSte();
        transport.log.clear();
        assertEquals(OK, d.attachTable(1, EP, ste[0], ste[1]));
        assertTrue(transport.log.contains("invalidate ep=16 iova=0x0 size=0xffffffffffffffff"), transport.log.toString());

        // TRANSLATE over the socket: guest stage 1 VA -> IPA, nest parent IPA -> the same PA.
        Payloads.TranslateResult r = vmm.translate(EP, -1, VA + 0x234, Payloads.ACCESS_WRITE).result();
        assertEquals(Payloads.TRANSLATED, r.status());
        assertEquals(DATA + 0x234, r.output());
        assertEquals(DATA + 0x3abc, vmm.translate(EP, -1, VA + 0x1abc, 0).result().output());

        // A stage 1 fault (write to the read-only page) arrives as a 32-byte fault record.
        assertEquals(0, VmmClient.awaitEventFd(transport.callFd(1), 0), "no event yet");
        assertNotEquals(Payloads.TRANSLATED, vmm.translate(EP, -1, VA + 0x1008, Payloads.ACCESS_WRITE).result().status());
        assertEquals(1, VmmClient.awaitEventFd(transport.callFd(1), 2000), "the event queue's call eventfd");
        // {u8 reason MAPPING; reserved[3]; le32 flags WRITE|ADDRESS; le32 endpoint; reserved; le64 address; le32 pasid; le32 grpid}
        assertArrayEquals(new byte[] {2, 0, 0, 0, 0x02, 0x01, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0,
            0x08, 0x10, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, d.eventBytes32(0));
        // An unmapped VA reads: reason MAPPING, READ | ADDRESS.
        assertNotEquals(Payloads.TRANSLATED, vmm.translate(EP, -1, VA + 0x9000, 0).result().status());
        assertEquals(1, VmmClient.awaitEventFd(transport.callFd(1), 2000));
        assertEquals(List.of(new FaultEvent(R_MAPPING, F_WRITE | F_ADDRESS, EP, VA + 0x1008, 0, 0),
                new FaultEvent(R_MAPPING, F_READ | F_ADDRESS, EP, VA + 0x9000, 0, 0)), d.events(true));
    }

    /** RAM the VMM adds after the attach is in the nest parent from the guest's next request on. */
    @Test
    void aRegionAddedLaterIsMappedAtTheNextRequest() throws Exception {
        long hi = 0x100_0000L;
        long[] ste = guestSte();
        s1.map(VA, hi + 0x5000, 3, RW);
        assertEquals(OK, d.attachTable(1, EP, ste[0], ste[1]));
        vmm.addMemory(hi, 1L << 20, VMM_VA + hi);
        // Until the guest's next request the IPA is not in the nest parent: a stage 2 fault stays
        // with the host (no guest fault record).
        assertNotEquals(Payloads.TRANSLATED, vmm.translate(EP, -1, VA + 0x10, 0).result().status());
        assertEquals(OK, d.probe(EP).status());
        Payloads.TranslateResult r = vmm.translate(EP, -1, VA + 0x10, 0).result();
        assertEquals(Payloads.TRANSLATED, r.status());
        assertEquals(hi + 0x5010, r.output());
        assertTrue(d.events(true).isEmpty(), "stage 2 faults are the host's");
    }
}
