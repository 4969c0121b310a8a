package dev.iommuemu.memory;

import java.util.OptionalLong;

/**
 * The guest's physical address space as the IOMMU sees it: the memory its table walks, queue
 * fetches and event writes reach.
 *
 * <p>An access that is not wholly inside one {@link Region} is an <em>abort</em>: the lookup
 * returns {@code null} (or {@code false} for the bulk forms), and the caller turns it into the
 * architected response (IHI 0070 §3.14.1 external aborts on table walks: F_WALK_EABT,
 * F_STE_FETCH, F_CD_FETCH, CERROR_ABT; virtio DEVERR). Nothing here throws for a guest address.
 *
 * <p>All multi-byte values are little-endian (IHI 0070 §3.15: structures in memory are
 * little-endian unless a table's ENDI bit says otherwise; the walker byte-swaps those).
 */
public interface GuestMemory {

    /**
     * The region holding every byte of {@code [addr, addr + len)}, or {@code null} when any of
     * them lies outside every region (an abort). {@code len} is at least 1.
     */
    Region find(long addr, int len);

    /** Reads {@code len} bytes; {@code false} (and {@code dst} unspecified) on an abort. */
    default boolean read(long addr, byte[] dst, int off, int len) {
        long a = addr;
        int o = off;
        int left = len;
        while (left > 0) {
            Region r = find(a, 1);
            if (r == null) {
                return false;
            }
            int n = chunk(r, a, left);
            r.read(a, dst, o, n);
            a += n;
            o += n;
            left -= n;
        }
        return true;
    }

    /**
     * Writes {@code len} bytes. Every byte is checked first, so an abort writes nothing and
     * returns {@code false}.
     */
    default boolean write(long addr, byte[] src, int off, int len) {
        long a = addr;
        int left = len;
        while (left > 0) {
            Region r = find(a, 1);
            if (r == null) {
                return false;
            }
            int n = chunk(r, a, left);
            a += n;
            left -= n;
        }
        a = addr;
        int o = off;
        left = len;
        while (left > 0) {
            Region r = find(a, 1);
            int n = chunk(r, a, left);
            r.write(a, src, o, n);
            a += n;
            o += n;
            left -= n;
        }
        return true;
    }

    /** How many of {@code left} bytes from {@code a} lie in {@code r} (which holds {@code a}). */
    private static int chunk(Region r, long a, int left) {
        long remaining = r.size() - (a - r.base());
        return Long.compareUnsigned(remaining, left) >= 0 ? left : (int) remaining;
    }

    /** A little-endian value of {@code size} (1, 2, 4 or 8) bytes, zero-extended; empty on an abort. */
    default OptionalLong load(long addr, int size) {
        Region r = find(addr, size);
        if (r == null) {
            return OptionalLong.empty();
        }
        return switch (size) {
            case 1 -> OptionalLong.of(r.read8(addr) & 0xffL);
            case 2 -> OptionalLong.of(r.read16(addr) & 0xffffL);
            case 4 -> OptionalLong.of(r.read32(addr) & 0xffff_ffffL);
            case 8 -> OptionalLong.of(r.read64(addr));
            default -> throw new IllegalArgumentException("size " + size);
        };
    }

    /** Stores a little-endian value of {@code size} (1, 2, 4 or 8) bytes; {@code false} on an abort. */
    default boolean store(long addr, int size, long value) {
        Region r = find(addr, size);
        if (r == null) {
            return false;
        }
        switch (size) {
            case 1 -> r.write8(addr, (byte) value);
            case 2 -> r.write16(addr, (short) value);
            case 4 -> r.write32(addr, (int) value);
            case 8 -> r.write64(addr, value);
            default -> throw new IllegalArgumentException("size " + size);
        }
        return true;
    }

    /**
     * One contiguous, directly accessible range of guest physical memory. Accessors take absolute
     * guest physical addresses that the caller has checked with {@link GuestMemory#find}.
     */
    interface Region {
        /** First guest physical address. */
        long base();

        /** Size in bytes. */
        long size();

        /** One past the last address (wraps to 0 for a region reaching 2^64). */
        default long end() {
            return base() + size();
        }

        /** Whether {@code [addr, addr+len)} lies in this region. */
        default boolean contains(long addr, int len) {
            long off = addr - base();
            return Long.compareUnsigned(off, size()) < 0 && Long.compareUnsigned(size() - off, len) >= 0;
        }

        byte read8(long addr);

        short read16(long addr);

        int read32(long addr);

        long read64(long addr);

        void write8(long addr, byte v);

        void write16(long addr, short v);

        void write32(long addr, int v);

        void write64(long addr, long v);

        /**
         * Atomic 64-bit compare-and-swap of a naturally aligned doubleword, as hardware updates of
         * translation table descriptors require (Arm ARM D8.4.x hardware management of the Access
         * flag and dirty state: the update is an atomic read-modify-write).
         */
        boolean compareAndSet64(long addr, long expect, long update);

        void read(long addr, byte[] dst, int off, int len);

        void write(long addr, byte[] src, int off, int len);
    }
}
