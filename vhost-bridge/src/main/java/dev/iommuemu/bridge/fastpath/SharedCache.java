package dev.iommuemu.bridge.fastpath;

import dev.iommuemu.bridge.device.MirroredRegister;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.pagetable.WalkRecipe;
import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * The VMM's translation cache and register mirror in shared memory (docs/protocol.md §4.8,
 * version 9): the front-end reads translations and the registers drivers poll without a message;
 * the daemon, the only writer, fills the cache on a miss and invalidates it in place, so that an
 * invalidation costs no round trip to the VMM.
 *
 * <p>Every entry is a sequence lock: the daemon makes {@code seq} odd, writes the fields, makes it
 * even again (release); a reader that sees the same even {@code seq} before and after reading the
 * fields has a consistent entry. The daemon never reads an entry back from the shared memory (a
 * VMM may scribble on it): it keeps its own copy of what it wrote. All methods run under the
 * session lock.
 */
public final class SharedCache implements AutoCloseable {
    /** §4.8 layout: the header page, then {@code sets * ways} entries of 64 bytes. */
    public static final int HEADER = 4096;
    public static final int ENTRY = 64;
    public static final int OFF_SETS = 0x00;
    public static final int OFF_WAYS = 0x04;
    public static final int OFF_SHIFTS = 0x08;
    public static final int OFF_NOTIFIERS = 0x10;
    public static final int OFF_MIRROR_COUNT = 0x14;
    public static final int OFF_WRITES_APPLIED = 0x18;
    /** VMM-written (version 12): 4 KiB pages the VMM translated by walking recipes. */
    public static final int OFF_WALKED_PAGES = 0x20;
    /**
     * Daemon-written (version 12): bumped by every invalidation (TLBI, CFGI, reset) before it
     * completes, so a VMM walk that ran across one is not used (§4.8 "The VMM's walk").
     */
    public static final int OFF_INV_GEN = 0x28;
    public static final int OFF_MIRROR = 0x40;
    public static final int MIRROR_ENTRY = 16;
    public static final int MAX_MIRROR = (HEADER - OFF_MIRROR) / MIRROR_ENTRY;
    public static final int E_SEQ = 0;
    public static final int E_ENDPOINT = 4;
    public static final int E_IOVA = 8;
    public static final int E_OUTPUT = 16;
    public static final int E_PERM = 24;
    public static final int E_SHIFT = 28;
    public static final int MAX_SETS = 65536;
    public static final int MAX_WAYS = 16;
    /** IOMMU_SET_SHARED_CACHE flags bit 0 (version 12): the memory holds the walk recipe table. */
    public static final int FLAG_RECIPES = 1;
    /**
     * IOMMU_SET_SHARED_CACHE flags bit 1 (version 13): the memory holds the command-queue hand-off
     * region after the recipe table (§4.12); only with RECIPES, only for an SMMUv3.
     */
    public static final int FLAG_CMDQ = 2;
    /**
     * IOMMU_SET_SHARED_CACHE flags bit 2 (version 14): the memory holds the virtio-iommu request
     * hand-off region after the recipe table (§4.13); only with RECIPES, never with CMDQ, only for
     * a virtio-iommu.
     */
    public static final int FLAG_REQUESTS = 4;
    /** The flags this daemon knows. */
    public static final int FLAGS = FLAG_RECIPES | FLAG_CMDQ | FLAG_REQUESTS;
    /** §4.8 walk recipes: 256 entries of 64 bytes after the cache entries; endpoint e at slot e & 255. */
    public static final int RECIPES = 256;
    public static final int RECIPE = 64;
    public static final int R_SEQ = 0x00;
    public static final int R_ENDPOINT = 0x04;
    public static final int R_TTB = 0x08;
    public static final int R_KIND = 0x10;
    public static final int R_T0SZ = 0x14;
    public static final int R_START_LEVEL = 0x15;
    public static final int R_OAS = 0x16;
    public static final int R_FLAGS = 0x17;
    /** Recipe kind 1: AArch64 stage 1, 4 KiB granule, little-endian tables, TTB0 (0 = empty). */
    public static final int KIND_AARCH64_4K_TTB0 = 1;
    /** Recipe flags bit 0: the endpoint's transactions are unprivileged (always set by this daemon). */
    public static final int RECIPE_UNPRIV = 1;
    /** The smallest entry cached: a 4 KiB page (smaller answers are exact and never cached). */
    public static final int MIN_SHIFT = 12;
    /** An entry covering the whole 64-bit space (an all-ones address mask). */
    public static final int WHOLE_SPACE = 64;
    /** Endpoint number that means every endpoint in an invalidation (§5 IOMMU_IOTLB_INVALIDATE). */
    public static final int ALL_ENDPOINTS = -1;

