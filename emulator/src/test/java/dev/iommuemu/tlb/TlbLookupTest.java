package dev.iommuemu.tlb;

import static dev.iommuemu.pagetable.Granule.G16K;
import static dev.iommuemu.pagetable.Granule.G4K;
import static dev.iommuemu.pagetable.Granule.G64K;
import static dev.iommuemu.tlb.Walks.nested;
import static dev.iommuemu.tlb.Walks.s1;
import static dev.iommuemu.tlb.Walks.s1Contig;
import static dev.iommuemu.tlb.Walks.s2;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.Translation;
import org.junit.jupiter.api.Test;

/** Lookup tagging (IHI 0070 §3.17, §3.17.1) and the entry's span and translation. */
class TlbLookupTest {
    private final Tlb tlb = new Tlb(256);

    @Test
    void nonGlobalEntryMatchesOnlyItsRegimeVmidAndAsid() {
        TlbEntry e = tlb.insert(new TlbTag(Regime.NH, 1, 5), s1(0x1000_0000L, 0xA000_0000L, G4K, 3, false));
        assertSame(e, tlb.lookup(new TlbTag(Regime.NH, 1, 5), 0x1000_0123L));
        assertEquals(0xA000_0123L, e.translate(0x1000_0123L));
        // §3.17.1: ASID values with ASET 0 and 1 are equivalent for non-global lookup.
        assertSame(e, tlb.lookup(new TlbTag(Regime.NH, 1, 5, true), 0x1000_0FFFL));
        assertNull(tlb.lookup(new TlbTag(Regime.NH, 1, 6), 0x1000_0000L), "other ASID");
        assertNull(tlb.lookup(new TlbTag(Regime.NH, 2, 5), 0x1000_0000L), "other VMID");
        assertNull(tlb.lookup(new TlbTag(Regime.NESTED, 1, 5), 0x1000_0000L), "other regime");
        assertNull(tlb.lookup(new TlbTag(Regime.EL2, 0, 5), 0x1000_0000L), "other regime");
        assertNull(tlb.lookup(new TlbTag(Regime.NH, 1, 5), 0x1000_1000L), "next page");
        assertNull(tlb.lookup(new TlbTag(Regime.NH, 1, 5), 0x0FFF_FFFFL), "previous page");
        assertEquals(new TlbStats(2, 6, 1, 0, 0, 1), tlb.stats());
    }

    @Test
    void globalEntryMatchesAnyAsidWithTheSameAset() {
        TlbEntry e = tlb.insert(new TlbTag(Regime.NH, 1, 5), s1(0x1000_0000L, 0xA000_0000L, G4K, 3, true));
        assertTrue(e.global());
        assertSame(e, tlb.lookup(new TlbTag(Regime.NH, 1, 7), 0x1000_0000L));
        // §3.17.1: global entries with ASET == 0 do not match lookups through ASET == 1 configurations.
        assertNull(tlb.lookup(new TlbTag(Regime.NH, 1, 5, true), 0x1000_0000L));
        assertNull(tlb.lookup(new TlbTag(Regime.NH, 2, 5), 0x1000_0000L), "global is still VMID-tagged");
        TlbEntry shared = tlb.insert(new TlbTag(Regime.NH, 1, 9, true), s1(0x1000_0000L, 0xB000_0000L, G4K, 3, true));
        assertSame(shared, tlb.lookup(new TlbTag(Regime.NH, 1, 1, true), 0x1000_0000L));
        assertSame(e, tlb.lookup(new TlbTag(Regime.NH, 1, 1, false), 0x1000_0000L));
    }

