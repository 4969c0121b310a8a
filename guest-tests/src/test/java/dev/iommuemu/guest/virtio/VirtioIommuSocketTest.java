package dev.iommuemu.guest.virtio;

import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_EVENT_IDX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.guest.socket.GuestDaemon;
import dev.iommuemu.guest.virtio.VirtioIommuDriver.ProbeReply;
import dev.iommuemu.virtio.iommu.FaultEvent;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The spec-written virtio-iommu driver through the real daemon: the test is the VMM (memfd guest
 * RAM registered at a VMM virtual address different from its guest physical one, the vhost-user
 * vring messages, kick and call eventfds, IOMMU_TRANSLATE for endpoint DMA, the back-end channel
 * for IOTLB invalidations) and, through {@link VhostUserTransport}, the guest. The request and
 * event queues live in the shared guest RAM; the model in the daemon reads and writes them there.
 */
class VirtioIommuSocketTest {
    static final int OK = 0, NOENT = 6;
    static final int READ = 1, WRITE = 2;
    /** Where the VMM says it mapped guest RAM (ADD_MEM_REG userspace_addr): not the guest physical address. */
    static final long VMM_VA = 0x7f3a_0000_0000L;
    static final long ALL = VirtioIommuGuestTest.ALL & ~F_EVENT_IDX; // every used buffer is notified

    GuestDaemon daemon;
    VmmClient vmm;
    VhostUserTransport transport;
    VirtioIommuDriver d;

    /** The daemon under test; a subclass records it and replays every session (docs/recording.md). */
    GuestDaemon newDaemon(String model, String profile) throws java.io.IOException {
        return new GuestDaemon(model, profile);
    }