    private final MappedRegion mem;
    private final int sets;
    private final int ways;
    // the daemon's own copy of every entry (never read back from shared memory)
    private final int[] endpoint;
    private final long[] base;
    private final byte[] shift;
    private final boolean[] valid;
    private final int[] seq;
    private final byte[] victim;
    private int live;
    private long shifts;
    /** Live entries per endpoint: an invalidation of every endpoint probes each of them. */
    private final java.util.HashMap<Integer, Integer> endpoints = new java.util.HashMap<>();
    // the register mirror
    private MirroredRegister[] mirror = new MirroredRegister[0];
    private long[] mirrored = new long[0];
    private long writesApplied;
    private long inserted;
    private long invalidated;
    // the walk recipes (null without FLAG_RECIPES): the daemon's own copy of each slot
    private final WalkRecipe[] recipe;
    private final int[] recipeEndpoint;
    private final int[] recipeSeq;
    private int liveRecipes;
    private long recipesPublished;
    /** The command-queue hand-off region (§4.12), or null without FLAG_CMDQ. */
    private final CommandHandOff handOff;
    /** The request hand-off region (§4.13), or null without FLAG_REQUESTS. */
    private final RequestHandOff requestHandOff;

    private SharedCache(MappedRegion mem, int sets, int ways, boolean recipes, boolean cmdq, boolean requests) {
        this.mem = mem;
        this.handOff = cmdq ? new CommandHandOff(mem, commandRegion(sets, ways)) : null;
        this.requestHandOff = requests ? new RequestHandOff(mem, commandRegion(sets, ways)) : null;
        this.sets = sets;
        this.ways = ways;
        this.recipe = recipes ? new WalkRecipe[RECIPES] : null;
        this.recipeEndpoint = recipes ? new int[RECIPES] : null;
        this.recipeSeq = recipes ? new int[RECIPES] : null;
        int n = sets * ways;
        endpoint = new int[n];
        base = new long[n];
        shift = new byte[n];
        valid = new boolean[n];
        seq = new int[n];
        victim = new byte[sets];
    }

    /** Bytes a cache of {@code sets} x {@code ways} needs. */
    public static long size(int sets, int ways) {
        return HEADER + (long) ENTRY * sets * ways;
    }

    /** Bytes a cache of {@code sets} x {@code ways} with the walk recipe table needs (§4.8, version 12). */
    public static long sizeWithRecipes(int sets, int ways) {
        return size(sets, ways) + (long) RECIPE * RECIPES;
    }

    /** Bytes a cache of {@code sets} x {@code ways} with recipes and the command hand-off needs (§4.12: C0 + 16640). */
    public static long sizeWithCommandHandOff(int sets, int ways) {
        return commandRegion(sets, ways) + CommandHandOff.SIZE;
    }

    /** Bytes a cache of {@code sets} x {@code ways} with recipes and the request hand-off needs (§4.13: C0 + 0x8D000). */
    public static long sizeWithRequestHandOff(int sets, int ways) {
        return commandRegion(sets, ways) + RequestHandOff.SIZE;
    }

    /** Where the command (§4.12) or request (§4.13) hand-off region starts: C0 = R0 + 64 * 256. */
    public static long commandRegion(int sets, int ways) {
        return sizeWithRecipes(sets, ways);
    }

    /** Where the recipe table starts: R0 = 4096 + 64 * sets * ways. */
    public static long recipeTable(int sets, int ways) {
        return size(sets, ways);
    }

    /**
     * Maps the VMM's memfd as a cache of {@code sets} (a power of two, 1..65536) x {@code ways}
     * (1..16) entries and clears it. Takes ownership of {@code fd} only on success.
     */
    public static SharedCache map(int fd, int sets, int ways, boolean requireSeals) throws IOException {
        return map(fd, sets, ways, requireSeals, false);
    }

