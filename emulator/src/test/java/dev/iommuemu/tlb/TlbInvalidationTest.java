package dev.iommuemu.tlb;

import static dev.iommuemu.pagetable.Granule.G16K;
import static dev.iommuemu.pagetable.Granule.G4K;
import static dev.iommuemu.pagetable.Granule.G64K;
import static dev.iommuemu.tlb.TlbInvalidation.all;
import static dev.iommuemu.tlb.TlbInvalidation.el2All;
import static dev.iommuemu.tlb.TlbInvalidation.el2Asid;
import static dev.iommuemu.tlb.TlbInvalidation.el2Va;
import static dev.iommuemu.tlb.TlbInvalidation.el2Vaa;
import static dev.iommuemu.tlb.TlbInvalidation.nhAll;
import static dev.iommuemu.tlb.TlbInvalidation.nhAsid;
import static dev.iommuemu.tlb.TlbInvalidation.nhVa;
import static dev.iommuemu.tlb.TlbInvalidation.nhVaa;
import static dev.iommuemu.tlb.TlbInvalidation.nsnhAll;
import static dev.iommuemu.tlb.TlbInvalidation.s12Vmall;
import static dev.iommuemu.tlb.TlbInvalidation.s2Ipa;
import static dev.iommuemu.tlb.TlbRange.SINGLE;
import static dev.iommuemu.tlb.Walks.nested;
import static dev.iommuemu.tlb.Walks.s1;
import static dev.iommuemu.tlb.Walks.s1Contig;
import static dev.iommuemu.tlb.Walks.s2;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.pagetable.Translation;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Invalidation exactness (IHI 0070 §4.4): every command kind against one fixed population, with
 * the entries each must remove written out as a table.
 */
class TlbInvalidationTest {
    private static final boolean G = true;
    private static final boolean NG = false;

    record Cached(TlbTag tag, Translation walk) {}

    /** The population: every regime, several VMIDs and ASIDs, global and not, every size. */
    static final Map<String, Cached> POPULATION = new LinkedHashMap<>();

    private static void put(String name, Regime r, int vmid, int asid, Translation t) {
        POPULATION.put(name, new Cached(new TlbTag(r, vmid, asid), t));
    }

    static {
        // Stage 1 NS-EL1 (VMID 1 unless noted).
        put("A", Regime.NH, 1, 1, s1(0x1000_0000L, 0xA000_0000L, G4K, 3, NG));
        put("B", Regime.NH, 1, 2, s1(0x1000_0000L, 0xB000_0000L, G4K, 3, NG));
        put("C", Regime.NH, 1, 1, s1(0x1000_1000L, 0xC000_0000L, G4K, 3, G));
        put("D", Regime.NH, 1, 1, s1(0x4000_0000L, 0x2_0000_0000L, G4K, 2, NG)); // 2 MiB block
        put("E", Regime.NH, 1, 1, s1(0x8000_0000L, 0x4_0000_0000L, G4K, 1, NG)); // 1 GiB block
        put("F", Regime.NH, 1, 1, s1(0x2000_0000L, 0x3_0000_0000L, G16K, 3, NG)); // 16K page
        put("G", Regime.NH, 1, 1, s1(0x3000_0000L, 0x3_1000_0000L, G64K, 3, NG)); // 64K page
        put("H", Regime.NH, 1, 1, s1Contig(0x5000_0000L, 0x3_2000_0000L, G4K, 3, NG)); // 16 x 4K
        put("V", Regime.NH, 1, 1, s1(0xFFFF_FFFF_FFFF_F000L, 0x3_3000_0000L, G4K, 3, NG)); // TTB1 top
        put("I", Regime.NH, 2, 1, s1(0x1000_0000L, 0x5_0000_0000L, G4K, 3, NG));
        put("J", Regime.NH, 2, 1, s1(0x4000_0000L, 0x5_0020_0000L, G4K, 2, G));
        // Stage 1 EL2: K, L under E2H (ASID 1), M without E2H (no ASIDs: global although nG = 1).
        put("K", Regime.EL2, 0, 1, s1(0x1000_0000L, 0x6_0000_0000L, G4K, 3, NG));
        put("L", Regime.EL2, 0, 1, s1(0x1000_1000L, 0x6_0000_1000L, G4K, 3, G));
        put("M", Regime.EL2, 0, TlbTag.NO_ASID, s1(0x1000_2000L, 0x6_0000_2000L, G4K, 3, NG));
        // Stage 2 only, keyed by IPA.
        put("N", Regime.S2, 1, 0, s2(0x1000_0000L, 0x7_0000_0000L, G4K, 3));
        put("O", Regime.S2, 1, 0, s2(0x4000_0000L, 0x7_0020_0000L, G4K, 2));
        put("P", Regime.S2, 2, 0, s2(0x1000_0000L, 0x7_1000_0000L, G4K, 3));
        put("Q", Regime.S2, 1, 0, s2(0x3000_0000L, 0x7_2000_0000L, G64K, 3));
        // Nested: VA -> IPA -> PA.
        put("R", Regime.NESTED, 3, 1, nested(0x1000_0000L, 0x7000_0000L, 0x8_0000_0000L, G4K, 3, G4K, 3, NG));
        // Stage 2 leaf is a 2 MiB block at IPA 0x4000_0000.
        put("S", Regime.NESTED, 3, 1, nested(0x1000_1000L, 0x4000_3000L, 0x8_1000_3000L, G4K, 3, G4K, 2, G));
        // Stage 1 leaf is a 2 MiB block (VA 0x4020_0000 -> IPA 0x1220_0000), stage 2 a 4K page:
        // the entry spans 4K at VA 0x4020_5000 but depends on the whole stage 1 block.
        put("T", Regime.NESTED, 3, 1, nested(0x4020_5000L, 0x1220_5000L, 0x8_2000_0000L, G4K, 2, G4K, 3, NG));
        put("U", Regime.NESTED, 1, 1, nested(0x1000_0000L, 0x1000_0000L, 0x9_0000_0000L, G4K, 3, G4K, 3, NG));
        // Stage 1 64K page (VA 0x6000_0000 -> IPA 0x2_0000_0000), stage 2 16K page: 16K entry.
        put("W", Regime.NESTED, 1, 2, nested(0x6000_4000L, 0x2_0000_4000L, 0x9_1000_0000L, G64K, 3, G16K, 3, NG));
    }

