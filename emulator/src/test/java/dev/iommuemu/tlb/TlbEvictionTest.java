package dev.iommuemu.tlb;

import static dev.iommuemu.pagetable.Granule.G4K;
import static dev.iommuemu.tlb.Walks.s1;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Bounded capacity: never more than {@code capacity} entries, and what remains stays correct. */
class TlbEvictionTest {
    @Test
    void capacityIsNeverExceededAndSurvivorsStayCorrect() {
        Tlb tlb = new Tlb(100);
        Random rnd = new Random(1);
        List<TlbEntry> inserted = new ArrayList<>();
        for (int i = 0; i < 3000; i++) {
            TlbTag tag = new TlbTag(Regime.NH, i % 3, i % 5);
            long va = (long) i << 12;
            long pa = (rnd.nextLong() & 0xFF_FFFF_F000L);
            inserted.add(tlb.insert(tag, s1(va, pa, G4K, 3, i % 7 == 0)));
            assertTrue(tlb.size() <= 100);
            if (i % 50 == 0) {
                tlb.lookup(inserted.get(rnd.nextInt(inserted.size())).tag(), va);
            }
        }
        assertEquals(100, tlb.size());
        assertEquals(3000 - 100, tlb.stats().evictions());
        int found = 0;
        for (TlbEntry e : inserted) {
            TlbEntry hit = tlb.lookup(e.tag(), e.inputBase() + 0x123);
            if (hit != null) {
                assertSame(e, hit);
                assertEquals(e.outputBase() + 0x123, hit.translate(e.inputBase() + 0x123));
                found++;
            }
        }
        assertEquals(100, found);
        assertEquals(100, tlb.entries().length);
    }

    @Test
    void clockGivesReferencedEntriesASecondChance() {
        Tlb tlb = new Tlb(8);
        TlbTag tag = new TlbTag(Regime.NH, 0, 1);
        List<TlbEntry> e = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            e.add(tlb.insert(tag, s1((long) i << 12, 0x10_0000L + ((long) i << 12), G4K, 3, false)));
        }
        for (int i = 0; i < 8; i++) {
            if (i != 5) {
                assertNotNull(tlb.lookup(tag, (long) i << 12));
            }
        }
        tlb.insert(tag, s1(0x100_0000L, 0, G4K, 3, false));
        assertNull(tlb.lookup(tag, 5L << 12), "the only unreferenced entry is the victim");
        for (int i = 0; i < 8; i++) {
            if (i != 5) {
                assertSame(e.get(i), tlb.lookup(tag, (long) i << 12));
            }
        }
        assertEquals(1, tlb.stats().evictions());
    }

    @Test
    void capacityOfOne() {
        Tlb tlb = new Tlb(1);
        TlbTag tag = new TlbTag(Regime.S2, 1, 0);
        TlbEntry a = tlb.insert(tag, Walks.s2(0x1000L, 0x5000L, G4K, 3));
        assertSame(a, tlb.lookup(tag, 0x1000L));
        TlbEntry b = tlb.insert(tag, Walks.s2(0x2000L, 0x6000L, G4K, 3));
        assertEquals(1, tlb.size());
        assertNull(tlb.lookup(tag, 0x1000L));
        assertSame(b, tlb.lookup(tag, 0x2000L));
    }
}