    /**
     * {@link #map(int, int, int, boolean)}, with the walk recipe table after the entries when
     * {@code recipes} (flags bit 0, §4.8 version 12); a memfd too small for it is refused
     * (IllegalArgumentException, a sentence).
     */
    public static SharedCache map(int fd, int sets, int ways, boolean requireSeals, boolean recipes) throws IOException {
        return map(fd, sets, ways, requireSeals, recipes ? FLAG_RECIPES : 0);
    }

    /**
     * {@link #map(int, int, int, boolean)} with IOMMU_SET_SHARED_CACHE's {@code flags}: RECIPES
     * (§4.8, version 12) adds the walk recipe table, CMDQ (§4.12, version 13) the command-queue
     * hand-off region after it, which the daemon holds (lock = 2) from here until the session first
     * lets go of it. Undefined bits, CMDQ without RECIPES and a memfd too small are refused
     * (IllegalArgumentException, a sentence); whether the model has a command queue is the caller's.
     */
    public static SharedCache map(int fd, int sets, int ways, boolean requireSeals, int flags) throws IOException {
        if ((flags & ~FLAGS) != 0) {
            throw new IllegalArgumentException(String.format("IOMMU_SET_SHARED_CACHE: undefined flags 0x%x"
                    + " (only bit 0, RECIPES, bit 1, CMDQ, and bit 2, REQUESTS, are defined)", flags));
        }
        boolean recipes = (flags & FLAG_RECIPES) != 0;
        boolean cmdq = (flags & FLAG_CMDQ) != 0;
        boolean requests = (flags & FLAG_REQUESTS) != 0;
        if (requests && cmdq) {
            throw new IllegalArgumentException("IOMMU_SET_SHARED_CACHE: flags CMDQ (bit 1) and REQUESTS (bit 2) name two"
                    + " hand-off regions at the same place, for two kinds of model: give one of them (docs/protocol.md §4.13)");
        }
        if (requests && !recipes) {
            throw new IllegalArgumentException("IOMMU_SET_SHARED_CACHE: flag REQUESTS (bit 2) needs RECIPES (bit 0) too:"
                    + " the request hand-off region follows the recipe table (docs/protocol.md §4.13)");
        }
        if (cmdq && !recipes) {
            throw new IllegalArgumentException("IOMMU_SET_SHARED_CACHE: flag CMDQ (bit 1) needs RECIPES (bit 0) too:"
                    + " the command hand-off region follows the recipe table (docs/protocol.md §4.12)");
        }
        if (sets < 1 || sets > MAX_SETS || Integer.bitCount(sets) != 1) {
            throw new IllegalArgumentException("shared cache sets must be a power of two in 1.." + MAX_SETS + ": " + sets);
        }
        if (ways < 1 || ways > MAX_WAYS) {
            throw new IllegalArgumentException("shared cache ways must be in 1.." + MAX_WAYS + ": " + ways);
        }
        long total = cmdq ? sizeWithCommandHandOff(sets, ways) : requests ? sizeWithRequestHandOff(sets, ways)
                : recipes ? sizeWithRecipes(sets, ways) : size(sets, ways);
        if (requests && MappedRegion.fileSize(fd) < total) {
            throw new IllegalArgumentException(String.format("the shared cache memfd holds %d bytes, but %d x %d entries with"
                    + " walk recipes and the request hand-off need %d (C0 + 0x8D000, C0 = 4096 + 64 * sets * ways + 64 * 256 = %d):"
                    + " make it larger or leave out REQUESTS (docs/protocol.md §4.13)", MappedRegion.fileSize(fd), sets, ways, total,
                    commandRegion(sets, ways)));
        }
        if (cmdq && MappedRegion.fileSize(fd) < total) {
            throw new IllegalArgumentException(String.format("the shared cache memfd holds %d bytes, but %d x %d entries with"
                    + " walk recipes and the command hand-off need %d (C0 + 16640, C0 = 4096 + 64 * sets * ways + 64 * 256 = %d):"
                    + " make it larger or leave out CMDQ", MappedRegion.fileSize(fd), sets, ways, total, commandRegion(sets, ways)));
        }
        if (recipes && MappedRegion.fileSize(fd) < total) {
            throw new IllegalArgumentException(String.format("the shared cache memfd holds %d bytes, but %d x %d entries with"
                    + " walk recipes need %d (4096 + 64 * sets * ways + 64 * 256): make it larger or leave out RECIPES",
                    MappedRegion.fileSize(fd), sets, ways, total));
        }
        if (requireSeals) {
            MappedRegion.requireShrinkSeal(fd);
        }
        SharedCache c = new SharedCache(MappedRegion.map(0, total, 0, 0, fd), sets, ways, recipes, cmdq, requests);
        // §4.8: whatever the memory held, every entry and recipe is empty (seq 0, perm 0 / kind 0)
        // and no size is in use; the header's VMM words (notifiers, walked_pages) stay as it set them;
        byte[] zeros = new byte[64 * 1024];
        for (long at = HEADER; at < total; at += zeros.length) {
            c.mem.write(at, zeros, 0, (int) Math.min(zeros.length, total - at));
        }
        if (c.handOff != null) {
            // §4.12: the hand-off region is cleared with the rest (ok = 0), its lock held by the
            // daemon until the session first lets go of it, with the model's fields
            c.handOff.holdWhileCleared();
        }
        if (c.requestHandOff != null) {
            // §4.13: likewise, every slot empty (seq 0, state 0) until the session publishes the domains
            c.requestHandOff.holdWhileCleared();
        }
        c.mem.write32(OFF_MIRROR_COUNT, 0);
        c.clearAll();
        c.mem.write32(OFF_SETS, sets);
        c.mem.write32(OFF_WAYS, ways);
        c.mem.write64(OFF_WRITES_APPLIED, 0);
        c.mem.write64(OFF_INV_GEN, 0); // clearAll above counted one; a fresh memory starts at 0
        VarHandle.fullFence();
        return c;
    }

