package dev.iommuemu.bridge.fastpath;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.device.MirroredRegister;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.WalkRecipe;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The daemon's side of the shared translation cache and register mirror (docs/protocol.md §4.8). */
class SharedCacheTest {
    private static final int RW = Perm.UR | Perm.UW | Perm.PR | Perm.PW;
    private static final int RO = Perm.UR | Perm.PR;

    private MappedRegion vmmSide;
    private SharedCache cache;

    private SharedCacheView open(int sets, int ways) throws Exception {
        vmmSide = MappedRegion.allocate("shared-cache-test", 0, SharedCache.size(sets, ways));
        cache = SharedCache.map(LibC.dup(vmmSide.fd()), sets, ways, true);
        return new SharedCacheView(vmmSide);
    }

    @AfterEach
    void close() {
        if (cache != null) {
            cache.close();
        }
        if (vmmSide != null) {
            vmmSide.unmap();
        }
    }

    /**
     * §4.8's set function, as the QEMU front-end computes it in C (values printed by a C program
     * with the front-end's ie_shm_set): {endpoint, base, shift, sets, set}.
     */
    @Test
    void setFunctionMatchesTheFrontEnds() {
        long[][] vectors = {
            {0, 0x0L, 12, 2048, 12},
            {1, 0x12345000L, 12, 2048, 885},
            {8, 0xffff0000L, 12, 2048, 1788},
            {256, 0x40000000L, 30, 2048, 1081},
            {3, 0x200000L, 21, 2048, 1424},
            {4294967295L, 0x7ffffffff000L, 12, 65536, 47274},
            {5, 0x0L, 64, 2048, 325},
            {17, 0xdead0000L, 16, 16, 10},
        };
        for (long[] v : vectors) {
            assertEquals((int) v[4], SharedCache.setOf((int) v[0], v[1], (int) v[2], (int) v[3]), () -> "vector " + v[0] + "/" + v[1]);
        }
    }

    @Test
    void shiftsOfAddressMasks() {
        assertEquals(12, SharedCache.shiftOf(0xfff));
        assertEquals(21, SharedCache.shiftOf(0x1f_ffffL));
        assertEquals(64, SharedCache.shiftOf(-1L));
        assertEquals(63, SharedCache.shiftOf(Long.MAX_VALUE));
        assertEquals(-1, SharedCache.shiftOf(0x7ff), "sub-page: exact answers are not cached");
        assertEquals(-1, SharedCache.shiftOf(0x2fff), "not 2^n - 1");
    }

    @Test
    void entriesOfEverySizeAreFoundFromAnyAddressTheyCover() throws Exception {
        SharedCacheView v = open(64, 4);
        assertEquals(64, v.sets());
        assertEquals(4, v.ways());
        cache.insert(1, 0x1234_5678L, 0x9_8765_4678L, 0xfff, RW);
        cache.insert(1, 0x4020_1000L, 0x8_0000_0000L, 0x1f_ffffL, RO); // a 2 MiB block, asked at +0x1000
        cache.insert(7, 0x42L, 0x42L, -1L, RW); // a bypass: the whole space
        assertEquals((1L << 12) | (1L << 21) | 1L, v.shifts());

        assertEquals(new SharedCacheView.Hit(0x1234_5000L, 0x9_8765_4000L, 12, RW), v.lookup(1, 0x1234_5ff8L));
        assertNull(v.lookup(1, 0x1234_6000L), "the next page");
        assertNull(v.lookup(2, 0x1234_5000L), "another endpoint");
        assertEquals(new SharedCacheView.Hit(0x4020_0000L, 0x8_0000_0000L, 21, RO), v.lookup(1, 0x403f_f000L));
        assertNull(v.lookup(1, 0x4040_0000L));
        assertEquals(new SharedCacheView.Hit(0, 0, 64, RW), v.lookup(7, 0xffff_ffff_ffff_f000L));
        assertEquals(3, cache.liveEntries());

        // the same block again replaces its entry
        cache.insert(1, 0x1234_5000L, 0x9_8765_4000L, 0xfff, RO);
        assertEquals(RO, v.lookup(1, 0x1234_5000L).perm());
        assertEquals(3, cache.liveEntries());
        // a fault's answer (no permission) is never cached
        cache.insert(1, 0x5000, 0x5000, 0xfff, 0);
        assertNull(v.lookup(1, 0x5000));
    }

