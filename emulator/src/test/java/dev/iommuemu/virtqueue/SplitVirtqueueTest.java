package dev.iommuemu.virtqueue;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.virtqueue.DriverRing.Buf;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class SplitVirtqueueTest {
    private static final int SIZE = 8;
    private static final long RING = 0x10000;
    private static final long HOLE = 0x20_0000; // memory is [0, 1 MiB) and [3 MiB, 4 MiB)

    private SparseGuestMemory mem;
    private DriverRing drv;
    private SplitVirtqueue vq;

    @BeforeEach
    void setUp() {
        mem = new SparseGuestMemory(0, 0x10_0000, 0x30_0000, 0x10_0000);
        drv = new DriverRing(mem, SIZE, RING);
        vq = new SplitVirtqueue(mem, 256);
        assertTrue(vq.setSize(SIZE));
        assertTrue(vq.setAddresses(drv.descAddr(), drv.availAddr(), drv.usedAddr()));
        vq.setFeatures(false, true);
        vq.setEnabled(true);
    }

    @Test
    void ringLayoutMatchesTheSpecTable() {
        // §2.7: descriptor table 16*N, available ring 6+2N, used ring 6+8N.
        assertEquals(RING + 16 * SIZE, drv.availAddr());
        assertEquals(RING + 16 * SIZE + 6 + 2 * SIZE + 2, drv.usedAddr()); // 4-aligned
        assertEquals(4 + 2 * SIZE, VirtqRing.usedEventOffset(SIZE));
        assertEquals(4 + 8 * SIZE, VirtqRing.availEventOffset(SIZE));
    }

    @Test
    void readsAndWritesAcrossSegmentsAndFillsTheUsedRing() {
        mem.write(0x1000, new byte[] {1, 2, 3}, 0, 3);
        mem.write(0x2000, new byte[] {4, 5}, 0, 2);
        int head = drv.add(List.of(Buf.out(0x1000, 3), Buf.out(0x2000, 2), Buf.in(0x3000, 2), Buf.in(0x4000, 2)));
        drv.publish(head);
        DescriptorChain c = vq.pop();
        assertTrue(c.ok());
        assertEquals(head, c.head());
        assertEquals(5, c.readableLength());
        assertEquals(4, c.writableLength());
        assertEquals(4, c.descriptors());
        byte[] b = new byte[4];
        assertTrue(c.read(mem, 1, b, 0, 4));
        assertArrayEquals(new byte[] {2, 3, 4, 5}, b);
        assertFalse(c.read(mem, 2, b, 0, 4), "past the readable part");
        assertTrue(c.write(mem, 1, new byte[] {9, 8, 7}, 0, 3));
        assertEquals(9, mem.load(0x3001, 1).getAsLong());
        assertEquals(0x0708, mem.load(0x4000, 2).getAsLong());
        assertNull(vq.pop());
        assertTrue(vq.push(head, 3));
        // struct virtq_used_elem { le32 id; le32 len; } at ring[0]; used->idx = 1.
        assertEquals(head, mem.get32(drv.usedAddr() + 4));
        assertEquals(3, mem.get32(drv.usedAddr() + 8));
        assertEquals(1, drv.usedIdx());
        assertEquals(new DriverRing.Used(head, 3), drv.popUsed());
    }

    @Test
    void indirectTablesAloneAndAfterDirectDescriptors() {
        int head = drv.addIndirect(List.of(Buf.out(0x1000, 4), Buf.in(0x2000, 4)), 0x8000);
        drv.publish(head);
        DescriptorChain c = vq.pop();
        assertTrue(c.ok(), c.toString());
        assertEquals(4, c.readableLength());
        assertEquals(4, c.writableLength());
        assertEquals(3, c.descriptors());

        // §2.7.5.3.2: zero or more direct descriptors followed by one indirect descriptor; its WRITE flag is ignored.
        drv.writeDescAt(0x9000, 0x2000, 4, VirtqDesc.F_WRITE, 0);
        int d0 = drv.allocDesc();
        int d1 = drv.allocDesc();
        drv.writeDesc(d0, 0x1000, 8, VirtqDesc.F_NEXT, d1);
        drv.writeDesc(d1, 0x9000, 16, VirtqDesc.F_INDIRECT | VirtqDesc.F_WRITE, 0);
        drv.publish(d0);
        c = vq.pop();
        assertTrue(c.ok(), c.toString());
        assertEquals(8, c.readableLength());
        assertEquals(4, c.writableLength());
    }

    private DescriptorChain popOne(int head) {
        drv.publish(head);
        DescriptorChain c = vq.pop();
        assertEquals(head, c.head());
        return c;
    }

    @Test
    void malformedChainsAreReportedNotThrown() {
        // A loop: 0 -> 1 -> 2 -> 1.
        drv.writeDesc(0, 0x1000, 4, VirtqDesc.F_NEXT, 1);
        drv.writeDesc(1, 0x2000, 4, VirtqDesc.F_NEXT | VirtqDesc.F_WRITE, 2);
        drv.writeDesc(2, 0x2000, 4, VirtqDesc.F_NEXT | VirtqDesc.F_WRITE, 1);
        DescriptorChain c = popOne(0);
        assertEquals(ChainError.TOO_LONG, c.error());
        assertEquals(SIZE, c.descriptors());
        assertTrue(c.writableLength() >= 4, "the writable tail gathered before the loop stays usable");

        drv.writeDesc(2, 0x1000, 4, VirtqDesc.F_NEXT, SIZE);
        assertEquals(ChainError.NEXT_OUT_OF_RANGE, popOne(2).error());

        drv.writeDesc(3, HOLE, 4, 0, 0);
        assertEquals(ChainError.BUFFER_ABORT, popOne(3).error());

        drv.writeDesc(4, 0xf_fff0, 0x20, 0, 0); // runs off the end of the first region
        assertEquals(ChainError.BUFFER_ABORT, popOne(4).error());

        drv.writeDesc(5, 0x2000, 4, VirtqDesc.F_WRITE | VirtqDesc.F_NEXT, 6);
        drv.writeDesc(6, 0x1000, 4, 0, 0);
        c = popOne(5);
        assertEquals(ChainError.READABLE_AFTER_WRITABLE, c.error());
        assertEquals(4, c.writableLength());

        drv.writeDesc(7, 0x9000, 15, VirtqDesc.F_INDIRECT, 0);
        assertEquals(ChainError.INDIRECT_BAD_LENGTH, popOne(7).error());

        drv.writeDesc(0, 0x9000, 16, VirtqDesc.F_INDIRECT | VirtqDesc.F_NEXT, 1);
        assertEquals(ChainError.INDIRECT_WITH_NEXT, popOne(0).error());

        drv.writeDescAt(0xa000, 0x9000, 16, VirtqDesc.F_INDIRECT, 0);
        drv.writeDesc(1, 0xa000, 16, VirtqDesc.F_INDIRECT, 0);
        assertEquals(ChainError.NESTED_INDIRECT, popOne(1).error());

        drv.writeDesc(2, HOLE, 32, VirtqDesc.F_INDIRECT, 0);
        assertEquals(ChainError.DESC_FETCH_ABORT, popOne(2).error());

        // An indirect table whose chain loops is bounded by the queue size too.
        drv.writeDescAt(0xb000, 0x1000, 1, VirtqDesc.F_NEXT, 1);
        drv.writeDescAt(0xb010, 0x1000, 1, VirtqDesc.F_NEXT, 0);
        drv.writeDesc(3, 0xb000, 32, VirtqDesc.F_INDIRECT, 0);
        assertEquals(ChainError.TOO_LONG, popOne(3).error());

        assertEquals(10, vq.malformedChains());
        assertEquals(2, vq.chainErrors(ChainError.TOO_LONG));
        assertFalse(vq.broken());
    }

    @Test
    void indirectWithoutTheFeatureAndOutOfRangeHeads() {
        vq.setFeatures(false, false);
        drv.writeDesc(0, 0x9000, 16, VirtqDesc.F_INDIRECT, 0);
        assertEquals(ChainError.INDIRECT_NOT_NEGOTIATED, popOne(0).error());
        drv.publish(SIZE + 3);
        DescriptorChain c = vq.pop();
        assertEquals(ChainError.HEAD_OUT_OF_RANGE, c.error());
        assertFalse(c.returnable());
    }

    @Test
    void availableIndexOverrunBreaksTheQueueUntilReset() {
        drv.forceAvailIdx(SIZE + 1);
        assertNull(vq.pop());
        assertTrue(vq.broken());
        assertEquals(1, vq.ringErrors());
        assertFalse(vq.push(0, 0));
        vq.reset();
        assertFalse(vq.broken());
        assertFalse(vq.enabled());
    }

    @Test
    void unreachableRingsBreakTheQueue() {
        SplitVirtqueue q = new SplitVirtqueue(mem, 256);
        q.setSize(SIZE);
        q.setAddresses(drv.descAddr(), drv.availAddr(), HOLE);
        q.setEnabled(true); // used->idx unreadable
        assertTrue(q.broken());
        assertNull(q.pop());
    }

    @Test
    void rejectsBadSizesAndAlignments() {
        SplitVirtqueue q = new SplitVirtqueue(mem, 256);
        assertFalse(q.setSize(0));
        assertFalse(q.setSize(12));
        assertFalse(q.setSize(512));
        assertTrue(q.setSize(1));
        assertFalse(q.setAddresses(8, 0x100, 0x200)); // descriptor table needs 16
        assertFalse(q.setAddresses(0x10, 0x101, 0x200)); // available ring needs 2
        assertFalse(q.setAddresses(0x10, 0x100, 0x202)); // used ring needs 4
        assertTrue(q.setAddresses(0x10, 0x102, 0x204));
        assertFalse(vq.setSize(16), "size is fixed while the queue is enabled");
    }

    private void completeOne() {
        int head = drv.add(List.of(Buf.in(0x3000, 4)));
        drv.publish(head);
        DescriptorChain c = vq.pop();
        vq.push(c.head(), 4);
        drv.popUsed();
    }

    @Test
    void usedBufferNotificationFlags() {
        completeOne();
        assertTrue(vq.needsNotification());
        assertFalse(vq.needsNotification(), "nothing new since the last decision");
        drv.setNoInterrupt(true);
        completeOne();
        assertFalse(vq.needsNotification());
        assertEquals(1, vq.notificationsSent());
        assertEquals(1, vq.notificationsSuppressed());
    }

    @Test
    void eventIdxSuppressesUntilUsedEventIsPassedAndPublishesAvailEvent() {
        vq.setFeatures(true, true);
        drv.setEventIdx(true);
        drv.setUsedEvent(2); // notify when the entry with index 2 is written, i.e. used->idx reaches 3
        completeOne();
        assertFalse(vq.needsNotification());
        assertEquals(1, mem.load(drv.usedAddr() + VirtqRing.availEventOffset(SIZE), 2).getAsLong(), "avail_event = next avail");
        completeOne();
        assertFalse(vq.needsNotification());
        completeOne();
        assertTrue(vq.needsNotification());
        // Two entries in one batch that cross used_event notify once.
        drv.setUsedEvent(3);
        completeOne();
        completeOne();
        assertTrue(vq.needsNotification());
        // The driver side sees avail_event (= 5, the next slot) and kicks only for new entries.
        assertFalse(drv.kickNeeded());
        drv.publish(drv.add(List.of(Buf.in(0x3000, 4))));
        assertTrue(drv.kickNeeded());
    }

    @Test
    void needEventFollowsTheSpecExample() {
        // §2.7.7 note: with used_event 0, the first used buffer notifies, and then again after 65536.
        assertTrue(VirtqRing.needEvent(0, 1, 0));
        assertFalse(VirtqRing.needEvent(0, 2, 1));
        assertTrue(VirtqRing.needEvent(0xffff, 0, 0xfffe)); // wraps
        assertTrue(VirtqRing.needEvent(5, 10, 0));
        assertFalse(VirtqRing.needEvent(10, 10, 0));
    }

    @Test
    void completedElementsWaitInTheStateUntilPublishedWithOneIndexUpdate() {
        int[] heads = new int[SIZE];
        for (int i = 0; i < SIZE; i++) {
            heads[i] = drv.add(List.of(Buf.in(0x1000 + 0x10L * i, 4)));
            drv.publish(heads[i]);
        }
        for (int i = 0; i < SIZE; i++) {
            DescriptorChain c = vq.pop();
            vq.complete(c.head(), 4 + i);
        }
        // §2.7.8: the used ring has SIZE slots; with all of them waiting, nothing more is offered.
        drv.publish(drv.add(List.of(Buf.in(0x2000, 4)))); // beyond what a driver may have outstanding
        assertNull(vq.pop());
        assertEquals(0, drv.usedIdx(), "nothing visible before publish()");
        SplitVirtqueue.State s = vq.state();
        assertEquals(SIZE, s.nextAvail());
        assertEquals(SIZE, s.usedIdx(), "the used index after the waiting elements");
        assertEquals(SIZE, s.pendingUsed().size());
        assertEquals(new SplitVirtqueue.UsedElem(heads[3], 7), s.pendingUsed().get(3));
        assertTrue(vq.publish());
        assertEquals(SIZE, drv.usedIdx());
        for (int i = 0; i < SIZE; i++) {
            assertEquals(new DriverRing.Used(heads[i], 4 + i), drv.popUsed());
        }
        assertEquals(List.of(), vq.state().pendingUsed());
        assertEquals((long) SIZE, vq.usedPushed());
    }

    @Test
    void aRingFaultDropsTheWaitingElements() {
        int h = drv.add(List.of(Buf.in(0x1000, 4)));
        drv.publish(h);
        vq.complete(vq.pop().head(), 4);
        drv.forceAvailIdx(1 + SIZE + 1); // §2.7.13: more than SIZE outstanding, the index is garbage
        assertNull(vq.pop());
        assertTrue(vq.broken());
        assertEquals(List.of(), vq.state().pendingUsed(), "§2.1.2: a broken queue publishes nothing more");
        assertFalse(vq.publish());
        assertEquals(0, drv.usedIdx());
    }
}