    /**
     * The set an entry of {@code shift} holding {@code iova} of {@code endpoint} lives in
     * (docs/protocol.md §4.8: both sides compute it so).
     */
    public static int setOf(int endpoint, long iova, int shift, int sets) {
        long block = shift >= 64 ? 0 : iova >>> shift;
        long h = block * 0x9E3779B97F4A7C15L + (endpoint & 0xffffffffL) * 0xC2B2AE3D27D4EB4FL + shift;
        h ^= h >>> 29;
        return (int) (h & (sets - 1));
    }

    /** log2 of an address mask's size, or -1 when the entry is not cacheable (not 2^n - 1, below 4 KiB). */
    public static int shiftOf(long addrMask) {
        if (addrMask == -1L) {
            return WHOLE_SPACE;
        }
        if ((addrMask & (addrMask + 1)) != 0 || Long.compareUnsigned(addrMask, (1L << MIN_SHIFT) - 1) < 0) {
            return -1;
        }
        return Long.numberOfTrailingZeros(addrMask + 1);
    }

    private long slotAddr(int slot) {
        return HEADER + (long) slot * ENTRY;
    }

    /**
     * Caches the translation {@code [iova & ~mask, | mask] -> output & ~mask} with {@code perm}
     * (Perm bits, §4.3) for {@code endpoint}. Entries that are not cacheable are skipped.
     */
    public void insert(int endpoint, long iova, long output, long addrMask, int perm) {
        int s = shiftOf(addrMask);
        if (s < 0 || perm == 0) {
            return;
        }
        long b = iova & ~addrMask;
        int set = setOf(endpoint, b, s, sets);
        int first = set * ways;
        int slot = -1;
        for (int w = 0; w < ways; w++) {
            int i = first + w;
            if (valid[i] && this.endpoint[i] == endpoint && shift[i] == s && base[i] == b) {
                slot = i; // the same block again (e.g. more permissions now): replace it
                break;
            }
            if (!valid[i] && slot < 0) {
                slot = i;
            }
        }
        if (slot < 0) {
            slot = first + (victim[set] & 0xff) % ways;
            victim[set] = (byte) ((victim[set] + 1) % ways);
        }
        long bit = 1L << (s & 63);
        if ((shifts & bit) == 0) {
            shifts |= bit;
            mem.write64(OFF_SHIFTS, shifts);
        }
        long a = slotAddr(slot);
        int q = seq[slot] + 1; // odd: being written
        mem.write32(a + E_SEQ, q);
        VarHandle.storeStoreFence();
        mem.write32(a + E_ENDPOINT, endpoint);
        mem.write64(a + E_IOVA, b);
        mem.write64(a + E_OUTPUT, output & ~addrMask);
        mem.write32(a + E_PERM, perm);
        mem.write32(a + E_SHIFT, s);
        VarHandle.releaseFence();
        mem.write32(a + E_SEQ, q + 1);
        seq[slot] = q + 1;
        if (valid[slot]) {
            forget(this.endpoint[slot]); // replaced or evicted
        } else {
            live++;
        }
        endpoints.merge(endpoint, 1, Integer::sum);
        valid[slot] = true;
        this.endpoint[slot] = endpoint;
        base[slot] = b;
        shift[slot] = (byte) s;
        inserted++;
    }

