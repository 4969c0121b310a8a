package dev.iommuemu.bridge.device.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.state.DeviceStateCodec;
import dev.iommuemu.bridge.state.VirtioIommuStateCodec;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.proto.devstate.v1.DeviceState;
import dev.iommuemu.proto.devstate.v1.VirtioIommuState;
import dev.iommuemu.proto.devstate.v1.VirtioUsedElem;
import dev.iommuemu.virtio.iommu.JournalHost;
import dev.iommuemu.virtio.iommu.RecordingHost;
import dev.iommuemu.virtio.iommu.RequestGuest;
import dev.iommuemu.virtio.iommu.Status;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.VirtqRing;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A daemon restart through the seam the session drives (docs/device-state-virtio.md "Restart"):
 * the host's restart journal saves the blob ({@link BridgedDevice#saveState()}) at every
 * {@link DmaHost#checkpoint()}; a SIGKILL is a checkpoint that saves and throws. A new device of
 * the same profile loads the last blob, the front-end starts the rings again with
 * {@link BridgedDevice#queueStart} (SET_VRING_NUM/ADDR/BASE/KICK), and the requests the guest saw
 * handled, or will see completed, are there exactly once.
 */
class VirtioIommuRestartBridgeTest {
    private static final int QSIZE = RequestGuest.QSIZE;

    private static BridgedDevice bridge(RequestGuest g, JournalHost<byte[]> host) {
        BridgedDevice d = new VirtioIommuBridge.Factory().create("default", new DeviceContext(g.mem, host));
        host.save = d::saveState;
        return d;
    }

    private static BridgedDevice.Vring vring(DriverRing r, int nextAvail) {
        return new BridgedDevice.Vring(QSIZE, r.descAddr(), r.availAddr(), r.usedAddr(), nextAvail);
    }

    /** The front-end (re)starts both rings; {@code nextAvail} is its SET_VRING_BASE. */
    private static void start(BridgedDevice d, RequestGuest g, int nextAvail) {
        d.queueStart(0, vring(g.req, nextAvail));
        d.queueStart(1, vring(g.evt, 0));
    }

    /** Daemon A: ATTACH (used slot 0), then three MAPs in one kick, killed at the checkpoint; returns their heads. */
    private static int[] killedMidBatch(RequestGuest g, JournalHost<byte[]> ha) {
        BridgedDevice a = bridge(g, ha);
        a.setVirtioFeatures(a.virtioFeatures() & ~(1L << VirtqRing.F_EVENT_IDX));
        start(a, g, 0);
        g.publish(RequestGuest.attach(1, 1));
        a.queueNotified(0);
        assertEquals(1, g.req.usedIdx());
        int[] heads = {
            g.publish(RequestGuest.map(1, 0x1000, 0x1fff, 0x5000, RequestGuest.READ | RequestGuest.WRITE)),
            g.publish(RequestGuest.map(1, 0x2000, 0x3fff, 0x9000, RequestGuest.READ)),
            g.publish(RequestGuest.map(1, 0x8000, 0x8fff, 0xc000, RequestGuest.WRITE)),
        };
        ha.kill = true;
        assertThrows(JournalHost.Killed.class, () -> a.queueNotified(0));
        assertEquals(1, g.req.usedIdx(), "nothing of the batch visible");
        return heads;
    }

    private static VirtioIommuState inner(byte[] blob) throws com.google.protobuf.InvalidProtocolBufferException {
        return DeviceState.parseFrom(blob).getVirtioIommu();
    }

    private static byte[] wrap(VirtioIommuState s) {
        return DeviceStateCodec.encode(DeviceStateCodec.envelope("virtio-iommu", "default").setVirtioIommu(s).build());
    }

    @Test
    void theRestartedDaemonPublishesTheKilledBatchOnceAndContinues() throws Exception {
        RequestGuest g = new RequestGuest();
        JournalHost<byte[]> ha = new JournalHost<>();
        int[] heads = killedMidBatch(g, ha);
        VirtioIommuState m = inner(ha.journal);
        var q0 = m.getQueues(0);
        assertEquals(4, q0.getNextAvail());
        assertEquals(4, q0.getUsedIdx());
        assertEquals(List.of(elem(heads[0], 4), elem(heads[1], 4), elem(heads[2], 4)), q0.getPendingUsedList());
        assertArrayEquals(m.toByteArray(), VirtioIommuStateCodec.encode(VirtioIommuStateCodec.decode(m)).toByteArray(),
                "the waiting used elements round-trip byte for byte");

        JournalHost<byte[]> hb = new JournalHost<>();
        BridgedDevice b = bridge(g, hb);
        b.loadState(ha.journal);
        assertArrayEquals(ha.journal, b.saveState(), "the loaded device saves the same blob");
        b.loadState(ha.journal); // rings loaded running and not started count as stopped: a second load is taken
        // The front-end cannot know how far daemon A got: its SET_VRING_BASE (here 1, the used index) is ignored.
        start(b, g, 1);
        assertEquals(List.of("vq0"), hb.rec.irqs, "the notification daemon A never sent");
        assertEquals(new DriverRing.Used(0, 4), g.req.popUsed());
        for (int n = 0; n < 3; n++) {
            assertEquals(new DriverRing.Used(heads[n], 4), g.req.popUsed(), "MAP " + n + " exactly once");
            assertEquals(Status.OK, g.tail(n + 1), "VIRTIO_IOMMU_S_OK");
        }
        assertEquals(null, g.req.popUsed(), "no request handled twice");
        assertEquals(4, inner(b.saveState()).getQueues(0).getUsedIdx());
        assertEquals(0, inner(b.saveState()).getQueues(0).getPendingUsedCount());
        DmaResult r = b.iommu().translate(1, -1, 0x1234, DmaAccess.WRITE);
        assertEquals(0x5234L, assertInstanceOf(DmaResult.Translated.class, r, r.toString()).entry().translate(0x1234));
        int h = g.publish(RequestGuest.unmap(1, 0x8000, 0x8fff));
        b.queueNotified(0);
        assertEquals(new DriverRing.Used(h, 4), g.req.popUsed(), "the next request is the fifth available entry");
        assertEquals(Status.OK, g.tail(4));
        assertEquals(5, g.req.usedIdx());
    }

    @Test
    void killedAfterThePublicationNothingIsWrittenAgain() throws Exception {
        RequestGuest g = new RequestGuest();
        JournalHost<byte[]> ha = new JournalHost<>();
        BridgedDevice a = bridge(g, ha);
        a.setVirtioFeatures(a.virtioFeatures() & ~(1L << VirtqRing.F_EVENT_IDX));
        start(a, g, 0);
        g.publish(RequestGuest.attach(1, 1));
        g.publish(RequestGuest.map(1, 0x1000, 0x1fff, 0x5000, RequestGuest.READ));
        a.queueNotified(0); // checkpoint, then published; daemon A dies before its next save
        assertEquals(2, inner(ha.journal).getQueues(0).getPendingUsedCount());
        assertEquals(2, g.req.usedIdx());
        g.mem.store(RequestGuest.IN, 4, 0xabab_ababL); // the guest reused the reply buffers
        g.mem.store(RequestGuest.IN + 0x100, 4, 0xabab_ababL);
        g.scribbleUsedSlot(0, 0x5a5a_5a5a_5a5a_5a5aL); // a detector of device writes
        g.scribbleUsedSlot(1, 0x5a5a_5a5a_5a5a_5a5aL);
        byte[] used = g.usedRingBytes();

        JournalHost<byte[]> hb = new JournalHost<>();
        BridgedDevice b = bridge(g, hb);
        b.loadState(ha.journal);
        start(b, g, 2);
        assertArrayEquals(used, g.usedRingBytes(), "used->idx covered the batch");
        assertEquals(0xabab_ababL, g.tail(0));
        assertEquals(0xabab_ababL, g.tail(1));
        assertEquals(2, inner(b.saveState()).getQueues(0).getUsedIdx());
    }

    @Test
    void aRingStartedElsewhereStartsAfreshFromTheFrontEndsBase() throws Exception {
        RequestGuest g = new RequestGuest();
        JournalHost<byte[]> ha = new JournalHost<>();
        killedMidBatch(g, ha);
        byte[] oldUsed = g.usedRingBytes();
        JournalHost<byte[]> hb = new JournalHost<>();
        BridgedDevice b = bridge(g, hb);
        b.loadState(ha.journal);
        DriverRing moved = new DriverRing(g.mem, QSIZE, 0x6000);
        b.queueStart(0, vring(moved, 0));
        var q0 = inner(b.saveState()).getQueues(0);
        assertEquals(moved.usedAddr(), q0.getUsedAddr());
        assertEquals(0, q0.getNextAvail(), "SET_VRING_BASE's");
        assertEquals(0, q0.getUsedIdx(), "the new ring's used->idx");
        assertEquals(0, q0.getPendingUsedCount());
        assertArrayEquals(oldUsed, g.usedRingBytes(), "nothing written to the old ring");
        assertEquals(List.of(), hb.rec.irqs);
    }

    @Test
    void malformedWaitingUsedElementsAreRefusedWithASentence() throws Exception {
        RequestGuest g = new RequestGuest();
        JournalHost<byte[]> ha = new JournalHost<>();
        killedMidBatch(g, ha);
        VirtioIommuState m = inner(ha.journal);
        BridgedDevice target = bridge(new RequestGuest(), new JournalHost<>());
        byte[] before = target.saveState();
        record Vector(String what, VirtioIommuState state, String sentence) {}
        var tooMany = m.toBuilder();
        for (int i = 0; i < QSIZE - 2; i++) {
            tooMany.getQueuesBuilder(0).addPendingUsed(elem(i, 4));
        }
        var beyond = m.toBuilder();
        beyond.getQueuesBuilder(0).setPendingUsed(1, elem(QSIZE, 4));
        var stopped = m.toBuilder();
        stopped.getQueuesBuilder(0).setEnabled(false);
        var broken = m.toBuilder();
        broken.getQueuesBuilder(1).setBroken(true).addPendingUsed(elem(0, 24));
        List<Vector> vectors = List.of(
                new Vector("17 waiting on a ring of 16", tooMany.build(),
                        "virtqueue 0: it has 17 used elements waiting to be published, more than its 16 used-ring slots"),
                new Vector("a head beyond the descriptor table", beyond.build(),
                        "virtqueue 0: a used element waiting to be published names descriptor 16, beyond its descriptor table of 16"),
                new Vector("a stopped ring", stopped.build(),
                        "virtqueue 0: it has used elements waiting to be published on a stopped ring, and a device publishes them "
                        + "before it stops"),
                new Vector("a broken ring", broken.build(),
                        "virtqueue 1: it has used elements waiting to be published, but a ring fault stopped it, after which "
                        + "nothing is published"));
        for (Vector v : vectors) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> target.loadState(wrap(v.state())), v.what());
            assertEquals("virtio-iommu state refused: " + v.sentence() + ".", e.getMessage(), v.what());
            assertArrayEquals(before, target.saveState(), v.what() + ": nothing changed");
        }
        target.loadState(ha.journal);
        assertTrue(inner(target.saveState()).getQueues(0).getPendingUsedCount() == 3, "the journal's own blob is taken");
    }

    private static VirtioUsedElem elem(int id, int len) {
        return VirtioUsedElem.newBuilder().setId(id).setLen(len).build();
    }
}
