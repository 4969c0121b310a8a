package dev.iommuemu.memory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;

/**
 * Guest memory on the Java heap for tests and benchmarks: a set of populated ranges whose 4 KiB
 * pages are allocated on first write (reads of untouched pages return zeros). Addresses outside
 * every range abort, which lets tests place table pointers in holes to provoke external aborts.
 *
 * <p>Thread-safe for concurrent readers and the atomic {@link Region#compareAndSet64}; plain writes
 * from several threads to the same bytes race as they would on hardware.
 */
public final class SparseGuestMemory implements GuestMemory {
    private static final int PAGE_SHIFT = 12;
    private static final int PAGE_SIZE = 1 << PAGE_SHIFT;
    private static final int WORDS = PAGE_SIZE / 8;
    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);

    private final SparseRegion[] regions;
    private final LongPageMap pages = new LongPageMap();
    private volatile SparseRegion last;

    /** Memory populated over {@code [0, size)}. */
    public SparseGuestMemory(long size) {
        this(new long[] {0, size});
    }

    /** Memory populated over the given {@code base, size} pairs (non-overlapping). */
    public SparseGuestMemory(long... baseSizePairs) {
        if (baseSizePairs.length % 2 != 0) {
            throw new IllegalArgumentException("base/size pairs expected");
        }
        List<SparseRegion> list = new ArrayList<>();
        for (int i = 0; i < baseSizePairs.length; i += 2) {
            list.add(new SparseRegion(baseSizePairs[i], baseSizePairs[i + 1]));
        }
        regions = list.toArray(new SparseRegion[0]);
        last = regions.length > 0 ? regions[0] : null;
    }

    /** The whole 64-bit space except the top page (so {@code end()} never wraps). */
    public static SparseGuestMemory unbounded() {
        return new SparseGuestMemory(0, -PAGE_SIZE);
    }

    @Override
    public Region find(long addr, int len) {
        SparseRegion r = last;
        if (r != null && r.contains(addr, len)) {
            return r;
        }
        for (SparseRegion c : regions) {
            if (c.contains(addr, len)) {
                last = c;
                return c;
            }
        }
        return null;
    }

    /** Number of 4 KiB pages that have been written (the memory the test really uses). */
    public int populatedPages() {
        return pages.size();
    }

    // ---- convenience for tests: these throw on an abort, since a test that writes outside its
    // memory is itself broken (guest-visible paths use find/read/write, which never throw).

    public void put64(long addr, long value) {
        if (!store(addr, 8, value)) {
            throw new IllegalArgumentException("outside memory: 0x" + Long.toHexString(addr));
        }
    }

    public void put32(long addr, int value) {
        if (!store(addr, 4, value)) {
            throw new IllegalArgumentException("outside memory: 0x" + Long.toHexString(addr));
        }
    }

    public long get64(long addr) {
        return load(addr, 8).orElseThrow(() -> new IllegalArgumentException("outside memory: 0x" + Long.toHexString(addr)));
    }

    public int get32(long addr) {
        return (int) load(addr, 4).orElseThrow(() -> new IllegalArgumentException("outside memory: 0x" + Long.toHexString(addr)));
    }

    private long[] pageForRead(long addr) {
        return pages.get(addr >>> PAGE_SHIFT);
    }

    private long[] pageForWrite(long addr) {
        return pages.getOrCreate(addr >>> PAGE_SHIFT, WORDS);
    }

    private byte byteAt(long addr) {
        long[] p = pageForRead(addr);
        if (p == null) {
            return 0;
        }
        int off = (int) (addr & (PAGE_SIZE - 1));
        long w = (long) LONGS.getOpaque(p, off >>> 3);
        return (byte) (w >>> ((off & 7) * 8));
    }

    private void setByte(long addr, byte v) {
        long[] p = pageForWrite(addr);
        int off = (int) (addr & (PAGE_SIZE - 1));
        int idx = off >>> 3;
        int sh = (off & 7) * 8;
        long mask = 0xffL << sh;
        long cur;
        long upd;
        do {
            cur = (long) LONGS.getVolatile(p, idx);
            upd = (cur & ~mask) | ((v & 0xffL) << sh);
        } while (!LONGS.compareAndSet(p, idx, cur, upd));
    }

    private long readLE(long addr, int size) {
        if ((addr & (size - 1)) == 0) {
            long[] p = pageForRead(addr);
            if (p == null) {
                return 0;
            }
            int off = (int) (addr & (PAGE_SIZE - 1));
            long w = (long) LONGS.getOpaque(p, off >>> 3);
            if (size == 8) {
                return w;
            }
            return w >>> ((off & 7) * 8);
        }
        long v = 0;
        for (int i = 0; i < size; i++) {
            v |= (byteAt(addr + i) & 0xffL) << (8 * i);
        }
        return v;
    }

    private void writeLE(long addr, int size, long value) {
        if ((addr & (size - 1)) == 0) {
            long[] p = pageForWrite(addr);
            int off = (int) (addr & (PAGE_SIZE - 1));
            int idx = off >>> 3;
            if (size == 8) {
                LONGS.setVolatile(p, idx, value);
                return;
            }
            int sh = (off & 7) * 8;
            long mask = (size == 4 ? 0xffff_ffffL : size == 2 ? 0xffffL : 0xffL) << sh;
            long cur;
            long upd;
            do {
                cur = (long) LONGS.getVolatile(p, idx);
                upd = (cur & ~mask) | ((value << sh) & mask);
            } while (!LONGS.compareAndSet(p, idx, cur, upd));
            return;
        }
        for (int i = 0; i < size; i++) {
            setByte(addr + i, (byte) (value >>> (8 * i)));
        }
    }

    private final class SparseRegion implements Region {
        private final long base;
        private final long size;

        SparseRegion(long base, long size) {
            this.base = base;
            this.size = size;
        }

        @Override public long base() { return base; }
        @Override public long size() { return size; }
        @Override public byte read8(long a) { return byteAt(a); }
        @Override public short read16(long a) { return (short) readLE(a, 2); }
        @Override public int read32(long a) { return (int) readLE(a, 4); }
        @Override public long read64(long a) { return readLE(a, 8); }
        @Override public void write8(long a, byte v) { setByte(a, v); }
        @Override public void write16(long a, short v) { writeLE(a, 2, v); }
        @Override public void write32(long a, int v) { writeLE(a, 4, v); }
        @Override public void write64(long a, long v) { writeLE(a, 8, v); }

        @Override
        public boolean compareAndSet64(long a, long expect, long update) {
            if ((a & 7) != 0) {
                throw new IllegalArgumentException("unaligned CAS at 0x" + Long.toHexString(a));
            }
            long[] p = pageForWrite(a);
            return LONGS.compareAndSet(p, (int) ((a & (PAGE_SIZE - 1)) >>> 3), expect, update);
        }

        @Override
        public void read(long a, byte[] dst, int off, int len) {
            for (int i = 0; i < len; i++) {
                dst[off + i] = byteAt(a + i);
            }
        }

        @Override
        public void write(long a, byte[] src, int off, int len) {
            for (int i = 0; i < len; i++) {
                setByte(a + i, src[off + i]);
            }
        }
    }

    /**
     * Open-addressing map from page number to page, lock-free for readers: the table array is
     * replaced on growth and slots are published with release stores.
     */
    private static final class LongPageMap {
        private static final VarHandle OBJS = MethodHandles.arrayElementVarHandle(Object[].class);
        private volatile Table table = new Table(64);
        private int size;

        private static final class Table {
            final long[] keys;
            final Object[] vals;
            final int mask;

            Table(int cap) {
                keys = new long[cap];
                vals = new Object[cap];
                mask = cap - 1;
            }
        }

        private static int slot(long key, int mask) {
            long h = key * 0x9E3779B97F4A7C15L;
            return (int) (h ^ (h >>> 29)) & mask;
        }

        long[] get(long key) {
            Table t = table;
            int i = slot(key, t.mask);
            while (true) {
                Object v = OBJS.getAcquire(t.vals, i);
                if (v == null) {
                    return null;
                }
                if (t.keys[i] == key) {
                    return (long[]) v;
                }
                i = (i + 1) & t.mask;
            }
        }

        synchronized int size() {
            return size;
        }

        long[] getOrCreate(long key, int words) {
            long[] p = get(key);
            if (p != null) {
                return p;
            }
            synchronized (this) {
                p = get(key);
                if (p != null) {
                    return p;
                }
                if ((size + 1) * 2 > table.keys.length) {
                    Table old = table;
                    Table nt = new Table(old.keys.length * 2);
                    for (int i = 0; i < old.keys.length; i++) {
                        if (old.vals[i] != null) {
                            insert(nt, old.keys[i], old.vals[i]);
                        }
                    }
                    table = nt;
                }
                p = new long[words];
                insert(table, key, p);
                size++;
                return p;
            }
        }

        private static void insert(Table t, long key, Object v) {
            int i = slot(key, t.mask);
            while (t.vals[i] != null) {
                i = (i + 1) & t.mask;
            }
            t.keys[i] = key;
            OBJS.setRelease(t.vals, i, v);
        }
    }
}