    private static final String EVERYTHING = String.join(" ", POPULATION.keySet());

    static Stream<Arguments> vectors() {
        return Stream.of(
                // CMD_TLBI_NH_ALL: NH and NESTED of the VMID, global included; never S2 or EL2.
                v("NH_ALL vmid 1", nhAll(1), "A B C D E F G H V U W"),
                v("NH_ALL vmid 2", nhAll(2), "I J"),
                v("NH_ALL vmid 3", nhAll(3), "R S T"),
                // CMD_TLBI_NH_ASID: non-global only.
                v("NH_ASID 1/1", nhAsid(1, 1), "A D E F G H V U"),
                v("NH_ASID 1/2", nhAsid(1, 2), "B W"),
                v("NH_ASID 3/1", nhAsid(3, 1), "R T"),
                v("NH_ASID 1/7", nhAsid(1, 7), ""),
                // CMD_TLBI_NH_VA: the ASID's entries and global ones containing the address.
                v("NH_VA page", nhVa(1, 1, 0x1000_0000L, true, SINGLE), "A U"),
                v("NH_VA other asid", nhVa(1, 2, 0x1000_0000L, false, SINGLE), "B"),
                v("NH_VA global", nhVa(1, 9, 0x1000_1000L, true, SINGLE), "C"),
                v("NH_VA in 2M block", nhVa(1, 1, 0x401F_F000L, true, SINGLE), "D"),
                v("NH_VA in 1G block", nhVa(1, 1, 0xBFFF_F000L, true, SINGLE), "E"),
                v("NH_VA in 16K page", nhVa(1, 1, 0x2000_3000L, true, SINGLE), "F"),
                v("NH_VA in 64K page", nhVa(1, 1, 0x3000_F000L, true, SINGLE), "G"),
                v("NH_VA in contiguous span", nhVa(1, 1, 0x5000_F000L, true, SINGLE), "H"),
                v("NH_VA past contiguous span", nhVa(1, 1, 0x5001_0000L, true, SINGLE), ""),
                v("NH_VA TTB1 top", nhVa(1, 1, 0xFFFF_FFFF_FFFF_F000L, true, SINGLE), "V"),
                v("NH_VA nested stage 1 leaf", nhVa(1, 2, 0x6000_0000L, true, SINGLE), "W"),
                v("NH_VA nested wrong asid", nhVa(1, 1, 0x6000_4000L, true, SINGLE), ""),
                v("NH_VA nested 2M s1 block", nhVa(3, 1, 0x4020_0000L, false, SINGLE), "T"),
                v("NH_VA nested global", nhVa(3, 5, 0x1000_1000L, true, SINGLE), "S"),
                v("NH_VA vmid 2 global block", nhVa(2, 1, 0x4000_0000L, true, SINGLE), "J"),
                // CMD_TLBI_NH_VAA: every ASID.
                v("NH_VAA page", nhVaa(1, 0x1000_0000L, true, SINGLE), "A B U"),
                v("NH_VAA nested block", nhVaa(3, 0x403F_F000L, true, SINGLE), "T"),
                v("NH_VAA TTB1 top", nhVaa(1, 0xFFFF_FFFF_FFFF_F000L, false, SINGLE), "V"),
                v("NH_VAA vmid 2", nhVaa(2, 0x1000_0000L, true, SINGLE), "I"),
                // CMD_TLBI_EL2_*: EL2 entries only.
                v("EL2_ALL", el2All(), "K L M"),
                v("EL2_ASID 1", el2Asid(1), "K"),
                v("EL2_ASID 0", el2Asid(0), ""),
                v("EL2_VA asid", el2Va(1, 0x1000_0000L, true, SINGLE), "K"),
                v("EL2_VA other asid", el2Va(2, 0x1000_0000L, true, SINGLE), ""),
                v("EL2_VA global", el2Va(2, 0x1000_1000L, true, SINGLE), "L"),
                v("EL2_VA no-ASID regime", el2Va(2, 0x1000_2000L, true, SINGLE), "M"),
                v("EL2_VAA", el2Vaa(0x1000_0000L, true, SINGLE), "K"),
                // CMD_TLBI_S12_VMALL: every non-EL2 entry of the VMID, all stages.
                v("S12_VMALL 1", s12Vmall(1), "A B C D E F G H V N O Q U W"),
                v("S12_VMALL 2", s12Vmall(2), "I J P"),
                v("S12_VMALL 3", s12Vmall(3), "R S T"),
                // CMD_TLBI_S2_IPA: stage 2 entries by IPA, and nested entries by their stage 2 leaf.
                v("S2_IPA page (+nested)", s2Ipa(1, 0x1000_0000L, true, SINGLE), "N U"),
                v("S2_IPA in 2M block", s2Ipa(1, 0x4010_0000L, true, SINGLE), "O"),
                v("S2_IPA in 64K page", s2Ipa(1, 0x3000_8000L, false, SINGLE), "Q"),
                v("S2_IPA vmid 2", s2Ipa(2, 0x1000_0000L, true, SINGLE), "P"),
                v("S2_IPA nested s2 block", s2Ipa(3, 0x4000_0000L, true, SINGLE), "S"),
                v("S2_IPA nested s2 page", s2Ipa(3, 0x1220_5000L, true, SINGLE), "T"),
                v("S2_IPA nested, other page of s1 block", s2Ipa(3, 0x1220_0000L, true, SINGLE), ""),
                v("S2_IPA nested R", s2Ipa(3, 0x7000_0000L, true, SINGLE), "R"),
                v("S2_IPA nested 16K s2 page", s2Ipa(1, 0x2_0000_4000L, true, SINGLE), "W"),
                v("S2_IPA nested, s1 leaf only", s2Ipa(1, 0x2_0000_0000L, true, SINGLE), ""),
                // CMD_TLBI_NSNH_ALL: all but EL2.
                v("NSNH_ALL", nsnhAll(), "A B C D E F G H V I J N O P Q R S T U W"),
                v("ALL", all(), EVERYTHING),
                // Ranges (TG/NUM/SCALE) and level hints (TTL), §4.4.1.1.
                v("NH_VA 2 x 4K", nhVa(1, 1, 0x1000_0000L, true, TlbRange.of(G4K, 1, 0)), "A C U"),
                v("NH_VA 1 x 4K before", nhVa(1, 1, 0x0FFF_F000L, true, TlbRange.of(G4K, 0, 0, 3)), ""),
                v("NH_VA 2 x 4K from before", nhVa(1, 1, 0x0FFF_F000L, true, TlbRange.of(G4K, 1, 0, 3)), "A U"),
                v("NH_VAA 128G 4K any level", nhVaa(1, 0, true, TlbRange.of(G4K, 31, 20)), "A B C D E H U"),
                v("NH_VAA 128G 4K TTL 3", nhVaa(1, 0, true, TlbRange.of(G4K, 31, 20, 3)), "A B C H U"),
                v("NH_VAA 128G 4K TTL 2", nhVaa(1, 0, true, TlbRange.of(G4K, 31, 20, 2)), "D"),
                v("NH_VAA 128G 4K TTL 1", nhVaa(1, 0, true, TlbRange.of(G4K, 31, 20, 1)), "E"),
                v("NH_VAA 16K TG aligns down", nhVaa(1, 0x2000_1000L, true, TlbRange.of(G16K, 0, 0, 3)), "F"),
                v("NH_VAA 64K TG, 16K entry", nhVaa(1, 0x2000_0000L, true, TlbRange.of(G64K, 0, 0, 3)), ""),
                v("NH_VAA 64K TG", nhVaa(1, 0x3000_0000L, true, TlbRange.of(G64K, 0, 0, 3)), "G"),
                v("NH_VAA 64K TG nested s1", nhVaa(1, 0x6000_0000L, true, TlbRange.of(G64K, 0, 0, 3)), "W"),
                v("NH_VAA no wrap at top", nhVaa(1, 0xFFFF_FFFF_FFFF_0000L, true, TlbRange.of(G4K, 31, 39)), "V"),
                v("NH_VA 1G TTL 1 wrong asid", nhVa(1, 2, 0x8000_0000L, true, TlbRange.of(G4K, 0, 0, 1)), ""),
                v("S2_IPA 128G 4K", s2Ipa(1, 0, true, TlbRange.of(G4K, 31, 20)), "N O U"),
                v("S2_IPA 128G 4K TTL 2", s2Ipa(1, 0, true, TlbRange.of(G4K, 31, 20, 2)), "O"),
                v("S2_IPA 128G 4K TTL 3", s2Ipa(1, 0, true, TlbRange.of(G4K, 31, 20, 3)), "N U"),
                v("S2_IPA 2 x 16K nested", s2Ipa(1, 0x2_0000_0000L, true, TlbRange.of(G16K, 1, 0, 3)), "W"),
                v("S2_IPA 1 x 16K nested", s2Ipa(1, 0x2_0000_0000L, true, TlbRange.of(G16K, 0, 0, 3)), ""),
                v("S2_IPA 64K TG", s2Ipa(1, 0x3000_0000L, true, TlbRange.of(G64K, 0, 0, 3)), "Q"),
                v("S2_IPA nested s2 TTL 2", s2Ipa(3, 0x4000_0000L, true, TlbRange.of(G4K, 0, 0, 2)), "S"),
                v("S2_IPA nested s2 TTL 3", s2Ipa(3, 0x4000_0000L, true, TlbRange.of(G4K, 0, 0, 3)), ""),
                v("EL2_VAA 3 x 4K", el2Vaa(0x1000_0000L, true, TlbRange.of(G4K, 2, 0)), "K L M"),
                v("EL2_VA 3 x 4K asid 1", el2Va(1, 0x1000_0000L, true, TlbRange.of(G4K, 2, 0)), "K L M"),
                v("EL2_VA 3 x 4K asid 2", el2Va(2, 0x1000_0000L, true, TlbRange.of(G4K, 2, 0)), "L M"));
    }

