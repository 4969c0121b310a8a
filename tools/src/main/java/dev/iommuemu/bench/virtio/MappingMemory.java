package dev.iommuemu.bench.virtio;

import dev.iommuemu.interval.IntervalMap;
import java.util.TreeMap;

/**
 * Heap bytes per live mapping with 10^6 mappings (see BENCHMARKS.md): the IntervalMap filled in
 * address order and in scattered order, against a TreeMap of records as the obvious alternative.
 * Run: {@code java -cp tools/target/benchmarks.jar dev.iommuemu.bench.virtio.MappingMemory}.
 */
public final class MappingMemory {
    private static final int N = 1_000_000;

    record Entry(long last, long target, int attrs) {}

    private MappingMemory() {}

    public static void main(String[] args) {
        System.out.printf("IntervalMap, ordered inserts:   %.1f bytes/mapping (estimate %d)%n", measure(() -> fill(false)), estimate(false));
        System.out.printf("IntervalMap, scattered inserts: %.1f bytes/mapping (estimate %d)%n", measure(() -> fill(true)), estimate(true));
        System.out.printf("TreeMap<Long, record>:          %.1f bytes/mapping%n", measure(MappingMemory::treeMap));
    }

    private static long estimate(boolean scattered) {
        return fill(scattered).memoryBytes() / N;
    }

    private static IntervalMap fill(boolean scattered) {
        IntervalMap m = new IntervalMap();
        for (int k = 0; k < N; k++) {
            long page = scattered ? (k * 7919L) % N : k;
            m.insert(page << 13, (page << 13) + 0xfff, page << 12, 3);
        }
        return m;
    }

    private static Object treeMap() {
        TreeMap<Long, Entry> t = new TreeMap<>();
        for (int k = 0; k < N; k++) {
            long page = (k * 7919L) % N;
            t.put(page << 13, new Entry((page << 13) + 0xfff, page << 12, 3));
        }
        return t;
    }

    private static double measure(java.util.function.Supplier<Object> build) {
        long before = used();
        Object keep = build.get();
        long after = used();
        if (keep.hashCode() == 42) {
            System.out.print("");
        }
        return (after - before) / (double) N;
    }

    private static long used() {
        Runtime rt = Runtime.getRuntime();
        for (int i = 0; i < 4; i++) {
            System.gc();
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        return rt.totalMemory() - rt.freeMemory();
    }
}
