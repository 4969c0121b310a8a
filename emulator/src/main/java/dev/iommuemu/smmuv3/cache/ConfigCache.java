package dev.iommuemu.smmuv3.cache;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The SMMU's configuration cache (IHI 0070 §3.21, §4.3): decoded STEs by StreamID and decoded CDs
 * by StreamID and CD index. It is as coherent as the guest's CMD_CFGI_* commands make it: a
 * structure changed in memory without an invalidation keeps its cached value. Only valid, legal
 * structures are cached (§3.21.1: an SMMU does not cache invalid or ILLEGAL configuration), and the
 * cache is bounded (LRU), as a hardware cache is, so eviction never changes the outcome for a
 * guest that invalidates correctly.
 *
 * @param <S> the decoded STE type
 * @param <C> the decoded CD type
 */
public final class ConfigCache<S, C> {
    private final int capacity;
    private final Map<Integer, S> stes;
    private final Map<Long, C> cds;
    /** STE.CONT of the cached STEs that have one (§5.2): each stands for 2^CONT aligned StreamIDs. */
    private final Map<Integer, Integer> conts = new HashMap<>();

    public ConfigCache(int capacity) {
        this.capacity = capacity;
        this.stes = new LinkedHashMap<>(64, 0.75f, true);
        this.cds = new LinkedHashMap<>(64, 0.75f, true);
    }

    private static long key(int sid, int index) {
        return ((long) sid << 32) | (index & 0xffff_ffffL);
    }

    public S ste(int sid) {
        return stes.get(sid);
    }

    /**
     * The cached STE of {@code sid} without touching the replacement order (diagnostics: looking
     * must not change which entry is evicted next).
     */
    public S peekSte(int sid) {
        return peek(stes, sid);
    }

    /** The cached CD, as {@link #peekSte}. */
    public C peekCd(int sid, int index) {
        return peek(cds, key(sid, index));
    }

    private static <K, V> V peek(Map<K, V> m, K key) {
        if (!m.containsKey(key)) { // containsKey leaves an access-ordered map's order alone
            return null;
        }
        for (Map.Entry<K, V> e : m.entrySet()) {
            if (e.getKey().equals(key)) {
                return e.getValue();
            }
        }
        return null;
    }

    public void putSte(int sid, S ste) {
        putSte(sid, ste, 0);
    }

    /**
     * Caches the STE of {@code sid} whose STE.CONT is {@code cont} (§5.2): a hint that it is one of
     * 2^CONT identical STEs at StreamIDs aligned to 2^CONT, so the entry covers all of them for
     * {@link #spansCovering}. Lookups by {@link #ste} still match StreamIDs exactly.
     */
    public void putSte(int sid, S ste, int cont) {
        stes.put(sid, ste);
        if (cont > 0) {
            conts.put(sid, cont);
        } else {
            conts.remove(sid);
        }
        trim(stes);
        dropStaleConts();
    }

    /**
     * The StreamIDs, other than {@code sid}, whose cached STE's CONT span covers {@code sid}: with
     * {@code sid}'s own entry, more than one STE matches a lookup of {@code sid} (§3.20.2). The
     * replacement order is not touched.
     */
    public List<Integer> spansCovering(int sid) {
        List<Integer> out = new ArrayList<>(0);
        for (Map.Entry<Integer, Integer> e : conts.entrySet()) {
            int other = e.getKey();
            int cont = e.getValue();
            if (other != sid && (other >>> cont) == (sid >>> cont)) {
                out.add(other);
            }
        }
        return out;
    }

    /** The STE.CONT {@code sid}'s cached STE was cached with (0 when none or not cached). */
    public int cont(int sid) {
        return conts.getOrDefault(sid, 0);
    }

    private void dropStaleConts() {
        if (!conts.isEmpty()) {
            conts.keySet().removeIf(k -> !stes.containsKey(k));
        }
    }

    public C cd(int sid, int index) {
        return cds.get(key(sid, index));
    }

    public void putCd(int sid, int index, C cd) {
        cds.put(key(sid, index), cd);
        trim(cds);
    }

    /** CMD_CFGI_STE (§4.3.1): the STE and, as the STE locates them, the stream's CDs. */
    public void invalidateSte(int sid) {
        stes.remove(sid);
        conts.remove(sid);
        invalidateCds(sid);
    }

    /** CMD_CFGI_STE_RANGE (§4.3.2): StreamIDs {@code [first, first + count)}. */
    public void invalidateSteRange(long first, long count) {
        stes.keySet().removeIf(s -> inRange(s, first, count));
        dropStaleConts();
        cds.keySet().removeIf(k -> inRange((int) (k >>> 32), first, count));
    }

    private static boolean inRange(int sid, long first, long count) {
        long u = sid & 0xffff_ffffL;
        return u >= first && u - first < count;
    }

    /** CMD_CFGI_CD (§4.3.3). */
    public void invalidateCd(int sid, int index) {
        cds.remove(key(sid, index));
    }

    /** CMD_CFGI_CD_ALL (§4.3.4). */
    public void invalidateCds(int sid) {
        cds.keySet().removeIf(k -> (int) (k >>> 32) == sid);
    }

    /** CMD_CFGI_ALL (§4.3.6: CFGI_STE_RANGE with Range 31). */
    public void invalidateAll() {
        stes.clear();
        conts.clear();
        cds.clear();
    }

    public int size() {
        return stes.size() + cds.size();
    }

    private <K, V> void trim(Map<K, V> m) {
        if (m.size() > capacity) {
            Iterator<K> it = m.keySet().iterator();
            it.next();
            it.remove();
        }
    }
}
