package dev.iommuemu.guest.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.PropertyPayloads;
import dev.iommuemu.bridge.protocol.PropertyPayloads.Entry;
import dev.iommuemu.guest.socket.GuestDaemon;
import dev.iommuemu.virtio.iommu.FaultEvent;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Issue 17's table, row by row, through the daemon's socket: the test is the VMM front-end
 * standing for QEMU's virtio-iommu-pci (memfd guest RAM, vring messages, eventfds, the device's
 * properties and its bus topology, docs/protocol.md §4.7) and, through {@link VhostUserTransport},
 * a minimal spec-written driver of the kind firmware and QEMU's qtests use.
 */
class VirtioIommuQemuContractSocketTest {
    static final int OK = 0, INVAL = 4, NOENT = 6;
    static final int READ = 1;
    static final long VMM_VA = 0x7f3a_0000_0000L;
    static final long ALL = VirtioIommuSocketTest.ALL;

    GuestDaemon daemon;
    VmmClient vmm;
    VhostUserTransport transport;
    VirtioIommuDriver d;

    @BeforeEach
    void start() throws Exception {
        daemon = new GuestDaemon("virtio-iommu", "default");
        vmm = daemon.connect();
        vmm.addMemory(0, 4L << 20, VMM_VA);
        transport = new VhostUserTransport(vmm, true);
        vmm.serveBackend(new VmmClient.BackendListener() {
            @Override
            public long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
                return 0;
            }
        });
        d = new VirtioIommuDriver(transport, vmm.memory(), 1);
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

    /** QEMU's virtio-iommu-pci with its defaults: boot-bypass on, granule host (4k here), aw-bits 64, no reserved region. */
    void qemuDefaults() throws Exception {
        PropertyPayloads.Reply r = vmm.setProperties(List.of(
                Entry.of(PropertyPayloads.VIRTIO_BOOT_BYPASS, 1),
                Entry.of(PropertyPayloads.VIRTIO_GRANULE, 0x1000),
                Entry.of(PropertyPayloads.VIRTIO_AW_BITS, 64),
                new Entry(PropertyPayloads.VIRTIO_RESERVED_REGIONS, 0, 0, 0)));
        assertEquals(PropertyPayloads.Reply.OK, r);
    }

    /** Row 1: with QEMU's defaults ({@code boot-bypass} on) the driver reads config bypass 1. */
    @Test
    void configBypassIsOneWithBootBypassOn() throws Exception {
        qemuDefaults();
        assertTrue(d.init(ALL, 64, 8, 24));
        // QEMU's qtest "config": input range [0, >= 2^32-1], domain range [0, 2^32-1], bypass 1.
        assertEquals(1, d.bypass);
        assertEquals(0L, d.inputStart);
        assertEquals(-1L, d.inputEnd, "aw-bits 64: input_range.end = 2^64 - 1");
        assertEquals(0, d.domainStart);
        assertEquals(-1, d.domainEnd);
        assertEquals(-0x1000L, d.pageSizeMask, "granule 4k: page_size_mask = -(4 KiB), as QEMU sets it");
        assertEquals(0x42L, vmm.translate(8, -1, 0x42, 0).result().output(), "an unattached endpoint bypasses");
        // The driver leaves bypass; a machine reset restores boot-bypass (IOMMU_SYSTEM_RESET, §4.1).
        d.writeBypass(0);
        assertEquals(0, vmm.getConfig(36, 1)[0]);
        vmm.resetDevice();
        assertEquals(0, vmm.getConfig(36, 1)[0], "a device reset keeps bypass");
        vmm.systemReset();
        assertEquals(1, vmm.getConfig(36, 1)[0], "a system reset restores boot-bypass");
    }

