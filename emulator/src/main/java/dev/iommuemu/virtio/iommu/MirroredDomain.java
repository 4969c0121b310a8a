package dev.iommuemu.virtio.iommu;

import dev.iommuemu.interval.Mapping;
import java.util.List;

/**
 * A domain as the VMM's request hand-off mirrors it (docs/protocol.md §4.13, version 14): a
 * MAP/UNMAP domain's id, its attached endpoints, every RESV_MEM region of those endpoints (virtio
 * 1.x §5.13.6.8.2) and its mappings in ascending order of their first address (each the MAP
 * request's {@code virt_start}, {@code virt_end}, {@code phys_start} and {@code flags}).
 */
public record MirroredDomain(int id, List<Integer> endpoints, List<ResvRegion> resv, List<Mapping> mappings) {
    /** §4.13 slot: {@code u32 endpoint[8]}. */
    public static final int MAX_ENDPOINTS = 8;
    /** §4.13 slot: {@code {u64 first, u64 last} resv[8]}. */
    public static final int MAX_RESV = 8;
    /** §4.13: a slot holds at most 1024 mappings ({@code max_per_domain} is at most this). */
    public static final int MAX_MAPPINGS = 1024;

    public MirroredDomain {
        endpoints = List.copyOf(endpoints);
        resv = List.copyOf(resv);
        mappings = List.copyOf(mappings);
    }
}