    /** Invalidations as §5 names ranges: {endpoint or all, iova, size (~0 everything, 0 to the top)}. */
    @Test
    void invalidationRemovesExactlyTheOverlappingEntries() throws Exception {
        SharedCacheView v = open(256, 2);
        cache.insert(1, 0x1000, 0xa000, 0xfff, RW);
        cache.insert(1, 0x2000, 0xb000, 0xfff, RW);
        cache.insert(2, 0x1000, 0xc000, 0xfff, RW);
        cache.insert(1, 0x20_0000L, 0x40_0000L, 0x1f_ffffL, RW);

        cache.invalidate(1, 0x1800, 0x10); // inside the first page of endpoint 1
        assertNull(v.lookup(1, 0x1000));
        assertEquals(0xb000, v.lookup(1, 0x2000).output());
        assertEquals(0xc000, v.lookup(2, 0x1000).output(), "another endpoint's page stays");

        cache.invalidate(1, 0x3f_f000L, 0x1000); // the last page of the 2 MiB block drops all of it
        assertNull(v.lookup(1, 0x20_0000L));

        cache.invalidate(SharedCache.ALL_ENDPOINTS, 0x2000, 0x1000);
        assertNull(v.lookup(1, 0x2000));
        assertEquals(0xc000, v.lookup(2, 0x1000).output());

        cache.insert(3, 0x7000_0000L, 0x1000, 0xfff, RW);
        cache.invalidate(3, 0x6000_0000L, 0); // size 0: from iova to the top
        assertNull(v.lookup(3, 0x7000_0000L));

        cache.invalidate(SharedCache.ALL_ENDPOINTS, 0x1234, -1L); // everything
        assertNull(v.lookup(2, 0x1000));
        assertEquals(0, cache.liveEntries());
        assertEquals(0, v.shifts(), "no entry left: no size to look for");
        for (int i = 0; i < 512; i++) {
            assertEquals(0, v.seq(i) & 1, "slot " + i + " left odd");
        }
    }

    /** A large range of one endpoint (more than 64 blocks) is scanned, not probed: same answer. */
    @Test
    void largeRangesAreScanned() throws Exception {
        SharedCacheView v = open(1024, 4);
        for (int i = 0; i < 200; i++) {
            cache.insert(4, 0x100_0000L + 0x1000L * i, 0x1000L * i, 0xfff, RW);
        }
        cache.insert(4, 0x200_0000L, 0, 0xfff, RW);
        cache.invalidate(4, 0x100_0000L, 0x1000L * 150);
        for (int i = 0; i < 200; i++) {
            assertEquals(i >= 150, v.lookup(4, 0x100_0000L + 0x1000L * i) != null, "page " + i);
        }
        assertTrue(v.lookup(4, 0x200_0000L) != null);
    }

    /**
     * An invalidation of every endpoint over a small range (an SMMUv3 TLBI by ASID) probes each
     * endpoint with entries: the same result as a scan.
     */
    @Test
    void allEndpointsSmallRangeProbesEachEndpoint() throws Exception {
        SharedCacheView v = open(512, 2);
        for (int ep = 1; ep <= 4; ep++) {
            for (int p = 0; p < 8; p++) {
                cache.insert(ep, 0x10_0000L + 0x1000L * p, 0x1000L * (ep * 16 + p), 0xfff, RW);
            }
        }
        cache.insert(9, 0x10_0000L, 0x20_0000L, 0x1f_ffffL, RW); // a 2 MiB block over the range
        assertEquals(33, cache.liveEntries());
        cache.invalidate(SharedCache.ALL_ENDPOINTS, 0x10_2000L, 0x2000);
        for (int ep = 1; ep <= 4; ep++) {
            for (int p = 0; p < 8; p++) {
                assertEquals(p < 2 || p > 3, v.lookup(ep, 0x10_0000L + 0x1000L * p) != null, "endpoint " + ep + " page " + p);
            }
        }
        assertNull(v.lookup(9, 0x10_0000L), "the block overlapping the range");
        assertEquals(24, cache.liveEntries());
        cache.invalidate(SharedCache.ALL_ENDPOINTS, 0, -1L);
        assertEquals(0, cache.liveEntries());
        assertEquals(0, v.shifts());
    }

