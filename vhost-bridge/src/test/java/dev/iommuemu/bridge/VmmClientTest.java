package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.testing.FakeDevice;
import dev.iommuemu.bridge.testing.TestDaemon;
import dev.iommuemu.bridge.unix.LibC;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/** The Java front-end library against the daemon and the fake device. */
class VmmClientTest {
    @Test
    void drivesTheDeviceLikeAVmm() throws Exception {
        try (TestDaemon daemon = new TestDaemon("vmmc"); VmmClient vmm = VmmClient.connect(daemon.socket)) {
            assertEquals(FakeDevice.LINES, vmm.info().irqLines());
            vmm.addMemory(0, 1 << 20);
            vmm.memory().store(5 * 8, 8, 0xabc000L | 1); // stream 4 table: page 5 -> 0xabc000, read-only
            Payloads.TranslateReply r = vmm.translate(4, -1, 0x5123, 0);
            assertEquals(0xabc123L, r.result().output());
            assertEquals("F_PERMISSION", vmm.translate(4, -1, 0x5123, Payloads.ACCESS_WRITE).reason());
            List<Payloads.TranslateResult> b = vmm.translateBatch(List.of(new Payloads.TranslateRequest(1, -1, 0x10, 0), new Payloads.TranslateRequest(2, -1, 0x10, 0)));
            assertEquals(0x1_0000_0010L, b.get(0).output());
            assertEquals(Payloads.ABORTED, b.get(1).status());
            assertEquals(FakeDevice.ID, vmm.mmioRead(0, 8));
            RequestRefusedException e = assertThrows(RequestRefusedException.class, () -> vmm.mmioRead(0x4000, 8));
            assertEquals(ProtocolException.EINVAL, e.errno());
            int evtq = vmm.irqEventFd(0);
            try {
                vmm.mmioWrite(0x18, 8, 0);
                assertTrue(EventFds.awaitSignal(evtq, 1000));
            } finally {
                LibC.closeQuietly(evtq);
            }
            List<String> seen = new CopyOnWriteArrayList<>();
            vmm.serveBackend(new VmmClient.BackendListener() {
                @Override
                public long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
                    seen.add("inv " + inv.endpoint());
                    return 0;
                }
            });
            vmm.mmioWrite(0x10, 8, 9);
            assertEquals(List.of("inv 9"), seen, "the write returned after the invalidation was acknowledged");
            assertEquals(1, vmm.mmioRead(0x38, 8));
        }
    }

    @Test
    void manyVmmsAtOnceEachWithItsOwnDeviceAndMemory() throws Exception {
        int n = 8;
        try (TestDaemon daemon = new TestDaemon("many")) {
            List<Throwable> failures = new CopyOnWriteArrayList<>();
            List<Thread> threads = new java.util.ArrayList<>();
            java.util.concurrent.CyclicBarrier together = new java.util.concurrent.CyclicBarrier(n);
            for (int v = 0; v < n; v++) {
                long out = 0x100_0000L * (v + 1);
                Thread t = new Thread(() -> {
                    try (VmmClient vmm = VmmClient.connect(daemon.socket)) {
                        vmm.addMemory(0, 1 << 16);
                        vmm.memory().store(8, 8, out | 1); // this VMM's table: page 1 -> its own output
                        vmm.mmioWrite(8, 8, out);
                        together.await();
                        for (int i = 0; i < 500; i++) {
                            assertEquals(out + 0x234, vmm.translate(4, -1, 0x1234, 0).result().output());
                        }
                        assertEquals(out, vmm.mmioRead(8, 8), "the scratch register is per device");
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                });
                threads.add(t);
                t.start();
            }
            for (Thread t : threads) {
                t.join(20000);
            }
            assertEquals(List.of(), failures);
            assertEquals(n, daemon.fake.created.size());
            daemon.awaitNoConnections();
            assertEquals(0, daemon.registry.list().size());
            assertEquals(n * 500L, daemon.registry.totals().get(dev.iommuemu.bridge.session.Counter.TRANSLATIONS));
        }
    }
}
