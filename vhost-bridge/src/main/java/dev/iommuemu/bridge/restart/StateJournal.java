package dev.iommuemu.bridge.restart;

import dev.iommuemu.bridge.memory.MappedRegion;
import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * The restart journal (docs/protocol.md §4.10, version 10): the device state blob of docs/device-
 * state.md kept current in a memfd the VMM owns, so that when the daemon dies (SIGKILL, a crash)
 * the VMM can hand the last state to a new daemon with IOMMU_LOAD_STATE, as vhost-user back-ends
 * keep their inflight descriptors in front-end memory (vhost-user "Inflight I/O tracking").
 *
 * <p>Two slots alternate: a state is written whole into the slot that is not active, then its
 * descriptor, then (release) {@code active} names it, so a daemon killed at any instruction leaves
 * the last complete state active. The daemon never reads the memory back (the VMM may scribble on
 * it); it keeps which slot is active itself. Calls run under the session lock.
 */
public final class StateJournal implements AutoCloseable {
    /** §4.10 layout: a 4096-byte header, then slot 1 and slot 2 of {@code slot_size} bytes each. */
    public static final int HEADER = 4096;
    public static final int MAGIC = 0x314a4549; // "IEJ1" little-endian
    public static final int OFF_MAGIC = 0x00;
    public static final int OFF_ACTIVE = 0x04;
    public static final int OFF_SAVES = 0x08;
    public static final int OFF_SLOT_SIZE = 0x10;
    public static final int OFF_REASON = 0x14;
    /** Slot descriptor {@code i} (1, 2) at 0x20 + 32 * (i - 1): {u64 size, u64 writes_applied, u64 serial, u64 reserved}. */
    public static final int OFF_SLOTS = 0x20;
    public static final int SLOT_DESC = 32;
    /** At least one page per slot; at most 256 MiB of journal. */
    public static final long MIN_SIZE = HEADER + 2L * 4096;
    public static final long MAX_SIZE = 256L << 20;

    private final MappedRegion mem;
    private final long slotSize;
    private int active;
    private long serial;
    private byte[] last;
    private long lastWrites = -1;
    private int reason = -1;

    private StateJournal(MappedRegion mem, long slotSize) {
        this.mem = mem;
        this.slotSize = slotSize;
    }

    /** Bytes each of the two slots of a journal of {@code size} bytes holds. */
    public static long slotSize(long size) {
        return ((size - HEADER) / 2) & ~7L;
    }

    /** Offset of slot {@code i} (1, 2). */
    public static long slotOffset(long size, int i) {
        return HEADER + (i - 1) * slotSize(size);
    }

    /**
     * Maps the VMM's memfd of {@code size} bytes (MIN_SIZE..MAX_SIZE) as the journal, with no state
     * in it yet. Takes ownership of {@code fd} only on success.
     */
    public static StateJournal map(int fd, long size, boolean requireSeals) throws IOException {
        if (size < MIN_SIZE || size > MAX_SIZE) {
            throw new IllegalArgumentException("a restart journal is " + MIN_SIZE + " to " + MAX_SIZE + " bytes, not " + size);
        }
        if (requireSeals) {
            MappedRegion.requireShrinkSeal(fd);
        }
        StateJournal j = new StateJournal(MappedRegion.map(0, size, 0, 0, fd), slotSize(size));
        j.mem.write32(OFF_ACTIVE, 0);
        j.mem.write64(OFF_SAVES, 0);
        j.mem.write32(OFF_SLOT_SIZE, (int) Math.min(j.slotSize, Integer.MAX_VALUE));
        j.mem.write32(OFF_REASON, 0);
        for (int i = 0; i < 2; i++) {
            j.mem.write(OFF_SLOTS + (long) SLOT_DESC * i, new byte[SLOT_DESC], 0, SLOT_DESC);
        }
        VarHandle.releaseFence();
        j.mem.write32(OFF_MAGIC, MAGIC);
        VarHandle.fullFence();
        return j;
    }

    /**
     * The state after {@code writesApplied} IOMMU_MMIO_WRITEs (counted since the journal was set):
     * written into the inactive slot, then made active. The same state and count as the active
     * slot's is not written again. A state larger than a slot leaves no state (reason ENOSPC).
     */
    public void write(byte[] state, long writesApplied) {
        if (active != 0 && writesApplied == lastWrites && Arrays.equals(state, last)) {
            return;
        }
        if (state.length > slotSize) {
            unavailable(dev.iommuemu.bridge.protocol.ProtocolException.ENOSPC);
            return;
        }
        int next = active == 1 ? 2 : 1;
        long size = mem.size();
        mem.write(slotOffset(size, next), state, 0, state.length);
        long desc = OFF_SLOTS + (long) SLOT_DESC * (next - 1);
        mem.write64(desc, state.length);
        mem.write64(desc + 8, writesApplied);
        mem.write64(desc + 16, ++serial);
        // the slot and its descriptor before the switch: a reader that sees active == next sees them
        VarHandle.releaseFence();
        mem.write32(OFF_ACTIVE, next);
        mem.write64(OFF_SAVES, serial);
        if (reason != 0) {
            mem.write32(OFF_REASON, 0);
            reason = 0;
        }
        active = next;
        last = state;
        lastWrites = writesApplied;
    }

    /**
     * No current state can be kept (the model cannot save now, or the state does not fit): active 0
     * and the errno why, so a VMM does not restart from a stale one.
     */
    public void unavailable(int errno) {
        if (active == 0 && reason == errno) {
            return;
        }
        mem.write32(OFF_ACTIVE, 0);
        VarHandle.releaseFence();
        mem.write32(OFF_REASON, errno);
        active = 0;
        reason = errno;
        last = null;
        lastWrites = -1;
    }

    /** Why no state is kept (an errno), or 0. */
    public int reason() {
        return Math.max(reason, 0);
    }

    /** Number of states written. */
    public long saves() {
        return serial;
    }

    @Override
    public void close() {
        mem.unmap();
    }

    /**
     * What a VMM finds in a journal after the daemon is gone (§4.10), read from a copy of the
     * memory: the active slot's state and write count, or why there is none.
     */
    public record Found(byte[] state, long writesApplied, int reason) {
        /** Reads a journal's bytes; {@code null} state if none is active or the memory is not a journal. */
        public static Found read(java.nio.ByteBuffer journal) {
            java.nio.ByteBuffer b = journal.duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN);
            if (b.capacity() < MIN_SIZE || b.getInt(OFF_MAGIC) != MAGIC) {
                return new Found(null, 0, dev.iommuemu.bridge.protocol.ProtocolException.EINVAL);
            }
            int a = b.getInt(OFF_ACTIVE);
            if (a != 1 && a != 2) {
                return new Found(null, 0, b.getInt(OFF_REASON));
            }
            int desc = OFF_SLOTS + SLOT_DESC * (a - 1);
            long size = b.getLong(desc);
            if (size < 0 || size > slotSize(b.capacity())) {
                return new Found(null, 0, dev.iommuemu.bridge.protocol.ProtocolException.EINVAL);
            }
            byte[] s = new byte[(int) size];
            b.position((int) slotOffset(b.capacity(), a));
            b.get(s);
            return new Found(s, b.getLong(desc + 8), 0);
        }
    }
}
