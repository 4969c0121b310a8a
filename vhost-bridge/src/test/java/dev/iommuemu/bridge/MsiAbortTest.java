package dev.iommuemu.bridge;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.session.BridgeEvent;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.testing.TestDaemon;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * IOMMU_MSI's source tag and IOMMU_MSI_ABORTED (docs/protocol.md §4, §5, version 8) over the VMM
 * socket, against the real SMMUv3 model (profile max): the VMM reports that an MSI found neither
 * memory nor a device, and the guest reads the MSI_*_ABT_ERR bit in SMMU_GERROR (IHI 0070 §6.3).
 */
class MsiAbortTest {
    private static final long EVTQ_MSI = 0x9_0000_0040L; // beyond guest RAM: the VMM delivers it
    private static final long GERROR_MSI = 0x9_0000_1000L;
    private static final long STRTAB = 0x10_0000L;
    private static final long EVTQ = 0x30_0000L;

    /** The 16 bytes of an IOMMU_MSI / IOMMU_MSI_ABORTED payload, built by hand. */
    private static byte[] msiBytes(long address, int data, int source) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(address).putInt(data).putInt(source)
                .array();
    }

    private static void awaitSize(List<?> l, int n) throws InterruptedException {
        for (int i = 0; i < 500 && l.size() < n; i++) {
            Thread.sleep(10);
        }
        assertEquals(n, l.size());
    }

    @Test
    void theVmmReportsAbortedMsisAndTheGuestReadsGerror() throws Exception {
        Smmuv3Bridge.Factory smmu = new Smmuv3Bridge.Factory();
        Path socket = FakeVmm.socketPath("msiab");
        SessionRegistry registry = new SessionRegistry(new DeviceRegistry().register(smmu), smmu, "max");
        List<BridgeEvent> events = new CopyOnWriteArrayList<>();
        registry.events().subscribe(events::add);
        VhostUserServer server = new VhostUserServer(socket, registry, 2000);
        List<Payloads.MsiWrite> msis = new CopyOnWriteArrayList<>();
        try (VmmClient vmm = VmmClient.connect(socket)) {
            vmm.serveBackend(new VmmClient.BackendListener() {
                @Override
                public void msi(Payloads.MsiWrite msi) {
                    msis.add(msi);
                }
            });
            vmm.addMemory(0, 0x100_0000L);
            vmm.mmioWrite(STRTAB_BASE.offset(), 8, STRTAB);
            vmm.mmioWrite(STRTAB_BASE_CFG.offset(), 4, 4); // linear, 16 STEs
            vmm.mmioWrite(EVENTQ_BASE.offset(), 8, EVTQ | 4);
            vmm.mmioWrite(EVENTQ_IRQ_CFG0.offset(), 8, EVTQ_MSI);
            vmm.mmioWrite(EVENTQ_IRQ_CFG1.offset(), 4, 0x77);
            vmm.mmioWrite(GERROR_IRQ_CFG0.offset(), 8, GERROR_MSI);
            vmm.mmioWrite(GERROR_IRQ_CFG1.offset(), 4, 0x33);
            vmm.mmioWrite(IRQ_CTRL.offset(), 4, IRQ_CTRL_GERROR_IRQEN.mask() | IRQ_CTRL_EVENTQ_IRQEN.mask());
            vmm.mmioWrite(CR0.offset(), 4, CR0_EVENTQEN.mask() | CR0_SMMUEN.mask());

            vmm.translate(0x100, Payloads.NO_SUBSTREAM, 0, 0); // C_BAD_STREAMID: the Event queue's MSI
            awaitSize(msis, 1);
            assertArrayEquals(msiBytes(EVTQ_MSI, 0x77, 2), msis.get(0).encode()); // source 2: event queue

            // The VMM finds nothing at the address and says so with the payload it got.
            vmm.msiAborted(msis.get(0));
            assertEquals(1L << 5, vmm.mmioRead(GERROR.offset(), 4)); // MSI_EVENTQ_ABT_ERR active
            assertEquals(0, vmm.mmioRead(GERRORN.offset(), 4));
            awaitSize(msis, 2);
            assertArrayEquals(msiBytes(GERROR_MSI, 0x33, 4), msis.get(1).encode()); // source 4: GERROR

            // Again while active: nothing changes. The GERROR MSI aborting: MSI_GERROR_ABT_ERR, no new MSI.
            vmm.msiAborted(msis.get(0));
            vmm.ack(Request.IOMMU_MSI_ABORTED, msiBytes(GERROR_MSI, 0x33, 4));
            assertEquals((1L << 5) | (1L << 7), vmm.mmioRead(GERROR.offset(), 4));
            assertEquals(2, msis.size());

            // An unknown source is refused with EINVAL; the connection goes on.
            RequestRefusedException e = assertThrows(RequestRefusedException.class,
                    () -> vmm.ack(Request.IOMMU_MSI_ABORTED, msiBytes(GERROR_MSI, 0x33, 9)));
            assertEquals(ProtocolException.EINVAL, e.errno());
            assertEquals(1L << 5 | 1L << 7, vmm.mmioRead(GERROR.offset(), 4));

            var session = registry.list().get(0);
            assertEquals(3L, session.allCounters().get("msi_aborts"));
            List<String> aborted = events.stream().filter(ev -> ev.kind().equals(BridgeEvent.MSI_ABORTED))
                    .map(BridgeEvent::detail).toList();
            assertEquals("address=0x900000040 data=0x77 source=event_queue activated=MSI_EVENTQ_ABT_ERR",
                    aborted.get(0));
            assertEquals("address=0x900001000 data=0x33 source=gerror activated=MSI_GERROR_ABT_ERR", aborted.get(2));
        } finally {
            server.close();
        }
    }

    /** A model without such MSIs (the fake, as virtio-iommu) accepts and counts the report. */
    @Test
    void aModelWithoutSmmuMsisAcceptsAndCountsTheReport() throws Exception {
        try (TestDaemon daemon = new TestDaemon("msiab2"); FakeVmm vmm = daemon.connect()) {
            assertEquals(0, vmm.ack(Request.IOMMU_MSI_ABORTED, msiBytes(0xfee0_0000L, 0x41, 0)));
            assertEquals(1L, daemon.registry.list().get(0).allCounters().get("msi_aborts"));
            // Posted (no NEED_REPLY): no reply; the next request's reply is the next thing read.
            vmm.send(Request.IOMMU_MSI_ABORTED, false, msiBytes(0xfee0_0000L, 0x41, 1));
            assertEquals(0, vmm.ack(Request.IOMMU_MSI_ABORTED, msiBytes(0xfee0_0000L, 0x41, 3)));
            assertEquals(3L, daemon.registry.list().get(0).allCounters().get("msi_aborts"));
            // A payload of the wrong size is a framing error: EINVAL, then closed (§6).
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_MSI_ABORTED, new byte[12]));
            assertTrue(vmm.closedByPeer(2000));
        }
    }
}