    @Test
    void matchingListsEveryEntryOfTheLookupSmallestSpanFirstWithoutCounting() {
        TlbTag t = new TlbTag(Regime.NH, 0, 2);
        TlbEntry block = tlb.insert(t, s1(0x4000_0000L, 0xA000_0000L, G4K, 2, false));
        TlbEntry page = tlb.insert(t, s1(0x4000_0000L, 0xA000_0000L, G4K, 3, false));
        TlbEntry global = tlb.insert(new TlbTag(Regime.NH, 0, 9), s1(0x4000_0000L, 0xB000_0000L, G4K, 3, true));
        tlb.insert(new TlbTag(Regime.NH, 0, 3), s1(0x4000_0000L, 0xC000_0000L, G4K, 3, false)); // other ASID
        tlb.insert(new TlbTag(Regime.NH, 1, 2), s1(0x4000_0000L, 0xC000_0000L, G4K, 3, false)); // other VMID
        TlbStats before = tlb.stats();
        // §3.20.1: every entry the lookup matches; at one size the ASID's entry before the global one.
        assertEquals(java.util.List.of(page, global, block), java.util.List.of(tlb.matching(t, 0x4000_0010L)));
        assertEquals(java.util.List.of(block), java.util.List.of(tlb.matching(t, 0x4010_0000L)));
        assertEquals(0, tlb.matching(new TlbTag(Regime.NESTED, 0, 2), 0x4000_0000L).length);
        assertEquals(before, tlb.stats());
    }

    @Test
    void nonGlobalIsFoundBeforeGlobalOfTheSameSize() {
        TlbEntry g = tlb.insert(new TlbTag(Regime.NH, 0, 1), s1(0x1000_0000L, 0xA000_0000L, G4K, 3, true));
        TlbEntry ng = tlb.insert(new TlbTag(Regime.NH, 0, 2), s1(0x1000_0000L, 0xB000_0000L, G4K, 3, false));
        assertSame(ng, tlb.lookup(new TlbTag(Regime.NH, 0, 2), 0x1000_0000L));
        assertSame(g, tlb.lookup(new TlbTag(Regime.NH, 0, 3), 0x1000_0000L));
    }

    @Test
    void blocksCoverEveryAddressInside() {
        TlbTag tag = new TlbTag(Regime.NH, 0, 1);
        TlbEntry b2m = tlb.insert(tag, s1(0x4000_0000L + 0x1234, 0x2_0000_1234L, G4K, 2, false));
        TlbEntry b1g = tlb.insert(tag, s1(0x8000_0000L, 0x4_0000_0000L, G4K, 1, false));
        assertEquals(0x4000_0000L, b2m.inputBase());
        assertEquals(21, b2m.shift());
        assertEquals(0x2_0000_0000L, b2m.outputBase());
        assertSame(b2m, tlb.lookup(tag, 0x4000_0000L));
        assertSame(b2m, tlb.lookup(tag, 0x401F_FFFFL));
        assertEquals(0x2_001F_FFFFL, b2m.translate(0x401F_FFFFL));
        assertNull(tlb.lookup(tag, 0x4020_0000L));
        assertSame(b1g, tlb.lookup(tag, 0xBFFF_FFFFL));
        assertEquals(0x4_3FFF_FFFFL, b1g.translate(0xBFFF_FFFFL));
        assertNull(tlb.lookup(tag, 0xC000_0000L));
    }

    @Test
    void granulesOf16kAnd64k() {
        TlbTag tag = new TlbTag(Regime.NH, 0, 1);
        TlbEntry p16 = tlb.insert(tag, s1(0x2000_0000L, 0x3_0000_0000L, G16K, 3, false));
        TlbEntry b32m = tlb.insert(tag, s1(0x6000_0000L, 0x3_4000_0000L, G16K, 2, false));
        TlbEntry p64 = tlb.insert(tag, s1(0x3000_0000L, 0x3_1000_0000L, G64K, 3, false));
        TlbEntry b512m = tlb.insert(tag, s1(0x1_0000_0000L, 0x4_0000_0000L, G64K, 2, false));
        assertEquals(14, p16.shift());
        assertEquals(25, b32m.shift());
        assertEquals(16, p64.shift());
        assertEquals(29, b512m.shift());
        assertSame(p16, tlb.lookup(tag, 0x2000_3FFFL));
        assertNull(tlb.lookup(tag, 0x2000_4000L));
        assertSame(b32m, tlb.lookup(tag, 0x61FF_FFFFL));
        assertSame(p64, tlb.lookup(tag, 0x3000_FFFFL));
        assertNull(tlb.lookup(tag, 0x3001_0000L));
        assertSame(b512m, tlb.lookup(tag, 0x1_1FFF_0000L));
        assertEquals(0x4_1FFF_0000L, b512m.translate(0x1_1FFF_0000L));
    }

