package dev.iommuemu.bridge.fastpath;

import static dev.iommuemu.bridge.fastpath.RequestHandOff.*;

import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.virtqueue.VirtqDesc;
import dev.iommuemu.virtqueue.VirtqRing;
import java.io.ByteArrayOutputStream;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * The VMM's part of the virtio-iommu request hand-off (docs/protocol.md §4.13), step by step as
 * the spec writes it, for tests: what QEMU does on a notification of the request queue with a
 * shared memory of flags RECIPES | REQUESTS. {@link #onNotify} serves MAP and UNMAP requests itself
 * until the first one it does not serve (then the daemon is to be kicked); {@link #translate}
 * answers from the mirror. This rendition serves NEXT chains only (an INDIRECT head is "not
 * served": the spec lets the VMM leave any request to the daemon).
 */
final class VmmRequestHandOff {
    /** How a notification ended: every available request served, or why the daemon must be kicked. */
    enum Outcome { SERVED_ALL, NOTIFIERS, LOCK_BUSY, NOT_OK, KICK }

    private static final int T_MAP = 3;
    private static final int T_UNMAP = 4;
    private static final int READ = 1;
    private static final int WRITE = 2;
    private static final int MMIO = 4;

    private final MappedRegion shm;
    private final int entries;
    private final GuestMemory ram;
    private final long c0;
    /** Notifications of the driver the VMM sent itself (its call eventfd). */
    private int notified;
    private int served;

    VmmRequestHandOff(MappedRegion shm, int sets, int ways, GuestMemory ram) {
        this.shm = shm;
        this.entries = sets * ways;
        this.ram = ram;
        this.c0 = SharedCache.commandRegion(sets, ways);
    }

    boolean tryLock() {
        return shm.compareAndSet32(c0 + OFF_LOCK, HandOffLock.FREE, HandOffLock.HELD_BY_VMM);
    }

    void unlock() {
        VarHandle.releaseFence();
        shm.write32(c0 + OFF_LOCK, HandOffLock.FREE);
        VarHandle.fullFence();
    }

    int lock() { return shm.read32(c0 + OFF_LOCK); }
    int ok() { return shm.read32(c0 + OFF_OK); }
    long desc() { return shm.read64(c0 + OFF_DESC); }
    long avail() { return shm.read64(c0 + OFF_AVAIL); }
    long used() { return shm.read64(c0 + OFF_USED); }
    int size() { return shm.read16(c0 + OFF_SIZE) & 0xffff; }
    int nextAvail() { return shm.read16(c0 + OFF_NEXT_AVAIL) & 0xffff; }
    int usedIdx() { return shm.read16(c0 + OFF_USED_IDX) & 0xffff; }
    int ringFlags() { return shm.read16(c0 + OFF_RING_FLAGS) & 0xffff; }
    int count() { return shm.read32(c0 + OFF_COUNT); }
    long inputStart() { return shm.read64(c0 + OFF_INPUT_START); }
    long inputEnd() { return shm.read64(c0 + OFF_INPUT_END); }
    long granuleMask() { return shm.read64(c0 + OFF_GRANULE_MASK); }
    int mappings() { return shm.read32(c0 + OFF_MAPPINGS); }
    int maxMappings() { return shm.read32(c0 + OFF_MAX_MAPPINGS); }
    int maxPerDomain() { return shm.read32(c0 + OFF_MAX_PER_DOMAIN); }
    int slots() { return shm.read32(c0 + OFF_SLOTS); }
    int notified() { return notified; }
    int served() { return served; }
    void setCount(int n) { shm.write32(c0 + OFF_COUNT, n); }

    /** The bytes of slot {@code k}: its header and {@code count} mappings. */
    byte[] slotBytes(int k) {
        long a = c0 + slotOffset(k);
        int n = Math.min(shm.read32(a + S_COUNT), 1024);
        byte[] b = new byte[S_MAPPINGS + MAPPING * n];
        shm.read(a, b, 0, b.length);
        return b;
    }

    int slotSeq(int k) { return shm.read32(c0 + slotOffset(k) + S_SEQ); }
    int mappingCountOfSlot(int k) { return shm.read32(c0 + slotOffset(k) + S_COUNT); }

    /** A slot change of the VMM's (under its lock): seq + 1, the count, seq + 2. */
    void scribbleSlotCount(int k, int count) {
        long a = c0 + slotOffset(k);
        int seq = shm.read32(a + S_SEQ);
        shm.write32(a + S_SEQ, seq + 1);
        shm.write32(a + S_COUNT, count);
        shm.write32(a + S_SEQ, seq + 2);
    }

    /** The slot holding {@code domain} with state 1, or -1. */
    int slotOfDomain(int domain) {
        for (int k = 0; k < slots(); k++) {
            long a = c0 + slotOffset(k);
            if (shm.read32(a + S_STATE) == STATE_MIRRORED && shm.read32(a + S_DOMAIN) == domain) {
                return k;
            }
        }
        return -1;
    }

    /** Appends a request to the log (as a VMM that served it would, or a test's scribble). */
    void log(int type, int domain, long virtStart, long virtEnd, long physStart, int flags) {
        int i = count();
        long a = c0 + OFF_LOG + (long) LOG_ENTRY * i;
        shm.write32(a + L_TYPE, type);
        shm.write32(a + L_DOMAIN, domain);
        shm.write64(a + L_VIRT_START, virtStart);
        shm.write64(a + L_VIRT_END, virtEnd);
        shm.write64(a + L_PHYS_START, physStart);
        shm.write32(a + L_FLAGS, flags);
        shm.write32(a + L_FLAGS + 4, 0);
        setCount(i + 1);
    }

    /**
     * A notification of queue 0 (§4.13 "The VMM"): with {@code notifiers} 0, the lock at the first
     * try and ok = 1, serves available requests until one it does not serve (KICK) or none is left
     * (SERVED_ALL), then lets go of the lock.
     */
    Outcome onNotify(boolean notifiers) {
        if (notifiers) {
            return Outcome.NOTIFIERS;
        }
        if (!tryLock()) {
            return Outcome.LOCK_BUSY;
        }
        try {
            if (ok() != 1) {
                return Outcome.NOT_OK;
            }
            int size = size();
            while (true) {
                int availIdx = (int) ram.load(avail() + VirtqRing.AVAIL_IDX, 2).getAsLong();
                VarHandle.acquireFence();
                if (nextAvail() == availIdx) {
                    return Outcome.SERVED_ALL;
                }
                if (count() >= MAX_LOG || !serveOne(size)) {
                    return Outcome.KICK;
                }
            }
        } finally {
            unlock();
        }
    }

    private record Chain(byte[] readable, long tailAddr, int head) {}

    /** §4.13 step 1: the chain at avail->ring[next_avail mod size], well formed, NEXT descriptors only. */
    private Chain chain(int size) {
        int next = nextAvail();
        int head = (int) ram.load(avail() + VirtqRing.AVAIL_RING + 2L * (next % size), 2).getAsLong();
        if (head >= size) {
            return null;
        }
        ByteArrayOutputStream readable = new ByteArrayOutputStream();
        long tail = -1;
        long tailLen = 0;
        int i = head;
        for (int n = 0; n < size; n++) {
            long d = desc() + 16L * i;
            long addr = ram.load(d, 8).getAsLong();
            int len = (int) ram.load(d + 8, 4).getAsLong();
            int flags = (int) ram.load(d + 12, 2).getAsLong();
            int nx = (int) ram.load(d + 14, 2).getAsLong();
            if ((flags & VirtqDesc.F_INDIRECT) != 0) {
                return null;
            }
            if ((flags & VirtqDesc.F_WRITE) != 0) {
                if (tail < 0) {
                    tail = addr;
                }
                tailLen += len;
            } else {
                if (tail >= 0) {
                    return null; // a readable descriptor after a writable one
                }
                byte[] b = new byte[len];
                for (int k = 0; k < len; k++) {
                    var v = ram.load(addr + k, 1);
                    if (v.isEmpty()) {
                        return null;
                    }
                    b[k] = (byte) v.getAsLong();
                }
                readable.writeBytes(b);
            }
            if ((flags & VirtqDesc.F_NEXT) == 0) {
                return tail < 0 || tailLen < 4 ? null : new Chain(readable.toByteArray(), tail, head);
            }
            i = nx;
            if (i >= size) {
                return null;
            }
        }
        return null; // a loop
    }

    private record M(long first, long last, long phys, int flags) {}

    private List<M> mappingsOf(long slot) {
        int n = shm.read32(slot + S_COUNT);
        List<M> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long a = slot + S_MAPPINGS + (long) MAPPING * i;
            out.add(new M(shm.read64(a + M_FIRST), shm.read64(a + M_LAST), shm.read64(a + M_PHYS), shm.read32(a + M_FLAGS)));
        }
        return out;
    }

    private static boolean overlaps(long a0, long a1, long b0, long b1) {
        return Long.compareUnsigned(a0, b1) <= 0 && Long.compareUnsigned(b0, a1) <= 0;
    }

    /** Steps 2-5 and the serving; false when the request is not one the VMM serves. */
    private boolean serveOne(int size) {
        Chain c = chain(size);
        if (c == null || c.readable().length < 8) {
            return false;
        }
        ByteBuffer r = ByteBuffer.wrap(c.readable()).order(ByteOrder.LITTLE_ENDIAN);
        int type = r.get(0) & 0xff;
        if (!(type == T_MAP && c.readable().length >= 36) && !(type == T_UNMAP && c.readable().length >= 28)) {
            return false;
        }
        int domain = r.getInt(4);
        long vs = r.getLong(8);
        long ve = r.getLong(16);
        int k = slotOfDomain(domain);
        if (k < 0 || Long.compareUnsigned(ve, vs) < 0 || Long.compareUnsigned(vs, inputStart()) < 0
                || Long.compareUnsigned(ve, inputEnd()) > 0) {
            return false;
        }
        long slot = c0 + slotOffset(k);
        List<M> ms = mappingsOf(slot);
        long phys = 0;
        int flags = 0;
        List<M> after = new ArrayList<>(ms);
        List<M> removed = new ArrayList<>();
        if (type == T_MAP) {
            phys = r.getLong(24);
            flags = r.getInt(32);
            long g = granuleMask();
            if ((flags & ~(READ | WRITE)) != 0 || (g != 0 && ((vs & g) != 0 || (phys & g) != 0 || ((ve + 1) & g) != 0))
                    || Long.compareUnsigned(phys + (ve - vs), phys) < 0) {
                return false;
            }
            int nresv = shm.read32(slot + S_NRESV);
            for (int i = 0; i < nresv; i++) {
                if (overlaps(vs, ve, shm.read64(slot + S_RESV + 16L * i), shm.read64(slot + S_RESV + 16L * i + 8))) {
                    return false;
                }
            }
            for (M m : ms) {
                if (overlaps(vs, ve, m.first(), m.last())) {
                    return false;
                }
            }
            if (ms.size() >= maxPerDomain() || Integer.compareUnsigned(mappings(), maxMappings()) >= 0) {
                return false;
            }
            int at = 0;
            while (at < after.size() && Long.compareUnsigned(after.get(at).first(), vs) < 0) {
                at++;
            }
            after.add(at, new M(vs, ve, phys, flags));
        } else {
            if (r.getInt(24) != 0) {
                return false;
            }
            for (M m : ms) {
                boolean holdsStart = Long.compareUnsigned(m.first(), vs) <= 0 && Long.compareUnsigned(vs, m.last()) <= 0;
                boolean holdsEnd = Long.compareUnsigned(m.first(), ve) <= 0 && Long.compareUnsigned(ve, m.last()) <= 0;
                if ((holdsStart && m.first() != vs) || (holdsEnd && m.last() != ve)) {
                    return false; // would split it
                }
                if (Long.compareUnsigned(m.first(), vs) >= 0 && Long.compareUnsigned(m.last(), ve) <= 0) {
                    removed.add(m);
                }
            }
            after.removeAll(removed);
        }
        // the slot: seq read under the lock, seq + 1, the change, seq + 2 (release)
        int seq = shm.read32(slot + S_SEQ);
        shm.write32(slot + S_SEQ, seq + 1);
        VarHandle.storeStoreFence();
        for (int i = 0; i < after.size(); i++) {
            long a = slot + S_MAPPINGS + (long) MAPPING * i;
            M m = after.get(i);
            shm.write64(a + M_FIRST, m.first());
            shm.write64(a + M_LAST, m.last());
            shm.write64(a + M_PHYS, m.phys());
            shm.write32(a + M_FLAGS, m.flags());
            shm.write32(a + M_FLAGS + 4, 0);
        }
        shm.write32(slot + S_COUNT, after.size());
        VarHandle.releaseFence();
        shm.write32(slot + S_SEQ, seq + 2);
        shm.write32(c0 + OFF_MAPPINGS, mappings() + (type == T_MAP ? 1 : -removed.size()));
        if (!removed.isEmpty()) {
            int n = shm.read32(slot + S_NENDPOINTS);
            for (int e = 0; e < Math.min(n, 8); e++) {
                VmmHandOff.dropEntries(shm, entries, shm.read32(slot + S_ENDPOINT + 4L * e), vs, ve);
            }
            shm.getAndAdd64(SharedCache.OFF_INV_GEN, 1);
            VarHandle.fullFence();
        }
        // the tail, the used element, a write barrier, used->idx, avail_event
        int size2 = size();
        int used = usedIdx();
        int next = nextAvail();
        ram.store(c.tailAddr(), 4, 0); // VIRTIO_IOMMU_S_OK, reserved 0
        long elem = used() + VirtqRing.USED_RING + 8L * (used % size2);
        ram.store(elem, 4, c.head());
        ram.store(elem + 4, 4, 4);
        VarHandle.storeStoreFence();
        ram.store(used() + VirtqRing.USED_IDX, 2, (used + 1) & 0xffff);
        boolean eventIdx = (ringFlags() & RING_EVENT_IDX) != 0;
        if (eventIdx) {
            ram.store(used() + VirtqRing.availEventOffset(size2), 2, (next + 1) & 0xffff);
        }
        log(type, domain, vs, ve, phys, flags);
        shm.write16(c0 + OFF_NEXT_AVAIL, (short) (next + 1));
        shm.write16(c0 + OFF_USED_IDX, (short) (used + 1));
        served++;
        VarHandle.fullFence();
        boolean notify;
        if (eventIdx) {
            notify = (int) ram.load(avail() + VirtqRing.usedEventOffset(size2), 2).getAsLong() == used;
        } else {
            notify = (ram.load(avail() + VirtqRing.AVAIL_FLAGS, 2).getAsLong() & VirtqRing.AVAIL_F_NO_INTERRUPT) == 0;
        }
        if (notify) {
            notified++;
        }
        return true;
    }

    /**
     * §4.13 "Translating from the mirror": {@code endpoint}'s access to {@code iova} from the slot
     * that lists it, or -1 (ask the daemon) when ok is 0, no slot lists it, no mapping holds the
     * address, the permission is missing, the mapping is MMIO, or a slot changed while it was read.
     */
    long translate(int endpoint, long iova, boolean write) {
        for (int k = 0; k < slots(); k++) {
            long a = c0 + slotOffset(k);
            int seq = shm.read32(a + S_SEQ);
            VarHandle.acquireFence();
            if ((seq & 1) != 0 || ok() != 1 || shm.read32(a + S_STATE) != STATE_MIRRORED) {
                continue;
            }
            int n = Math.min(shm.read32(a + S_NENDPOINTS), 8);
            boolean lists = false;
            for (int e = 0; e < n; e++) {
                lists |= shm.read32(a + S_ENDPOINT + 4L * e) == endpoint;
            }
            if (!lists) {
                continue;
            }
            long out = -1;
            for (M m : mappingsOf(a)) {
                if (Long.compareUnsigned(m.first(), iova) <= 0 && Long.compareUnsigned(iova, m.last()) <= 0
                        && (m.flags() & (write ? WRITE : READ)) != 0 && (m.flags() & MMIO) == 0) {
                    out = m.phys() + (iova - m.first());
                }
            }
            VarHandle.loadLoadFence();
            if (shm.read32(a + S_SEQ) != seq || ok() != 1) {
                return -1;
            }
            return out;
        }
        return -1;
    }
}