    /**
     * Row 2: the driver sets up the request queue only and leaves the event queue unconfigured;
     * the front-end still sends the event queue's vring messages with address 0. Requests work;
     * when the driver configures the event queue later, it starts then and fault reports reach it.
     */
    @Test
    void requestQueueOnlyWithTheEventQueueUnconfigured() throws Exception {
        assertTrue(d.init(ALL, 64, 0, 0, false));
        transport.setUpUnconfiguredQueue(1, 64); // SET_VRING_ADDR 0, SET_VRING_KICK: no error
        assertEquals(OK, d.attach(1, 3, 0));
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x5000, READ));
        assertEquals(0x5008L, vmm.translate(3, -1, 0x1008, 0).result().output());
        // A fault while the event queue has no ring: held (EventQueue's bound), not an error.
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", vmm.translate(3, -1, 0x9000, 0).reason());

        transport.configureLater(1, 64, d.eventRing().descAddr(), d.eventRing().availAddr(), d.eventRing().usedAddr());
        d.fillEventQueue(4, 24); // kicks through the kick eventfd given while unconfigured
        assertEquals(1, VmmClient.awaitEventFd(transport.callFd(1), 2000), "the held report, delivered once the queue started");
        // struct virtio_iommu_fault flags: ADDRESS (0x100) | READ (1)
        assertEquals(List.of(new FaultEvent(2, 0x100 | 1, 3, 0x9000)), d.events(false));
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", vmm.translate(3, -1, 0xa000, Payloads.ACCESS_WRITE).reason());
        assertEquals(1, VmmClient.awaitEventFd(transport.callFd(1), 2000));
        // struct virtio_iommu_fault flags: ADDRESS (0x100) | WRITE (2)
        assertEquals(List.of(new FaultEvent(2, 0x100 | 2, 3, 0xa000)), d.events(false));

        // After a device reset the driver sets up both queues: the event queue starts as usual.
        assertTrue(d.init(ALL, 64, 8, 24));
        assertEquals(OK, d.attach(1, 3, 0));
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", vmm.translate(3, -1, 0x1008, 0).reason(), "the domain is new: nothing mapped");
        assertEquals(1, VmmClient.awaitEventFd(transport.callFd(1), 2000));
        assertEquals(List.of(new FaultEvent(2, 0x100 | 1, 3, 0x1008)), d.events(false));
    }

    /**
     * Row 3: the front-end gives the bus's endpoints (IOMMU_SET_ENDPOINTS); ATTACH and PROBE of
     * endpoint 444, which no device has, answer NOENT; hotplug and unplug keep it current.
     */
    @Test
    void attachOfAnEndpointNoDeviceHasIsNoent() throws Exception {
        vmm.setEndpoints(PropertyPayloads.ENDPOINTS_SET, List.of(0, 8, 16));
        assertTrue(d.init(ALL, 64, 8, 24));
        assertEquals(OK, d.attach(0, 0, 0));
        assertEquals(NOENT, d.attach(0, 444, 0));
        assertEquals(NOENT, d.probe(444).status());
        assertEquals(NOENT, d.detach(0, 1), "QEMU's qtest: detach a non-existing device (1)");
        Payloads.TranslateReply t = vmm.translate(444, -1, 0x1000, 0);
        assertEquals(Payloads.ABORTED, t.result().status());
        assertEquals("no such endpoint", t.reason());
        assertEquals(List.of(), d.events(false), "no fault record for an endpoint that does not exist");

        // Hotplug of a device at 444, then its unplug: it leaves its domain, which ceases to exist.
        vmm.setEndpoints(PropertyPayloads.ENDPOINTS_ADD, List.of(444));
        assertEquals(OK, d.attach(5, 444, 0));
        assertEquals(OK, d.map(5, 0x1000, 0x1fff, 0x7000, READ));
        assertEquals(0x7010L, vmm.translate(444, -1, 0x1010, 0).result().output());
        vmm.setEndpoints(PropertyPayloads.ENDPOINTS_REMOVE, List.of(444));
        assertEquals("no such endpoint", vmm.translate(444, -1, 0x1010, 0).reason());
        assertEquals(NOENT, d.map(5, 0x2000, 0x2fff, 0x8000, READ), "domain 5 went with its only endpoint");
        assertEquals(NOENT, d.attach(5, 444, 0));
        assertEquals(OK, d.attach(5, 16, 0));
    }

    /**
     * QEMU's qtest "map_unmap" expectations, including the spec's UNMAP examples with byte-sized
     * ranges ([0, 9], [0, 4]): QEMU's device maps ranges that are not aligned on its granule, so
     * the front-end asks for that behaviour (VIRTIO_UNALIGNED_MAPS); without it the daemon keeps
     * the spec's "SHOULD set RANGE" for them.
     */
    @Test
    void qemuQtestMapUnmapExpectations() throws Exception {
        assertEquals(PropertyPayloads.Reply.OK, vmm.setProperties(List.of(
                Entry.of(PropertyPayloads.VIRTIO_BOOT_BYPASS, 1), Entry.of(PropertyPayloads.VIRTIO_GRANULE, 0x1000),
                Entry.of(PropertyPayloads.VIRTIO_UNALIGNED_MAPS, 1))));
        vmm.setEndpoints(PropertyPayloads.ENDPOINTS_SET, List.of(0, 8));
        assertTrue(d.init(ALL, 64, 8, 24));
        String[][] steps = {
            {"attach 1 0", "0"}, {"map 0 0x0 0xfff 0xa1000", "6"}, {"map 1 0x0 0xfff 0xa1000", "0"},
            {"map 1 0x0 0xffff 0xb1000", "4"}, {"unmap 4 0x10 0xfff", "6"}, {"unmap 1 0x10 0xfff", "5"},
            {"unmap 1 0x0 0x1000", "0"},
            // the spec's UNMAP examples (1)-(7)
            {"unmap 1 0 4", "0"},
            {"map 1 0 9 0xa1000", "0"}, {"unmap 1 0 9", "0"},
            {"map 1 0 4 0xb1000", "0"}, {"map 1 5 9 0xb2000", "0"}, {"unmap 1 0 9", "0"},
            {"map 1 0 9 0xc1000", "0"}, {"unmap 1 0 4", "5"}, {"unmap 1 0 10", "0"},
            {"map 1 0 4 0xd1000", "0"}, {"map 1 5 9 0xd2000", "0"}, {"unmap 1 0 4", "0"}, {"unmap 1 5 9", "0"},
            {"map 1 0 4 0xe2000", "0"}, {"unmap 1 0 9", "0"},
            {"map 1 0 4 0xf2000", "0"}, {"map 1 10 14 0xf3000", "0"}, {"unmap 1 0 14", "0"},
            {"map 1 10 14 0xf3000", "0"}, {"map 1 0 4 0xf2000", "0"}, {"unmap 1 0 4", "0"}, {"map 1 10 14 0xf3000", "4"},
        };
        for (String[] st : steps) {
            assertEquals(Integer.parseInt(st[1]), VirtioIommuStatusPrecedenceTest.run(d, st[0]), st[0]);
        }
        // [10, 14] -> 0xf3000 is mapped byte for byte: the VMM gets an entry no larger than it
        Payloads.TranslateResult t = vmm.translate(0, -1, 12, 0).result();
        assertEquals(0xf3002L, t.output());
        assertEquals(0x1L, t.addrMask(), "[12, 13] is the largest aligned block around 12 inside [10, 14]");
    }

    @Test
    void withoutUnalignedMapsAByteRangeIsRange() throws Exception {
        assertTrue(d.init(ALL, 64, 8, 24));
        assertEquals(OK, d.attach(1, 0, 0));
        assertEquals(5, d.map(1, 0, 9, 0xa1000, READ), "MAP request: the device SHOULD set RANGE for an unaligned range");
    }

    /**
     * QEMU's {@code reserved-regions} (e.g. x86's MSI window 0xfee00000-0xfeefffff, type 1) replace
     * the profile's: PROBE reports them as RESV_MEM properties of every endpoint ("Property
     * RESV_MEM": subtype, start, end), a MAP over one is refused, and the MSI window is not translated.
     */
    @Test
    void reservedRegionsAreProbeResvMem() throws Exception {
        assertEquals(PropertyPayloads.Reply.OK, vmm.setProperties(List.of(
                new Entry(PropertyPayloads.VIRTIO_RESERVED_REGIONS, 2, 0, 0),
                new Entry(PropertyPayloads.VIRTIO_RESERVED_REGION, 1, 0xfee0_0000L, 0xfeef_ffffL),
                new Entry(PropertyPayloads.VIRTIO_RESERVED_REGION, 0, 0x1_0000_0000L, 0x1_0fff_ffffL))));
        assertTrue(d.init(ALL, 64, 8, 24));
        VirtioIommuDriver.ProbeReply p = d.probe(8);
        assertEquals(OK, p.status());
        assertEquals(2, p.resvMem().size());
        assertEquals(List.of(1L, 0xfee0_0000L, 0xfeef_ffffL), List.of(p.resvMem().get(0)[0], p.resvMem().get(0)[1], p.resvMem().get(0)[2]));
        assertEquals(List.of(0L, 0x1_0000_0000L, 0x1_0fff_ffffL), List.of(p.resvMem().get(1)[0], p.resvMem().get(1)[1], p.resvMem().get(1)[2]));
        assertEquals(OK, d.attach(1, 8, 0));
        assertEquals(INVAL, d.map(1, 0x1_0000_0000L, 0x1_0000_0fffL, 0x5000, READ));
        Payloads.TranslateResult msi = vmm.translate(8, -1, 0xfee0_0040L, Payloads.ACCESS_WRITE).result();
        assertEquals(Payloads.TRANSLATED, msi.status());
        assertEquals(0xfee0_0040L, msi.output(), "the MSI doorbell window reaches the interrupt controller untranslated");
    }

    /**
     * Row 4, as QEMU's qtest "attach_detach" runs it: endpoint 0 moves from domain 0 to domain 1,
     * so domain 0, whose only endpoint it was, no longer exists, and a MAP in it is NOENT.
     */
    @Test
    void mapInADomainThatNoLongerExistsIsNoent() throws Exception {
        qemuDefaults();
        vmm.setEndpoints(PropertyPayloads.ENDPOINTS_SET, List.of(0, 8));
        assertTrue(d.init(ALL, 64, 8, 24));
        assertEquals(OK, d.attach(0, 0, 0));
        assertEquals(NOENT, d.attach(0, 444, 0));
        assertEquals(NOENT, d.detach(0, 1));
        assertEquals(OK, d.attach(1, 0, 0));
        assertEquals(INVAL, d.detach(0, 0));
        assertEquals(NOENT, d.map(0, 0x0, 0xfff, 0xa1000, READ));
        assertEquals(OK, d.map(1, 0x0, 0xfff, 0xa1000, READ));
        assertEquals(OK, d.detach(1, 0));
        assertEquals(NOENT, d.map(1, 0x2000, 0x2fff, 0xb1000, READ), "domain 1 went with its last endpoint");
    }
}
