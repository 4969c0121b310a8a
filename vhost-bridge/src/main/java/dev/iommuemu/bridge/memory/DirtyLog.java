package dev.iommuemu.bridge.memory;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.logging.Logger;

/**
 * The VMM's dirty page log (docs/protocol.md §4.11, version 11), as vhost-user's "dirty pages
 * log" (docs/interop/vhost-user.rst "Migration", VHOST_USER_SET_LOG_BASE with struct
 * vhost_user_log {u64 mmap_size, u64 mmap_offset}): a bitmap in a memfd the VMM shares, one bit per
 * 4 KiB page of guest physical address, page {@code n} at byte {@code n / 8}, bit {@code n % 8}.
 * The daemon's writes into guest RAM are invisible to the VMM's own dirty tracking, so after each
 * one the daemon sets the bits of the pages it touched ({@link #mark}); the VMM clears them (an
 * atomic exchange per word) as it copies the pages. The daemon only sets bits.
 *
 * <p>Calls run under the session lock (the owner unmaps under it too); the counts are plain.
 */
public final class DirtyLog implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(DirtyLog.class.getName());
    /** 4 KiB pages: vhost-user "dirty pages log" VHOST_LOG_PAGE. */
    public static final int PAGE_SHIFT = 12;
    /** The largest log the daemon maps (§4.11): 2^33 pages, 32 TiB of guest physical address. */
    public static final long MAX_SIZE = 1L << 30;
    private static final VarHandle WORD = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    /** Where a log's counts go (the session's counters). */
    public interface Listener {
        /** {@code pages} bits went from 0 to 1 in one write. */
        void marked(long pages);

        /** A page written beyond the bitmap (its bit would be past the log's end). */
        void overflow();
    }

    private final MappedRegion mem;
    private final ByteBuffer words;
    private final long pages;
    private final String owner;
    private final Listener listener;
    private long marked;
    private long overflows;

    private DirtyLog(MappedRegion mem, String owner, Listener listener) {
        this.mem = mem;
        this.words = mem.singleChunk();
        this.pages = mem.size() * 8;
        this.owner = owner;
        this.listener = listener;
    }

    /**
     * Why a log of {@code mmapSize} bytes at {@code mmapOffset} of its memfd cannot be mapped (a
     * sentence), or null: the size is a positive multiple of 8 (whole 64-bit words, which the
     * daemon sets atomically) of at most {@link #MAX_SIZE}, the offset a multiple of the page size
     * (mmap(2) takes page-aligned offsets).
     */
    public static String check(long mmapSize, long mmapOffset) {
        if (mmapSize <= 0 || mmapSize > MAX_SIZE || (mmapSize & 7) != 0) {
            return "a dirty log is a positive multiple of 8 bytes up to " + MAX_SIZE + " (1 GiB), not " + mmapSize
                    + " bytes: size it as (highest guest physical address / 4096 / 8) rounded up to 8";
        }
        if (mmapOffset < 0 || (mmapOffset & (4096 - 1)) != 0) {
            return String.format("the dirty log's mmap_offset 0x%x is not a multiple of the 4096-byte page size", mmapOffset);
        }
        return null;
    }

    /**
     * Why a log of {@code mmapSize} bytes cannot log a guest whose mapped RAM ends at
     * {@code ramEnd} (the highest region's GPA + size; 0 without RAM), or null. The log covers
     * GPA below {@code mmapSize * 8 * 4096} (one bit per 4 KiB page, vhost-user "dirty pages
     * log"); a page above it would be written unlogged and reach a migration's destination stale.
     * Regions added after the log are not refused but counted ({@link #overflow}). {@code mmapSize}
     * as {@link #check} accepts it (at most {@link #MAX_SIZE}, so the product does not overflow).
     */
    public static String coverage(long mmapSize, long ramEnd) {
        long limit = (mmapSize * 8) << PAGE_SHIFT;
        if (Long.compareUnsigned(ramEnd, limit) > 0) {
            return String.format("the dirty log covers guest physical addresses below 0x%x, but guest RAM reaches 0x%x;"
                    + " size it to cover all of guest RAM (at least %d bytes)",
                    limit, ramEnd, ((((ramEnd - 1) >>> PAGE_SHIFT) >>> 6) + 1) << 3);
        }
        return null;
    }

    /**
     * Maps {@code mmapSize} bytes of {@code fd} from {@code mmapOffset}, MAP_SHARED read/write. An
     * argument {@link #check} refuses is an IllegalArgumentException; a descriptor that does not
     * map (or is not sealed against shrinking when {@code requireSeal}) an IOException. Takes
     * ownership of {@code fd} only on success.
     */
    public static DirtyLog map(int fd, long mmapSize, long mmapOffset, boolean requireSeal, String owner, Listener listener)
            throws IOException {
        String bad = check(mmapSize, mmapOffset);
        if (bad != null) {
            throw new IllegalArgumentException(bad);
        }
        if (requireSeal) {
            MappedRegion.requireShrinkSeal(fd);
        }
        return new DirtyLog(MappedRegion.map(0, mmapSize, 0, mmapOffset, fd), owner, listener);
    }

    /** Bytes of bitmap. */
    public long size() {
        return mem.size();
    }

    /** The first guest physical address the log does not cover. */
    public long limit() {
        return pages << PAGE_SHIFT;
    }

    /** Bits this log set (that were clear). */
    public long marked() {
        return marked;
    }

    /** Page writes beyond the bitmap. */
    public long overflows() {
        return overflows;
    }

    /**
     * Sets the bit of every 4 KiB page of {@code [gpa, gpa + len)}, after the write to them
     * (vhost-user "dirty pages log": the back-end marks a page after writing it, atomically). A
     * word whose bit is set already is left alone, so the front-end's cache line is not written
     * for nothing. The full fence first orders the data write before the read of the word: the
     * front-end clears a word (an atomic exchange) and then copies its pages, so a bit seen set
     * here may be cleared at once after, and that copy must already see the data.
     */
    public void mark(long gpa, int len) {
        VarHandle.fullFence();
        long page = gpa >>> PAGE_SHIFT;
        long last = (gpa + len - 1) >>> PAGE_SHIFT;
        long set = 0;
        while (true) {
            if (Long.compareUnsigned(page, pages) >= 0) {
                overflow(page);
            } else {
                int at = (int) ((page >>> 6) << 3);
                long bit = 1L << (page & 63);
                if (((long) WORD.getOpaque(words, at) & bit) == 0 && ((long) WORD.getAndBitwiseOr(words, at, bit) & bit) == 0) {
                    set++;
                }
            }
            if (page == last) {
                break;
            }
            page++;
        }
        if (set != 0) {
            marked += set;
            listener.marked(set);
        }
    }

    private void overflow(long page) {
        if (overflows++ == 0) {
            LOG.warning(String.format("%s: the daemon wrote the guest page at GPA 0x%x, beyond the dirty log of %d bytes (pages below GPA 0x%x);"
                    + " writes there are not logged and may be lost in a migration: the VMM's log must cover all of guest RAM",
                    owner, page << PAGE_SHIFT, mem.size(), limit()));
        }
        listener.overflow();
    }

    /** Unmaps the bitmap and closes its descriptor. */
    @Override
    public void close() {
        mem.unmap();
    }
}