    @Test
    void contiguousHintWidensTheSpan() {
        TlbTag tag = new TlbTag(Regime.NH, 0, 1);
        // 4K level 3 with the Contiguous bit: 16 entries, 64 KiB (Arm ARM D8.6.1).
        TlbEntry e = tlb.insert(tag, s1Contig(0x5000_3000L, 0x3_2000_3000L, G4K, 3, false));
        assertTrue(e.contiguous());
        assertEquals(16, e.shift());
        assertEquals(0x5000_0000L, e.inputBase());
        assertEquals(0x3_2000_0000L, e.outputBase());
        assertSame(e, tlb.lookup(tag, 0x5000_F800L));
        assertEquals(0x3_2000_F800L, e.translate(0x5000_F800L));
        assertNull(tlb.lookup(tag, 0x5001_0000L));
        TlbEntry plain = tlb.insert(tag, s1(0x7000_0000L, 0x1000L, G4K, 3, false));
        assertFalse(plain.contiguous());
        // 16K level 2 with the hint: 32 x 32 MiB = 1 GiB.
        TlbEntry big = tlb.insert(tag, s1Contig(0x1_4000_0000L, 0x8_0000_0000L, G16K, 2, false));
        assertEquals(30, big.shift());
    }

    @Test
    void stage2EntriesIgnoreAsidAndAset() {
        TlbTag tag = new TlbTag(Regime.S2, 3, 77, true);
        assertEquals(new TlbTag(Regime.S2, 3, 0, false), tag, "normalised");
        TlbEntry e = tlb.insert(tag, s2(0x4000_0000L, 0x7_0020_0000L, G4K, 2));
        assertTrue(e.global());
        assertSame(e, tlb.lookup(new TlbTag(Regime.S2, 3, 5), 0x4012_3456L));
        assertEquals(0x7_0032_3456L, e.translate(0x4012_3456L));
        assertNull(tlb.lookup(new TlbTag(Regime.S2, 4, 0), 0x4012_3456L));
    }

    @Test
    void el2WithoutAsidsIsGlobalAndHasNoVmid() {
        TlbTag tag = new TlbTag(Regime.EL2, 9, TlbTag.NO_ASID);
        assertEquals(0, tag.vmid(), "§3.17: any-EL2 is not VMID-tagged");
        TlbEntry e = tlb.insert(tag, s1(0x1000_0000L, 0x6_0000_0000L, G4K, 3, false));
        assertTrue(e.global(), "§3.17.1: nG has no effect in any-EL2");
        assertSame(e, tlb.lookup(new TlbTag(Regime.EL2, 0, TlbTag.NO_ASID), 0x1000_0000L));
        TlbEntry e2h = tlb.insert(new TlbTag(Regime.EL2, 0, 4), s1(0x2000_0000L, 0x6_1000_0000L, G4K, 3, false));
        assertFalse(e2h.global());
        assertSame(e2h, tlb.lookup(new TlbTag(Regime.EL2, 0, 4), 0x2000_0000L));
        assertNull(tlb.lookup(new TlbTag(Regime.EL2, 0, TlbTag.NO_ASID), 0x2000_0000L));
    }

