package dev.iommuemu.domain;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * An iommu group (struct iommu_group): devices the IOMMU cannot isolate from each other. They
 * always share one domain; a DMA owner claims the group as a whole.
 */
public final class Group {
    private final String name;
    final List<Device> devices = new ArrayList<>();
    Domain domain;
    Object owner;
    int ownerCount;

    Group(String name, Domain initial) {
        this.name = name;
        this.domain = initial;
    }

    public String name() {
        return name;
    }

    public List<Device> devices() {
        return Collections.unmodifiableList(devices);
    }

    /** The group's current domain. */
    public Domain domain() {
        return domain;
    }

    /** The DMA owner, or {@code null} while the kernel's DMA API owns the group. */
    public Object owner() {
        return owner;
    }
}
