package dev.iommuemu.virtio.iommu;

import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.virtio.iommu.Structs.Attach;
import dev.iommuemu.virtio.iommu.Structs.Head;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.DriverRing.Buf;
import dev.iommuemu.virtqueue.SplitVirtqueue.UsedElem;
import dev.iommuemu.virtqueue.VirtqRing;
import java.util.List;

/**
 * A guest that publishes virtio-iommu requests without waiting for them (several in one batch),
 * for the restart tests here and in vhost-bridge (through the test-jar): its memory, a request
 * ring and an event ring of {@link #QSIZE} entries (virtio 1.x §2.7, laid out by
 * {@link DriverRing}), and the requests it sent, each with its own reply buffer. Requests are
 * encoded through {@link Structs}' declared layouts.
 */
public final class RequestGuest {
    public static final int QSIZE = 16;
    public static final long REQ_RING = 0x1000;
    public static final long EVT_RING = 0x3000;
    /** The device-readable part of request n is at OUT + 0x100 n, its 4-byte tail at IN + 0x100 n. */
    public static final long OUT = 0x1_0000;
    public static final long IN = 0x1_8000;
    /** VIRTIO_IOMMU_MAP_F_READ, _WRITE ("MAP request"). */
    public static final int READ = 1;
    public static final int WRITE = 2;

    public final SparseGuestMemory mem = new SparseGuestMemory(0, 0x10_0000);
    public final DriverRing req = new DriverRing(mem, QSIZE, REQ_RING);
    public final DriverRing evt = new DriverRing(mem, QSIZE, EVT_RING);
    private int sent;

    /** Queue {@code q}'s ring: 0 requestq, 1 eventq. */
    public DriverRing ring(int q) {
        return q == 0 ? req : evt;
    }

    /** Publishes one request (device-readable {@code out}, a 4-byte tail poisoned with 0xee) without a kick; returns its head. */
    public int publish(byte[] out) {
        long o = OUT + 0x100L * sent;
        long in = IN + 0x100L * sent;
        sent++;
        for (int i = 0; i < out.length; i++) {
            mem.store(o + i, 1, out[i] & 0xff);
        }
        mem.store(in, 4, 0xeeee_eeeeL);
        int head = req.add(List.of(Buf.out(o, out.length), Buf.in(in, 4)));
        req.publish(head);
        return head;
    }

    /** The reply tail of the {@code n}th request sent (from 0): le32 of status and reserved[3] ("Device operations"). */
    public long tail(int n) {
        return mem.load(IN + 0x100L * n, 4).getAsLong();
    }

    /** used->ring[slot] of the request queue as (id, len) (§2.7.8). */
    public UsedElem usedSlot(int slot) {
        long e = req.usedAddr() + VirtqRing.USED_RING + 8L * (slot % QSIZE);
        return new UsedElem((int) mem.load(e, 4).getAsLong(), (int) mem.load(e + 4, 4).getAsLong());
    }

    /** Writes used->ring[slot] of the request queue (a detector: a driver never writes it, §2.7.8). */
    public void scribbleUsedSlot(int slot, long marker) {
        mem.store(req.usedAddr() + VirtqRing.USED_RING + 8L * (slot % QSIZE), 8, marker);
    }

    /** flags, idx and every slot of the request queue's used ring, byte for byte (not avail_event). */
    public byte[] usedRingBytes() {
        byte[] b = new byte[(int) VirtqRing.usedBytes(QSIZE) - 2];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) mem.load(req.usedAddr() + i, 1).getAsLong();
        }
        return b;
    }

    public static byte[] attach(int domain, int ep) {
        long[] w = new long[Attach.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_ATTACH);
        Attach.DOMAIN.set(w, domain);
        Attach.ENDPOINT.set(w, ep);
        return Structs.toBytes(w, Attach.READABLE);
    }

    public static byte[] map(int domain, long start, long end, long phys, int flags) {
        long[] w = new long[Structs.Map.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_MAP);
        Structs.Map.DOMAIN.set(w, domain);
        Structs.Map.VIRT_START.set(w, start);
        Structs.Map.VIRT_END.set(w, end);
        Structs.Map.PHYS_START.set(w, phys);
        Structs.Map.FLAGS.set(w, flags);
        return Structs.toBytes(w, Structs.Map.READABLE);
    }

    public static byte[] unmap(int domain, long start, long end) {
        long[] w = new long[Structs.Unmap.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_UNMAP);
        Structs.Unmap.DOMAIN.set(w, domain);
        Structs.Unmap.VIRT_START.set(w, start);
        Structs.Unmap.VIRT_END.set(w, end);
        return Structs.toBytes(w, Structs.Unmap.READABLE);
    }
}