    @Test
    void nestedEntryRemembersBothStages() {
        TlbTag tag = new TlbTag(Regime.NESTED, 2, 1);
        // Stage 1 2 MiB block VA 0x4020_0000 -> IPA 0x1220_0000; stage 2 4K page -> PA 0x8_2000_0000.
        Translation t = nested(0x4020_5678L, 0x1220_5678L, 0x8_2000_0678L, G4K, 2, G4K, 3, false);
        TlbEntry e = tlb.insert(tag, t);
        assertEquals(12, e.shift());
        assertEquals(0x4020_5000L, e.inputBase());
        assertEquals(0x4020_0000L, e.matchBase());
        assertEquals(21, e.matchShift());
        assertEquals(0x1220_5000L, e.ipaBase());
        assertEquals(12, e.ipaShift());
        assertEquals(Perm.PR | Perm.PW, e.perm());
        assertEquals(0, e.dirtyPerm());
        assertSame(e, tlb.lookup(tag, 0x4020_5FFFL));
        assertEquals(0x8_2000_0FFFL, e.translate(0x4020_5FFFL));
        assertNull(tlb.lookup(tag, 0x4020_6000L), "the rest of the stage 1 block needs its own walk");
        // Stage 2 block larger than the stage 1 page: the IPA region is the whole stage 2 block.
        TlbEntry s = tlb.insert(tag, nested(0x1000_1000L, 0x4000_3000L, 0x8_1000_3000L, G4K, 3, G4K, 2, false));
        assertEquals(0x4000_0000L, s.ipaBase());
        assertEquals(21, s.ipaShift());
        assertEquals(12, s.matchShift());
    }

    @Test
    void smallestSpanWinsWhenSpansOverlap() {
        TlbTag tag = new TlbTag(Regime.NH, 0, 1);
        TlbEntry block = tlb.insert(tag, s1(0x4000_0000L, 0x2_0000_0000L, G4K, 2, false));
        TlbEntry page = tlb.insert(tag, s1(0x4000_5000L, 0x9_0000_0000L, G4K, 3, false));
        assertSame(page, tlb.lookup(tag, 0x4000_5000L));
        assertSame(block, tlb.lookup(tag, 0x4000_6000L));
    }

    @Test
    void reinsertingAKeyReplacesTheEntry() {
        TlbTag tag = new TlbTag(Regime.NH, 0, 1);
        tlb.insert(tag, s1(0x1000_0000L, 0xA000_0000L, G4K, 3, false));
        TlbEntry again = tlb.insert(tag, s1(0x1000_0000L, 0xB000_0000L, G4K, 3, false));
        assertEquals(1, tlb.size());
        assertSame(again, tlb.lookup(tag, 0x1000_0000L));
        assertEquals(0xB000_0000L, again.translate(0x1000_0000L));
        assertEquals(2, tlb.stats().inserts());
    }

    @Test
    void topOfTheAddressSpace() {
        TlbTag tag = new TlbTag(Regime.NH, 0, 1);
        TlbEntry e = tlb.insert(tag, s1(0xFFFF_FFFF_FFE0_0000L, 0x1_0000_0000L, G4K, 2, false));
        assertSame(e, tlb.lookup(tag, -1L));
        assertEquals(0x1_001F_FFFFL, e.translate(-1L));
        assertNull(tlb.lookup(tag, 0xFFFF_FFFF_FFDF_FFFFL));
    }

    @Test
    void clearEmptiesTheTlb() {
        TlbTag tag = new TlbTag(Regime.NH, 0, 1);
        tlb.insert(tag, s1(0x1000_0000L, 0xA000_0000L, G4K, 3, false));
        tlb.insert(tag, s1(0x4000_0000L, 0xA000_0000L, G4K, 2, true));
        tlb.clear();
        assertEquals(0, tlb.size());
        assertNull(tlb.lookup(tag, 0x1000_0000L));
        assertNull(tlb.lookup(tag, 0x4000_0000L));
        assertEquals(2, tlb.stats().invalidated());
        assertEquals(0, tlb.entries().length);
    }

    @Test
    void rejectsWhatNoWalkProduces() {
        assertThrows(IllegalArgumentException.class, () -> new Tlb(0));
        assertThrows(IllegalArgumentException.class, () -> new TlbTag(Regime.NH, 0x10000, 0));
        assertThrows(IllegalArgumentException.class, () -> new TlbTag(Regime.NH, 0, 0x10000));
        assertThrows(IllegalArgumentException.class, () -> new TlbTag(null, 0, 0));
        Translation tiny = new Translation(0, 0, 11, 11, Perm.ALL, 0, true, 3, Translation.NO_LEVEL, 0, 0,
                G4K, null, 0, 0);
        assertThrows(IllegalArgumentException.class, () -> tlb.insert(new TlbTag(Regime.NH, 0, 0), tiny));
    }
}
