package dev.iommuemu.bridge.device;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.memory.GuestMemory;

/**
 * What the daemon gives a device model when it is created: the guest's memory (the regions the VMM
 * shared, changing as it adds and removes them), the host callbacks (interrupt eventfds, MSI and
 * IOTLB-invalidation messages on the back-end channel) and the endpoint callbacks (ATC
 * invalidations and PRI page responses, also on the back-end channel).
 */
public record DeviceContext(GuestMemory memory, DmaHost host, EndpointHost endpoints) {
    /** A context without endpoint callbacks (they do nothing). */
    public DeviceContext(GuestMemory memory, DmaHost host) {
        this(memory, host, EndpointHost.NONE);
    }
}