    private static Arguments v(String name, TlbInvalidation inv, String removed) {
        return Arguments.of(name, inv, removed);
    }

    /** The full population (NESTED entries force the scan path for NH_VA* and S2_IPA). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("vectors")
    void removesExactly(String name, TlbInvalidation inv, String removed) {
        check(inv, removed, POPULATION.keySet(), 1024);
    }

    /** Without NESTED entries the address-based commands take the direct-probe path. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("vectors")
    void removesExactlyWithoutNested(String name, TlbInvalidation inv, String removed) {
        Set<String> names = POPULATION.entrySet().stream()
                .filter(e -> e.getValue().tag().regime() != Regime.NESTED)
                .map(Map.Entry::getKey).collect(Collectors.toCollection(TreeSet::new));
        Tlb tlb = check(inv, removed, names, 64);
        if (inv.byAddress() && !inv.range().isRange()) {
            assertEquals(1, tlb.probedInvalidations, "single-address commands probe");
        }
        if (!inv.byAddress()) {
            assertEquals(1, tlb.scannedInvalidations, "commands without an address scan");
        }
    }

    private static Tlb check(TlbInvalidation inv, String removed, Set<String> names, int capacity) {
        Tlb tlb = new Tlb(capacity);
        Map<String, TlbEntry> inserted = new LinkedHashMap<>();
        for (String n : names) {
            Cached c = POPULATION.get(n);
            inserted.put(n, tlb.insert(c.tag(), c.walk()));
        }
        Set<String> expected = new TreeSet<>(Arrays.asList(removed.split(" ")));
        expected.removeIf(s -> s.isEmpty() || !names.contains(s));

        int n = tlb.invalidate(inv);

        Set<String> gone = new TreeSet<>();
        List<String> wrong = new ArrayList<>();
        for (var e : inserted.entrySet()) {
            Cached c = POPULATION.get(e.getKey());
            TlbEntry hit = tlb.lookup(c.tag(), c.walk().inputAddress());
            if (hit == null) {
                gone.add(e.getKey());
            } else if (hit != e.getValue()) {
                wrong.add(e.getKey());
            }
        }
        assertEquals(List.of(), wrong, "lookups that found another entry");
        assertEquals(expected, gone, "entries removed by " + inv);
        assertEquals(expected.size(), n, "count returned by invalidate");
        assertEquals(names.size() - expected.size(), tlb.size());
        assertEquals(n, tlb.stats().invalidated());
        return tlb;
    }

    /** Every vector names only population entries (a typo would make a vector vacuous). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("vectors")
    void vectorsNameRealEntries(String name, TlbInvalidation inv, String removed) {
        for (String s : removed.split(" ")) {
            if (!s.isEmpty()) {
                assertTrue(POPULATION.containsKey(s), s);
            }
        }
    }
}
