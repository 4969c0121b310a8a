package dev.iommuemu.interval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

class IntervalMapTest {

    @Test
    void findsInclusiveBoundsAndTranslates() {
        IntervalMap m = new IntervalMap();
        assertTrue(m.insert(0x1000, 0x1fff, 0xa000, 3));
        Mapping hit = m.find(0x1fff);
        assertEquals(new Mapping(0x1000, 0x1fff, 0xa000, 3), hit);
        assertEquals(0xafffL, hit.translate(0x1fff));
        assertEquals(0xa000L, m.find(0x1000).translate(0x1000));
        assertNull(m.find(0xfff));
        assertNull(m.find(0x2000));
    }

    @Test
    void refusesOverlapsAtEveryEdge() {
        IntervalMap m = new IntervalMap();
        assertTrue(m.insert(0x1000, 0x1fff, 0, 0));
        assertFalse(m.insert(0x1fff, 0x2fff, 0, 0));
        assertFalse(m.insert(0x0, 0x1000, 0, 0));
        assertFalse(m.insert(0x1800, 0x1800, 0, 0));
        assertFalse(m.insert(0x0, -1L, 0, 0));
        assertTrue(m.insert(0x2000, 0x2fff, 0, 0));
        assertTrue(m.insert(0x0, 0xfff, 0, 0));
        assertEquals(3, m.size());
    }

    @Test
    void ordersAddressesAsUnsigned() {
        IntervalMap m = new IntervalMap();
        assertTrue(m.insert(0xffff_ffff_ffff_f000L, -1L, 0x5000, 1));
        assertTrue(m.insert(0x7fff_ffff_ffff_f000L, 0x8000_0000_0000_0fffL, 0x6000, 1));
        assertTrue(m.insert(0, 0xfff, 0x7000, 1));
        assertEquals(0x5fffL, m.find(-1L).translate(-1L));
        assertEquals(0x6000L + 0x1000, m.find(0x8000_0000_0000_0000L).translate(0x8000_0000_0000_0000L));
        assertFalse(m.insert(0x8000_0000_0000_0000L, 0x8000_0000_0000_0000L, 0, 0));
        assertEquals(List.of(0L, 0x7fff_ffff_ffff_f000L, 0xffff_ffff_ffff_f000L),
                m.overlapping(0, -1L).stream().map(Mapping::first).toList());
    }

    @Test
    void wholeSpaceMapping() {
        IntervalMap m = new IntervalMap();
        assertTrue(m.insert(0, -1L, 0, 7));
        assertEquals(-1L, m.find(-1L).sizeMinusOne());
        IntervalMap.Removed r = m.removeWithin(0, -1L);
        assertEquals(new IntervalMap.Removed(1, 0, -1L), r);
        assertTrue(m.isEmpty());
    }

    @Test
    void removeWithinLeavesPartialOverlapsAndReportsSpan() {
        IntervalMap m = new IntervalMap();
        m.insert(0, 4, 0, 0);
        m.insert(5, 9, 0, 0);
        m.insert(10, 14, 0, 0);
        m.insert(20, 29, 0, 0);
        IntervalMap.Removed r = m.removeWithin(3, 25);
        // [0,4] and [20,29] stick out of the range and stay.
        assertEquals(new IntervalMap.Removed(2, 5, 14), r);
        assertEquals(List.of(0L, 20L), m.overlapping(0, -1L).stream().map(Mapping::first).toList());
        assertEquals(IntervalMap.Removed.NONE, m.removeWithin(30, 100));
    }

