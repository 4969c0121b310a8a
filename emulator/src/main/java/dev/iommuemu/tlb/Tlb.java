package dev.iommuemu.tlb;

import dev.iommuemu.pagetable.Translation;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The translation engine's TLB: complete (leaf) walks cached under the tags of IHI 0070 §3.17,
 * removed exactly as the CMD_TLBI_* commands of §4.4 require ({@link TlbInvalidation#matches}).
 * A miss is never wrong; an entry an invalidation should have removed is never hit again.
 *
 * <p><b>Structure.</b> An open-addressing hash table (linear probing, load factor at most 1/2,
 * backward-shift deletion, so no tombstones) keyed by (regime, VMID, ASID or "global" + ASET,
 * span size, input address &gt;&gt;&gt; span size). Entries have power-of-two sizes; a count per
 * regime and size (separately for global and non-global entries) lets {@link #lookup} probe once
 * per size that regime has live: with only 4K pages live, a hit is one hash and usually one slot. No allocation on
 * the lookup path. When entries of several sizes overlap (possible only if software changed
 * tables without invalidating), the smallest span wins; {@link #matching} lists every entry a
 * lookup matches, for the SMMU's conflict detection (IHI 0070 §3.20.1).
 *
 * <p><b>Invalidation.</b> Commands that name an address (NH_VA, NH_VAA, EL2_VA, EL2_VAA,
 * S2_IPA) probe the table directly for each size present, each page of the range and each tag
 * the command can match, when that is fewer probes than a budget proportional to the table; the
 * other commands, large ranges, and NESTED entries looked for by IPA scan the table. NESTED
 * entries whose stage 1 leaf is larger than their span (a guest block over host pages) are also
 * indexed by VMID and stage 1 leaf, so VA invalidations find them by probing too. Both paths
 * remove exactly the entries {@link TlbInvalidation#matches} accepts.
 *
 * <p><b>Replacement.</b> At most {@code capacity} entries are live. Inserting into a full TLB
 * evicts one entry chosen by CLOCK (second chance): a hit sets the entry's reference bit; the
 * hand sweeps the table clearing set bits and evicts the first entry whose bit is clear.
 * Re-inserting an existing key replaces the entry in place and evicts nothing.
 *
 * <p>Not thread-safe: one model owns one TLB (the emulator's models have no threads of their own).
 */
public final class Tlb {
    // Key context layout (one long per slot, 0 = empty slot):
    private static final long ASID_MASK = 0xFFFFL; // bits 0-15: ASID (0 for global entries)
    private static final long GLOBAL = 1L << 16; // bit 16: global (nG == 0, or no ASIDs)
    private static final long ASET = 1L << 17; // bit 17: ASET, for global entries only (§3.17.1)
    private static final int VMID_POS = 18; // bits 18-33: VMID
    private static final long VMID_MASK = 0xFFFFL << VMID_POS;
    private static final int REGIME_POS = 34; // bits 34-35: regime
    private static final long LIVE = 1L << 36; // bit 36: always set, so no live context is 0
    private static final int SHIFT_POS = 40; // bits 40-45: log2 of the span
    private static final long NO_SHIFT = ~(0x3FL << SHIFT_POS);

    private final int capacity;
    private final int mask;
    private final int hashShift;
    private final long[] ctxs;
    private final long[] pages;
    private final TlbEntry[] entries;
    private final boolean[] referenced;

    private int size;
    private int hand;
    /** Live entries per regime and span size ({@code [regime.ordinal() * 64 + log2 size]}), non-global and global. */
    private final int[] ngCount = new int[4 * 64];
    private final int[] gCount = new int[4 * 64];
    /** Per regime, the span sizes with live entries, ascending. */
    private final int[][] shifts = new int[4][0];
    private int nestedCount;
    /**
     * NESTED entries whose input match region (their stage 1 leaf) is larger than their span (see
     * {@link TlbEntry}), indexed by VMID and match region so that a VA invalidation can find them
     * without a scan; and how many there are per match region size.
     */
    private int wideCount;
    private final int[] wideShiftCount = new int[64];
    private final Map<WideKey, List<TlbEntry>> wide = new HashMap<>();

    private record WideKey(int vmid, int matchShift, long matchPage) {}
    /** Live non-global key contexts (without size) and their entry counts, for any-ASID probes. */
    private final Map<Long, int[]> contexts = new HashMap<>();

    private long hits;
    private long misses;
    private long inserts;
    private long evictions;
    private long invalidated;
    /** Invalidations carried out by direct probes and by scans (for tests of both paths). */
    long probedInvalidations;
    long scannedInvalidations;

    /** A TLB holding at most {@code capacity} entries (1 to 2^24). */
    public Tlb(int capacity) {
        if (capacity < 1 || capacity > (1 << 24)) {
            throw new IllegalArgumentException("capacity out of range: " + capacity);
        }
        this.capacity = capacity;
        int len = Math.max(16, Integer.highestOneBit(capacity - 1 | 1) << 2); // >= 2 * capacity
        this.mask = len - 1;
        this.hashShift = 64 - Integer.numberOfTrailingZeros(len);
        this.ctxs = new long[len];
        this.pages = new long[len];
        this.entries = new TlbEntry[len];
        this.referenced = new boolean[len];
    }

    public int capacity() {
        return capacity;
    }

    public int size() {
        return size;
    }

    public TlbStats stats() {
        return new TlbStats(hits, misses, inserts, evictions, invalidated, size);
    }

    /**
     * The entry that translates {@code inputAddress} under {@code tag}: same regime and VMID, and
     * either the same ASID (non-global) or global with the same ASET (§3.17.1); null on a miss.
     * The address is the walk's input as the walker used it (after any top-byte-ignore), a VA,
     * or an IPA for {@link Regime#S2}. Permission checks are the caller's ({@link TlbEntry#perm()}).
     */
    public TlbEntry lookup(TlbTag tag, long inputAddress) {
        int slot = slotOf(tag, inputAddress);
        if (slot >= 0) {
            hits++;
            referenced[slot] = true;
            return entries[slot];
        }
        misses++;
        return null;
    }

    /**
     * The entry {@link #lookup} would return, for diagnostics: no hit or miss is counted and the
     * replacement state is not touched, so looking does not change what the TLB does next.
     */
    public TlbEntry peek(TlbTag tag, long inputAddress) {
        int slot = slotOf(tag, inputAddress);
        return slot >= 0 ? entries[slot] : null;
    }

    /**
     * Every entry a lookup of {@code inputAddress} under {@code tag} matches, smallest span first
     * (at each size the ASID's entry, then the global one): more than one is a multi-match, a TLB
     * conflict in IHI 0070 §3.20.1's sense unless the break-before-make level allows it. Like
     * {@link #peek}, it counts nothing and leaves the replacement state alone; it allocates.
     */
    public TlbEntry[] matching(TlbTag tag, long inputAddress) {
        Regime r = tag.regime();
        int ro = r.ordinal() << 6;
        long base = context(r, tag.vmid());
        boolean asid = r.hasAsid() && tag.asid() != TlbTag.NO_ASID;
        long ng = base | (tag.asid() & ASID_MASK);
        long g = base | GLOBAL | (tag.aset() ? ASET : 0);
        List<TlbEntry> out = new ArrayList<>(2);
        for (int s : shifts[r.ordinal()]) {
            long page = inputAddress >>> s;
            long sb = (long) s << SHIFT_POS;
            int slot;
            if (asid && ngCount[ro + s] != 0 && (slot = find(ng | sb, page)) >= 0) {
                out.add(entries[slot]);
            }
            if (gCount[ro + s] != 0 && (slot = find(g | sb, page)) >= 0) {
                out.add(entries[slot]);
            }
        }
        return out.toArray(new TlbEntry[0]);
    }

    private int slotOf(TlbTag tag, long inputAddress) {
        Regime r = tag.regime();
        int ro = r.ordinal() << 6;
        long base = context(r, tag.vmid());
        boolean asid = r.hasAsid() && tag.asid() != TlbTag.NO_ASID;
        long ng = base | (tag.asid() & ASID_MASK);
        long g = base | GLOBAL | (tag.aset() ? ASET : 0);
        for (int s : shifts[r.ordinal()]) {
            long page = inputAddress >>> s;
            long sb = (long) s << SHIFT_POS;
            int slot;
            if (asid && ngCount[ro + s] != 0 && (slot = find(ng | sb, page)) >= 0
                    || gCount[ro + s] != 0 && (slot = find(g | sb, page)) >= 0) {
                return slot;
            }
        }
        return -1;
    }

    /** Caches {@code t} under {@code tag}, evicting one entry if the TLB is full; returns the entry. */
    public TlbEntry insert(TlbTag tag, Translation t) {
        TlbEntry e = new TlbEntry(tag, t);
        long ctx = keyOf(e);
        long page = e.inputBase() >>> e.shift();
        inserts++;
        int slot = find(ctx, page);
        if (slot >= 0) {
            account(entries[slot], ctx, -1);
            entries[slot] = e;
            referenced[slot] = true;
            account(e, ctx, +1);
            return e;
        }
        if (size == capacity) {
            evict();
        }
        int i = home(ctx, page);
        while (ctxs[i] != 0) {
            i = (i + 1) & mask;
        }
        ctxs[i] = ctx;
        pages[i] = page;
        entries[i] = e;
        referenced[i] = false;
        size++;
        account(e, ctx, +1);
        return e;
    }

    /** Carries out one invalidation; returns how many entries it removed. */
    public int invalidate(TlbInvalidation inv) {
        long[] probe = probeContexts(inv);
        int removed;
        if (probe != null && probes(inv, probe.length) <= probeBudget()) {
            probedInvalidations++;
            removed = invalidateByProbe(inv, probe);
        } else {
            scannedInvalidations++;
            removed = invalidateByScan(inv);
        }
        invalidated += removed;
        return removed;
    }

    /** Removes every entry. */
    public void clear() {
        invalidated += size;
        Arrays.fill(ctxs, 0);
        Arrays.fill(pages, 0);
        Arrays.fill(entries, null);
        Arrays.fill(referenced, false);
        Arrays.fill(ngCount, 0);
        Arrays.fill(gCount, 0);
        Arrays.fill(shifts, new int[0]);
        contexts.clear();
        size = 0;
        nestedCount = 0;
        wideCount = 0;
        Arrays.fill(wideShiftCount, 0);
        wide.clear();
    }

    /** Every live entry, in table order (for tests and the control API; allocates). */
    public TlbEntry[] entries() {
        TlbEntry[] out = new TlbEntry[size];
        int n = 0;
        for (TlbEntry e : entries) {
            if (e != null) {
                out[n++] = e;
            }
        }
        return out;
    }

    // ---- invalidation ----------------------------------------------------------------------

    /**
     * The key contexts (without size) an address-based command can match, or null if it must scan:
     * for the command's regimes and VMID, the ASID it names (or every live non-global context for
     * the any-ASID forms), and the global contexts of both ASETs.
     */
    private long[] probeContexts(TlbInvalidation inv) {
        switch (inv.kind()) {
            case NH_VA, NH_VAA -> {
                long[] a = contextsFor(Regime.NH, inv);
                long[] b = contextsFor(Regime.NESTED, inv);
                long[] all = Arrays.copyOf(a, a.length + b.length);
                System.arraycopy(b, 0, all, a.length, b.length);
                return all;
            }
            case EL2_VA, EL2_VAA -> {
                return contextsFor(Regime.EL2, inv);
            }
            case S2_IPA -> {
                return nestedCount != 0 ? null : new long[] {context(Regime.S2, inv.vmid()) | GLOBAL};
            }
            default -> {
                return null;
            }
        }
    }

    private long[] contextsFor(Regime r, TlbInvalidation inv) {
        long base = context(r, r.hasVmid() ? inv.vmid() : 0);
        boolean anyAsid = inv.kind() == TlbInvalidation.Kind.NH_VAA || inv.kind() == TlbInvalidation.Kind.EL2_VAA;
        if (!anyAsid) {
            return new long[] {base | (inv.asid() & ASID_MASK), base | GLOBAL, base | GLOBAL | ASET};
        }
        long[] out = new long[2 + contexts.size()];
        out[0] = base | GLOBAL;
        out[1] = base | GLOBAL | ASET;
        int n = 2;
        for (long c : contexts.keySet()) {
            if ((c & ~ASID_MASK) == base) {
                out[n++] = c;
            }
        }
        return Arrays.copyOf(out, n);
    }

    /**
     * How many probes are cheaper than a scan. Measured with TlbBench (4096 live entries in 8192
     * slots): a probe costs about 2 ns, a scan 1 to 3.5 ns per slot depending on how many entries
     * it must read. The budget grows with the table and with the entries live in it, and stays
     * on the side of scanning: a scan's cost is bounded, a range's page count is not.
     */
    private int probeBudget() {
        return 32 + ((mask + 1) >>> 4) + (size >>> 1);
    }

    /** Probes an address-based command would make: pages of the range at each live size, times contexts. */
    private long probes(TlbInvalidation inv, int contextCount) {
        long first = inv.first();
        long last = inv.last();
        long n = 0;
        for (long bits = liveShifts(inv.regimeMask()); bits != 0; bits &= bits - 1) {
            int s = Long.numberOfTrailingZeros(bits);
            n += ((last >>> s) - (first >>> s) + 1) * contextCount;
            if (n > probeBudget()) {
                return n;
            }
        }
        if (wideCount != 0 && (inv.regimeMask() >>> Regime.NESTED.ordinal() & 1) != 0) {
            for (int s = 0; s < 64; s++) {
                if (wideShiftCount[s] != 0) {
                    n += (last >>> s) - (first >>> s) + 1;
                    if (n > probeBudget()) {
                        return n;
                    }
                }
            }
        }
        return n;
    }

    private int invalidateByProbe(TlbInvalidation inv, long[] probe) {
        long first = inv.first();
        long last = inv.last();
        int removed = 0;
        for (long bits = liveShifts(inv.regimeMask()); bits != 0; bits &= bits - 1) {
            int s = Long.numberOfTrailingZeros(bits);
            long sb = (long) s << SHIFT_POS;
            for (long page = first >>> s; Long.compareUnsigned(page, last >>> s) <= 0; page++) {
                for (long c : probe) {
                    int slot = find(c | sb, page);
                    if (slot >= 0 && inv.matches(entries[slot], first, last)) {
                        removeSlot(slot);
                        removed++;
                    }
                }
            }
        }
        if (wideCount != 0 && (inv.regimeMask() >>> Regime.NESTED.ordinal() & 1) != 0) {
            // NESTED entries the probes above cannot see: their stage 1 leaf is hit, their span is not.
            for (int s = 0; s < 64; s++) {
                if (wideShiftCount[s] == 0) {
                    continue;
                }
                for (long page = first >>> s; Long.compareUnsigned(page, last >>> s) <= 0; page++) {
                    List<TlbEntry> list = wide.get(new WideKey(inv.vmid(), s, page));
                    if (list == null) {
                        continue;
                    }
                    for (TlbEntry e : list.toArray(new TlbEntry[0])) {
                        if (inv.matches(e, first, last)) {
                            removeSlot(find(keyOf(e), e.inputBase() >>> e.shift()));
                            removed++;
                        }
                    }
                }
            }
        }
        return removed;
    }

    private int invalidateByScan(TlbInvalidation inv) {
        long first = inv.first();
        long last = inv.last();
        int regimes = inv.regimeMask();
        long vmidBits = inv.vmidScoped() ? VMID_MASK : 0;
        long vmidWant = (long) inv.vmid() << VMID_POS & vmidBits;
        // *_ASID commands only match non-global entries of the ASID: the key says that too.
        boolean byAsid = inv.kind() == TlbInvalidation.Kind.NH_ASID || inv.kind() == TlbInvalidation.Kind.EL2_ASID;
        long asidBits = byAsid ? GLOBAL | ASID_MASK : 0;
        long asidWant = byAsid ? inv.asid() : 0;
        boolean byAddress = inv.byAddress();
        int removed = 0;
        for (int i = 0; i <= mask; ) {
            long c = ctxs[i];
            // Skip by key (regime, VMID, ASID, span) before touching the entry itself.
            if (c != 0 && (regimes >>> (int) (c >>> REGIME_POS & 3) & 1) != 0 && (c & vmidBits) == vmidWant
                    && (c & asidBits) == asidWant && (!byAddress || mayOverlap(c, pages[i], first, last))
                    && inv.matches(entries[i], first, last)) {
                removeSlot(i); // an entry later in the cluster may move into i: look at i again
                removed++;
            } else {
                i++;
            }
        }
        return removed;
    }

    /**
     * Whether the span of the entry keyed {@code (ctx, page)} overlaps {@code [first, last]}, or
     * the entry is NESTED (whose match regions can be larger than its span, and for S2_IPA are
     * IPAs): a necessary condition for an address-based command to match it.
     */
    private static boolean mayOverlap(long ctx, long page, long first, long last) {
        if ((int) (ctx >>> REGIME_POS & 3) == Regime.NESTED.ordinal()) {
            return true;
        }
        int s = (int) (ctx >>> SHIFT_POS & 0x3F);
        long base = page << s;
        long end = base + ((1L << s) - 1);
        return Long.compareUnsigned(base, last) <= 0 && Long.compareUnsigned(first, end) <= 0;
    }

    // ---- table -------------------------------------------------------------------------------

    private static long context(Regime r, int vmid) {
        return LIVE | (long) r.ordinal() << REGIME_POS | (long) vmid << VMID_POS;
    }

    private static long keyOf(TlbEntry e) {
        TlbTag t = e.tag();
        long c = context(t.regime(), t.vmid()) | (long) e.shift() << SHIFT_POS;
        return e.global() ? c | GLOBAL | (t.aset() ? ASET : 0) : c | (t.asid() & ASID_MASK);
    }

    private int home(long ctx, long page) {
        long h = (page ^ ctx * 0xC2B2AE3D27D4EB4FL) * 0x9E3779B97F4A7C15L;
        return (int) (h >>> hashShift);
    }

    private int find(long ctx, long page) {
        int i = home(ctx, page);
        long c;
        while ((c = ctxs[i]) != 0) {
            if (c == ctx && pages[i] == page) {
                return i;
            }
            i = (i + 1) & mask;
        }
        return -1;
    }

    /** Removes slot {@code i} and closes the gap (backward-shift deletion for linear probing). */
    private void removeSlot(int i) {
        account(entries[i], ctxs[i], -1);
        size--;
        int hole = i;
        int j = i;
        while (true) {
            j = (j + 1) & mask;
            long c = ctxs[j];
            if (c == 0) {
                break;
            }
            int h = home(c, pages[j]);
            // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
            boolean stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
            if (!stays) {
                ctxs[hole] = c;
                pages[hole] = pages[j];
                entries[hole] = entries[j];
                referenced[hole] = referenced[j];
                hole = j;
            }
        }
        ctxs[hole] = 0;
        pages[hole] = 0;
        entries[hole] = null;
        referenced[hole] = false;
    }

    /** CLOCK: sweep from the hand, giving referenced entries a second chance. */
    private void evict() {
        while (true) {
            int i = hand;
            hand = (hand + 1) & mask;
            if (ctxs[i] == 0) {
                continue;
            }
            if (referenced[i]) {
                referenced[i] = false;
                continue;
            }
            removeSlot(i);
            evictions++;
            return;
        }
    }

    /** The span sizes live in any regime of {@code regimeMask} (bit per ordinal), as a bit per log2 size. */
    private long liveShifts(int regimeMask) {
        long bits = 0;
        for (int r = 0; r < 4; r++) {
            if ((regimeMask >>> r & 1) != 0) {
                for (int s : shifts[r]) {
                    bits |= 1L << s;
                }
            }
        }
        return bits;
    }

    private void account(TlbEntry e, long ctx, int d) {
        int r = e.regime().ordinal();
        int s = (r << 6) + e.shift();
        int[] counts = e.global() ? gCount : ngCount;
        int before = ngCount[s] + gCount[s];
        counts[s] += d;
        if ((before == 0) != (ngCount[s] + gCount[s] == 0)) {
            rebuildShifts(r);
        }
        if (e.regime() == Regime.NESTED) {
            nestedCount += d;
            if (e.matchShift() > e.shift()) {
                wideCount += d;
                wideShiftCount[e.matchShift()] += d;
                WideKey k = new WideKey(e.vmid(), e.matchShift(), e.matchBase() >>> e.matchShift());
                if (d > 0) {
                    wide.computeIfAbsent(k, x -> new ArrayList<>()).add(e);
                } else {
                    List<TlbEntry> list = wide.get(k);
                    list.remove(e); // identity: TlbEntry does not override equals
                    if (list.isEmpty()) {
                        wide.remove(k);
                    }
                }
            }
        }
        if (!e.global()) {
            Long key = ctx & NO_SHIFT;
            int[] n = contexts.computeIfAbsent(key, k -> new int[1]);
            n[0] += d;
            if (n[0] == 0) {
                contexts.remove(key);
            }
        }
    }

    private void rebuildShifts(int r) {
        int n = 0;
        int[] s = new int[64];
        for (int i = 0; i < 64; i++) {
            if (ngCount[(r << 6) + i] + gCount[(r << 6) + i] != 0) {
                s[n++] = i;
            }
        }
        shifts[r] = Arrays.copyOf(s, n);
    }

    @Override
    public String toString() {
        return "Tlb[" + size + "/" + capacity + " entries, sizes 2^" + Arrays.deepToString(shifts) + " by regime]";
    }
}