    private void drop(int slot) {
        long a = slotAddr(slot);
        int q = seq[slot] + 1;
        mem.write32(a + E_SEQ, q);
        VarHandle.storeStoreFence();
        mem.write32(a + E_PERM, 0);
        mem.write64(a + E_IOVA, 0);
        mem.write64(a + E_OUTPUT, 0);
        VarHandle.releaseFence();
        mem.write32(a + E_SEQ, q + 1);
        seq[slot] = q + 1;
        valid[slot] = false;
        live--;
        forget(endpoint[slot]);
        invalidated++;
    }

    private void forget(int ep) {
        endpoints.computeIfPresent(ep, (k, n) -> n == 1 ? null : n - 1);
    }

    private boolean overlaps(int slot, int ep, long first, long last) {
        if (!valid[slot] || (ep != ALL_ENDPOINTS && endpoint[slot] != ep)) {
            return false;
        }
        long lo = base[slot];
        long hi = shift[slot] >= 64 ? -1L : lo + ((1L << shift[slot]) - 1);
        return Long.compareUnsigned(hi, first) >= 0 && Long.compareUnsigned(lo, last) <= 0;
    }

    /**
     * Removes every entry of {@code endpoint} (ALL_ENDPOINTS: any) that overlaps {@code [iova,
     * iova + size - 1]} (size -1 or 0: everything), as §5 IOMMU_IOTLB_INVALIDATE names a range.
     * When it returns, no reader that starts later can use them.
     */
    public void invalidate(int ep, long iova, long size) {
        bumpInvalidationGeneration();
        if (live == 0) {
            return;
        }
        // as the front-end reads §5's {iova, size}: size ~0 is everything, 0 or a wrap runs to the top
        long end = iova + size - 1;
        long first = size == -1L ? 0 : iova;
        long last = size == -1L || size == 0 || Long.compareUnsigned(end, iova) < 0 ? -1L : end;
        if (last != -1L && probeAll(ep, first, last)) {
            if (live == 0) {
                clearShifts();
            }
            return;
        }
        for (int i = 0; i < valid.length; i++) {
            if (overlaps(i, ep, first, last)) {
                drop(i);
            }
        }
        if (live == 0) {
            clearShifts();
        }
    }

    /**
     * A small range: looks its blocks up, for the endpoint or for each endpoint with entries (an
     * SMMUv3 TLBI names an ASID or VMID, not a stream), instead of scanning every entry; false when
     * that would take more than 64 probes.
     */
    private boolean probeAll(int ep, long first, long last) {
        long blocks = 0;
        for (int s = MIN_SHIFT; s <= WHOLE_SPACE; s++) {
            if ((shifts & (1L << (s & 63))) != 0) {
                blocks += s >= 64 ? 1 : (last >>> s) - (first >>> s) + 1;
                if (blocks > 64) {
                    return false;
                }
            }
        }
        if (ep != ALL_ENDPOINTS) {
            probe(ep, first, last);
            return true;
        }
        if (blocks * endpoints.size() > 64) {
            return false;
        }
        for (int e : endpoints.keySet().stream().mapToInt(Integer::intValue).toArray()) {
            probe(e, first, last);
        }
        return true;
    }

