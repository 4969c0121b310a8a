package dev.iommuemu.bridge.fastpath;

import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.Descriptor;
import java.lang.invoke.VarHandle;
import java.util.OptionalLong;

/**
 * The VMM's side of docs/protocol.md §4.8, written from the protocol text as the QEMU front-end
 * reads it (for Java VMMs: {@link dev.iommuemu.bridge.client.VmmClient}, tests and benchmarks):
 * lock-free lookups under each entry's sequence lock, the register mirror and writes_applied, and
 * (version 12) the walk recipes with the VMM's own stage 1 walk, {@link #walk}, exactly as §4.8
 * "Walk recipes" states it: the reference the QEMU front-end's C walk follows.
 */
public final class SharedCacheView {
    public record Hit(long iova, long output, int shift, int perm) {}

    /** A recipe as read under its sequence lock (§4.8 version 12), fields as stored. */
    public record Recipe(int seq, int endpoint, long ttb, int kind, int t0sz, int startLevel, int oas, int flags) {}

    /**
     * What the VMM's walk found: {@code iova}'s block of 2^{@code shift} bytes at {@code iova}
     * maps to {@code output}, read/write when {@code writable}, else read-only.
     */
    public record Walked(long iova, long output, int shift, boolean writable) {
        public long translate(long address) {
            return output | (address & ((1L << shift) - 1));
        }
    }

    private final MappedRegion mem;

    public SharedCacheView(MappedRegion mem) {
        this.mem = mem;
    }

    /** The shared memory itself (tests read the bytes of §4.8's layout). */
    public MappedRegion memory() {
        return mem;
    }

    public int sets() {
        return mem.read32(0);
    }

    public int ways() {
        return mem.read32(4);
    }

    public long shifts() {
        return mem.read64(8);
    }

    public void setNotifiers(boolean any) {
        mem.write32(0x10, any ? 1 : 0);
    }

    public int mirrorCount() {
        return mem.read32(0x14);
    }

    public long writesApplied() {
        return mem.read64(0x18);
    }

    public long mirrorOffset(int i) {
        return mem.read32(0x40 + 16L * i) & 0xffffffffL;
    }

    public int mirrorSize(int i) {
        return mem.read32(0x44 + 16L * i);
    }

    public long mirrorValue(int i) {
        return mem.read64(0x48 + 16L * i);
    }

    /** The entry holding {@code iova} of {@code endpoint}, or null (a miss). */
    public Hit lookup(int endpoint, long iova) {
        long shifts = shifts();
        for (; shifts != 0; shifts &= shifts - 1) {
            int bit = Long.numberOfTrailingZeros(shifts);
            int s = bit == 0 ? 64 : bit;
            long m = s >= 64 ? -1L : (1L << s) - 1;
            long set = SharedCache.HEADER + 64L * ways() * SharedCache.setOf(endpoint, iova & ~m, s, sets());
            for (int w = 0; w < ways(); w++) {
                long at = set + 64L * w;
                int seq = mem.read32(at);
                java.lang.invoke.VarHandle.acquireFence();
                if ((seq & 1) != 0) {
                    continue;
                }
                int ep = mem.read32(at + 4);
                long in = mem.read64(at + 8);
                long out = mem.read64(at + 16);
                int perm = mem.read32(at + 24);
                int sh = mem.read32(at + 28);
                java.lang.invoke.VarHandle.loadLoadFence();
                if (mem.read32(at) != seq || perm == 0 || ep != endpoint || sh != s || in != (iova & ~m)) {
                    continue;
                }
                return new Hit(in, out, sh, perm);
            }
        }
        return null;
    }

    /** The sequence word of every entry (all even when no write is under way). */
    public int seq(int slot) {
        return mem.read32(SharedCache.HEADER + 64L * slot);
    }

    // ---- walk recipes (§4.8, version 12)

    /** The header's inv_gen (0x28): bumped by every invalidation before it completes. */
    public long invalidationGeneration() {
        long g = mem.read64(SharedCache.OFF_INV_GEN);
        VarHandle.acquireFence();
        return g;
    }

    /**
     * Adds {@code pages} to the header's walked_pages (0x20). A plain read-modify-write: this test
     * VMM walks on one thread; a VMM walking on several adds atomically (§4.8).
     */
    public void addWalkedPages(long pages) {
        VarHandle.fullFence();
        mem.write64(SharedCache.OFF_WALKED_PAGES, mem.read64(SharedCache.OFF_WALKED_PAGES) + pages); // one Java VMM thread in tests
        VarHandle.fullFence();
    }

    public long walkedPages() {
        return mem.read64(SharedCache.OFF_WALKED_PAGES);
    }

