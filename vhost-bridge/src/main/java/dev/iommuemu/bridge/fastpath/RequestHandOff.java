package dev.iommuemu.bridge.fastpath;

import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.interval.Mapping;
import dev.iommuemu.virtio.iommu.MirroredDomain;
import dev.iommuemu.virtio.iommu.RequestQueueHandOff;
import dev.iommuemu.virtio.iommu.ResvRegion;
import dev.iommuemu.virtio.iommu.VmmRequest;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.logging.Logger;

/**
 * The VMM's virtio-iommu request hand-off region of the shared memory (docs/protocol.md §4.13,
 * version 14), at {@code C0 = R0 + 64 * 256}: the lock both processes take ({@link HandOffLock},
 * as §4.12's), the request queue's state the daemon publishes, the log of MAP and UNMAP requests
 * the VMM served itself, which the daemon drains into the model right after it takes the lock,
 * and 16 slots mirroring the domains' mappings, from which the VMM serves requests and translates.
 *
 * <p>The daemon trusts nothing the VMM writes beyond its bounds: a {@code count} above 1024 is
 * read as 1024, each logged request is handed to the model, which refuses what it would refuse
 * from the ring; the indexes are u16 ring positions the model's ring handles whatever they are.
 * It never reads back what it wrote but a slot's {@code seq}, which both sides advance under the
 * lock: it keeps its own map of which domain is in which slot. Used under the session lock only.
 */
public final class RequestHandOff {
    private static final Logger LOG = Logger.getLogger(RequestHandOff.class.getName());

    /** §4.13 layout, offsets from C0 (the lock and ok are {@link HandOffLock}'s). */
    public static final int OFF_LOCK = HandOffLock.OFF_LOCK;
    public static final int OFF_OK = HandOffLock.OFF_OK;
    public static final int OFF_DESC = 0x08;
    public static final int OFF_AVAIL = 0x10;
    public static final int OFF_USED = 0x18;
    public static final int OFF_SIZE = 0x20;
    public static final int OFF_NEXT_AVAIL = 0x22;
    public static final int OFF_USED_IDX = 0x24;
    public static final int OFF_RING_FLAGS = 0x26;
    public static final int OFF_COUNT = 0x28;
    public static final int OFF_INPUT_START = 0x30;
    public static final int OFF_INPUT_END = 0x38;
    public static final int OFF_GRANULE_MASK = 0x40;
    public static final int OFF_MAPPINGS = 0x48;
    public static final int OFF_MAX_MAPPINGS = 0x4c;
    public static final int OFF_MAX_PER_DOMAIN = 0x50;
    public static final int OFF_SLOTS = 0x54;
    /** The log: {u32 type, u32 domain, u64 virt_start, u64 virt_end, u64 phys_start, u32 flags, u32 reserved}. */
    public static final int OFF_LOG = 0x100;
    public static final int LOG_ENTRY = 40;
    public static final int L_TYPE = 0x00;
    public static final int L_DOMAIN = 0x04;
    public static final int L_VIRT_START = 0x08;
    public static final int L_VIRT_END = 0x10;
    public static final int L_PHYS_START = 0x18;
    public static final int L_FLAGS = 0x20;
    public static final int MAX_LOG = 1024;
    /** Slot k at 0xC000 + 0x8100 k: a 0x100-byte header, then up to 1024 mappings of 32 bytes. */
    public static final int OFF_SLOT = 0xC000;
    public static final int SLOT = 0x8100;
    public static final int SLOTS = 16;
    public static final int S_SEQ = 0x00;
    public static final int S_DOMAIN = 0x04;
    public static final int S_STATE = 0x08;
    public static final int S_COUNT = 0x0c;
    public static final int S_NENDPOINTS = 0x10;
    public static final int S_NRESV = 0x14;
    public static final int S_ENDPOINT = 0x18;
    public static final int S_RESV = 0x40;
    public static final int S_MAPPINGS = 0x100;
    public static final int MAPPING = 32;
    public static final int M_FIRST = 0x00;
    public static final int M_LAST = 0x08;
    public static final int M_PHYS = 0x10;
    public static final int M_FLAGS = 0x18;
    /** Slot state: 0 empty, 1 a mirrored domain. */
    public static final int STATE_EMPTY = 0;
    public static final int STATE_MIRRORED = 1;
    /** ring_flags bit 0 EVENT_IDX (virtio 1.x §2.7.10), bit 1 INDIRECT_DESC (§2.7.5.3). */
    public static final int RING_EVENT_IDX = 1;
    public static final int RING_INDIRECT_DESC = 2;
    /** Bytes of the region: the last slot's end, 0xC000 + 16 x 0x8100 = 0x8D000. */
    public static final int SIZE = OFF_SLOT + SLOT * SLOTS;

    /** What the VMM left: the requests it served, in order, and the ring's indexes after them. */
    public record Log(List<VmmRequest> requests, int nextAvail, int usedIdx) {}

