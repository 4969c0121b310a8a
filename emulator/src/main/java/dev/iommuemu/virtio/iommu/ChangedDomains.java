package dev.iommuemu.virtio.iommu;

import java.util.Set;

/**
 * The domains whose endpoints or mappings changed since the last time the VMM's mirror was
 * brought up to date (docs/protocol.md §4.13): {@code ids}, or every domain when {@code all} (a
 * reset, a loaded state), so that the daemon rewrites only the slots that need it.
 */
public record ChangedDomains(boolean all, Set<Integer> ids) {
    public static final ChangedDomains NONE = new ChangedDomains(false, Set.of());

    public ChangedDomains {
        ids = Set.copyOf(ids);
    }

    public boolean isEmpty() {
        return !all && ids.isEmpty();
    }
}
