package dev.iommuemu.virtqueue;

import dev.iommuemu.memory.GuestMemory;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The driver side of a split virtqueue, written from virtio 1.2 §2.7.13 ("Supplying Buffers to
 * The Device") and §2.7.14 ("Receiving Used Buffers"), laid out in guest memory the way a Linux
 * guest does it: descriptor table, then available ring, then used ring (4-aligned). Used by the
 * queue tests, the guest-tests driver and the benchmarks (through the emulator test-jar).
 */
public final class DriverRing {
    /** One buffer element: guest-physical address, length, device-writable or not. */
    public record Buf(long addr, int len, boolean writable) {
        public static Buf out(long addr, int len) {
            return new Buf(addr, len, false);
        }

        public static Buf in(long addr, int len) {
            return new Buf(addr, len, true);
        }
    }

    /** A used ring element. */
    public record Used(int id, int len) {}

    private final GuestMemory mem;
    private final int size;
    private final long desc;
    private final long avail;
    private final long used;
    private boolean eventIdx;
    private final int[] nextFree;
    private int freeHead;
    private int numFree;
    private int availIdx;
    private int availAtLastKick;
    private int lastUsed;
    private final Map<Integer, List<Integer>> chains = new HashMap<>();

    /** A ring of {@code size} entries whose parts start at {@code base} (16-aligned). */
    public DriverRing(GuestMemory mem, int size, long base) {
        this.mem = mem;
        this.size = size;
        this.desc = base;
        this.avail = base + VirtqRing.descTableBytes(size);
        this.used = (avail + VirtqRing.availBytes(size) + 3) & ~3L;
        this.nextFree = new int[size];
        for (int i = 0; i < size; i++) {
            nextFree[i] = i + 1;
        }
        freeHead = 0;
        numFree = size;
        // §2.7.10 driver requirement: used->flags starts at 0; the rings start zeroed.
        for (long a = base; a < end(); a += 8) {
            put64(a, 0);
        }
    }

    /** One past the last byte of the used ring. */
    public long end() {
        return used + VirtqRing.usedBytes(size) + 8;
    }

    public int size() {
        return size;
    }

    public long descAddr() {
        return desc;
    }

    public long availAddr() {
        return avail;
    }

    public long usedAddr() {
        return used;
    }

    public void setEventIdx(boolean on) {
        eventIdx = on;
    }

    public int numFree() {
        return numFree;
    }

    /** Writes descriptor {@code i} verbatim (for malformed-chain tests). */
    public void writeDesc(int i, long addr, int len, int flags, int next) {
        writeDescAt(desc + 16L * i, addr, len, flags, next);
    }

    /** Writes a descriptor at any address (indirect tables). */
    public void writeDescAt(long at, long addr, int len, int flags, int next) {
        long[] w = new long[2];
        VirtqDesc.ADDR.set(w, addr);
        VirtqDesc.LEN.set(w, len & 0xffff_ffffL);
        VirtqDesc.FLAGS.set(w, flags);
        VirtqDesc.NEXT.set(w, next);
        put64(at, w[0]);
        put64(at + 8, w[1]);
    }

    /** Chains {@code bufs} through free descriptors (§2.7.13.1); returns the head, or -1 if too few are free. */
    public int add(List<Buf> bufs) {
        if (bufs.isEmpty() || bufs.size() > numFree) {
            return -1;
        }
        List<Integer> ids = new ArrayList<>();
        for (int k = 0; k < bufs.size(); k++) {
            ids.add(allocDesc());
        }
        for (int k = 0; k < bufs.size(); k++) {
            Buf b = bufs.get(k);
            boolean more = k + 1 < bufs.size();
            writeDesc(ids.get(k), b.addr, b.len, (b.writable ? VirtqDesc.F_WRITE : 0) | (more ? VirtqDesc.F_NEXT : 0),
                    more ? ids.get(k + 1) : 0);
        }
        chains.put(ids.get(0), ids);
        return ids.get(0);
    }

    /**
     * Puts {@code bufs} in an indirect table at {@code table} (§2.7.5.3) referred to by one
     * descriptor; returns the head.
     */
    public int addIndirect(List<Buf> bufs, long table) {
        if (numFree < 1) {
            return -1;
        }
        for (int k = 0; k < bufs.size(); k++) {
            Buf b = bufs.get(k);
            boolean more = k + 1 < bufs.size();
            writeDescAt(table + 16L * k, b.addr, b.len, (b.writable ? VirtqDesc.F_WRITE : 0) | (more ? VirtqDesc.F_NEXT : 0), more ? k + 1 : 0);
        }
        int head = allocDesc();
        writeDesc(head, table, 16 * bufs.size(), VirtqDesc.F_INDIRECT, 0);
        chains.put(head, List.of(head));
        return head;
    }

    /** Takes one free descriptor index for hand-built chains. */
    public int allocDesc() {
        int i = freeHead;
        freeHead = nextFree[i];
        numFree--;
        return i;
    }

    /** Registers the descriptors of a hand-built chain so {@link #popUsed} frees them. */
    public void track(int head, List<Integer> ids) {
        chains.put(head, ids);
    }

    /** Places {@code head} in the next available slot and exposes it (§2.7.13.2-3). */
    public void publish(int head) {
        mem.store(avail + VirtqRing.AVAIL_RING + 2L * (availIdx % size), 2, head);
        availIdx = (availIdx + 1) & 0xffff;
        mem.store(avail + VirtqRing.AVAIL_IDX, 2, availIdx);
    }

    /** Sets avail->idx to any value (for overrun tests). */
    public void forceAvailIdx(int idx) {
        availIdx = idx & 0xffff;
        mem.store(avail + VirtqRing.AVAIL_IDX, 2, availIdx);
    }

    /** §2.7.13.4 / §2.7.10: whether the device asked to be notified of what was published since the last kick. */
    public boolean kickNeeded() {
        int old = availAtLastKick;
        availAtLastKick = availIdx;
        if (eventIdx) {
            int ev = (int) mem.load(used + VirtqRing.availEventOffset(size), 2).getAsLong();
            return VirtqRing.needEvent(ev, availIdx, old);
        }
        return (mem.load(used + VirtqRing.USED_FLAGS, 2).getAsLong() & VirtqRing.USED_F_NO_NOTIFY) == 0;
    }

    /** avail->flags NO_INTERRUPT (without EVENT_IDX). */
    public void setNoInterrupt(boolean on) {
        mem.store(avail + VirtqRing.AVAIL_FLAGS, 2, on ? VirtqRing.AVAIL_F_NO_INTERRUPT : 0);
    }

    /** used_event (with EVENT_IDX). */
    public void setUsedEvent(int idx) {
        mem.store(avail + VirtqRing.usedEventOffset(size), 2, idx & 0xffff);
    }

    public int usedIdx() {
        return (int) mem.load(used + VirtqRing.USED_IDX, 2).getAsLong();
    }

    /** The next used element, freeing its descriptors, or {@code null}. */
    public Used popUsed() {
        if (usedIdx() == lastUsed) {
            return null;
        }
        long e = used + VirtqRing.USED_RING + 8L * (lastUsed % size);
        Used u = new Used((int) mem.load(e, 4).getAsLong(), (int) mem.load(e + 4, 4).getAsLong());
        lastUsed = (lastUsed + 1) & 0xffff;
        List<Integer> ids = chains.remove(u.id());
        if (ids != null) {
            for (int i : ids) {
                nextFree[i] = freeHead;
                freeHead = i;
                numFree++;
            }
        }
        return u;
    }

    private void put64(long a, long v) {
        if (!mem.store(a, 8, v)) {
            throw new IllegalArgumentException("driver ring outside guest memory: 0x" + Long.toHexString(a));
        }
    }
}