    /** Drops the entries of {@code ep} in [first, last], looked up block by block. */
    private void probe(int ep, long first, long last) {
        for (int s = MIN_SHIFT; s <= WHOLE_SPACE; s++) {
            if ((shifts & (1L << (s & 63))) == 0) {
                continue;
            }
            long n = s >= 64 ? 1 : (last >>> s) - (first >>> s) + 1;
            for (long k = 0; k < n; k++) {
                long b = s >= 64 ? 0 : ((first >>> s) + k) << s;
                int firstSlot = setOf(ep, b, s, sets) * ways;
                for (int w = 0; w < ways; w++) {
                    if (overlaps(firstSlot + w, ep, first, last)) {
                        drop(firstSlot + w);
                    }
                }
            }
        }
    }

    private void clearShifts() {
        shifts = 0;
        mem.write64(OFF_SHIFTS, 0);
    }

    /** Drops every entry and recipe (a reset, a model switch). */
    public void clearAll() {
        clearRecipes();
        for (int i = 0; i < valid.length; i++) {
            if (valid[i]) {
                drop(i);
            }
        }
        live = 0;
        endpoints.clear();
        clearShifts();
    }

    // ---- walk recipes (§4.8, version 12)

    /** Whether this memory holds the recipe table (IOMMU_SET_SHARED_CACHE flags RECIPES). */
    public boolean hasRecipes() {
        return recipe != null;
    }

    private long recipeAddr(int slot) {
        return recipeTable(sets, ways) + (long) slot * RECIPE;
    }

    /**
     * Publishes {@code r} as {@code endpoint}'s recipe (kind 1, UNPRIV) in slot {@code endpoint &
     * 255}, replacing whatever that slot held; nothing is written when the slot holds it already.
     * Returns whether it wrote.
     */
    public boolean publishRecipe(int endpoint, WalkRecipe r) {
        if (recipe == null) {
            return false;
        }
        int slot = endpoint & (RECIPES - 1);
        if (r.equals(recipe[slot]) && recipeEndpoint[slot] == endpoint) {
            return false;
        }
        long a = recipeAddr(slot);
        int q = recipeSeq[slot] + 1; // odd: being written
        mem.write32(a + R_SEQ, q);
        VarHandle.storeStoreFence();
        mem.write32(a + R_ENDPOINT, endpoint);
        mem.write64(a + R_TTB, r.ttb());
        mem.write32(a + R_KIND, KIND_AARCH64_4K_TTB0);
        mem.write8(a + R_T0SZ, (byte) r.t0sz());
        mem.write8(a + R_START_LEVEL, (byte) r.startLevel());
        mem.write8(a + R_OAS, (byte) r.oasBits());
        mem.write8(a + R_FLAGS, (byte) RECIPE_UNPRIV);
        VarHandle.releaseFence();
        mem.write32(a + R_SEQ, q + 1);
        recipeSeq[slot] = q + 1;
        if (recipe[slot] == null) {
            liveRecipes++;
        }
        recipe[slot] = r;
        recipeEndpoint[slot] = endpoint;
        recipesPublished++;
        return true;
    }

    /**
     * Empties every recipe (odd seq, kind 0, even seq, release): when it returns, no VMM walk that
     * starts later uses one.
     */
    public void clearRecipes() {
        bumpInvalidationGeneration();
        if (recipe == null || liveRecipes == 0) {
            return;
        }
        for (int slot = 0; slot < RECIPES; slot++) {
            if (recipe[slot] == null) {
                continue;
            }
            long a = recipeAddr(slot);
            int q = recipeSeq[slot] + 1;
            mem.write32(a + R_SEQ, q);
            VarHandle.storeStoreFence();
            mem.write32(a + R_KIND, 0);
            mem.write64(a + R_TTB, 0);
            VarHandle.releaseFence();
            mem.write32(a + R_SEQ, q + 1);
            recipeSeq[slot] = q + 1;
            recipe[slot] = null;
        }
        liveRecipes = 0;
    }