    @BeforeEach
    void start() throws Exception {
        daemon = newDaemon("virtio-iommu", "default");
        vmm = daemon.connect();
        vmm.addMemory(0, 4L << 20, VMM_VA);
        transport = new VhostUserTransport(vmm, true);
        vmm.serveBackend(new VmmClient.BackendListener() {
            @Override
            public long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
                transport.log.add(String.format("invalidate ep=%d iova=0x%x size=0x%x", inv.endpoint(), inv.iova(), inv.size()));
                try {
                    Thread.sleep(30); // a slow VMM: the UNMAP must not complete before this ack
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                transport.log.add("ack");
                return 0;
            }
        });
        d = new VirtioIommuDriver(transport, vmm.memory(), 1);
        assertTrue(d.init(ALL, 64, 8, 24));
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

    Payloads.TranslateReply translate(int ep, long iova, int access) throws Exception {
        return vmm.translate(ep, -1, iova, access);
    }

    @Test
    void featuresAndConfigSpaceThroughTheSocket() throws Exception {
        assertEquals(2, vmm.info().model());
        // INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, MMIO, BYPASS_CONFIG; INDIRECT_DESC, EVENT_IDX, VERSION_1
        // (spec "Feature bits"), and vhost-user's bit 30 beside them in GET_FEATURES.
        assertEquals(0x1_3000_0077L | VhostUserTransport.F_PROTOCOL_FEATURES, vmm.features());
        assertEquals(0x1_1000_0077L, d.features());
        // struct virtio_iommu_config as the driver read it field by field with GET_CONFIG.
        assertEquals(0x4020_1000L, d.pageSizeMask);
        assertEquals(0L, d.inputStart);
        assertEquals(-1L, d.inputEnd);
        assertEquals(0, d.domainStart);
        assertEquals(-1, d.domainEnd);
        assertEquals(512, d.probeSize);
        assertEquals(0, d.bypass);
        d.writeBypass(1); // SET_CONFIG of the one writable field
        d.readConfig();
        assertEquals(1, d.bypass);
        assertEquals(0x42L, translate(9, 0x42, 0).result().output(), "bypass: identity for an unattached endpoint");
    }

    /**
     * RESET_DEVICE is a device reset: domains go, config bypass stays (virtio 1.x §5.13.4: it
     * "SHOULD NOT change on device reset"); IOMMU_SYSTEM_RESET (docs/protocol.md §4.1) is a machine
     * reset: bypass also returns to its initial value (0 in this profile).
     */
    @Test
    void deviceResetKeepsBypassSystemResetRestoresIt() throws Exception {
        assertEquals(OK, d.attach(1, 3, 0));
        assertEquals(OK, d.map(1, 0x10_0000, 0x10_ffff, 0x4000_0000L, READ | WRITE));
        d.writeBypass(1);
        vmm.resetDevice();
        assertEquals(1, vmm.getConfig(36, 1)[0], "bypass kept by RESET_DEVICE");
        assertEquals(0x10_1234L, translate(3, 0x10_1234, 0).result().output(), "domain gone: endpoint 3 bypasses");
        vmm.systemReset();
        assertEquals(0, vmm.getConfig(36, 1)[0], "bypass back to its initial value");
        Payloads.TranslateReply r = translate(3, 0x10_1234, 0);
        assertEquals(Payloads.ABORTED, r.result().status());
        assertEquals("VIRTIO_IOMMU_FAULT_R_DOMAIN", r.reason(), "unattached, no bypass");
    }

    @Test
    void attachMapTranslateUnmapAndProbeThroughTheSocket() throws Exception {
        assertEquals(OK, d.attach(1, 3, 0));
        assertEquals(OK, d.map(1, 0x10_0000, 0x10_ffff, 0x4000_0000L, READ | WRITE));
        assertEquals(OK, d.map(1, 0x1000, 0x4fff, 0x20_1000, READ));
        Payloads.TranslateResult r = translate(3, 0x10_1234, Payloads.ACCESS_WRITE).result();
        assertEquals(Payloads.TRANSLATED, r.status());
        assertEquals(0x4000_1234L, r.output());
        assertEquals(0xffff, r.addrMask());
        assertEquals(Perm.UR | Perm.PR | Perm.UX | Perm.PX | Perm.UW | Perm.PW, r.perm());
        // 16 KiB at 0x1000 -> 0x201000: the largest aligned block holding 0x3abc is [0x2000, 0x3fff].
        r = translate(3, 0x3abc, 0).result();
        assertEquals(0x20_3abcL, r.output());
        assertEquals(0x1fff, r.addrMask());
        assertEquals(Perm.UR | Perm.PR | Perm.UX | Perm.PX, r.perm());
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", translate(3, 0x3abc, Payloads.ACCESS_WRITE).reason());

        // UNMAP completes (used buffer, call eventfd) only after the VMM acknowledged the invalidation.
        transport.log.clear();
        assertEquals(OK, d.unmap(1, 0x10_0000, 0x10_ffff));
        assertEquals(List.of("invalidate ep=3 iova=0x100000 size=0x10000", "ack", "used 4"), transport.log);
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", translate(3, 0x10_1234, 0).reason());

        ProbeReply p = d.probe(3);
        assertEquals(OK, p.status());
        assertEquals(512 + 4, p.usedLen());
        assertEquals(List.of(), p.resvMem(), "the default profile reserves nothing");
        assertArrayEquals(new byte[512], java.util.Arrays.copyOf(p.raw(), 512));
        assertEquals(NOENT, d.probe(0x1_0000).status(), "endpoint beyond 0xffff");
        assertEquals(6, transport.calls(0), "one used-buffer notification per request");
    }

    /** A ring stopped (GET_VRING_BASE) and restarted from its base continues; a device reset and a fresh initialisation work. */
    @Test
    void ringRestartAndDeviceResetThroughTheSocket() throws Exception {
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(OK, d.attach(1, 2, 0));
        assertEquals(2, transport.restartQueue(0), "GET_VRING_BASE: the next available index");
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x5000, READ));
        assertEquals(0x5008L, translate(2, 0x1008, 0).result().output());
        assertEquals(1, vmm.getVringBase(0) - 2, "one request since the restart, none served twice");
        transport.restartQueue(0);
        // RESET_DEVICE (every endpoint detached, the VMM told to drop everything), then init again.
        transport.log.clear();
        assertTrue(d.init(ALL, 64, 8, 24));
        assertEquals("invalidate ep=-1 iova=0x0 size=0xffffffffffffffff", transport.log.get(0));
        assertEquals("VIRTIO_IOMMU_FAULT_R_DOMAIN", translate(2, 0x1008, 0).reason());
        assertEquals(OK, d.attach(1, 2, 0));
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x7000, READ));
        assertEquals(0x7008L, translate(2, 0x1008, 0).result().output());
    }

    @Test
    void faultEventDeliveredToTheEventQueueThroughTheSocket() throws Exception {
        assertEquals(OK, d.attach(1, 0x21, 0));
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x5000, READ));
        assertEquals(0, VmmClient.awaitEventFd(transport.callFd(1), 0), "no event yet");
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", translate(0x21, 0x1008, Payloads.ACCESS_WRITE).reason());
        assertEquals(1, VmmClient.awaitEventFd(transport.callFd(1), 2000), "the event queue's call eventfd");
        // struct virtio_iommu_fault: reason MAPPING, flags WRITE | ADDRESS, endpoint, address (spec "Fault reporting").
        assertArrayEquals(new byte[] {
            2, 0, 0, 0,
            2, 1, 0, 0,
            0x21, 0, 0, 0,
            0, 0, 0, 0,
            8, 0x10, 0, 0, 0, 0, 0, 0
        }, d.eventBytes(0));
        assertEquals("VIRTIO_IOMMU_FAULT_R_DOMAIN", translate(0x22, 0x3000, 0).reason());
        assertEquals(1, VmmClient.awaitEventFd(transport.callFd(1), 2000));
        assertEquals(List.of(new FaultEvent(2, 0x102, 0x21, 0x1008), new FaultEvent(1, 0x101, 0x22, 0x3000)), d.events(true));
    }
}
