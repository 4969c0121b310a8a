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
 * operation at a time, exactly the bytes the recording says the model read during it (the first
 * read of a byte wins: a later read of it may follow the model's own write) and the model's writes.
 * Bytes the recording does not have read as zero; {@link Replay} reports such a read.
 */
final class ReplayMemory implements GuestMemory, dev.iommuemu.bridge.memory.RamLayout {
    private long[] bases = new long[0];
    private long[] sizes = new long[0];
    private SparseGuestMemory store = SparseGuestMemory.unbounded();
    private Region backing = store.find(0, 1);

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
        List<Effect> effects = op.getEffectsList();
        for (int i = effects.size() - 1; i >= 0; i--) {
            Effect e = effects.get(i);
            if (e.hasRead()) {
                byte[] b = e.getRead().getData().toByteArray();
                store.write(e.getRead().getAddress(), b, 0, b.length);
            }
        }
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
        @Override public byte read8(long a) { return backing.read8(a); }
        @Override public short read16(long a) { return backing.read16(a); }
        @Override public int read32(long a) { return backing.read32(a); }
        @Override public long read64(long a) { return backing.read64(a); }
        @Override public void write8(long a, byte v) { backing.write8(a, v); }
        @Override public void write16(long a, short v) { backing.write16(a, v); }
        @Override public void write32(long a, int v) { backing.write32(a, v); }
        @Override public void write64(long a, long v) { backing.write64(a, v); }
        @Override public boolean compareAndSet64(long a, long expect, long update) { return backing.compareAndSet64(a, expect, update); }
        @Override public void read(long a, byte[] dst, int off, int len) { backing.read(a, dst, off, len); }
        @Override public void write(long a, byte[] src, int off, int len) { backing.write(a, src, off, len); }
    }
}
