package dev.iommuemu.memory;

/**
 * A {@link GuestMemory} that tells a {@link Tap} every access a model makes through it: the bytes
 * each read got, the bytes each write stored, and each lookup that found no memory (an abort).
 * With no tap (the default) it is the memory it wraps, plus one field read per lookup.
 *
 * <p>A model's only inputs besides its calls are its reads of guest memory; a record of them, and
 * of its writes, lets the same calls be replayed against a fresh model (docs/recording.md). A
 * hardware update of a descriptor ({@link Region#compareAndSet64}, Arm ARM D8.4 hardware
 * management of the Access flag and dirty state) is told as the read of the value it found and,
 * when it swapped, the write of the new one.
 *
 * <p>Pure: no threads, no I/O. The tap is called on the thread that made the access; the caller
 * serializes the model (the daemon's session lock), so taps need no locking of their own.
 */
public final class RecordingGuestMemory implements GuestMemory {

    /** Where accesses go. Arrays passed are copies the tap may keep. */
    public interface Tap {
        /** The model read {@code data} at {@code addr}. */
        void read(long addr, byte[] data);

        /** The model wrote {@code data} at {@code addr}. */
        void write(long addr, byte[] data);

        /** The model looked for {@code [addr, addr + len)} and it is not all in memory. */
        void abort(long addr, int len);
    }

    private final GuestMemory inner;
    private volatile Tap tap;

    public RecordingGuestMemory(GuestMemory inner) {
        this.inner = inner;
    }

    /** The memory this one records accesses to. */
    public GuestMemory inner() {
        return inner;
    }

    /** Starts telling {@code t} (or, with {@code null}, stops telling anyone). */
    public void tap(Tap t) {
        tap = t;
    }

    @Override
    public Region find(long addr, int len) {
        Region r = inner.find(addr, len);
        Tap t = tap;
        if (t == null) {
            return r;
        }
        if (r == null) {
            t.abort(addr, len);
            return null;
        }
        return new Tapped(r, t);
    }

    private static byte[] le(long v, int size) {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) {
            b[i] = (byte) (v >>> (8 * i));
        }
        return b;
    }

    /** A region whose accesses go to a tap (after they happened, with the values they moved). */
    private record Tapped(Region r, Tap t) implements Region {
        @Override
        public long base() {
            return r.base();
        }

        @Override
        public long size() {
            return r.size();
        }

        @Override
        public byte read8(long a) {
            byte v = r.read8(a);
            t.read(a, new byte[] {v});
            return v;
        }

        @Override
        public short read16(long a) {
            short v = r.read16(a);
            t.read(a, le(v, 2));
            return v;
        }

        @Override
        public int read32(long a) {
            int v = r.read32(a);
            t.read(a, le(v, 4));
            return v;
        }

        @Override
        public long read64(long a) {
            long v = r.read64(a);
            t.read(a, le(v, 8));
            return v;
        }

        @Override
        public void write8(long a, byte v) {
            r.write8(a, v);
            t.write(a, new byte[] {v});
        }

        @Override
        public void write16(long a, short v) {
            r.write16(a, v);
            t.write(a, le(v, 2));
        }

        @Override
        public void write32(long a, int v) {
            r.write32(a, v);
            t.write(a, le(v, 4));
        }

        @Override
        public void write64(long a, long v) {
            r.write64(a, v);
            t.write(a, le(v, 8));
        }

        /**
         * Told as what it observed: the value found (a read) and, if it swapped, the new value (a
         * write). A value that differs from {@code expect} fails the swap without trying it; a swap
         * that loses a race with another writer is retried with the new value read, so the told
         * read is always the value the swap compared.
         */
        @Override
        public boolean compareAndSet64(long a, long expect, long update) {
            while (true) {
                long seen = r.read64(a);
                if (seen != expect) {
                    t.read(a, le(seen, 8));
                    return false;
                }
                if (r.compareAndSet64(a, expect, update)) {
                    t.read(a, le(expect, 8));
                    t.write(a, le(update, 8));
                    return true;
                }
            }
        }

        @Override
        public void read(long a, byte[] dst, int off, int len) {
            r.read(a, dst, off, len);
            t.read(a, java.util.Arrays.copyOfRange(dst, off, off + len));
        }

        @Override
        public void write(long a, byte[] src, int off, int len) {
            r.write(a, src, off, len);
            t.write(a, java.util.Arrays.copyOfRange(src, off, off + len));
        }
    }
}
