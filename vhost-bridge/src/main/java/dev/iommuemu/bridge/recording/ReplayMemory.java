package dev.iommuemu.bridge.recording;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.proto.v1.Effect;
import dev.iommuemu.proto.v1.RamRegion;
import dev.iommuemu.proto.v1.RecordedOperation;
import java.util.List;

/**
 * Guest memory for a replay (docs/recording.md): the recorded RAM layout (so that lookups find,
 * split and abort where the daemon's did), over a {@link SparseGuestMemory} that holds, for one
 * operation at a time, exactly the bytes the recording says the model read during it, and the
 * model's writes. A byte the recording read more than once in the operation (the guest changed it
 * meanwhile, e.g. a virtqueue's available index re-read after another vCPU added a request; or
 * the model read back its own write) gives its recorded values in order, then keeps the last.
 * Bytes the recording does not have read as zero; {@link Replay} reports such a read.
 *
 * <p>Single-threaded, as a replay is; {@link Region#compareAndSet64} stores without comparing,
 * because the {@link dev.iommuemu.memory.RecordingGuestMemory} above it has just read the value and
 * compared it.
 */
final class ReplayMemory implements GuestMemory, dev.iommuemu.bridge.memory.RamLayout {
    private long[] bases = new long[0];
    private long[] sizes = new long[0];
    private SparseGuestMemory store = SparseGuestMemory.unbounded();
    private Region backing = store.find(0, 1);
    /** Bytes read more than once in the operation: their recorded values, and how many were given. */
    private final java.util.Map<Long, Rereads> rereads = new java.util.HashMap<>();

    private static final class Rereads {
        final byte[] values;
        int given;

        Rereads(byte[] values) {
            this.values = values;
        }

        byte next() {
            return values[Math.min(given++, values.length - 1)];
        }
    }

    /** The RAM layout from now on. */
    void layout(List<RamRegion> ram) {
        bases = new long[ram.size()];
        sizes = new long[ram.size()];
        for (int i = 0; i < ram.size(); i++) {
            bases[i] = ram.get(i).getGuestPhysAddr();
            sizes[i] = ram.get(i).getSize();
        }
    }

    /** Memory for replaying {@code op}: only what it read. */
    void seed(RecordedOperation op) {
        store = SparseGuestMemory.unbounded();
        backing = store.find(0, 1);
        rereads.clear();
        java.util.Map<Long, java.io.ByteArrayOutputStream> later = new java.util.HashMap<>();
        java.util.Set<Long> seen = new java.util.HashSet<>();
        for (Effect e : op.getEffectsList()) {
            if (!e.hasRead()) {
                continue;
            }
            byte[] b = e.getRead().getData().toByteArray();
            long a = e.getRead().getAddress();
            for (int i = 0; i < b.length; i++) {
                if (seen.add(a + i)) {
                    backing.write8(a + i, b[i]);
                } else {
                    later.computeIfAbsent(a + i, k -> {
                        java.io.ByteArrayOutputStream v = new java.io.ByteArrayOutputStream();
                        v.write(backing.read8(k));
                        return v;
                    }).write(b[i]);
                }
            }
        }
        later.forEach((a, v) -> rereads.put(a, new Rereads(v.toByteArray())));
    }

    /** Reads {@code len} bytes at {@code a}: the store, with re-read bytes in their recorded order. */
    private void replayRead(long a, byte[] dst, int off, int len) {
        backing.read(a, dst, off, len);
        if (!rereads.isEmpty()) {
            for (int i = 0; i < len; i++) {
                Rereads r = rereads.get(a + i);
                if (r != null) {
                    dst[off + i] = r.next();
                }
            }
        }
    }

    private long readLe(long a, int size) {
        byte[] b = new byte[size];
        replayRead(a, b, 0, size);
        long v = 0;
        for (int i = size - 1; i >= 0; i--) {
            v = (v << 8) | (b[i] & 0xff);
        }
        return v;
    }

    @Override
    public List<Region> regions() {
        List<Region> l = new java.util.ArrayList<>(bases.length);
        for (int i = 0; i < bases.length; i++) {
            l.add(new View(bases[i], sizes[i]));
        }
        return l;
    }

    @Override
    public Region find(long addr, int len) {
        for (int i = 0; i < bases.length; i++) {
            long off = addr - bases[i];
            if (Long.compareUnsigned(off, sizes[i]) < 0 && Long.compareUnsigned(sizes[i] - off, len) >= 0) {
                return new View(bases[i], sizes[i]);
            }
        }
        return null;
    }

    /** One recorded RAM region, its bytes in the operation's store. */
    private final class View implements Region {
        private final long base;
        private final long size;

        View(long base, long size) {
            this.base = base;
            this.size = size;
        }

        @Override public long base() { return base; }
        @Override public long size() { return size; }
        @Override public byte read8(long a) { return (byte) readLe(a, 1); }
        @Override public short read16(long a) { return (short) readLe(a, 2); }
        @Override public int read32(long a) { return (int) readLe(a, 4); }
        @Override public long read64(long a) { return readLe(a, 8); }
        @Override public void write8(long a, byte v) { backing.write8(a, v); }
        @Override public void write16(long a, short v) { backing.write16(a, v); }
        @Override public void write32(long a, int v) { backing.write32(a, v); }
        @Override public void write64(long a, long v) { backing.write64(a, v); }
        @Override
        public boolean compareAndSet64(long a, long expect, long update) {
            backing.write64(a, update); // compared by the RecordingGuestMemory above (see the class comment)
            return true;
        }

        @Override public void read(long a, byte[] dst, int off, int len) { replayRead(a, dst, off, len); }
        @Override public void write(long a, byte[] src, int off, int len) { backing.write(a, src, off, len); }
    }
}