    private final MappedRegion mem;
    private final long c0;
    private final HandOffLock lock;
    private String label = "the session";
    private boolean scribbleLogged;
    /** The daemon's own map of the slots: the domain in slot k, or -1 (empty). */
    private final int[] slotDomain = new int[SLOTS];
    private final Map<Integer, Integer> slotOf = new HashMap<>();
    private long slotWrites;

    RequestHandOff(MappedRegion mem, long c0) {
        this.mem = mem;
        this.c0 = c0;
        this.lock = new HandOffLock(mem, c0, LOG, "request hand-off", "§4.13", "a request");
        Arrays.fill(slotDomain, -1);
    }

    /** The region's lock (taken and given back by the session). */
    public HandOffLock lock() {
        return lock;
    }

    /** The name of the session in log messages. */
    public void label(String who) {
        this.label = who;
        lock.label(who);
    }

    /** Whether the daemon holds the lock now. */
    public boolean held() {
        return lock.held();
    }

    /** Where slot {@code k} starts, from C0. */
    public static long slotOffset(int k) {
        return OFF_SLOT + (long) SLOT * k;
    }

    /** The region was just cleared: every slot empty, the daemon holds its lock (2) until the session lets go. */
    void holdWhileCleared() {
        lock.holdWhileCleared();
    }

    /**
     * Takes what the VMM logged (under the lock), or null when it logged nothing ({@code count} 0),
     * and zeroes {@code count}. A count above 1024 is read as 1024 (logged once).
     */
    public Log takeLog() {
        return readLog(0, true);
    }

    /**
     * Reads what the VMM logged from entry {@code from} on (under the lock), or null when nothing
     * is there; zeroes {@code count} only when {@code take}. A log read without taking stays where
     * the VMM appends after it, so the requests it has numbered for a takeover (§4.10) but the
     * journal does not hold yet never pass the 1024 its write log keeps.
     */
    public Log readLog(int from, boolean take) {
        if (!lock.held()) {
            return null;
        }
        long count = Integer.toUnsignedLong(mem.read32(c0 + OFF_COUNT));
        if (count <= from) {
            if (take && count != 0) {
                mem.write32(c0 + OFF_COUNT, 0);
            }
            return null;
        }
        if (count > MAX_LOG) {
            if (!scribbleLogged) {
                scribbleLogged = true;
                LOG.warning(String.format("%s: the VMM's request log (docs/protocol.md §4.13) claims %d requests, more"
                        + " than the 1024 it holds: only 1024 are read (is the VMM writing the shared memory correctly?)",
                        label, count));
            }
            count = MAX_LOG;
        }
        int n = (int) count;
        List<VmmRequest> out = new ArrayList<>(n - from);
        for (int i = from; i < n; i++) {
            long a = c0 + OFF_LOG + (long) LOG_ENTRY * i;
            out.add(new VmmRequest(mem.read32(a + L_TYPE), mem.read32(a + L_DOMAIN), mem.read64(a + L_VIRT_START),
                    mem.read64(a + L_VIRT_END), mem.read64(a + L_PHYS_START), mem.read32(a + L_FLAGS)));
        }
        int nextAvail = mem.read16(c0 + OFF_NEXT_AVAIL) & 0xffff;
        int usedIdx = mem.read16(c0 + OFF_USED_IDX) & 0xffff;
        if (take) {
            mem.write32(c0 + OFF_COUNT, 0);
        }
        return new Log(List.copyOf(out), nextAvail, usedIdx);
    }

    /**
     * Writes the request queue's state ({@code null}: a model without one, only {@code ok} = 0),
     * then {@code ok} and gives the lock back. Nothing when the daemon does not hold it.
     */
    public void release(RequestQueueHandOff s, boolean ok) {
        if (!lock.held()) {
            return;
        }
        if (s != null) {
            mem.write64(c0 + OFF_DESC, s.desc());
            mem.write64(c0 + OFF_AVAIL, s.avail());
            mem.write64(c0 + OFF_USED, s.used());
            mem.write16(c0 + OFF_SIZE, (short) s.size());
            mem.write16(c0 + OFF_NEXT_AVAIL, (short) s.nextAvail());
            mem.write16(c0 + OFF_USED_IDX, (short) s.usedIdx());
            mem.write16(c0 + OFF_RING_FLAGS, (short) ((s.eventIdx() ? RING_EVENT_IDX : 0) | (s.indirect() ? RING_INDIRECT_DESC : 0)));
            mem.write64(c0 + OFF_INPUT_START, s.inputStart());
            mem.write64(c0 + OFF_INPUT_END, s.inputEnd());
            mem.write64(c0 + OFF_GRANULE_MASK, s.granuleMask());
            mem.write32(c0 + OFF_MAPPINGS, (int) Math.min(s.mappings(), 0xffff_ffffL));
            mem.write32(c0 + OFF_MAX_MAPPINGS, (int) Math.min(s.maxMappings(), 0xffff_ffffL));
            mem.write32(c0 + OFF_MAX_PER_DOMAIN, Math.min(s.maxPerDomain(), MirroredDomain.MAX_MAPPINGS));
            mem.write32(c0 + OFF_SLOTS, SLOTS);
        }
        lock.release(ok && s != null);
    }