    /** A full set evicts one of its entries; every entry is still either found right or missed. */
    @Test
    void aFullSetEvictsRoundRobin() throws Exception {
        SharedCacheView v = open(4, 2);
        Map<Long, Long> inserted = new HashMap<>();
        for (long page = 0; page < 64; page++) {
            cache.insert(1, page << 12, (page + 100) << 12, 0xfff, RW);
            inserted.put(page << 12, (page + 100) << 12);
        }
        assertEquals(8, cache.liveEntries(), "4 sets x 2 ways");
        int found = 0;
        for (Map.Entry<Long, Long> e : inserted.entrySet()) {
            SharedCacheView.Hit h = v.lookup(1, e.getKey());
            if (h != null) {
                assertEquals(e.getValue(), h.output());
                found++;
            }
        }
        assertEquals(8, found);
    }

    @Test
    void registerMirrorAndWritesApplied() throws Exception {
        SharedCacheView v = open(16, 1);
        long[] regs = {0x11, 0x22};
        List<MirroredRegister> list = List.of(new MirroredRegister(0x9c, 4), new MirroredRegister(0x100a8, 4));
        cache.mirror(list, r -> r.offset() == 0x9c ? regs[0] : regs[1]);
        assertEquals(2, v.mirrorCount());
        assertEquals(0x9c, v.mirrorOffset(0));
        assertEquals(4, v.mirrorSize(0));
        assertEquals(0x100a8, v.mirrorOffset(1));
        assertEquals(0x11, v.mirrorValue(0));
        assertEquals(0x22, v.mirrorValue(1));
        regs[0] = 0x8000_0005L;
        cache.refresh(r -> r.offset() == 0x9c ? regs[0] : regs[1]);
        assertEquals(0x8000_0005L, v.mirrorValue(0));
        assertEquals(0, v.writesApplied());
        cache.writeApplied();
        cache.writeApplied();
        assertEquals(2, v.writesApplied());
        assertThrows(IllegalArgumentException.class, () -> new MirroredRegister(0x9e, 4));
    }

    /** The daemon empties whatever the memory held, but leaves the VMM's notifiers word alone. */
    @Test
    void mappingEmptiesTheEntriesAndKeepsTheNotifiersWord() throws Exception {
        vmmSide = MappedRegion.allocate("shared-cache-test", 0, SharedCache.size(8, 2));
        byte[] junk = new byte[(int) SharedCache.size(8, 2)];
        java.util.Arrays.fill(junk, (byte) 0x5a);
        vmmSide.write(0, junk, 0, junk.length);
        vmmSide.write32(SharedCache.OFF_NOTIFIERS, 1);
        cache = SharedCache.map(LibC.dup(vmmSide.fd()), 8, 2, true);
        SharedCacheView v = new SharedCacheView(vmmSide);
        assertEquals(0, v.shifts());
        assertEquals(0, v.writesApplied());
        assertEquals(0, v.mirrorCount());
        for (int i = 0; i < 16; i++) {
            assertEquals(0, v.seq(i));
        }
        assertTrue(cache.notifiersPresent());
    }

