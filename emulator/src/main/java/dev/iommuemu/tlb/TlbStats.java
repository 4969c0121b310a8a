package dev.iommuemu.tlb;

/**
 * A snapshot of a {@link Tlb}'s counters since it was created.
 *
 * @param hits        lookups that returned an entry
 * @param misses      lookups that returned null
 * @param inserts     entries inserted (including ones that replaced an entry with the same key)
 * @param evictions   entries removed to make room
 * @param invalidated entries removed by invalidations and {@link Tlb#clear()}
 * @param size        entries live now
 */
public record TlbStats(long hits, long misses, long inserts, long evictions, long invalidated, int size) {}
