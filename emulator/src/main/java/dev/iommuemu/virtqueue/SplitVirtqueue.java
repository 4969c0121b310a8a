package dev.iommuemu.virtqueue;

import dev.iommuemu.memory.GuestMemory;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * The device side of one split virtqueue in guest memory (virtio 1.2 §2.7): the descriptor
 * table, the available ring the driver fills and the used ring the device fills. Device-agnostic:
 * a device pops {@link DescriptorChain}s, interprets them, and {@link #push}es them back, then asks
 * {@link #needsNotification()} whether to send a used buffer notification.
 *
 * <p>A device that must save its state before the guest sees a batch (a restart journal,
 * docs/device-state-virtio.md "Restart") returns chains with {@link #complete} instead: the used
 * elements wait in the queue, part of its {@link State}, until {@link #publish()} writes them and
 * moves used->idx once (§2.7.8). At most {@code size} wait (the used ring's slots), so
 * {@link #pop()} offers nothing more until they are published.
 *
 * <p>Guest mistakes never escape as exceptions and never loop: a chain is walked over at most
 * {@code size} descriptors (§2.7.5.3.1: no chain is longer than the queue size), each malformed
 * chain is returned with its {@link ChainError} and counted, and a ring that cannot be read or
 * written, or whose available index runs more than {@code size} ahead (§2.7.13: the driver never
 * has more than {@code size} buffers outstanding), marks the queue <em>broken</em> until reset: it
 * then does nothing more (the virtio DEVICE_NEEDS_RESET situation, §2.1.2).
 *
 * <p>Not thread-safe; the owning device serialises access.
 */
public final class SplitVirtqueue {
    private final GuestMemory mem;
    private final int maxSize;

    private int size;
    private long descAddr;
    private long availAddr;
    private long usedAddr;
    private boolean enabled;
    private boolean eventIdx;
    private boolean indirect;
    private boolean broken;

    private int nextAvail; // last_avail_idx: the next available-ring slot the device reads
    private int usedIdx; // the device's copy of used->idx
    private int usedAtLastDecision; // used->idx when notification was last decided (for EVENT_IDX)
    /** Used elements returned by {@link #complete} and not yet published; they go to slots usedIdx, usedIdx + 1, ... */
    private final List<UsedElem> completed = new ArrayList<>();
    /** Loaded running ({@link #restore}) and not started again since: {@link #resume} may pick it up where it was. */
    private boolean resumable;
    /** Loaded with used elements waiting: nothing moves until {@link #resume} knows which of them the guest has. */
    private boolean held;

    // Counters (cumulative over the queue's life, kept across reset for diagnostics).
    private long chainsPopped;
    private long usedPushed;
    private long notificationsSent;
    private long notificationsSuppressed;
    private long ringErrors;
    private long resumes;
    private long resumesAbandoned;
    private final long[] chainErrors = new long[ChainError.values().length];

    public SplitVirtqueue(GuestMemory mem, int maxSize) {
        if (maxSize < 1 || maxSize > VirtqRing.MAX_SIZE || Integer.bitCount(maxSize) != 1) {
            throw new IllegalArgumentException("max queue size " + maxSize);
        }
        this.mem = mem;
        this.maxSize = maxSize;
        this.size = maxSize;
    }

    // ---- configuration (the transport: virtio-pci common config, or vhost-user SET_VRING_*) ----

    public int maxSize() {
        return maxSize;
    }

    public int size() {
        return size;
    }

    /** Sets the queue size: a power of two up to {@link #maxSize()} (§2.7). {@code false} if not. */
    public boolean setSize(int n) {
        if (enabled || n < 1 || n > maxSize || Integer.bitCount(n) != 1) {
            return false;
        }
        size = n;
        return true;
    }

    /**
     * Sets the guest-physical addresses of the three parts; {@code false} when one violates its
     * alignment (§2.7 alignment table) or the queue is enabled.
     */
    public boolean setAddresses(long desc, long avail, long used) {
        if (enabled || desc % VirtqRing.DESC_ALIGN != 0 || avail % VirtqRing.AVAIL_ALIGN != 0 || used % VirtqRing.USED_ALIGN != 0) {
            return false;
        }
        descAddr = desc;
        availAddr = avail;
        usedAddr = used;
        return true;
    }

    public long descAddr() {
        return descAddr;
    }

    public long availAddr() {
        return availAddr;
    }

    public long usedAddr() {
        return usedAddr;
    }

    /** Which negotiated features change queue processing (VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC). */
    public void setFeatures(boolean eventIdx, boolean indirect) {
        this.eventIdx = eventIdx;
        this.indirect = indirect;
    }

    /**
     * Enables or disables processing. Enabling reads the used index the driver initialised (0 for
     * a fresh queue; the current value after a vhost-user hand-over) into the device's copy; it
     * sets the queue up afresh, so a loaded ring's {@link #resume} mark and waiting used elements
     * are gone.
     */
    public void setEnabled(boolean on) {
        if (on && !enabled) {
            completed.clear();
            resumable = false;
            held = false;
            OptionalLong u = mem.load(usedAddr + VirtqRing.USED_IDX, 2);
            if (u.isEmpty()) {
                markBroken();
                return;
            }
            usedIdx = (int) u.getAsLong();
            usedAtLastDecision = usedIdx;
        }
        enabled = on;
    }

    public boolean enabled() {
        return enabled;
    }

    /** Whether a ring fault stopped the queue until reset. */
    public boolean broken() {
        return broken;
    }

    /** The next available-ring index the device will read (vhost-user GET_VRING_BASE). */
    public int nextAvail() {
        return nextAvail;
    }

    /** Sets the next available-ring index (vhost-user SET_VRING_BASE). */
    public void setNextAvail(int idx) {
        nextAvail = idx & 0xffff;
    }

    /**
     * Another party served requests of this ring in the device's place and published their used
     * elements (docs/protocol.md §4.13: the VMM's request hand-off): the device continues from
     * {@code nextAvail} and {@code usedIdx}, and decides its next notification (§2.7.10 EVENT_IDX,
     * or avail->flags) from {@code usedIdx}, since that party notified for what it published.
     * Used elements of the device's own still waiting refuse it (they would land in the slots the
     * other party used), but for a ring loaded running with elements waiting (a restart, §4.10)
     * whose {@code usedIdx} is past them: the dead device published them before the other party
     * served after them, so they are dropped as {@link #resume} drops covered ones.
     */
    public boolean handOver(int nextAvail, int usedIdx) {
        if (!completed.isEmpty()) {
            if (!held || ((usedIdx - this.usedIdx) & 0xffff) < completed.size()) {
                return false;
            }
            completed.clear();
            held = false;
        }
        this.nextAvail = nextAvail & 0xffff;
        this.usedIdx = usedIdx & 0xffff;
        this.usedAtLastDecision = this.usedIdx;
        return true;
    }

    /** Whether the ring runs: enabled, no ring fault, not held (a loaded ring not started again). */
    public boolean running() {
        return live();
    }

    /** Whether VIRTIO_F_EVENT_IDX was negotiated for this ring. */
    public boolean eventIdx() {
        return eventIdx;
    }

    /** Whether VIRTIO_F_INDIRECT_DESC was negotiated for this ring. */
    public boolean indirect() {
        return indirect;
    }

    /** The device's used index (what it last wrote to used->idx). */
    public int usedIdx() {
        return usedIdx;
    }

    /** Back to the reset state (§2.1, §4.1.4.3.1 queue reset): disabled, addresses 0, indices 0. */
    public void reset() {
        size = maxSize;
        descAddr = 0;
        availAddr = 0;
        usedAddr = 0;
        enabled = false;
        broken = false;
        nextAvail = 0;
        usedIdx = 0;
        usedAtLastDecision = 0;
        eventIdx = false;
        indirect = false;
        completed.clear();
        resumable = false;
        held = false;
    }

    // ---- saved state (docs/device-state-virtio.md) ----

    /**
     * What a migration or a back-end restart must carry of one split virtqueue: the ring's layout
     * as SET_VRING_NUM/SET_VRING_ADDR gave it (§2.7: size, descriptor table, available and used
     * rings), SET_VRING_ENABLE, whether a ring fault stopped it (§2.1.2 DEVICE_NEEDS_RESET), and its
     * indices: {@code nextAvail} is vhost-user's GET_VRING_BASE value (the next available-ring index
     * the device reads, QEMU's last_avail_idx), {@code usedIdx} the device's used->idx and
     * {@code signalledUsed} the used index when a notification was last decided (§2.7.10 EVENT_IDX),
     * so the first notification after a load is decided as it would have been. The negotiated
     * EVENT_IDX and INDIRECT_DESC bits are the device's features, not the queue's. Counters are
     * diagnostics of this process and are not state.
     *
     * <p>{@code pendingUsed}: the used elements (§2.7.8 struct virtq_used_elem: head id, len) the
     * device returned with {@link #complete} and has not published yet, in used-ring order. They
     * belong to the slots just below {@code usedIdx}: {@code usedIdx} is the index after they are
     * published, so a state taken between {@link #complete} and {@link #publish()} already counts
     * them (and {@code nextAvail} counts their chains). Empty whenever the device is between
     * batches.
     */
    public record State(int size, long descAddr, long availAddr, long usedAddr, boolean enabled, boolean broken,
            int nextAvail, int usedIdx, int signalledUsed, List<UsedElem> pendingUsed) {
        public State {
            pendingUsed = List.copyOf(pendingUsed);
        }

        /** A state with no used element waiting. */
        public State(int size, long descAddr, long availAddr, long usedAddr, boolean enabled, boolean broken, int nextAvail,
                int usedIdx, int signalledUsed) {
            this(size, descAddr, availAddr, usedAddr, enabled, broken, nextAvail, usedIdx, signalledUsed, List.of());
        }
    }

    /** §2.7.8 struct virtq_used_elem: {@code id} the head of the returned chain, {@code len} the bytes written (le32 each). */
    public record UsedElem(int id, int len) {}

    /** The queue's {@link State}. */
    public State state() {
        return new State(size, descAddr, availAddr, usedAddr, enabled, broken, nextAvail, (usedIdx + completed.size()) & 0xffff,
                usedAtLastDecision, completed);
    }

    /**
     * Why {@code s} cannot be this queue's state, as a sentence, or {@code null}: a size that is not
     * a power of two up to {@link #maxSize()} (§2.7), an address off its alignment (§2.7 alignment
     * table), an index beyond 16 bits (§2.7.6, §2.7.8: ring indices are le16).
     */
    public String refusal(State s) {
        if (s.size() < 1 || s.size() > maxSize || Integer.bitCount(s.size()) != 1) {
            return "its size " + s.size() + " is not a power of two of at most " + maxSize;
        }
        if (s.descAddr() % VirtqRing.DESC_ALIGN != 0 || s.availAddr() % VirtqRing.AVAIL_ALIGN != 0
                || s.usedAddr() % VirtqRing.USED_ALIGN != 0) {
            return "its ring addresses 0x" + Long.toHexString(s.descAddr()) + "/0x" + Long.toHexString(s.availAddr()) + "/0x"
                    + Long.toHexString(s.usedAddr()) + " break the descriptor (16), available (2) or used (4) ring alignment";
        }
        for (int idx : new int[] {s.nextAvail(), s.usedIdx(), s.signalledUsed()}) {
            if ((idx & ~0xffff) != 0) {
                return "its ring index " + idx + " does not fit the 16-bit index of a split ring";
            }
        }
        List<UsedElem> p = s.pendingUsed();
        if (p.isEmpty()) {
            return null;
        }
        if (p.size() > s.size()) {
            // §2.7.8: the used ring has size slots; no more elements can wait for them.
            return "it has " + p.size() + " used elements waiting to be published, more than its " + s.size() + " used-ring slots";
        }
        for (UsedElem u : p) {
            if (Integer.compareUnsigned(u.id(), s.size()) >= 0) {
                // §2.7.8: id is the head of a descriptor chain, an index into the descriptor table of size entries.
                return "a used element waiting to be published names descriptor " + Integer.toUnsignedString(u.id())
                        + ", beyond its descriptor table of " + s.size();
            }
        }
        if (s.broken()) {
            return "it has used elements waiting to be published, but a ring fault stopped it, after which nothing is published";
        }
        if (!s.enabled()) {
            return "it has used elements waiting to be published on a stopped ring, and a device publishes them before it stops";
        }
        return null;
    }

    /**
     * Takes {@code s} as is (checked by {@link #refusal}): no guest memory is read, unlike
     * {@link #setEnabled}, which takes used->idx from the ring (the destination's memory may not
     * have arrived yet, and the device's copy is the one it saved). A ring saved running (a
     * restart journal's state; a migration stops the rings first) is marked resumable for
     * {@link #resume}; with used elements waiting it does nothing until then, since only the
     * guest's used->idx tells which of them it already has.
     */
    public void restore(State s) {
        size = s.size();
        descAddr = s.descAddr();
        availAddr = s.availAddr();
        usedAddr = s.usedAddr();
        enabled = s.enabled();
        broken = s.broken();
        nextAvail = s.nextAvail();
        completed.clear();
        completed.addAll(s.pendingUsed());
        usedIdx = (s.usedIdx() - completed.size()) & 0xffff;
        usedAtLastDecision = s.signalledUsed();
        resumable = s.enabled() && !s.broken();
        held = resumable && !completed.isEmpty();
    }

    /** Whether the queue was loaded running ({@link #restore}) and not started again since. */
    public boolean resumable() {
        return resumable;
    }

    /**
     * The front-end starts a ring that was loaded running (a daemon restart: vhost-user
     * SET_VRING_NUM/ADDR/BASE/KICK after the state was loaded). When the layout is the saved one,
     * the queue resumes where it was: it keeps its own next available index (the front-end's
     * SET_VRING_BASE cannot know how far a dead back-end got), it reads the guest's used->idx, and
     * of the used elements that were waiting it drops those whose slots used->idx already covers
     * (§2.7.8: the device wrote them and moved used->idx; the driver may have reused their buffers
     * since, so they are not written again) and keeps the rest for {@link #publish()}; its used
     * index ends as the saved one once they are published. Returns {@code false}, dropping the
     * waiting elements, when the queue was not loaded running or was started since, when the
     * layout differs (the driver set the queue up again), or when used->idx is outside the saved
     * window [usedIdx - waiting, usedIdx] (the state is not this ring's latest, or used->idx
     * cannot be read): the caller then sets the queue up afresh ({@link #setNextAvail},
     * {@link #setEnabled}). Either way the mark is gone.
     */
    public boolean resume(int size, long desc, long avail, long used) {
        if (!resumable) {
            return false;
        }
        resumable = false;
        held = false;
        boolean same = size == this.size && desc == descAddr && avail == availAddr && used == usedAddr;
        OptionalLong g = same ? mem.load(usedAddr + VirtqRing.USED_IDX, 2) : OptionalLong.empty();
        int covered = g.isPresent() ? ((int) g.getAsLong() - usedIdx) & 0xffff : Integer.MAX_VALUE;
        if (covered > completed.size()) {
            completed.clear();
            resumesAbandoned++;
            return false;
        }
        completed.subList(0, covered).clear();
        usedIdx = (usedIdx + covered) & 0xffff;
        enabled = true;
        resumes++;
        return true;
    }

    /** Processing runs: enabled, not broken, not held for {@link #resume}. */
    private boolean live() {
        return enabled && !broken && !held;
    }

    // ---- processing ----

    /**
     * The next available chain, or {@code null} when none is available (or the queue is disabled
     * or broken). A malformed chain is returned with its error set; the caller still returns it
     * with {@link #push} (unless it is not {@link DescriptorChain#returnable()}).
     */
    public DescriptorChain pop() {
        if (!live() || completed.size() >= size) {
            return null; // every used slot has an element waiting: publish() first
        }
        OptionalLong idx = mem.load(availAddr + VirtqRing.AVAIL_IDX, 2);
        if (idx.isEmpty()) {
            markBroken();
            return null;
        }
        int pending = ((int) idx.getAsLong() - nextAvail) & 0xffff;
        if (pending == 0) {
            return null;
        }
        // The ring entry and descriptors are read only after avail->idx (§2.7.13.3.1: the driver
        // makes them visible before the index; the device reads in the opposite order).
        VarHandle.acquireFence();
        if (pending > size) {
            // §2.7.13: at most size buffers can be outstanding; the index is garbage.
            markBroken();
            return null;
        }
        OptionalLong h = mem.load(availAddr + VirtqRing.AVAIL_RING + 2L * (nextAvail & (size - 1)), 2);
        if (h.isEmpty()) {
            markBroken();
            return null;
        }
        nextAvail = (nextAvail + 1) & 0xffff;
        chainsPopped++;
        DescriptorChain chain = walk((int) h.getAsLong());
        if (chain.error() != null) {
            chainErrors[chain.error().ordinal()]++;
        }
        return chain;
    }

    private DescriptorChain walk(int head) {
        DescriptorChain c = new DescriptorChain(head);
        if (head >= size) {
            c.fail(ChainError.HEAD_OUT_OF_RANGE);
            return c;
        }
        long table = descAddr;
        long tableEntries = size;
        boolean inIndirect = false;
        int idx = head;
        int visited = 0;
        while (true) {
            if (++visited > size) {
                c.fail(ChainError.TOO_LONG);
                return c;
            }
            long at = table + (long) VirtqDesc.SIZE * idx;
            OptionalLong w0 = mem.load(at, 8);
            OptionalLong w1 = mem.load(at + 8, 8);
            if (w0.isEmpty() || w1.isEmpty()) {
                c.fail(ChainError.DESC_FETCH_ABORT);
                return c;
            }
            c.countDescriptor();
            long[] words = {w0.getAsLong(), w1.getAsLong()};
            long addr = VirtqDesc.ADDR.get(words);
            long len = VirtqDesc.LEN.get(words);
            int flags = VirtqDesc.FLAGS.getInt(words);
            int next = VirtqDesc.NEXT.getInt(words);
            if ((flags & VirtqDesc.F_INDIRECT) != 0) {
                // §2.7.5.3.2: the WRITE flag of a descriptor referring to a table is ignored.
                if (!indirect) {
                    c.fail(ChainError.INDIRECT_NOT_NEGOTIATED);
                } else if (inIndirect) {
                    c.fail(ChainError.NESTED_INDIRECT);
                } else if ((flags & VirtqDesc.F_NEXT) != 0) {
                    c.fail(ChainError.INDIRECT_WITH_NEXT);
                } else if (len == 0 || len % VirtqDesc.SIZE != 0) {
                    c.fail(ChainError.INDIRECT_BAD_LENGTH);
                }
                if (c.error() != null) {
                    return c;
                }
                table = addr;
                tableEntries = len / VirtqDesc.SIZE;
                inIndirect = true;
                idx = 0;
                continue;
            }
            if (len > 0 && !accessible(addr, len)) {
                c.fail(ChainError.BUFFER_ABORT);
                return c;
            }
            if ((flags & VirtqDesc.F_WRITE) != 0) {
                c.addWritable(addr, (int) len);
            } else {
                if (c.writableSegments() > 0) {
                    // §2.7.4.2: device-writable elements come after every device-readable one.
                    c.fail(ChainError.READABLE_AFTER_WRITABLE);
                    return c;
                }
                c.addReadable(addr, (int) len);
            }
            if ((flags & VirtqDesc.F_NEXT) == 0) {
                return c;
            }
            if (next >= tableEntries) {
                c.fail(ChainError.NEXT_OUT_OF_RANGE);
                return c;
            }
            idx = next;
        }
    }

    private boolean accessible(long addr, long len) {
        if (Long.compareUnsigned(addr + len - 1, addr) < 0) {
            return false; // wraps past 2^64
        }
        long a = addr;
        long left = len;
        while (left > 0) {
            GuestMemory.Region r = mem.find(a, 1);
            if (r == null) {
                return false;
            }
            long inRegion = r.size() - (a - r.base());
            if (Long.compareUnsigned(inRegion, left) >= 0) {
                return true;
            }
            a += inRegion;
            left -= inRegion;
        }
        return true;
    }

    /**
     * Returns a chain to the driver with {@code len} bytes written and publishes it at once
     * ({@link #complete} then {@link #publish()}). {@code false} when the used ring cannot be
     * written (the queue is then broken).
     */
    public boolean push(int head, int len) {
        complete(head, len);
        return publish();
    }

    /**
     * Returns a chain to the driver with {@code len} bytes written, to be published by
     * {@link #publish()}: until then the element is only in the queue's {@link State}. Ignored
     * on a queue that does not run.
     */
    public void complete(int head, int len) {
        if (live()) {
            completed.add(new UsedElem(head, len));
        }
    }

    /** The used elements returned by {@link #complete} and not yet published. */
    public int completedCount() {
        return completed.size();
    }

    /**
     * Writes the waiting used elements into their used-ring slots, then used->idx once (§2.7.8:
     * len is set, and the buffers written, before used->idx moves; §2.7.14: the driver reads
     * used->idx, then the elements). {@code false} when the used ring cannot be written (the
     * queue is then broken).
     */
    public boolean publish() {
        if (completed.isEmpty()) {
            return live();
        }
        if (!live()) {
            return false;
        }
        int idx = usedIdx;
        for (UsedElem u : completed) {
            long elem = usedAddr + VirtqRing.USED_RING + (long) VirtqRing.USED_ELEM_SIZE * (idx & (size - 1));
            if (!mem.store(elem, 4, u.id() & 0xffff_ffffL) || !mem.store(elem + 4, 4, u.len() & 0xffff_ffffL)) {
                markBroken();
                return false;
            }
            idx = (idx + 1) & 0xffff;
        }
        VarHandle.releaseFence(); // the elements (and the buffer contents) before used->idx (§2.7.8)
        if (!mem.store(usedAddr + VirtqRing.USED_IDX, 2, idx)) {
            markBroken();
            return false;
        }
        usedPushed += completed.size();
        usedIdx = idx;
        completed.clear();
        return true;
    }

    /**
     * After a batch of {@link #push}es: whether the driver wants a used buffer notification for the
     * entries added since the last decision (§2.7.7 device requirements: avail->flags
     * NO_INTERRUPT, or with VIRTIO_F_EVENT_IDX the used_event crossing rule). With EVENT_IDX the
     * device also publishes avail_event = next available index, asking for a notification as soon as
     * the driver adds anything new (§2.7.10).
     */
    public boolean needsNotification() {
        if (!live()) {
            return false;
        }
        if (eventIdx) {
            mem.store(usedAddr + VirtqRing.availEventOffset(size), 2, nextAvail);
        }
        // Order the used->idx / avail_event stores before reading used_event / flags and before
        // a re-check of avail->idx (the store-load case of §2.7.7 and §2.7.10).
        VarHandle.fullFence();
        int old = usedAtLastDecision;
        int now = usedIdx;
        usedAtLastDecision = now;
        if (old == now) {
            return false;
        }
        boolean notify;
        if (eventIdx) {
            OptionalLong ev = mem.load(availAddr + VirtqRing.usedEventOffset(size), 2);
            notify = ev.isEmpty() || VirtqRing.needEvent((int) ev.getAsLong(), now, old);
        } else {
            OptionalLong fl = mem.load(availAddr + VirtqRing.AVAIL_FLAGS, 2);
            notify = fl.isEmpty() || (fl.getAsLong() & VirtqRing.AVAIL_F_NO_INTERRUPT) == 0;
        }
        if (notify) {
            notificationsSent++;
        } else {
            notificationsSuppressed++;
        }
        return notify;
    }

    /** Whether the driver has made buffers available that the device has not taken yet. */
    public boolean hasAvailable() {
        if (!live()) {
            return false;
        }
        OptionalLong idx = mem.load(availAddr + VirtqRing.AVAIL_IDX, 2);
        return idx.isPresent() && ((int) idx.getAsLong() & 0xffff) != nextAvail;
    }

    /** §2.1.2: the queue stops until reset; elements still waiting are never published. */
    private void markBroken() {
        broken = true;
        ringErrors++;
        completed.clear();
    }

    // ---- counters ----

    public long chainsPopped() {
        return chainsPopped;
    }

    public long usedPushed() {
        return usedPushed;
    }

    public long notificationsSent() {
        return notificationsSent;
    }

    public long notificationsSuppressed() {
        return notificationsSuppressed;
    }

    /** Ring faults (unreadable/unwritable ring, available index overrun): each broke the queue. */
    public long ringErrors() {
        return ringErrors;
    }

    /** Loaded-running rings picked up where they were ({@link #resume}). */
    public long resumes() {
        return resumes;
    }

    /** Loaded-running rings that had to be set up afresh instead (layout changed, or used->idx outside the saved window). */
    public long resumesAbandoned() {
        return resumesAbandoned;
    }

    public long chainErrors(ChainError e) {
        return chainErrors[e.ordinal()];
    }

    public long malformedChains() {
        long n = 0;
        for (long v : chainErrors) {
            n += v;
        }
        return n;
    }

    /** Every counter by name, for logs and the control API. */
    public Map<String, Long> counters() {
        Map<String, Long> m = new java.util.LinkedHashMap<>();
        m.put("chains_popped", chainsPopped);
        m.put("used_pushed", usedPushed);
        m.put("notifications_sent", notificationsSent);
        m.put("notifications_suppressed", notificationsSuppressed);
        m.put("ring_errors", ringErrors);
        m.put("resumes", resumes);
        m.put("resumes_abandoned", resumesAbandoned);
        for (ChainError e : ChainError.values()) {
            m.put("chain_error." + e.name().toLowerCase(java.util.Locale.ROOT), chainErrors[e.ordinal()]);
        }
        return m;
    }
}