    // ---- the domain slots

    /**
     * Brings domain {@code id}'s slot up to {@code m} (null: the domain has no mirror now, gone or
     * too large): rewritten in its slot, or a free one; emptied (state 0) and freed when it has no
     * mirror. A mirrored domain with no free slot has none (its requests go to the daemon). Under
     * the lock only. Returns whether it wrote a slot.
     */
    public boolean publish(int id, MirroredDomain m) {
        if (!lock.held()) {
            return false;
        }
        Integer k = slotOf.get(id);
        if (m == null || m.endpoints().size() > MirroredDomain.MAX_ENDPOINTS || m.resv().size() > MirroredDomain.MAX_RESV
                || m.mappings().size() > MirroredDomain.MAX_MAPPINGS) {
            if (k == null) {
                return false;
            }
            write(k, null);
            slotOf.remove(id);
            slotDomain[k] = -1;
            return true;
        }
        if (k == null) {
            k = freeSlot();
            if (k < 0) {
                return false;
            }
            slotOf.put(id, k);
            slotDomain[k] = id;
        }
        write(k, m);
        return true;
    }

    /**
     * Every slot from {@code all} (a new shared memory, a loaded state, a reset, another model):
     * slots of domains not in it are emptied, the others written.
     */
    public void publishAll(List<MirroredDomain> all) {
        if (!lock.held()) {
            return;
        }
        Set<Integer> keep = new HashSet<>();
        for (MirroredDomain m : all) {
            keep.add(m.id());
        }
        for (int k = 0; k < SLOTS; k++) {
            if (slotDomain[k] >= 0 && !keep.contains(slotDomain[k])) {
                publish(slotDomain[k], null);
            }
        }
        for (MirroredDomain m : all) {
            publish(m.id(), m);
        }
    }

    private int freeSlot() {
        for (int k = 0; k < SLOTS; k++) {
            if (slotDomain[k] < 0) {
                return k;
            }
        }
        return -1;
    }

    /**
     * Writes slot {@code k} under its sequence lock (§4.13, as §4.8's entries): {@code seq} odd, the
     * fields, {@code seq} even (release). The next odd value follows the slot's current {@code seq},
     * which the VMM advances too when it serves a request: a reader never sees a value again that it
     * saw before the rewrite.
     */
    private void write(int k, MirroredDomain m) {
        long a = c0 + slotOffset(k);
        int cur = mem.read32(a + S_SEQ);
        int q = (cur | 1) + ((cur & 1) == 0 ? 0 : 2); // odd and past cur
        mem.write32(a + S_SEQ, q);
        VarHandle.storeStoreFence();
        int n = m == null ? 0 : m.mappings().size();
        ByteBuffer b = ByteBuffer.allocate(S_MAPPINGS + MAPPING * n - 4).order(ByteOrder.LITTLE_ENDIAN);
        if (m != null) {
            b.putInt(S_DOMAIN - 4, m.id());
            b.putInt(S_STATE - 4, STATE_MIRRORED);
            b.putInt(S_COUNT - 4, n);
            b.putInt(S_NENDPOINTS - 4, m.endpoints().size());
            b.putInt(S_NRESV - 4, m.resv().size());
            for (int i = 0; i < m.endpoints().size(); i++) {
                b.putInt(S_ENDPOINT - 4 + 4 * i, m.endpoints().get(i));
            }
            for (int i = 0; i < m.resv().size(); i++) {
                ResvRegion r = m.resv().get(i);
                b.putLong(S_RESV - 4 + 16 * i, r.start());
                b.putLong(S_RESV - 4 + 16 * i + 8, r.end());
            }
            for (int i = 0; i < n; i++) {
                Mapping e = m.mappings().get(i);
                int at = S_MAPPINGS - 4 + MAPPING * i;
                b.putLong(at + M_FIRST, e.first());
                b.putLong(at + M_LAST, e.last());
                b.putLong(at + M_PHYS, e.target());
                b.putInt(at + M_FLAGS, e.attrs());
            }
        }
        mem.write(a + 4, b.array(), 0, b.capacity());
        VarHandle.releaseFence();
        mem.write32(a + S_SEQ, q + 1);
        slotWrites++;
    }

    /** The slot domain {@code id} is mirrored in (the daemon's own map), or -1. */
    public int slotOf(int id) {
        Integer k = slotOf.get(id);
        return k == null ? -1 : k;
    }

    /** Slot rewrites since the memory was given. */
    public long slotWrites() {
        return slotWrites;
    }
}
