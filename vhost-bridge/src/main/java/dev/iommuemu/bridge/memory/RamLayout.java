package dev.iommuemu.bridge.memory;

import dev.iommuemu.memory.GuestMemory;
import java.util.List;

/**
 * Guest memory that can list its RAM regions (the VMM's SET_MEM_TABLE / ADD_MEM_REG regions): the
 * daemon's {@link MappedGuestMemory}, and a replay's memory with the recorded layout
 * (docs/recording.md). Behaviour that follows the RAM layout (the virtio-iommu nesting host's nest
 * parent, docs/nesting.md §6) reads it here.
 */
public interface RamLayout {
    /** The regions, each a {@link GuestMemory.Region}. */
    List<? extends GuestMemory.Region> regions();

    /** The layout of {@code memory}, looking through a recording tap; empty when it has none. */
    static List<? extends GuestMemory.Region> of(GuestMemory memory) {
        GuestMemory g = memory instanceof dev.iommuemu.memory.RecordingGuestMemory r ? r.inner() : memory;
        return g instanceof RamLayout l ? l.regions() : List.of();
    }
}