    @Test
    void badGeometryIsRefused() throws Exception {
        vmmSide = MappedRegion.allocate("shared-cache-test", 0, SharedCache.size(16, 2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SharedCache.map(vmmSide.fd(), 3, 2, true));
        assertEquals("shared cache sets must be a power of two in 1..65536: 3", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SharedCache.map(vmmSide.fd(), 16, 17, true));
        assertEquals("shared cache ways must be in 1..16: 17", e.getMessage());
        assertThrows(java.io.IOException.class, () -> SharedCache.map(LibC.dup(vmmSide.fd()), 64, 2, true), "larger than the memfd");
    }

    /** §4.8 walk recipes (version 12): slot e & 255 tagged with e, the sequence lock, emptied together. */
    @Test
    void recipesLiveInSlotEndpointAnd255AndAreEmptiedTogether() throws Exception {
        long total = SharedCache.sizeWithRecipes(4, 2);
        assertEquals(4096 + 64 * 8 + 64 * 256, total);
        vmmSide = MappedRegion.allocate("shared-cache-recipes", 0, total);
        byte[] junk = new byte[(int) total - SharedCache.HEADER];
        java.util.Arrays.fill(junk, (byte) 0xa5); // whatever the memory held: the daemon clears it
        vmmSide.write(SharedCache.HEADER, junk, 0, junk.length);
        cache = SharedCache.map(LibC.dup(vmmSide.fd()), 4, 2, true, true);
        SharedCacheView v = new SharedCacheView(vmmSide);
        assertEquals(4096 + 64 * 8, SharedCache.recipeTable(4, 2));
        for (int slot = 0; slot < SharedCache.RECIPES; slot++) {
            assertEquals(new SharedCacheView.Recipe(0, 0, 0, 0, 0, 0, 0, 0), v.recipeSlot(slot));
        }
        WalkRecipe r = new WalkRecipe(0x4000_0000L, 25, 1, 40);
        assertTrue(cache.publishRecipe(0x1_0007, r)); // slot 7
        assertEquals(new SharedCacheView.Recipe(2, 0x1_0007, 0x4000_0000L, 1, 25, 1, 40, 1), v.recipe(0x1_0007));
        assertNull(v.recipe(7), "endpoint 7 shares the slot: the tag says it is not its recipe");
        assertFalse(cache.publishRecipe(0x1_0007, r), "the same recipe again: nothing written");
        assertTrue(cache.publishRecipe(7, r)); // takes the slot over
        assertNull(v.recipe(0x1_0007));
        assertEquals(4, v.recipe(7).seq());
        assertTrue(cache.publishRecipe(300, WalkRecipe.of(0x8000_0fffL, 16, 48))); // slot 44, TTB aligned to 4 KiB
        assertEquals(new SharedCacheView.Recipe(2, 300, 0x8000_0000L, 1, 16, 0, 48, 1), v.recipe(300));
        assertEquals(2, cache.liveRecipes());
        assertEquals(3, cache.recipesPublished());
        cache.clearRecipes();
        assertEquals(0, cache.liveRecipes());
        assertNull(v.recipe(7));
        assertNull(v.recipe(300));
        assertEquals(6, v.recipeSlot(7).seq());
        assertEquals(0, v.recipeSlot(7).kind());
        assertEquals(0, v.recipeSlot(44).kind());
        cache.publishRecipe(7, r);
        cache.clearAll(); // a reset, a model change: the entries and the recipes
        assertNull(v.recipe(7));
        // the VMM's walked_pages is only read
        v.addWalkedPages(9);
        assertEquals(9, cache.walkedPages());
    }

    /**
     * §4.8 inv_gen (header 0x28): every invalidation bumps it before it returns, even one that
     * finds no entry (a TLBI of tables the VMM walked), and emptying the recipes does too; a cache
     * without recipes leaves it 0.
     */
    @Test
    void everyInvalidationBumpsTheGenerationAVmmWalkChecks() throws Exception {
        long total = SharedCache.sizeWithRecipes(4, 2);
        vmmSide = MappedRegion.allocate("shared-cache-gen", 0, total);
        vmmSide.write64(SharedCache.OFF_INV_GEN, 0x5a5a); // whatever the memory held: the daemon clears it
        cache = SharedCache.map(LibC.dup(vmmSide.fd()), 4, 2, true, true);
        SharedCacheView v = new SharedCacheView(vmmSide);
        assertEquals(0, v.invalidationGeneration());
        cache.invalidate(5, 0x1000, 0x1000); // no entry at all: still bumped
        assertEquals(1, v.invalidationGeneration());
        cache.invalidate(SharedCache.ALL_ENDPOINTS, 0, -1);
        assertEquals(2, v.invalidationGeneration());
        cache.clearRecipes();
        assertEquals(3, v.invalidationGeneration());
        cache.clearAll();
        assertEquals(4, v.invalidationGeneration());
        assertEquals(4, cache.invalidationGeneration());
        // §4.12: a VMM consuming commands itself adds to it too; the daemon's bumps add, never overwrite
        vmmSide.getAndAdd64(SharedCache.OFF_INV_GEN, 10);
        assertEquals(14, cache.invalidationGeneration());
        cache.invalidate(5, 0x1000, 0x1000);
        assertEquals(15, v.invalidationGeneration());
        vmmSide.write64(SharedCache.OFF_INV_GEN, 4); // restored for the rest of this test
        cache.close();
        cache = SharedCache.map(LibC.dup(vmmSide.fd()), 4, 2, true, false);
        cache.invalidate(5, 0x1000, 0x1000);
        cache.clearAll();
        assertEquals(0, vmmSide.read64(SharedCache.OFF_INV_GEN), "without RECIPES the VMM walks nothing: no generation");
    }
}
