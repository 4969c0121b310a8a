package dev.iommuemu.virtio.iommu;

/**
 * A request the VMM served itself and logged (docs/protocol.md §4.13, version 14): the MAP (type
 * 3) or UNMAP (type 4) request's fields as the driver posted them (virtio 1.x §5.13.6.5,
 * §5.13.6.6); an UNMAP's {@code physStart} and {@code flags} are 0. Untrusted: the device applies
 * it as its request queue would and reports whatever it does not complete with S_OK.
 */
public record VmmRequest(int type, int domain, long virtStart, long virtEnd, long physStart, int flags) {}
