package dev.iommuemu.smmuv3.cache;

import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The cached entries (STE and CD cache entries, TLB entries: by identity) strict mode has already
 * reported as stale. One missed invalidation makes one stale entry, which the model keeps using
 * (as hardware would) on every later hit until an invalidation or a replacement removes it; a
 * finding per hit would bury that one bug under repeats. So an entry is reported the first time it
 * is found stale, and again only as a new entry: the cache makes a new object each time it fills
 * (after a CMD_CFGI_* / CMD_TLBI_*, a replacement or an eviction), and this set holds the old one
 * weakly, so it forgets entries the caches have dropped and never grows beyond them.
 */
public final class ReportedEntries {
    private final Map<Integer, List<Ref>> byHash = new HashMap<>();
    private final ReferenceQueue<Object> dropped = new ReferenceQueue<>();
    private int size;

    private static final class Ref extends WeakReference<Object> {
        final int hash;

        Ref(Object o, ReferenceQueue<Object> q) {
            super(o, q);
            this.hash = System.identityHashCode(o);
        }
    }

    /** Whether {@code entry} was not reported before; it is reported from now on. */
    public boolean firstReport(Object entry) {
        expunge();
        int h = System.identityHashCode(entry);
        List<Ref> refs = byHash.computeIfAbsent(h, k -> new ArrayList<>(1));
        for (Ref r : refs) {
            if (r.get() == entry) {
                return false;
            }
        }
        refs.add(new Ref(entry, dropped));
        size++;
        return true;
    }

    /** Reported entries still held by a cache (or not yet collected). */
    public int size() {
        expunge();
        return size;
    }

    private void expunge() {
        for (Reference<?> x; (x = dropped.poll()) != null; ) {
            Ref r = (Ref) x;
            List<Ref> refs = byHash.get(r.hash);
            if (refs != null && refs.remove(r)) {
                size--;
                if (refs.isEmpty()) {
                    byHash.remove(r.hash);
                }
            }
        }
    }
}
