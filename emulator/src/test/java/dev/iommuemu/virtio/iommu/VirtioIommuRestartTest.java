package dev.iommuemu.virtio.iommu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.DriverRing.Buf;
import dev.iommuemu.virtqueue.SplitVirtqueue;
import dev.iommuemu.virtqueue.SplitVirtqueue.UsedElem;
import dev.iommuemu.virtqueue.VirtqRing;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A daemon restart through the journal (docs/device-state-virtio.md "Restart"): the device saves
 * its state at {@link DmaHost#checkpoint()}, just before a batch of used elements becomes visible
 * (virtio 1.x §2.7.8), and a fresh device loaded with that state resumes the rings
 * ({@link VirtioIommuDevice#resumeQueue}). A crash is simulated by a host whose checkpoint saves
 * the state and then throws: nothing after the checkpoint happens, as if the process had died.
 * Asserted: each request's used element reaches the used ring exactly once with its head and
 * length, its effects (mappings) exist, the guest's buffers are never written again once
 * published, and states a device could not have saved are refused with a sentence.
 */
class VirtioIommuRestartTest {
    private static final int QSIZE = RequestGuest.QSIZE;
    private static final long IN = RequestGuest.IN;
    private static final int READ = RequestGuest.READ;
    private static final int WRITE = RequestGuest.WRITE;
    private static final long EVT_BUF = 0x2_0000;

    /** A device with a journal host on {@code g}'s memory, features negotiated (without EVENT_IDX) and both rings started. */
    private static VirtioIommuDevice started(RequestGuest g, JournalHost<VirtioIommuState> host) {
        VirtioIommuDevice d = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, host);
        host.save = d::saveState;
        assertTrue(d.setDriverFeatures(d.deviceFeatures() & ~(1L << VirtqRing.F_EVENT_IDX)));
        for (int q = 0; q < 2; q++) {
            DriverRing r = g.ring(q);
            assertTrue(d.setQueueSize(q, QSIZE));
            assertTrue(d.setQueueAddresses(q, r.descAddr(), r.availAddr(), r.usedAddr()));
            d.setQueueEnabled(q, true);
        }
        return d;
    }

    /**
     * Device A: ATTACH of endpoint 1 to domain 1 completes normally (used slot 0); then three MAPs
     * are published with one kick, and A is killed at the checkpoint before their used elements.
     * Returns the batch's heads.
     */
    private static int[] killedMidBatch(RequestGuest g, JournalHost<VirtioIommuState> ha) {
        VirtioIommuDevice a = started(g, ha);
        g.publish(RequestGuest.attach(1, 1));
        a.queueNotified(0);
        assertEquals(1, g.req.usedIdx());
        assertEquals(1, ha.checkpoints, "one checkpoint per published batch");
        int[] heads = {
            g.publish(RequestGuest.map(1, 0x1000, 0x1fff, 0x5000, READ | WRITE)),
            g.publish(RequestGuest.map(1, 0x2000, 0x3fff, 0x9000, READ)),
            g.publish(RequestGuest.map(1, 0x8000, 0x8fff, 0xc000, WRITE)),
        };
        ha.kill = true;
        assertThrows(JournalHost.Killed.class, () -> a.queueNotified(0));
        return heads;
    }

    @Test
    void killedAtTheCheckpointTheRestartedDevicePublishesTheBatchOnce() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        int[] heads = killedMidBatch(g, ha);
        // What the dead daemon left: the replies written, nothing of the batch in the used ring.
        assertEquals(1, g.req.usedIdx());
        for (int n = 1; n <= 3; n++) {
            assertEquals(Status.OK, g.tail(n), "reply " + n + " written before the checkpoint");
        }
        // The journal holds the ring after the batch and the batch's used elements.
        SplitVirtqueue.State q0 = ha.journal.queues().get(0);
        assertEquals(4, q0.nextAvail());
        assertEquals(4, q0.usedIdx());
        assertEquals(List.of(new UsedElem(heads[0], 4), new UsedElem(heads[1], 4), new UsedElem(heads[2], 4)), q0.pendingUsed());
        assertEquals(List.of(), ha.journal.queues().get(1).pendingUsed());
        assertEquals(3, ha.journal.domains().get(0).mappings().size(), "the MAPs are in the saved domain");

        JournalHost<VirtioIommuState> hb = new JournalHost<>();
        VirtioIommuDevice b = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, hb);
        hb.save = b::saveState;
        b.loadState(ha.journal);
        assertEquals(ha.journal, b.saveState(), "the loaded device saves what it loaded");
        assertTrue(b.queueResumable(0));
        // Until the front-end starts the ring, nothing of the batch is published.
        b.queueNotified(0);
        assertEquals(1, g.req.usedIdx());
        assertTrue(b.resumeQueue(0, QSIZE, g.req.descAddr(), g.req.availAddr(), g.req.usedAddr()));
        assertFalse(b.queueResumable(0));
        assertEquals(4, g.req.usedIdx());
        assertEquals(4, b.saveState().queues().get(0).usedIdx(), "the device's used index is the saved one");
        assertEquals(List.of(), b.saveState().queues().get(0).pendingUsed());
        hb.rec.clear();
        b.queueNotified(0);
        assertEquals(List.of("vq0"), hb.rec.irqs, "the used buffer notification the dead daemon never sent");
        assertEquals(new DriverRing.Used(0, 4), g.req.popUsed(), "the ATTACH, published before the crash");
        for (int n = 0; n < 3; n++) {
            assertEquals(new DriverRing.Used(heads[n], 4), g.req.popUsed(), "MAP " + n + " exactly once");
            assertEquals(Status.OK, g.tail(n + 1), "VIRTIO_IOMMU_S_OK");
        }
        assertEquals(null, g.req.popUsed());
        assertEquals(0x5234L, translated(b, 1, 0x1234, DmaAccess.WRITE));
        assertEquals(0xa010L, translated(b, 1, 0x3010, DmaAccess.READ));
        assertEquals(0xc008L, translated(b, 1, 0x8008, DmaAccess.WRITE));

        // next_avail continues after the batch: the next request is the fifth available entry.
        assertEquals(4, b.queueNextAvail(0));
        int h = g.publish(RequestGuest.unmap(1, 0x2000, 0x3fff));
        b.queueNotified(0);
        assertEquals(new DriverRing.Used(h, 4), g.req.popUsed());
        assertEquals(Status.OK, g.tail(4));
        assertEquals(null, g.req.popUsed());
        assertEquals(5, g.req.usedIdx());
        assertInstanceOf(DmaResult.Aborted.class, b.translate(1, -1, 0x2000, DmaAccess.READ), "unmapped after the restart");
        assertEquals(1L, b.queueCounters(0).get("resumes"));
    }

    @Test
    void killedAfterThePublicationTheRestartedDeviceRewritesNothing() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        VirtioIommuDevice a = started(g, ha);
        g.publish(RequestGuest.attach(1, 1));
        a.queueNotified(0);
        int h1 = g.publish(RequestGuest.map(1, 0x1000, 0x1fff, 0x5000, READ | WRITE));
        int h2 = g.publish(RequestGuest.map(1, 0x4000, 0x4fff, 0x7000, READ));
        a.queueNotified(0); // checkpoint, then published; the daemon dies before its next save
        VirtioIommuState journal = ha.journal;
        assertEquals(List.of(new UsedElem(h1, 4), new UsedElem(h2, 4)), journal.queues().get(0).pendingUsed());
        assertEquals(3, g.req.usedIdx());
        // The guest took the replies and reused the buffers: a marker where the replies were.
        g.mem.store(IN + 0x100, 4, 0xabab_ababL);
        g.mem.store(IN + 0x200, 4, 0xabab_ababL);
        // A detector in the batch's used slots (a driver never writes them; only a device write changes them).
        g.scribbleUsedSlot(1, 0x5a5a_5a5a_5a5a_5a5aL);
        g.scribbleUsedSlot(2, 0x5a5a_5a5a_5a5a_5a5aL);
        byte[] used = g.usedRingBytes();

        JournalHost<VirtioIommuState> hb = new JournalHost<>();
        VirtioIommuDevice b = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, hb);
        hb.save = b::saveState;
        b.loadState(journal);
        assertTrue(b.resumeQueue(0, QSIZE, g.req.descAddr(), g.req.availAddr(), g.req.usedAddr()));
        b.queueNotified(0);
        assertArrayEquals(used, g.usedRingBytes(), "used->idx covered the batch: nothing rewritten");
        assertEquals(0xabab_ababL, g.tail(1));
        assertEquals(0xabab_ababL, g.tail(2));
        assertEquals(0, hb.checkpoints, "nothing to publish, nothing to checkpoint");
        assertEquals(3, b.saveState().queues().get(0).usedIdx());
        assertEquals(0x7123L, translated(b, 1, 0x4123, DmaAccess.READ));
        int h3 = g.publish(RequestGuest.unmap(1, 0x1000, 0x1fff));
        b.queueNotified(0);
        assertEquals(new UsedElem(h3, 4), g.usedSlot(3));
        assertEquals(4, g.req.usedIdx());
    }

    @Test
    void killedWithPartOfTheBatchVisibleOnlyTheRestIsWritten() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        int[] heads = killedMidBatch(g, ha);
        // As if the dead daemon had published the first element: slot 1 written, used->idx 2; the
        // guest consumed it and a marker stands in the slot now.
        g.scribbleUsedSlot(1, 0x5a5a_5a5a_5a5a_5a5aL);
        g.mem.store(g.req.usedAddr() + VirtqRing.USED_IDX, 2, 2);

        JournalHost<VirtioIommuState> hb = new JournalHost<>();
        VirtioIommuDevice b = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, hb);
        hb.save = b::saveState;
        b.loadState(ha.journal);
        assertTrue(b.resumeQueue(0, QSIZE, g.req.descAddr(), g.req.availAddr(), g.req.usedAddr()));
        assertEquals(new UsedElem(0x5a5a_5a5a, 0x5a5a_5a5a), g.usedSlot(1), "a covered slot is not written again");
        assertEquals(new UsedElem(heads[1], 4), g.usedSlot(2));
        assertEquals(new UsedElem(heads[2], 4), g.usedSlot(3));
        assertEquals(4, g.req.usedIdx());
        assertEquals(4, b.saveState().queues().get(0).usedIdx());
        assertEquals(1, hb.checkpoints, "the rest is published through the checkpoint");
    }

    @Test
    void aRingSetUpAgainElsewhereStartsAfresh() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        killedMidBatch(g, ha);
        byte[] oldUsed = g.usedRingBytes();

        JournalHost<VirtioIommuState> hb = new JournalHost<>();
        VirtioIommuDevice b = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, hb);
        hb.save = b::saveState;
        b.loadState(ha.journal);
        // The driver reset the queue and laid it out at another address while no daemon ran.
        DriverRing moved = new DriverRing(g.mem, QSIZE, 0x6000);
        assertFalse(b.resumeQueue(0, QSIZE, moved.descAddr(), moved.availAddr(), moved.usedAddr()));
        assertFalse(b.queueResumable(0), "the mark is gone");
        assertFalse(b.resumeQueue(0, QSIZE, g.req.descAddr(), g.req.availAddr(), g.req.usedAddr()), "only once");
        b.setQueueEnabled(0, false);
        assertTrue(b.setQueueAddresses(0, moved.descAddr(), moved.availAddr(), moved.usedAddr()));
        b.setQueueNextAvail(0, 0);
        b.setQueueEnabled(0, true);
        SplitVirtqueue.State q0 = b.saveState().queues().get(0);
        assertEquals(List.of(), q0.pendingUsed(), "the old ring's waiting elements are dropped");
        assertEquals(0, q0.usedIdx());
        assertEquals(0, q0.nextAvail());
        assertArrayEquals(oldUsed, g.usedRingBytes(), "nothing written to the old ring");
        long o = 0x7_0000;
        byte[] req = RequestGuest.attach(2, 2);
        for (int i = 0; i < req.length; i++) {
            g.mem.store(o + i, 1, req[i] & 0xff);
        }
        g.mem.store(0x7_1000, 4, 0xeeee_eeeeL);
        int h = moved.add(List.of(Buf.out(o, req.length), Buf.in(0x7_1000, 4)));
        moved.publish(h);
        b.queueNotified(0);
        assertEquals(new DriverRing.Used(h, 4), moved.popUsed());
        assertEquals(Status.OK, g.mem.load(0x7_1000, 4).getAsLong());
        assertEquals(1L, b.queueCounters(0).get("resumes_abandoned"));
        assertEquals(0L, b.queueCounters(0).get("resumes"));
    }

    @Test
    void aJournalOlderThanTheGuestsUsedIndexIsNotResumed() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        killedMidBatch(g, ha);
        g.mem.store(g.req.usedAddr() + VirtqRing.USED_IDX, 2, 5); // beyond the saved window [1, 4]
        JournalHost<VirtioIommuState> hb = new JournalHost<>();
        VirtioIommuDevice b = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, hb);
        hb.save = b::saveState;
        b.loadState(ha.journal);
        assertFalse(b.resumeQueue(0, QSIZE, g.req.descAddr(), g.req.availAddr(), g.req.usedAddr()));
        assertEquals(5, g.req.usedIdx(), "nothing written");
        assertEquals(List.of(), b.saveState().queues().get(0).pendingUsed());
    }

    @Test
    void aFaultReportKilledAtTheCheckpointIsDeliveredOnceAfterTheRestart() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        VirtioIommuDevice a = started(g, ha);
        int buf = g.evt.add(List.of(Buf.in(EVT_BUF, 32)));
        g.evt.publish(buf);
        a.queueNotified(1);
        assertEquals(0, ha.checkpoints, "an event buffer alone publishes nothing");
        ha.kill = true;
        // Endpoint 3 is attached to no domain: "Fault reporting" R_DOMAIN, written into the buffer.
        assertThrows(JournalHost.Killed.class, () -> a.translate(3, -1, 0x4321, DmaAccess.READ));
        assertEquals(0, g.evt.usedIdx());
        assertEquals(List.of(), ha.journal.pendingFaults(), "the report is in the buffer, not waiting");
        assertEquals(List.of(new UsedElem(buf, Structs.Fault.SIZE)), ha.journal.queues().get(1).pendingUsed());

        JournalHost<VirtioIommuState> hb = new JournalHost<>();
        VirtioIommuDevice b = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, hb);
        hb.save = b::saveState;
        b.loadState(ha.journal);
        assertTrue(b.resumeQueue(1, QSIZE, g.evt.descAddr(), g.evt.availAddr(), g.evt.usedAddr()));
        b.queueNotified(1);
        assertEquals(List.of("vq1"), hb.rec.irqs);
        assertEquals(new DriverRing.Used(buf, Structs.Fault.SIZE), g.evt.popUsed());
        assertEquals(null, g.evt.popUsed());
        long[] w = {g.mem.load(EVT_BUF, 8).getAsLong(), g.mem.load(EVT_BUF + 8, 8).getAsLong(), g.mem.load(EVT_BUF + 16, 8).getAsLong()};
        assertEquals(Structs.Fault.R_DOMAIN, Structs.Fault.REASON.get(w));
        assertEquals(3, Structs.Fault.ENDPOINT.get(w));
        assertEquals(0x4321, Structs.Fault.ADDRESS.get(w));
        assertEquals(Structs.Fault.F_READ | Structs.Fault.F_ADDRESS, Structs.Fault.FLAGS.get(w));
    }

    @Test
    void aLoadedStateDropsItsMarkOnReset() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        killedMidBatch(g, ha);
        VirtioIommuDevice b = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, new JournalHost<>());
        b.loadState(ha.journal);
        assertTrue(b.queueResumable(0));
        assertTrue(b.queueResumable(1));
        b.reset();
        assertFalse(b.queueResumable(0));
        assertEquals(List.of(), b.saveState().queues().get(0).pendingUsed());
        // A migration's state (rings stopped by GET_VRING_BASE) is never resumed.
        VirtioIommuState s = b.saveState();
        VirtioIommuDevice c = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, new JournalHost<>());
        c.loadState(s);
        assertFalse(c.queueResumable(0));
    }

    // ---- property: a killed and restarted device is indistinguishable from one never killed ----

    /**
     * Two identical guests send the same random batches (ATTACH, DETACH, MAP, UNMAP; one kick per
     * batch). One device is killed at a random checkpoint, either at the checkpoint itself or
     * after its publication; a fresh device loads the last journal, both rings are resumed, and
     * from then on the guest's used ring, every reply, and the device's state equal those of the
     * twin device that was never killed. {@code -Diommuemu.restart.iterations=N} (default 60),
     * {@code -Diommuemu.restart.seed=S}; a failure prints its seed.
     */
    @Test
    void aRestartedDeviceIsIndistinguishableFromOneNeverKilled() {
        long base = Long.getLong("iommuemu.restart.seed", 1L);
        int iterations = Integer.getInteger("iommuemu.restart.iterations", 60);
        int withPending = 0;
        for (int i = 0; i < iterations; i++) {
            long seed = base + i;
            try {
                withPending += crashAndCompare(seed) ? 1 : 0;
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError("seed " + seed + " (rerun with -Diommuemu.restart.seed=" + seed
                        + " -Diommuemu.restart.iterations=1): " + e.getMessage(), e);
            }
        }
        if (iterations >= 20) {
            assertTrue(withPending > iterations / 4, "journals with a batch waiting and not yet visible: " + withPending);
        }
    }

    /** One seed; returns whether the restart had to publish something. */
    private static boolean crashAndCompare(long seed) {
        java.util.Random rnd = new java.util.Random(seed);
        RequestGuest gt = new RequestGuest();
        RequestGuest gk = new RequestGuest();
        JournalHost<VirtioIommuState> ht = new JournalHost<>();
        JournalHost<VirtioIommuState> hk = new JournalHost<>();
        VirtioIommuDevice twin = started(gt, ht);
        VirtioIommuDevice killed = started(gk, hk);
        int before = 1 + rnd.nextInt(12);
        boolean atCheckpoint = rnd.nextBoolean();
        for (int b = 0; b < before; b++) {
            List<byte[]> batch = randomBatch(rnd);
            boolean last = b == before - 1;
            sendBatch(gt, twin, batch);
            hk.kill = last && atCheckpoint;
            if (hk.kill) {
                batch.forEach(gk::publish);
                assertThrows(JournalHost.Killed.class, () -> killed.queueNotified(0));
            } else {
                sendBatch(gk, killed, batch);
            }
        }
        // The journal: what the last checkpoint saved (a kill after the publication loses nothing later).
        JournalHost<VirtioIommuState> hr = new JournalHost<>();
        VirtioIommuDevice restarted = new VirtioIommuDevice(VirtioIommuWorkload.config(), gk.mem, hr);
        hr.save = restarted::saveState;
        restarted.loadState(hk.journal);
        boolean published = atCheckpoint && !hk.journal.queues().get(0).pendingUsed().isEmpty();
        for (int q = 0; q < 2; q++) {
            DriverRing r = gk.ring(q);
            assertTrue(restarted.resumeQueue(q, QSIZE, r.descAddr(), r.availAddr(), r.usedAddr()), "queue " + q + " resumes");
            restarted.queueNotified(q);
        }
        drainUsed(gk);
        compare(gt, twin, gk, restarted);
        for (int b = 0; b < 4; b++) {
            List<byte[]> batch = randomBatch(rnd);
            sendBatch(gt, twin, batch);
            sendBatch(gk, restarted, batch);
        }
        compare(gt, twin, gk, restarted);
        return published;
    }

    private static List<byte[]> randomBatch(java.util.Random rnd) {
        List<byte[]> batch = new ArrayList<>();
        int n = 1 + rnd.nextInt(5);
        for (int i = 0; i < n; i++) {
            int dom = 1 + rnd.nextInt(3);
            int ep = rnd.nextInt(6);
            long iova = rnd.nextInt(32) * 0x1000L;
            long end = iova + (1 + rnd.nextInt(4)) * 0x1000L - 1;
            batch.add(switch (rnd.nextInt(6)) {
                case 0, 1 -> RequestGuest.attach(dom, ep);
                case 2 -> RequestGuest.unmap(dom, iova, end);
                default -> RequestGuest.map(dom, iova, end, rnd.nextInt(256) * 0x1000L, 1 + rnd.nextInt(3));
            });
        }
        return batch;
    }

    /** Publishes the batch, one kick, and takes every used element (freeing the descriptors). */
    private static void sendBatch(RequestGuest g, VirtioIommuDevice d, List<byte[]> batch) {
        batch.forEach(g::publish);
        d.queueNotified(0);
        drainUsed(g);
    }

    private static void drainUsed(RequestGuest g) {
        while (g.req.popUsed() != null) {
            // the guest takes it
        }
    }

    private static void compare(RequestGuest gt, VirtioIommuDevice twin, RequestGuest gk, VirtioIommuDevice restarted) {
        assertArrayEquals(gt.usedRingBytes(), gk.usedRingBytes(), "the used ring");
        for (int n = 0; n < 64; n++) {
            assertEquals(gt.tail(n), gk.tail(n), "reply " + n);
        }
        assertEquals(twin.saveState(), restarted.saveState(), "the device state");
    }

    // ---- refusals: exact sentences, nothing changed ----

    private record Refusal(String what, SplitVirtqueue.State queue, String sentence) {}

    @Test
    void malformedWaitingUsedElementsAreRefused() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        killedMidBatch(g, ha);
        VirtioIommuState s = ha.journal;
        SplitVirtqueue.State q = s.queues().get(0);
        List<UsedElem> seventeen = new ArrayList<>();
        for (int i = 0; i < 17; i++) {
            seventeen.add(new UsedElem(i % QSIZE, 4));
        }
        List<Refusal> vectors = List.of(
                new Refusal("more than the used ring's slots", with(q, q.enabled(), q.broken(), seventeen),
                        "virtqueue 0: it has 17 used elements waiting to be published, more than its 16 used-ring slots"),
                new Refusal("a head beyond the table", with(q, true, false, List.of(new UsedElem(1, 4), new UsedElem(16, 4))),
                        "virtqueue 0: a used element waiting to be published names descriptor 16, beyond its descriptor table of 16"),
                new Refusal("a head read as a negative int", with(q, true, false, List.of(new UsedElem(-1, 4))),
                        "virtqueue 0: a used element waiting to be published names descriptor 4294967295, beyond its descriptor table of 16"),
                new Refusal("a stopped ring", with(q, false, false, q.pendingUsed()),
                        "virtqueue 0: it has used elements waiting to be published on a stopped ring, and a device publishes them "
                        + "before it stops"),
                new Refusal("a broken ring", with(q, true, true, q.pendingUsed()),
                        "virtqueue 0: it has used elements waiting to be published, but a ring fault stopped it, after which "
                        + "nothing is published"));
        VirtioIommuDevice target = new VirtioIommuDevice(VirtioIommuWorkload.config(), new SparseGuestMemory(0, 0x10_0000),
                new JournalHost<>());
        target.loadState(s);
        VirtioIommuState before = target.saveState();
        for (Refusal r : vectors) {
            List<SplitVirtqueue.State> qs = new ArrayList<>(s.queues());
            qs.set(0, r.queue());
            VirtioIommuState bad = new VirtioIommuState(s.identity(), s.driverFeatures(), s.bypass(), s.topology(), s.domains(),
                    s.pendingFaults(), qs, s.nesting());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> target.loadState(bad), r.what());
            assertEquals("virtio-iommu state refused: " + r.sentence() + ".", e.getMessage(), r.what());
            assertEquals(before, target.saveState(), r.what() + ": a refused state changes nothing");
            assertTrue(target.queueResumable(0), r.what() + ": the loaded state keeps its mark");
        }
    }

    private static SplitVirtqueue.State with(SplitVirtqueue.State q, boolean enabled, boolean broken, List<UsedElem> pending) {
        return new SplitVirtqueue.State(q.size(), q.descAddr(), q.availAddr(), q.usedAddr(), enabled, broken, q.nextAvail(),
                q.usedIdx(), q.signalledUsed(), pending);
    }

    private static long translated(VirtioIommuDevice d, int ep, long iova, DmaAccess a) {
        DmaResult r = d.translate(ep, -1, iova, a);
        return assertInstanceOf(DmaResult.Translated.class, r, r.toString()).entry().translate(iova);
    }

    /**
     * docs/protocol.md §4.13 after a restart: the loaded ring holds the dead daemon's batch (three
     * used elements waiting), and the VMM's replayed log says it served one more request after
     * them (next available 5, used index 5): the batch was published, so the ring takes the VMM's
     * positions and drops the waiting elements. A used index that does not cover them is refused
     * (counted, the ring unchanged): the VMM's completions would lie over the device's own.
     */
    @Test
    void aRestartedRingTakesTheVmmsPositionsOnlyPastItsWaitingElements() {
        RequestGuest g = new RequestGuest();
        JournalHost<VirtioIommuState> ha = new JournalHost<>();
        killedMidBatch(g, ha);
        VirtioIommuDevice b = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, new JournalHost<>());
        b.loadState(ha.journal);
        assertEquals(1, b.applyVmmRequests(List.of(), 5, 2), "used index 2 leaves two of the three elements uncovered");
        assertEquals(1L, (long) b.counters().asMap().get("vmm_positions_refused"));
        assertEquals(ha.journal.queues().get(0), b.saveState().queues().get(0), "the ring as loaded");
        assertEquals(0, b.applyVmmRequests(List.of(), 5, 5));
        SplitVirtqueue.State q = b.saveState().queues().get(0);
        assertEquals(5, q.nextAvail());
        assertEquals(5, q.usedIdx());
        assertEquals(List.of(), q.pendingUsed());
    }
}
