package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.client.ControlException;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.testing.FakeDevice;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.testing.TestDaemon;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.proto.v1.Event;
import dev.iommuemu.proto.v1.SessionInfo;
import dev.iommuemu.proto.v1.StatusResponse;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.WalkResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The protobuf control API through the Java client, with a protobuf-only client acting as the VMM. */
class ControlApiTest {
    private TestDaemon daemon;
    private ControlServer control;
    private Path controlPath;

    @BeforeEach
    void start() throws Exception {
        daemon = new TestDaemon("capi");
        controlPath = FakeVmm.socketPath("ctl");
        control = new ControlServer(controlPath, daemon.registry, daemon.socket.toString());
    }

    @AfterEach
    void stop() {
        control.close();
        daemon.close();
    }

    private static byte[] le64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    @Test
    void aProtobufOnlyClientActsAsTheVmm() throws Exception {
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(controlPath)));
        try (ControlClient c = ControlClient.connect(controlPath)) {
            SessionInfo s = c.createSession("fake", "small");
            assertEquals("fake", s.getModel());
            assertEquals("small", s.getProfile());
            assertEquals(FakeDevice.LINES, s.getIrqLinesList());
            long id = s.getId();
            s = c.addMemory(id, 0, 1 << 20);
            assertEquals(1, s.getRegionsCount());
            assertEquals(1 << 20, s.getRegions(0).getSize());
            // the fake's stream 4 walks a table at guest physical 0: page 2 -> 0x7000 read-only
            c.writeMemory(id, 16, le64(0x7000 | 1));
            assertArrayEquals(le64(0x7001), c.readMemory(id, 16, 8));
            TranslateResponse t = c.translate(id, 4, -1, 0x2345, ControlClient.access(false, false, false));
            assertEquals(0x7345, t.getTranslated().getOutputAddress());
            assertEquals(0xfff, t.getTranslated().getAddressMask());
            assertTrue(t.getTranslated().getRead());
            assertEquals(false, t.getTranslated().getWrite());
            assertEquals(Perm.UR | Perm.PR, t.getTranslated().getPerm());
            assertEquals("F_PERMISSION", c.translate(id, 4, -1, 0x2345, ControlClient.access(true, false, false)).getFault().getType());
            assertTrue(c.translate(id, 3, -1, 0, ControlClient.access(false, false, false)).getFault().getStall(), "a diagnostic holds nothing");
            // registers
            assertEquals(FakeDevice.ID, c.readRegister(id, 0, 8));
            c.writeRegister(id, 8, 8, 0xabc);
            assertEquals(0xabc, c.readRegister(id, 8, 8));
            c.writeRegister(id, 0x28, 8, 16);
            assertEquals(0x7001, c.readRegister(id, 0x30, 8), "the model reads the memory the client wrote");
            ControlException bad = assertThrows(ControlException.class, () -> c.readRegister(id, 0x2000, 4));
            assertEquals(ProtocolException.EINVAL, bad.errno());
            // diagnostics
            assertEquals("STE", c.decodeSte(id, 5).getName());
            assertEquals(0x8000 + 64 * 5, c.decodeSte(id, 5).getAddress());
            assertEquals("no CD tables in the fake model", c.decodeCd(id, 1, 0).getError());
            WalkResponse w = c.walk(id, 4, -1, 0x3000, ControlClient.access(false, false, false));
            assertEquals(1, w.getStepsCount());
            assertEquals(24, w.getSteps(0).getDescriptorAddress());
            assertEquals(dev.iommuemu.proto.v1.DescriptorKind.DESCRIPTOR_KIND_INVALID, w.getSteps(0).getKind());
            assertEquals("F_TRANSLATION", w.getResult().getFault().getType());
            assertEquals(24, w.getResult().getFault().getDescriptorAddress());
            assertEquals(0, w.getResult().getFault().getDescriptorValue());
            // injected page request and fault
            c.call(dev.iommuemu.proto.v1.ControlRequest.newBuilder().setInject(dev.iommuemu.proto.v1.InjectRequest.newBuilder().setSession(id)
                    .setPageRequest(dev.iommuemu.proto.v1.PageRequest.newBuilder().setStreamId(9).setAddress(0x6000).setGroupIndex(2).setLast(true))));
            // the PCIe Page Request fields (PCIe r6.0 §10.4.1): read + write, and a Stop PASID marker
            c.call(dev.iommuemu.proto.v1.ControlRequest.newBuilder().setInject(dev.iommuemu.proto.v1.InjectRequest.newBuilder().setSession(id)
                    .setPageRequest(dev.iommuemu.proto.v1.PageRequest.newBuilder().setStreamId(9).setAddress(0x7000).setGroupIndex(3)
                            .setRead(true).setAccess(dev.iommuemu.proto.v1.Access.newBuilder().setWrite(true)))));
            c.call(dev.iommuemu.proto.v1.ControlRequest.newBuilder().setInject(dev.iommuemu.proto.v1.InjectRequest.newBuilder().setSession(id)
                    .setPageRequest(dev.iommuemu.proto.v1.PageRequest.newBuilder().setStreamId(9).setSubstreamId(5).setGroupIndex(4).setStop(true))));
            ControlException noPasid = assertThrows(ControlException.class, () -> c.call(dev.iommuemu.proto.v1.ControlRequest.newBuilder()
                    .setInject(dev.iommuemu.proto.v1.InjectRequest.newBuilder().setSession(id)
                            .setPageRequest(dev.iommuemu.proto.v1.PageRequest.newBuilder().setStreamId(9).setStop(true)))));
            assertTrue(noPasid.getMessage().contains("needs a PASID"), noPasid.getMessage());
            List<String> prs = daemon.fake.created.get(0).calls.stream().filter(x -> x.startsWith("page request")).toList();
            assertEquals(List.of(
                    "page request PageRequest[streamId=9, substreamId=-1, address=24576, groupIndex=2, read=true, write=false, exec=false, priv=false, last=true, stop=false]",
                    "page request PageRequest[streamId=9, substreamId=-1, address=28672, groupIndex=3, read=true, write=true, exec=false, priv=false, last=false, stop=false]",
                    "page request PageRequest[streamId=9, substreamId=5, address=0, groupIndex=4, read=false, write=false, exec=false, priv=false, last=true, stop=true]"),
                    prs);
            assertEquals("F_TRANSLATION", c.call(dev.iommuemu.proto.v1.ControlRequest.newBuilder().setInject(dev.iommuemu.proto.v1.InjectRequest.newBuilder()
                    .setSession(id).setFault(dev.iommuemu.proto.v1.TranslateRequest.newBuilder().setStreamId(2).setIova(0x1000)))).getTranslate().getFault().getType());
            // counters
            Map<String, Long> counters = c.counters(id);
            assertEquals(1L, counters.get("translations")); // the injected fault: Translate and Walk are diagnostics
            assertEquals(1L, counters.get("faults"));
            assertEquals(3L, counters.get("page_requests"));
            assertEquals(0L, counters.get("stalls"));
            assertEquals(0L, counters.get("fake_invalidations"));
            assertTrue(c.counters(0).get("translations") >= 1);
            // status lists the session
            StatusResponse st = c.status();
            assertEquals("fake", st.getDefaultModel());
            assertTrue(st.getSessionsList().stream().anyMatch(x -> x.getId() == id && x.getOrigin().equals("control")));
            assertTrue(st.getModelsList().stream().anyMatch(m -> m.getName().equals("identity")));
        }
        // the session ended with its connection
        for (int i = 0; i < 100 && !daemon.registry.list().isEmpty(); i++) {
            Thread.sleep(10);
        }
        assertEquals(List.of(), daemon.registry.list());
    }

    @Test
    void errorsCarryAnErrno() throws Exception {
        try (ControlClient c = ControlClient.connect(controlPath); FakeVmm vmm = daemon.connect()) {
            vmm.call(Request.GET_FEATURES, new byte[0]);
            long vmmSession = daemon.registry.list().get(0).id();
            assertEquals(ProtocolException.ENOENT, assertThrows(ControlException.class, () -> c.readRegister(999, 0, 4)).errno());
            assertEquals(ProtocolException.EPERM, assertThrows(ControlException.class, () -> c.addMemory(vmmSession, 0, 4096)).errno());
            assertEquals(ProtocolException.EPERM, assertThrows(ControlException.class, () -> c.closeSession(vmmSession)).errno());
            assertEquals(ProtocolException.EINVAL, assertThrows(ControlException.class, () -> c.createSession("nope", "")).errno());
            // session 0 = the only session (the VMM's)
            assertEquals(FakeDevice.ID, c.readRegister(0, 0, 8));
            c.createSession("", "");
            assertEquals(ProtocolException.EINVAL, assertThrows(ControlException.class, () -> c.readRegister(0, 0, 8)).errno());
            assertEquals(ProtocolException.EFAULT, assertThrows(ControlException.class, () -> c.readMemory(vmmSession, 0, 8)).errno());
        }
    }

    @Test
    void eventsAreStreamedAsTheyHappen() throws Exception {
        List<Event> got = new CopyOnWriteArrayList<>();
        CountDownLatch three = new CountDownLatch(3);
        Thread follower = new Thread(() -> {
            try (ControlClient f = ControlClient.connect(controlPath)) {
                f.followEvents(0, e -> {
                    got.add(e);
                    three.countDown();
                    return three.getCount() > 0;
                });
            } catch (Exception e) {
                got.add(Event.newBuilder().setKind("error " + e).build());
                while (three.getCount() > 0) {
                    three.countDown();
                }
            }
        });
        follower.start();
        Thread.sleep(200); // the subscription is confirmed before events are sent; give it time to connect
        try (FakeVmm vmm = daemon.connect()) {
            Payloads.TranslateReply r = Payloads.TranslateReply.decode(vmm.call(Request.IOMMU_TRANSLATE,
                    new Payloads.TranslateRequest(2, Payloads.NO_SUBSTREAM, 0x4000, 0).encode()).payload());
            assertEquals("F_TRANSLATION", r.reason());
            assertEquals(0, vmm.ack(Request.IOMMU_MMIO_WRITE, new Payloads.MmioWrite(0x18, 8, 1).encode()));
            assertTrue(three.await(5, TimeUnit.SECONDS));
        }
        follower.join(2000);
        assertEquals(List.of("session_open", "fault", "irq"), got.stream().map(Event::getKind).toList());
        assertTrue(got.get(1).getDetail().startsWith("F_TRANSLATION sid=2 ssid=-1 iova=0x4000"), got.get(1).getDetail());
        assertEquals("priq", got.get(2).getDetail());
    }

    @Test
    void malformedAndOversizedRequestsCloseOnlyThatClient() throws Exception {
        try (ControlClient good = ControlClient.connect(controlPath)) {
            for (byte[] junk : new byte[][] {
                    {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x0f}, // a 4 GiB length
                    {0x05, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff}, // not a message
                    {0x10, 0x01}}) { // truncated
                try (java.nio.channels.SocketChannel ch = java.nio.channels.SocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
                    ch.connect(java.net.UnixDomainSocketAddress.of(controlPath));
                    ch.write(ByteBuffer.wrap(junk));
                    ch.shutdownOutput();
                    assertEquals(-1, ch.read(ByteBuffer.allocate(16)), "closed without an answer");
                }
            }
            assertEquals("fake", good.status().getDefaultModel());
        }
    }
}