    /**
     * An invalidation is under way (§4.8 inv_gen): a VMM walk that read the guest's tables before
     * this add and checks inv_gen after its reads sees the change and asks the daemon instead.
     * The fence orders it before what completes the invalidation (CMDQ_CONS in the mirror, the
     * CMD_SYNC's MSI), since a table page may be freed and reused once the guest sees that. An
     * atomic add: a VMM consuming commands itself adds to it too (§4.12).
     */
    private void bumpInvalidationGeneration() {
        if (recipe == null) {
            return;
        }
        mem.getAndAdd64(OFF_INV_GEN, 1);
        VarHandle.fullFence();
    }

    /** The header's inv_gen now (the daemon's and the VMM's additions, §4.8, §4.12). */
    public long invalidationGeneration() {
        long g = mem.read64(OFF_INV_GEN);
        VarHandle.acquireFence();
        return g;
    }

    /** The command-queue hand-off region (§4.12), or null when the VMM did not ask for it (flags CMDQ). */
    public CommandHandOff commandHandOff() {
        return handOff;
    }

    /** The request hand-off region (§4.13), or null when the VMM did not ask for it (flags REQUESTS). */
    public RequestHandOff requestHandOff() {
        return requestHandOff;
    }

    /** The lock of whichever hand-off region this memory holds (§4.12 or §4.13), or null. */
    public HandOffLock handOffLock() {
        return handOff != null ? handOff.lock() : requestHandOff != null ? requestHandOff.lock() : null;
    }

    /** Whether {@code endpoint}'s slot holds a recipe of {@code endpoint} (the daemon's own copy). */
    public boolean hasRecipe(int endpoint) {
        int slot = endpoint & (RECIPES - 1);
        return recipe != null && recipe[slot] != null && recipeEndpoint[slot] == endpoint;
    }

    public int liveRecipes() {
        return liveRecipes;
    }

    public long recipesPublished() {
        return recipesPublished;
    }

    /** The VMM's count of 4 KiB pages it translated by walking recipes (header 0x20; only read here). */
    public long walkedPages() {
        long n = mem.read64(OFF_WALKED_PAGES);
        VarHandle.acquireFence();
        return n;
    }

    /** Whether the VMM has IOMMU notifiers (vhost, vfio) that need IOMMU_IOTLB_INVALIDATE messages too. */
    public boolean notifiersPresent() {
        int n = mem.read32(OFF_NOTIFIERS);
        VarHandle.acquireFence();
        return n != 0;
    }

    // ---- the register mirror

    /** Publishes the registers the VMM may read from the mirror (at most 252), then their values. */
    public void mirror(List<MirroredRegister> regs, ToLongFunction<MirroredRegister> peek) {
        int n = Math.min(regs.size(), MAX_MIRROR);
        mem.write32(OFF_MIRROR_COUNT, 0);
        VarHandle.releaseFence();
        mirror = regs.subList(0, n).toArray(new MirroredRegister[0]);
        mirrored = new long[n];
        for (int i = 0; i < n; i++) {
            long a = OFF_MIRROR + (long) i * MIRROR_ENTRY;
            mirrored[i] = peek.applyAsLong(mirror[i]);
            mem.write32(a, (int) mirror[i].offset());
            mem.write32(a + 4, mirror[i].size());
            mem.write64(a + 8, mirrored[i]);
        }
        VarHandle.releaseFence();
        mem.write32(OFF_MIRROR_COUNT, n);
    }

    /**
     * Brings the mirror up to date with the model; runs after every model call and before every
     * interrupt, so a guest woken by an interrupt reads the registers that caused it.
     */
    public void refresh(ToLongFunction<MirroredRegister> peek) {
        for (int i = 0; i < mirror.length; i++) {
            long v = peek.applyAsLong(mirror[i]);
            if (v != mirrored[i]) {
                mirrored[i] = v;
                VarHandle.releaseFence(); // invalidations and queue records before the register that reports them
                mem.write64(OFF_MIRROR + (long) i * MIRROR_ENTRY + 8, v);
            }
        }
    }

    /** One more IOMMU_MMIO_WRITE applied, its effects in the mirror (§4.8 writes_applied). */
    public void writeApplied() {
        writesApplied++;
        VarHandle.releaseFence();
        mem.write64(OFF_WRITES_APPLIED, writesApplied);
    }

    public long inserted() {
        return inserted;
    }

    public long invalidated() {
        return invalidated;
    }

    public int liveEntries() {
        return live;
    }

    @Override
    public void close() {
        mem.unmap();
    }
}
