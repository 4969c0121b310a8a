package dev.iommuemu.virtqueue;

import dev.iommuemu.memory.GuestMemory;
import java.lang.invoke.VarHandle;
import java.util.Map;
import java.util.OptionalLong;

/**
 * The device side of one split virtqueue in guest memory (virtio 1.2 §2.7): the descriptor
 * table, the available ring the driver fills and the used ring the device fills. Device-agnostic:
 * a device pops {@link DescriptorChain}s, interprets them, and {@link #push}es them back, then asks
 * {@link #needsNotification()} whether to send a used buffer notification.
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

    // Counters (cumulative over the queue's life, kept across reset for diagnostics).
    private long chainsPopped;
    private long usedPushed;
    private long notificationsSent;
    private long notificationsSuppressed;
    private long ringErrors;
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
     * a fresh queue; the current value after a vhost-user hand-over) into the device's copy.
     */
    public void setEnabled(boolean on) {
        if (on && !enabled) {
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
     */
    public record State(int size, long descAddr, long availAddr, long usedAddr, boolean enabled, boolean broken,
            int nextAvail, int usedIdx, int signalledUsed) {}

    /** The queue's {@link State}. */
    public State state() {
        return new State(size, descAddr, availAddr, usedAddr, enabled, broken, nextAvail, usedIdx, usedAtLastDecision);
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
        return null;
    }

    /**
     * Takes {@code s} as is (checked by {@link #refusal}): no guest memory is read, unlike
     * {@link #setEnabled}, which takes used->idx from the ring (the destination's memory may not
     * have arrived yet, and the device's copy is the one it saved).
     */
    public void restore(State s) {
        size = s.size();
        descAddr = s.descAddr();
        availAddr = s.availAddr();
        usedAddr = s.usedAddr();
        enabled = s.enabled();
        broken = s.broken();
        nextAvail = s.nextAvail();
        usedIdx = s.usedIdx();
        usedAtLastDecision = s.signalledUsed();
    }

    // ---- processing ----

    /**
     * The next available chain, or {@code null} when none is available (or the queue is disabled
     * or broken). A malformed chain is returned with its error set; the caller still returns it
     * with {@link #push} (unless it is not {@link DescriptorChain#returnable()}).
     */
    public DescriptorChain pop() {
        if (!enabled || broken) {
            return null;
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
     * Returns a chain to the driver with {@code len} bytes written (§2.7.8: len is set before
     * used->idx moves). {@code false} when the used ring cannot be written (the queue is then
     * broken).
     */
    public boolean push(int head, int len) {
        if (!enabled || broken) {
            return false;
        }
        long elem = usedAddr + VirtqRing.USED_RING + (long) VirtqRing.USED_ELEM_SIZE * (usedIdx & (size - 1));
        if (!mem.store(elem, 4, head) || !mem.store(elem + 4, 4, len)) {
            markBroken();
            return false;
        }
        usedIdx = (usedIdx + 1) & 0xffff;
        VarHandle.releaseFence(); // the element (and the buffer contents) before used->idx (§2.7.8)
        if (!mem.store(usedAddr + VirtqRing.USED_IDX, 2, usedIdx)) {
            markBroken();
            return false;
        }
        usedPushed++;
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
        if (!enabled || broken) {
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
        if (!enabled || broken) {
            return false;
        }
        OptionalLong idx = mem.load(availAddr + VirtqRing.AVAIL_IDX, 2);
        return idx.isPresent() && ((int) idx.getAsLong() & 0xffff) != nextAvail;
    }

    private void markBroken() {
        broken = true;
        ringErrors++;
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
        for (ChainError e : ChainError.values()) {
            m.put("chain_error." + e.name().toLowerCase(java.util.Locale.ROOT), chainErrors[e.ordinal()]);
        }
        return m;
    }
}