    /**
     * Recipe slot {@code slot} (0..255) read with the sequence lock: seq (acquire), the fields, a
     * load fence, seq again; null when it is being written (odd) or changed under the read.
     */
    public Recipe recipeSlot(int slot) {
        long a = SharedCache.recipeTable(sets(), ways()) + (long) SharedCache.RECIPE * slot;
        int seq = mem.read32(a + SharedCache.R_SEQ);
        VarHandle.acquireFence();
        if ((seq & 1) != 0) {
            return null;
        }
        int ep = mem.read32(a + SharedCache.R_ENDPOINT);
        long ttb = mem.read64(a + SharedCache.R_TTB);
        int kind = mem.read32(a + SharedCache.R_KIND);
        int t0sz = mem.read8(a + SharedCache.R_T0SZ) & 0xff;
        int level = mem.read8(a + SharedCache.R_START_LEVEL) & 0xff;
        int oas = mem.read8(a + SharedCache.R_OAS) & 0xff;
        int flags = mem.read8(a + SharedCache.R_FLAGS) & 0xff;
        VarHandle.loadLoadFence();
        if (mem.read32(a + SharedCache.R_SEQ) != seq) {
            return null;
        }
        return new Recipe(seq, ep, ttb, kind, t0sz, level, oas, flags);
    }

    /** The kind-1 recipe of {@code endpoint} the VMM may walk with, or null (then it asks the daemon). */
    public Recipe recipe(int endpoint) {
        Recipe r = recipeSlot(endpoint & (SharedCache.RECIPES - 1));
        if (r == null || r.kind() != SharedCache.KIND_AARCH64_4K_TTB0 || r.endpoint() != endpoint
                || (r.flags() & SharedCache.RECIPE_UNPRIV) == 0 || r.t0sz() < 16 || r.t0sz() > 48
                || r.startLevel() > 3 || r.oas() > 48) {
            return null;
        }
        return r;
    }

    /**
     * The VMM's walk (§4.8 "Walk recipes") of an unprivileged {@code write} or read of
     * {@code iova} by {@code endpoint}, with its current recipe, in {@code ram}: the translation,
     * or null for "ask the daemon". Nothing is cached: every call reads the tables as they are.
     */
    public Walked walk(GuestMemory ram, int endpoint, long iova, boolean write) {
        long gen = invalidationGeneration();
        Recipe r = recipe(endpoint);
        if (r == null) {
            return null;
        }
        Walked w = walk(ram, r, iova, write);
        // §4.8 step 8: the walk's reads before the re-checks; an invalidation or a new recipe meanwhile
        // (the tables it read may be freed already): ask the daemon
        VarHandle.loadLoadFence();
        long a = SharedCache.recipeTable(sets(), ways()) + (long) SharedCache.RECIPE * (endpoint & (SharedCache.RECIPES - 1));
        if (w == null || mem.read32(a + SharedCache.R_SEQ) != r.seq() || invalidationGeneration() != gen) {
            return null;
        }
        return w;
    }

    /** The walk of §4.8 with recipe {@code r}, step by step as the protocol states it. */
    public static Walked walk(GuestMemory ram, Recipe r, long iova, boolean write) {
        int ia = 64 - r.t0sz();
        if ((iova >>> ia) != 0) {
            return null; // beyond the TTB0 range (or in TTB1's): the daemon decides
        }
        long table = r.ttb();
        for (int level = r.startLevel(); level <= 3; level++) {
            int shift = 12 + 9 * (3 - level); // Arm ARM D8.2: 4 KiB granule, 9 bits a level
            int bits = level == r.startLevel() ? ia - shift : 9;
            if (bits < 1 || bits > 9) {
                return null; // a start level that does not fit the T0SZ: not understood
            }
            long index = (iova >>> shift) & ((1L << bits) - 1);
            OptionalLong read = ram.load(table + 8 * index, 8); // little-endian tables
            if (read.isEmpty()) {
                return null; // not RAM
            }
            long desc = read.getAsLong();
            if (!Descriptor.VALID.isSet(desc) || Descriptor.BITS_51_48.get(desc) != 0) {
                return null;
            }
            boolean tableOrPage = Descriptor.TABLE_OR_PAGE.isSet(desc);
            if (level < 3 && tableOrPage) {
                if (Descriptor.AP_TABLE.get(desc) != 0) {
                    return null; // hierarchical permissions (Arm ARM D8.4.2): the daemon's
                }
                long next = Descriptor.ADDR_48.inPlace(desc);
                if ((next >>> r.oas()) != 0) {
                    return null;
                }
                table = next;
                continue;
            }
            if (!tableOrPage && (level == 0 || level == 3)) {
                return null; // no level 0 blocks with 4 KiB granules; 0b01 at level 3 is reserved
            }
            // a leaf: a page at level 3, a block at level 1 or 2 (Arm ARM D8.3)
            if (!Descriptor.AF.isSet(desc) || !Descriptor.AP_USER.isSet(desc)) {
                return null; // Access flag fault; no unprivileged access (D8.4 AP[1])
            }
            boolean readOnly = Descriptor.AP_RO.isSet(desc);
            if (write && readOnly) {
                return null; // a Permission fault the daemon records
            }
            long output = Descriptor.ADDR_48.inPlace(desc) & ~((1L << shift) - 1);
            if ((output >>> r.oas()) != 0) {
                return null;
            }
            return new Walked(iova & ~((1L << shift) - 1), output, shift, !readOnly);
        }
        return null;
    }
}
