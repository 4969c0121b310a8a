package dev.iommuemu.interval;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * A map from disjoint inclusive ranges of unsigned 64-bit input addresses to {@link Mapping}s:
 * the address-space model shared by virtio-iommu domains (virtio spec, IOMMU device, "MAP
 * request": a mapping is the region created by one MAP) and the iommu-core / SMMUv3 domain models.
 *
 * <p>Built for 10^6 live entries: entries are kept sorted in chunks of parallel primitive arrays
 * (a two-level B-tree: a sorted array of chunk heads above sorted leaf arrays), so an entry costs
 * 28 bytes of array payload (start, last, target, attrs) plus the slack of partly filled chunks, and
 * no per-entry objects. Lookup is two binary searches; insert and remove shift at most one chunk
 * plus the chunk index. Appending in address order fills chunks completely.
 *
 * <p>Keys are stored with the sign bit flipped so that signed comparison orders them as unsigned.
 * Not thread-safe: the owning model serialises access.
 */
public final class IntervalMap {
    /** Entries per chunk. */
    static final int CHUNK = 256;
    private static final long BIAS = Long.MIN_VALUE;

    /** What a removal took out: how many entries and the span from the first's start to the last's end. */
    public record Removed(int count, long first, long last) {
        public static final Removed NONE = new Removed(0, 0, 0);
    }

    private static final class Chunk {
        final long[] first = new long[CHUNK]; // biased
        final long[] last = new long[CHUNK]; // biased
        final long[] target = new long[CHUNK];
        final int[] attrs = new int[CHUNK];
        int n;
    }

    private Chunk[] chunks = new Chunk[8];
    private long[] heads = new long[8]; // biased first key of each chunk
    private int nchunks;
    private int size;

    /** Number of entries. */
    public int size() {
        return size;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    /** Removes every entry. */
    public void clear() {
        chunks = new Chunk[8];
        heads = new long[8];
        nchunks = 0;
        size = 0;
    }

    /** The entry whose range contains {@code addr}, or {@code null}. */
    public Mapping find(long addr) {
        long k = addr ^ BIAS;
        int ci = chunkAtOrBefore(k);
        if (ci < 0) {
            return null;
        }
        Chunk c = chunks[ci];
        int i = entryAtOrBefore(c, k);
        if (c.last[i] < k) {
            return null;
        }
        return new Mapping(c.first[i] ^ BIAS, c.last[i] ^ BIAS, c.target[i], c.attrs[i]);
    }

    /** Whether any entry overlaps {@code [first, last]} (unsigned, inclusive). */
    public boolean overlaps(long first, long last) {
        // Entries are disjoint and sorted, so their ends increase with their starts: the entry with
        // the greatest start <= last is the only one that can reach back to first.
        long kl = last ^ BIAS;
        int ci = chunkAtOrBefore(kl);
        if (ci < 0) {
            return false;
        }
        Chunk c = chunks[ci];
        return c.last[entryAtOrBefore(c, kl)] >= (first ^ BIAS);
    }

    /**
     * Adds {@code [first, last] -> target}. Returns {@code false} and changes nothing when the range
     * overlaps an existing entry.
     */
    public boolean insert(long first, long last, long target, int attrs) {
        long kf = first ^ BIAS;
        long kl = last ^ BIAS;
        if (kf > kl) {
            throw new IllegalArgumentException("first > last: 0x" + Long.toHexString(first) + " 0x" + Long.toHexString(last));
        }
        if (overlaps(first, last)) {
            return false;
        }
        if (nchunks == 0) {
            insertChunk(0, new Chunk());
        }
        int ci = chunkAtOrBefore(kf);
        int pos;
        if (ci < 0) {
            ci = 0;
            pos = 0;
        } else {
            pos = entryAtOrBefore(chunks[ci], kf) + 1;
        }
        Chunk c = chunks[ci];
        if (c.n == CHUNK) {
            if (pos == CHUNK && ci == nchunks - 1) {
                // Appending past the highest entry: start a fresh chunk so ordered fills stay dense.
                c = new Chunk();
                ci = ci + 1;
                insertChunk(ci, c);
                pos = 0;
            } else {
                int half = CHUNK / 2;
                Chunk nc = new Chunk();
                int moved = c.n - half;
                System.arraycopy(c.first, half, nc.first, 0, moved);
                System.arraycopy(c.last, half, nc.last, 0, moved);
                System.arraycopy(c.target, half, nc.target, 0, moved);
                System.arraycopy(c.attrs, half, nc.attrs, 0, moved);
                nc.n = moved;
                c.n = half;
                insertChunk(ci + 1, nc);
                heads[ci + 1] = nc.first[0];
                if (pos > half) {
                    ci = ci + 1;
                    c = nc;
                    pos -= half;
                }
            }
        }
        int tail = c.n - pos;
        if (tail > 0) {
            System.arraycopy(c.first, pos, c.first, pos + 1, tail);
            System.arraycopy(c.last, pos, c.last, pos + 1, tail);
            System.arraycopy(c.target, pos, c.target, pos + 1, tail);
            System.arraycopy(c.attrs, pos, c.attrs, pos + 1, tail);
        }
        c.first[pos] = kf;
        c.last[pos] = kl;
        c.target[pos] = target;
        c.attrs[pos] = attrs;
        c.n++;
        if (pos == 0) {
            heads[ci] = kf;
        }
        size++;
        return true;
    }

    /**
     * Removes every entry lying wholly inside {@code [first, last]}; entries that only partly
     * overlap the range stay (callers that must refuse a split, such as virtio-iommu UNMAP, check
     * {@link #find} at both ends first).
     */
    public Removed removeWithin(long first, long last) {
        long kf = first ^ BIAS;
        long kl = last ^ BIAS;
        if (kf > kl || nchunks == 0) {
            return Removed.NONE;
        }
        int ci = chunkAtOrBefore(kf);
        int i;
        if (ci < 0) {
            ci = 0;
            i = 0;
        } else {
            Chunk c = chunks[ci];
            i = entryAtOrBefore(c, kf);
            if (c.first[i] < kf) {
                i++;
            }
        }
        int startChunk = ci;
        int count = 0;
        long lo = 0;
        long hi = 0;
        while (ci < nchunks) {
            Chunk c = chunks[ci];
            int oldN = c.n;
            int j = i;
            while (j < oldN && c.first[j] <= kl && c.last[j] <= kl) {
                j++;
            }
            int removed = j - i;
            if (removed > 0) {
                if (count == 0) {
                    lo = c.first[i];
                }
                hi = c.last[j - 1];
                count += removed;
                int tail = oldN - j;
                System.arraycopy(c.first, j, c.first, i, tail);
                System.arraycopy(c.last, j, c.last, i, tail);
                System.arraycopy(c.target, j, c.target, i, tail);
                System.arraycopy(c.attrs, j, c.attrs, i, tail);
                c.n -= removed;
            }
            boolean stopped = j < oldN;
            if (c.n == 0) {
                removeChunk(ci);
            } else {
                heads[ci] = c.first[0];
                ci++;
            }
            if (stopped) {
                break;
            }
            i = 0;
        }
        size -= count;
        if (count > 0) {
            mergeAround(Math.min(startChunk, nchunks - 1));
        }
        return count == 0 ? Removed.NONE : new Removed(count, lo ^ BIAS, hi ^ BIAS);
    }

    /** Entries overlapping {@code [first, last]}, in address order (for control APIs and tests). */
    public List<Mapping> overlapping(long first, long last) {
        List<Mapping> out = new ArrayList<>();
        long kf = first ^ BIAS;
        long kl = last ^ BIAS;
        if (nchunks == 0 || kf > kl) {
            return out;
        }
        int ci = chunkAtOrBefore(kf);
        int i = 0;
        if (ci < 0) {
            ci = 0;
        } else {
            i = entryAtOrBefore(chunks[ci], kf);
            if (chunks[ci].last[i] < kf) {
                i++;
            }
        }
        for (; ci < nchunks; ci++, i = 0) {
            Chunk c = chunks[ci];
            for (; i < c.n; i++) {
                if (c.first[i] > kl) {
                    return out;
                }
                out.add(new Mapping(c.first[i] ^ BIAS, c.last[i] ^ BIAS, c.target[i], c.attrs[i]));
            }
        }
        return out;
    }

    /** Visits every entry in address order. */
    public void forEach(Consumer<Mapping> action) {
        for (int ci = 0; ci < nchunks; ci++) {
            Chunk c = chunks[ci];
            for (int i = 0; i < c.n; i++) {
                action.accept(new Mapping(c.first[i] ^ BIAS, c.last[i] ^ BIAS, c.target[i], c.attrs[i]));
            }
        }
    }

    /** Estimated heap bytes held (arrays and chunk objects, 64-bit JVM with compressed oops). */
    public long memoryBytes() {
        long perChunk = 16 + 3 * (16 + 8L * CHUNK) + (16 + 4L * CHUNK);
        return 32 + (16 + 4L * chunks.length) + (16 + 8L * heads.length) + nchunks * perChunk;
    }

    /** Number of leaf chunks (for tests of the storage shape). */
    int chunkCount() {
        return nchunks;
    }

    private int chunkAtOrBefore(long k) {
        int lo = 0;
        int hi = nchunks - 1;
        int r = -1;
        long[] h = heads;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (h[mid] <= k) {
                r = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return r;
    }

    /** Index of the last entry of {@code c} starting at or before {@code k}, or -1. */
    private static int entryAtOrBefore(Chunk c, long k) {
        int lo = 0;
        int hi = c.n - 1;
        int r = -1;
        long[] f = c.first;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (f[mid] <= k) {
                r = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return r;
    }

    private void insertChunk(int at, Chunk c) {
        if (nchunks == chunks.length) {
            int cap = chunks.length * 2;
            chunks = java.util.Arrays.copyOf(chunks, cap);
            heads = java.util.Arrays.copyOf(heads, cap);
        }
        System.arraycopy(chunks, at, chunks, at + 1, nchunks - at);
        System.arraycopy(heads, at, heads, at + 1, nchunks - at);
        chunks[at] = c;
        nchunks++;
    }

    private void removeChunk(int at) {
        System.arraycopy(chunks, at + 1, chunks, at, nchunks - at - 1);
        System.arraycopy(heads, at + 1, heads, at, nchunks - at - 1);
        nchunks--;
        chunks[nchunks] = null;
        if (nchunks > 16 && nchunks * 4 < chunks.length) {
            chunks = java.util.Arrays.copyOf(chunks, chunks.length / 2);
            heads = java.util.Arrays.copyOf(heads, heads.length / 2);
        }
    }

    /**
     * Keeps removal from leaving many sparse chunks: a chunk below a quarter full is merged into a
     * neighbour when the two fit in three quarters of a chunk (so a merge never triggers a split).
     */
    private void mergeAround(int ci) {
        for (int k = Math.max(0, ci - 1); k <= ci + 1 && k + 1 < nchunks; k++) {
            Chunk a = chunks[k];
            Chunk b = chunks[k + 1];
            if ((a.n < CHUNK / 4 || b.n < CHUNK / 4) && a.n + b.n <= CHUNK * 3 / 4) {
                System.arraycopy(b.first, 0, a.first, a.n, b.n);
                System.arraycopy(b.last, 0, a.last, a.n, b.n);
                System.arraycopy(b.target, 0, a.target, a.n, b.n);
                System.arraycopy(b.attrs, 0, a.attrs, a.n, b.n);
                a.n += b.n;
                removeChunk(k + 1);
                k--;
            }
        }
    }
}
