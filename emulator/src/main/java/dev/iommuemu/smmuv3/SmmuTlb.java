package dev.iommuemu.smmuv3;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.smmuv3.translate.Outcome;
import dev.iommuemu.smmuv3.translate.TranslationCache;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Predicate;

/**
 * The SMMU's TLB (IHI 0070 §3.17): leaf translations tagged by regime, VMID and ASID (global
 * stage 1 entries match any ASID), bounded with LRU eviction, and the invalidation operations of
 * every CMD_TLBI_* (§4.4). Entries are only ever removed by invalidation or eviction, so a guest
 * that forgets a TLBI keeps seeing the old translation, as on hardware.
 */
final class SmmuTlb implements TranslationCache {
    private static final int GLOBAL = -1;

    private record Key(Outcome.Regime regime, int vmid, int asid, long vpn, int shift) {}

    private record Entry(Key key, Translation t) {
        long base() {
            return key.vpn << key.shift;
        }

        long ipaBase() {
            return t.ipa() & ~((1L << t.pageShift()) - 1);
        }
    }

    private final int capacity;
    private final LinkedHashMap<Key, Entry> entries = new LinkedHashMap<>(256, 0.75f, true);
    /** How many entries of each page shift are held: the shifts a lookup has to try. */
    private final Map<Integer, Integer> shifts = new HashMap<>();

    SmmuTlb(int capacity) {
        this.capacity = capacity;
    }

    int size() {
        return entries.size();
    }

    @Override
    public Translation lookup(Outcome.Regime regime, int vmid, int asid, long iova, DmaAccess access) {
        for (int shift : shifts.keySet()) {
            long vpn = iova >>> shift;
            Entry e = entries.get(new Key(regime, vmid, regime == Outcome.Regime.S2 ? GLOBAL : asid, vpn, shift));
            if (e == null && regime != Outcome.Regime.S2) {
                e = entries.get(new Key(regime, vmid, GLOBAL, vpn, shift));
            }
            if (e != null) {
                // An entry that does not grant the access is walked again (permission fault, or a
                // hardware dirty-state update, §3.13).
                return Perm.allows(e.t.perm(), access) ? e.t : null;
            }
        }
        return null;
    }

    @Override
    public void insert(Outcome.Regime regime, int vmid, int asid, Translation t) {
        int shift = t.pageShift();
        int tagAsid = regime == Outcome.Regime.S2 || t.global() ? GLOBAL : asid;
        Key k = new Key(regime, vmid, tagAsid, t.inputAddress() >>> shift, shift);
        if (entries.put(k, new Entry(k, t)) == null) {
            shifts.merge(shift, 1, Integer::sum);
        }
        if (entries.size() > capacity) {
            Iterator<Entry> it = entries.values().iterator();
            Entry victim = it.next();
            it.remove();
            dropShift(victim.key.shift);
        }
    }

    private void dropShift(int shift) {
        shifts.computeIfPresent(shift, (s, n) -> n == 1 ? null : n - 1);
    }

    /** Ranges of at most this many bytes are invalidated by key lookups instead of a scan. */
    private static final long SMALL_RANGE = 16 * 4096;

    /** Removes the entries of {@code asid} (and global ones) holding any 4KB page of the range. */
    private void removeKeys(Outcome.Regime regime, int vmid, int asid, long start, long size) {
        Integer[] live = shifts.keySet().toArray(new Integer[0]);
        for (long a = start & ~0xfffL; Long.compareUnsigned(a - start, size) < 0 || a == (start & ~0xfffL);
                a += 4096) {
            for (int shift : live) {
                for (int tag : new int[] {asid, GLOBAL}) {
                    Entry e = entries.remove(new Key(regime, vmid, tag, a >>> shift, shift));
                    if (e != null) {
                        dropShift(shift);
                    }
                }
            }
            if (a + 4096 == 0) {
                break;
            }
        }
    }

    private void removeIf(Predicate<Entry> p) {
        Iterator<Entry> it = entries.values().iterator();
        while (it.hasNext()) {
            Entry e = it.next();
            if (p.test(e)) {
                it.remove();
                dropShift(e.key.shift);
            }
        }
    }

    private static boolean overlaps(long base, int shift, long start, long size) {
        long end = base + (1L << shift) - 1;
        long last = start + size - 1;
        if (size == -1L || Long.compareUnsigned(last, start) < 0) {
            last = -1L; // to the top of the address space
        }
        return Long.compareUnsigned(base, last) <= 0 && Long.compareUnsigned(start, end) <= 0;
    }

    /** CMD_TLBI_NSNH_ALL (§4.4): every non-hyp entry (NH and S2). */
    void nsnhAll() {
        removeIf(e -> e.key.regime != Outcome.Regime.EL2);
    }

    void invalidateAll() {
        entries.clear();
        shifts.clear();
    }

    /** CMD_TLBI_NH_ALL (§4.4): stage 1 entries of a VMID (VMID ignored when stage 2 is absent). */
    void nhAll(int vmid) {
        removeIf(e -> e.key.regime == Outcome.Regime.NH && e.key.vmid == vmid);
    }

    /** CMD_TLBI_NH_ASID (§4.4): non-global stage 1 entries of an ASID. */
    void nhAsid(int vmid, int asid) {
        removeIf(e -> e.key.regime == Outcome.Regime.NH && e.key.vmid == vmid && e.key.asid == asid);
    }

    /** CMD_TLBI_NH_VA / NH_VAA (§4.4): entries overlapping the range; {@code asid} -1 for all ASIDs. */
    void nhVa(int vmid, int asid, long start, long size) {
        if (asid >= 0 && size > 0 && size <= SMALL_RANGE) {
            removeKeys(Outcome.Regime.NH, vmid, asid, start, size); // the Linux unmap case, without a scan
            return;
        }
        removeIf(e -> e.key.regime == Outcome.Regime.NH && e.key.vmid == vmid
                && (asid < 0 || e.key.asid == asid || e.key.asid == GLOBAL) && overlaps(e.base(), e.key.shift, start, size));
    }

    /** CMD_TLBI_EL2_ALL (§4.4). */
    void el2All() {
        removeIf(e -> e.key.regime == Outcome.Regime.EL2);
    }

    /** CMD_TLBI_EL2_ASID (§4.4). */
    void el2Asid(int asid) {
        removeIf(e -> e.key.regime == Outcome.Regime.EL2 && e.key.asid == asid);
    }

    /** CMD_TLBI_EL2_VA / EL2_VAA (§4.4). */
    void el2Va(int asid, long start, long size) {
        removeIf(e -> e.key.regime == Outcome.Regime.EL2 && (asid < 0 || e.key.asid == asid || e.key.asid == GLOBAL)
                && overlaps(e.base(), e.key.shift, start, size));
    }

    /** CMD_TLBI_S12_VMALL (§4.4): every stage 1, stage 2 and nested entry of a VMID. */
    void s12Vmall(int vmid) {
        removeIf(e -> e.key.regime != Outcome.Regime.EL2 && e.key.vmid == vmid);
    }

    /**
     * CMD_TLBI_S2_IPA (§4.4): stage 2 entries overlapping the IPA range; nested entries whose IPA
     * overlaps too (over-invalidation is always permitted).
     */
    void s2Ipa(int vmid, long start, long size) {
        removeIf(e -> e.key.vmid == vmid && (e.key.regime == Outcome.Regime.S2
                ? overlaps(e.base(), e.key.shift, start, size)
                : e.key.regime == Outcome.Regime.NH && e.t.s2Level() != Translation.NO_LEVEL
                        && overlaps(e.ipaBase(), e.t.pageShift(), start, size)));
    }
}
