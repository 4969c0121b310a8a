package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.protocol.BackendRequest;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.PropertyPayloads;
import dev.iommuemu.bridge.protocol.Protocol;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import dev.iommuemu.bridge.session.Counter;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.VhostUserChannel;
import dev.iommuemu.bridge.testing.FakeDevice;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.testing.TestDaemon;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.bridge.unix.UnixSocket;
import dev.iommuemu.dma.Perm;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The IOMMU message range (docs/protocol.md §4, §5) against the fake device. */
class IommuMessagesTest {
    private TestDaemon daemon;

    @BeforeEach
    void start() throws Exception {
        daemon = new TestDaemon("iommu", 1000);
    }

    @AfterEach
    void stop() {
        daemon.close();
    }

    private static Payloads.TranslateReply translate(FakeVmm vmm, int sid, long iova, int access) throws Exception {
        return Payloads.TranslateReply.decode(vmm.call(Request.IOMMU_TRANSLATE,
                new Payloads.TranslateRequest(sid, Payloads.NO_SUBSTREAM, iova, access).encode()).payload());
    }

    @Test
    void infoAndModelSelection() throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            Payloads.IommuInfo info = Payloads.IommuInfo.decode(vmm.call(Request.IOMMU_GET_INFO, new byte[0]).payload());
            assertEquals(new Payloads.IommuInfo(1, Protocol.VERSION, 0x1000, 2, "default", FakeDevice.LINES), info);
            assertEquals(0, vmm.ack(Request.IOMMU_SET_MODEL, new Payloads.ModelSelect(2, "small").encode()));
            info = Payloads.IommuInfo.decode(vmm.call(Request.IOMMU_GET_INFO, new byte[0]).payload());
            assertEquals(2, info.model());
            assertEquals("small", info.profile());
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_SET_MODEL, new Payloads.ModelSelect(9, "").encode()));
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_SET_MODEL, new Payloads.ModelSelect(1, "huge").encode()));
            // once the device is used, the model is fixed
            assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(8, 8, 1).encode()));
            assertEquals(ProtocolException.EBUSY, vmm.ack(Request.IOMMU_SET_MODEL, new Payloads.ModelSelect(1, "").encode()));
        }
    }

    /**
     * docs/protocol.md §4.7 on a model without VMM device properties or endpoints (the fake): the
     * properties are refused in the reply, with EOPNOTSUPP and a sentence, and the connection goes
     * on; IOMMU_SET_ENDPOINTS is ENOSYS; a properties payload whose count disagrees with its size
     * is a framing error (8-byte EINVAL error reply, connection closed).
     */
    @Test
    void propertiesAndEndpointsOnAModelWithoutThem() throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            byte[] empty = PropertyPayloads.encode(List.of());
            PropertyPayloads.Reply ok = PropertyPayloads.Reply.decode(
                    vmm.call(Request.IOMMU_SET_PROPERTIES, empty).payload());
            assertEquals(PropertyPayloads.Reply.OK, ok, "no property: nothing to refuse");
            byte[] one = PropertyPayloads.encode(List.of(
                    PropertyPayloads.Entry.of(PropertyPayloads.SMMU_STAGE, 1)));
            PropertyPayloads.Reply r = PropertyPayloads.Reply.decode(
                    vmm.call(Request.IOMMU_SET_PROPERTIES, one).payload());
            assertEquals(95, r.errno());
            assertEquals(0, r.key());
            assertEquals("the daemon's model fake has no VMM device properties to set", r.message());
            assertEquals(38, vmm.ack(Request.IOMMU_SET_ENDPOINTS,
                    new PropertyPayloads.Endpoints(0, List.of(1, 2)).encode()));
            byte[] lying = one.clone();
            lying[0] = 2;
            VhostUserMessage err = vmm.call(Request.IOMMU_SET_PROPERTIES, lying);
            assertEquals(8, err.payload().length);
            assertEquals(ProtocolException.EINVAL, Payloads.u64(err.payload()));
            assertTrue(vmm.closedByPeer(2000));
        }
    }

    @Test
    void mmioReadAndWrite() throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            Payloads.MmioReadReply id = Payloads.MmioReadReply.decode(vmm.call(Request.IOMMU_MMIO_READ, new Payloads.MmioRead(0, 8).encode()).payload());
            assertEquals(new Payloads.MmioReadReply(0, FakeDevice.ID), id);
            assertEquals(0x9abc_def0L, Payloads.MmioReadReply.decode(vmm.call(Request.IOMMU_MMIO_READ, new Payloads.MmioRead(0, 4).encode()).payload()).value());
            vmm.send(Request.IOMMU_MMIO_WRITE, false, new Payloads.MmioWrite(8, 8, 0x55aa).encode()); // posted write
            assertEquals(0x55aa, Payloads.MmioReadReply.decode(vmm.call(Request.IOMMU_MMIO_READ, new Payloads.MmioRead(8, 8).encode()).payload()).value());
            // outside the register space, unaligned, bad size: EINVAL as a u64 error reply, connection stays
            assertEquals(ProtocolException.EINVAL, Payloads.u64(vmm.call(Request.IOMMU_MMIO_READ, new Payloads.MmioRead(0x1000, 4).encode()).payload()));
            assertEquals(ProtocolException.EINVAL, Payloads.u64(vmm.call(Request.IOMMU_MMIO_READ, new Payloads.MmioRead(2, 4).encode()).payload()));
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(8, 3, 0).encode()));
            assertEquals(0xf0, Payloads.MmioReadReply.decode(vmm.call(Request.IOMMU_MMIO_READ, new Payloads.MmioRead(0, 1).encode()).payload()).value());
        }
    }

    @Test
    void translateSingleAndBatched() throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            Payloads.TranslateReply ok = translate(vmm, 1, 0x1234_5678L, Payloads.ACCESS_WRITE);
            assertEquals(new Payloads.TranslateResult(Payloads.TRANSLATED, Perm.UR | Perm.UW | Perm.PR | Perm.PW, 0x1_1234_5678L, 0xfff, 0), ok.result());
            assertEquals("", ok.reason());
            Payloads.TranslateReply fault = translate(vmm, 2, 0x1000, 0);
            assertEquals(Payloads.ABORTED, fault.result().status());
            assertEquals("F_TRANSLATION", fault.reason());
            Payloads.TranslateReply stall = translate(vmm, 3, 0x1000, 0);
            assertEquals(new Payloads.TranslateResult(Payloads.STALLED, 0, 0, 0, 7), stall.result());
            List<Payloads.TranslateRequest> reqs = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                reqs.add(new Payloads.TranslateRequest(i % 2 == 0 ? 1 : 2, Payloads.NO_SUBSTREAM, 0x1000L * i + 8, 0));
            }
            List<Payloads.TranslateResult> res = Payloads.decodeBatchReply(vmm.call(Request.IOMMU_TRANSLATE_BATCH, Payloads.encodeBatch(reqs)).payload());
            assertEquals(100, res.size());
            for (int i = 0; i < 100; i++) {
                if (i % 2 == 0) {
                    assertEquals(0x1_0000_0000L + 0x1000L * i + 8, res.get(i).output());
                } else {
                    assertEquals(Payloads.ABORTED, res.get(i).status());
                }
            }
            DeviceSession s = daemon.registry.list().get(0);
            assertEquals(103, s.counters().get(Counter.TRANSLATIONS));
            assertEquals(51, s.counters().get(Counter.TRANSLATION_FAULTS));
            assertEquals(1, s.counters().get(Counter.TRANSLATION_STALLS));
        }
    }

    @Test
    void irqLinesFireTheirEventfds() throws Exception {
        try (FakeVmm vmm = daemon.connect()) {
            int evtq = LibC.eventfd(0, LibC.EFD_CLOEXEC);
            int gerror = LibC.eventfd(0, LibC.EFD_CLOEXEC);
            try {
                assertEquals(0, vmm.ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(0), evtq));
                assertEquals(0, vmm.ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(3), gerror));
                assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(4), evtq));
                assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x18, 8, 3).encode()));
                assertTrue(EventFds.awaitSignal(gerror, 1000));
                assertFalse(EventFds.awaitSignal(evtq, 50));
                assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x18, 8, 0).encode()));
                assertTrue(EventFds.awaitSignal(evtq, 1000));
                // NOFD detaches the line: the interrupt is dropped
                assertEquals(0, vmm.ack(Request.IOMMU_SET_IRQ_FD, Payloads.u64(0x100)));
                assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x18, 8, 0).encode()));
                assertFalse(EventFds.awaitSignal(evtq, 50));
            } finally {
                LibC.closeQuietly(evtq);
                LibC.closeQuietly(gerror);
            }
        }
    }

    /** The VMM's side of the back-end channel: records requests and acks invalidations after a delay. */
    private static final class BackendPeer implements AutoCloseable {
        final VhostUserChannel channel;
        final List<String> log = new CopyOnWriteArrayList<>();
        final Thread thread;
        volatile boolean ackInvalidations = true;

        BackendPeer(int fd, long delayMs) {
            channel = new VhostUserChannel(new UnixSocket(fd));
            thread = new Thread(() -> {
                try {
                    VhostUserMessage m;
                    while ((m = channel.read()) != null) {
                        BackendRequest r = BackendRequest.of(m.request());
                        if (r == BackendRequest.IOMMU_IOTLB_INVALIDATE) {
                            Payloads.IotlbInvalidate inv = Payloads.IotlbInvalidate.decode(m.payload());
                            Thread.sleep(delayMs);
                            log.add("invalidated " + inv.endpoint() + " 0x" + Long.toHexString(inv.iova()) + "+0x" + Long.toHexString(inv.size()) + (m.needReply() ? " need-reply" : ""));
                            if (ackInvalidations) {
                                channel.send(VhostUserMessage.ack(m.request(), 0));
                            }
                        } else if (r == BackendRequest.IOMMU_ATC_INVALIDATE) {
                            Payloads.AtcInvalidate inv = Payloads.AtcInvalidate.decode(m.payload());
                            log.add("atc " + inv.streamId() + " " + inv.substreamId() + " 0x" + Long.toHexString(inv.size()) + (m.needReply() ? " need-reply" : ""));
                            channel.send(VhostUserMessage.ack(m.request(), 0));
                        } else if (r == BackendRequest.IOMMU_PRI_RESPONSE) {
                            Payloads.PriResponse pr = Payloads.PriResponse.decode(m.payload());
                            log.add("pri response " + pr.streamId() + " " + pr.substreamId() + " group " + pr.groupIndex() + " code " + pr.code());
                        } else if (r == BackendRequest.IOMMU_MSI) {
                            Payloads.MsiWrite w = Payloads.MsiWrite.decode(m.payload());
                            log.add("msi 0x" + Long.toHexString(w.address()) + " " + w.data());
                        }
                    }
                } catch (Exception e) {
                    log.add("peer: " + e);
                }
            });
            thread.setDaemon(true);
            thread.start();
        }

        @Override
        public void close() {
            channel.close();
        }
    }

    @Test
    void invalidationCompletesOnlyAfterTheVmmAcks() throws Exception {
        int[] sv = FakeVmm.socketPair();
        try (FakeVmm vmm = daemon.connect(); BackendPeer peer = new BackendPeer(sv[0], 100)) {
            assertEquals(0, vmm.ack(Request.SET_BACKEND_REQ_FD, new byte[0], sv[1]));
            LibC.closeQuietly(sv[1]);
            long t0 = System.nanoTime();
            assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x10, 8, 5).encode()));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            // the MMIO write's ack came after the VMM acknowledged the invalidation
            assertEquals(List.of("invalidated 5 0x1000+0x1000 need-reply"), peer.log);
            assertTrue(ms >= 100, "write completed after " + ms + " ms, before the ack");
            assertEquals(1, Payloads.MmioReadReply.decode(vmm.call(Request.IOMMU_MMIO_READ, new Payloads.MmioRead(0x38, 8).encode()).payload()).value());
            // MSIs go the same way, without an ack
            assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x20, 8, 0x41).encode()));
            for (int i = 0; i < 100 && peer.log.size() < 2; i++) {
                Thread.sleep(10);
            }
            assertEquals("msi 0xfee00000 65", peer.log.get(1));
        }
    }

    /**
     * docs/protocol.md §4.8: the VMM's memfd becomes its translation cache and register mirror;
     * translations land in it, invalidations remove them in place (a message only when the VMM has
     * IOMMU notifiers), the mirror follows the registers and counts the writes applied, a reset
     * empties the cache, and a bad geometry is refused.
     */
    @Test
    void sharedCacheAndRegisterMirror() throws Exception {
        int[] sv = FakeVmm.socketPair();
        dev.iommuemu.bridge.memory.MappedRegion shm = dev.iommuemu.bridge.memory.MappedRegion.allocate("test-shm", 0,
                dev.iommuemu.bridge.fastpath.SharedCache.size(16, 2));
        try (FakeVmm vmm = daemon.connect(); BackendPeer peer = new BackendPeer(sv[0], 0)) {
            assertEquals(0, vmm.ack(Request.SET_BACKEND_REQ_FD, new byte[0], sv[1]));
            LibC.closeQuietly(sv[1]);
            java.nio.ByteBuffer geo = java.nio.ByteBuffer.allocate(16).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            geo.putInt(3).putInt(2).putInt(0).putInt(0);
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_SET_SHARED_CACHE, geo.array(), shm.fd()));
            geo.clear();
            geo.putInt(16).putInt(2).putInt(0).putInt(0);
            assertEquals(0, vmm.ack(Request.IOMMU_SET_SHARED_CACHE, geo.array(), shm.fd()));
            dev.iommuemu.bridge.fastpath.SharedCacheView view = new dev.iommuemu.bridge.fastpath.SharedCacheView(shm);
            assertEquals(2, view.mirrorCount());
            assertEquals(0x08, view.mirrorOffset(0));
            assertEquals(8, view.mirrorSize(0));
            assertEquals(0x38, view.mirrorOffset(1));

            // a posted write: its value and the count of applied writes are in the mirror once it is done
            vmm.send(Request.IOMMU_MMIO_WRITE, false, new Payloads.MmioWrite(8, 8, 0x55aa).encode());
            translate(vmm, 1, 0x1234_5678L, 0); // a request after it: the write is applied
            assertEquals(1, view.writesApplied());
            assertEquals(0x55aa, view.mirrorValue(0));
            // a refused write counts too (the VMM counts what it sent)
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(8, 3, 0).encode()));
            assertEquals(2, view.writesApplied());

            // the translation is in the shared cache
            assertEquals(new dev.iommuemu.bridge.fastpath.SharedCacheView.Hit(0x1234_5000L, 0x1_1234_5000L, 12,
                    Perm.UR | Perm.UW | Perm.PR | Perm.PW), view.lookup(1, 0x1234_5abcL));
            translate(vmm, 1, 0x1008, 0);
            assertEquals(0x1_0000_1000L, view.lookup(1, 0x1000).output());
            assertEquals(null, view.lookup(2, 0x1000), "a fault is not cached");
            translate(vmm, 2, 0x1000, 0);
            assertEquals(null, view.lookup(2, 0x1000));

            // INV (endpoint 1, [0x1000, 0x2000)): removed in place, no message to a VMM without notifiers
            assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x10, 8, 1).encode()));
            assertEquals(null, view.lookup(1, 0x1000));
            assertEquals(0x1_1234_5000L, view.lookup(1, 0x1234_5000L).output(), "outside the range");
            assertEquals(List.of(), peer.log);
            assertEquals(1, view.mirrorValue(1), "INV_DONE in the mirror");
            DeviceSession s = daemon.registry.list().get(0);
            assertEquals(1, s.counters().get(Counter.SHARED_INVALIDATIONS));

            // with a notifier the message goes too, and completes before the write does
            view.setNotifiers(true);
            translate(vmm, 1, 0x1008, 0);
            assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x10, 8, 1).encode()));
            assertEquals(null, view.lookup(1, 0x1000));
            assertEquals(List.of("invalidated 1 0x1000+0x1000 need-reply"), peer.log);
            assertEquals(2, view.mirrorValue(1));

            // a device reset empties the cache
            assertEquals(0, vmm.ack(Request.RESET_DEVICE, new byte[0]));
            assertEquals(null, view.lookup(1, 0x1234_5000L));
            assertEquals(0, view.shifts());
        } finally {
            shm.unmap();
        }
    }

    @Test
    void aVmmThatNeverAcksLosesItsConnection() throws Exception {
        int[] sv = FakeVmm.socketPair();
        try (FakeVmm vmm = daemon.connect(); BackendPeer peer = new BackendPeer(sv[0], 0)) {
            peer.ackInvalidations = false;
            assertEquals(0, vmm.ack(Request.SET_BACKEND_REQ_FD, new byte[0], sv[1]));
            LibC.closeQuietly(sv[1]);
            // the write itself is acknowledged (the model completed), then the daemon closes: the
            // VMM's translation cache can no longer be trusted (ack timeout 1000 ms here)
            vmm.send(Request.IOMMU_MMIO_WRITE, true, new Payloads.MmioWrite(0x10, 8, 1).encode());
            assertTrue(vmm.closedByPeer(3000) || vmm.closedByPeer(3000));
            daemon.awaitNoConnections();
            assertEquals(0, daemon.server.connectionCount());
        }
    }

    @Test
    void atsAndPri() throws Exception {
        int[] sv = FakeVmm.socketPair();
        try (FakeVmm vmm = daemon.connect(); BackendPeer peer = new BackendPeer(sv[0], 0)) {
            assertEquals(0, vmm.ack(Request.SET_BACKEND_REQ_FD, new byte[0], sv[1]));
            LibC.closeQuietly(sv[1]);
            Payloads.TranslateReply ats = Payloads.TranslateReply.decode(vmm.call(Request.IOMMU_ATS_TRANSLATE,
                    new Payloads.TranslateRequest(1, 5, 0x8000, 0).encode()).payload());
            assertEquals(new Payloads.TranslateResult(Payloads.TRANSLATED, Perm.UR | Perm.UW | Perm.PR | Perm.PW, 0x1_0000_8000L, 0xfff, 0), ats.result());
            Payloads.TranslateReply ur = Payloads.TranslateReply.decode(vmm.call(Request.IOMMU_ATS_TRANSLATE,
                    new Payloads.TranslateRequest(2, 5, 0x8000, 0).encode()).payload());
            assertEquals("UR", ur.reason());
            // two requests of group 3; the last is answered with a page response on the back-end channel
            assertEquals(0, vmm.ack(Request.IOMMU_PRI_PAGE_REQUEST, new Payloads.PageRequestMsg(7, 1, 0x4000, Payloads.ACCESS_WRITE, 3).encode()));
            assertEquals(0, vmm.ack(Request.IOMMU_PRI_PAGE_REQUEST, new Payloads.PageRequestMsg(7, 1, 0x5000, Payloads.PAGE_REQUEST_LAST, 3).encode()));
            // ATC invalidation completes only after the ack
            assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x40, 8, 7).encode()));
            assertTrue(peer.log.contains("atc 7 -1 0xffffffffffffffff need-reply"), peer.log.toString());
            for (int i = 0; i < 100 && !peer.log.contains("pri response 7 1 group 3 code 0"); i++) {
                Thread.sleep(10);
            }
            assertTrue(peer.log.contains("pri response 7 1 group 3 code 0"), peer.log.toString());
            DeviceSession s = daemon.registry.list().get(0);
            assertEquals(2, s.counters().get(Counter.ATS_TRANSLATIONS));
            assertEquals(2, s.counters().get(Counter.PAGE_REQUESTS));
            assertEquals(1, s.counters().get(Counter.ATC_INVALIDATIONS));
        }
    }

    @Test
    void sharedMemoryTranslationRing() throws Exception {
        java.lang.invoke.VarHandle i32 = java.lang.invoke.MethodHandles.byteBufferViewVarHandle(int[].class, java.nio.ByteOrder.LITTLE_ENDIAN);
        int entries = 4;
        int bell = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        try (FakeVmm vmm = daemon.connect(); FakeVmm.Memfd ring = new FakeVmm.Memfd(64 + 64 * entries)) {
            byte[] p = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(entries).putInt(0).array();
            assertEquals(0, vmm.ack(Request.IOMMU_SET_TRANSLATE_RING, p, ring.fd, bell));
            java.nio.ByteBuffer v = ring.view;
            for (int k = 0; k < 12; k++) {
                if (k % 4 == 3) {
                    Thread.sleep(20); // the daemon goes to sleep: the doorbell must wake it
                }
                int s = 64 + (k % entries) * 64;
                v.putInt(s + 8, k % 2 == 0 ? 1 : 2).putInt(s + 12, -1).putLong(s + 16, 0x1000L * k + 5).putInt(s + 24, 0);
                i32.setRelease(v, s, 2 * k + 1);
                java.lang.invoke.VarHandle.fullFence();
                if ((int) i32.getAcquire(v, 0) == 1) {
                    EventFds.signal(bell);
                }
                long deadline = System.nanoTime() + 2_000_000_000L;
                while ((int) i32.getAcquire(v, s) != 2 * k + 2) {
                    assertTrue(System.nanoTime() < deadline, "no answer to ring request " + k);
                    Thread.onSpinWait();
                }
                if (k % 2 == 0) {
                    assertEquals(Payloads.TRANSLATED, v.getInt(s + 32));
                    assertEquals(0x1_0000_0000L + 0x1000L * k + 5, v.getLong(s + 40));
                    assertEquals(0xfff, v.getLong(s + 48));
                } else {
                    assertEquals(Payloads.ABORTED, v.getInt(s + 32));
                }
            }
            assertEquals(12, daemon.registry.list().get(0).counters().get(Counter.TRANSLATIONS));
            // a ring of 3 entries is refused, the connection stays
            byte[] bad = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(3).putInt(0).array();
            assertEquals(ProtocolException.EINVAL, vmm.ack(Request.IOMMU_SET_TRANSLATE_RING, bad, ring.fd, bell));
            assertEquals(0, vmm.ack(Request.SET_OWNER, new byte[0]));
        } finally {
            LibC.closeQuietly(bell);
        }
    }
}