    @Test
    void sequentialFillIsDenseAndRandomOpsMatchTreeMap() {
        IntervalMap m = new IntervalMap();
        int n = 20_000;
        for (int i = 0; i < n; i++) {
            assertTrue(m.insert((long) i << 12, ((long) i << 12) + 0xfff, 0x1_0000_0000L + ((long) i << 12), i));
        }
        // Appending in order fills every chunk but the last.
        assertEquals((n + IntervalMap.CHUNK - 1) / IntervalMap.CHUNK, m.chunkCount());
        assertTrue(m.memoryBytes() / n < 40, "bytes per entry " + m.memoryBytes() / n);
        for (int i = 0; i < n; i += 97) {
            assertEquals(0x1_0000_0000L + ((long) i << 12) + 0x123, m.find(((long) i << 12) + 0x123).translate(((long) i << 12) + 0x123));
        }
        m.clear();

        // Random interleaved inserts and range removals against a TreeMap of pages.
        long seed = Long.getLong("iommuemu.fuzz.seed", 42L);
        int iterations = Integer.getInteger("iommuemu.fuzz.iterations", 20_000);
        Random rnd = new Random(seed);
        TreeMap<Long, long[]> ref = new TreeMap<>(Long::compareUnsigned);
        for (int it = 0; it < iterations; it++) {
            long a = (long) rnd.nextInt(4096) << 12;
            long len = (long) (1 + rnd.nextInt(16)) << 12;
            if (rnd.nextInt(3) != 0) {
                boolean refOverlap = false;
                for (Map.Entry<Long, long[]> e : ref.entrySet()) {
                    if (Long.compareUnsigned(e.getKey(), a + len - 1) <= 0 && Long.compareUnsigned(a, e.getValue()[0]) <= 0) {
                        refOverlap = true;
                        break;
                    }
                }
                boolean ok = m.insert(a, a + len - 1, a ^ 0x5555_0000L, it);
                assertEquals(!refOverlap, ok, "insert at iteration " + it);
                if (ok) {
                    ref.put(a, new long[] {a + len - 1, a ^ 0x5555_0000L, it});
                }
            } else {
                long last = a + ((long) rnd.nextInt(64) << 12) + 0xfff;
                List<Long> gone = new ArrayList<>();
                for (Map.Entry<Long, long[]> e : ref.entrySet()) {
                    if (Long.compareUnsigned(e.getKey(), a) >= 0 && Long.compareUnsigned(e.getValue()[0], last) <= 0) {
                        gone.add(e.getKey());
                    }
                }
                IntervalMap.Removed r = m.removeWithin(a, last);
                assertEquals(gone.size(), r.count(), "removal at iteration " + it);
                gone.forEach(ref::remove);
            }
            assertEquals(ref.size(), m.size());
            long probe = (long) rnd.nextInt(4096 << 12);
            Map.Entry<Long, long[]> fl = ref.floorEntry(probe);
            Mapping got = m.find(probe);
            if (fl != null && Long.compareUnsigned(probe, fl.getValue()[0]) <= 0) {
                assertEquals(new Mapping(fl.getKey(), fl.getValue()[0], fl.getValue()[1], (int) fl.getValue()[2]), got);
            } else {
                assertNull(got, "probe 0x" + Long.toHexString(probe));
            }
        }
        List<Mapping> all = m.overlapping(0, -1L);
        assertEquals(ref.size(), all.size());
        int k = 0;
        for (Map.Entry<Long, long[]> e : ref.entrySet()) {
            assertEquals(e.getKey(), all.get(k++).first());
        }
    }

    @Test
    void splitsAndMergesKeepContentsWhenFilledInReverse() {
        IntervalMap m = new IntervalMap();
        int n = 5 * IntervalMap.CHUNK;
        for (int i = n - 1; i >= 0; i--) {
            assertTrue(m.insert(i * 16L, i * 16L + 15, i, i));
        }
        for (int i = 0; i < n; i++) {
            assertEquals(i, m.find(i * 16L + 7).attrs());
        }
        // Remove all but every 50th entry, one at a time: chunks merge as they empty.
        for (int i = 0; i < n; i++) {
            if (i % 50 != 0) {
                assertEquals(1, m.removeWithin(i * 16L, i * 16L + 15).count());
            }
        }
        assertEquals((n + 49) / 50, m.size());
        assertTrue(m.chunkCount() <= 2, "chunks after removals: " + m.chunkCount());
        for (int i = 0; i < n; i++) {
            assertEquals(i % 50 == 0, m.find(i * 16L) != null);
        }
    }
}
