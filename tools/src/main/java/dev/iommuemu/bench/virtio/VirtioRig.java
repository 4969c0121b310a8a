package dev.iommuemu.bench.virtio;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.virtio.iommu.VirtioIommuConfig;
import dev.iommuemu.virtio.iommu.VirtioIommuDevice;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.VirtqDesc;

/**
 * A virtio-iommu device with its request queue set up in heap guest memory, and a minimal driver
 * that keeps {@code slots} fixed two-descriptor chains (request buffer, 4-byte tail) and rewrites
 * only the request bytes, so a benchmark measures the device's virtqueue path and not the driver.
 */
final class VirtioRig {
    static final long F_MAP_UNMAP = 1L << 2;
    static final long F_EVENT_IDX = 1L << 29;
    static final long F_VERSION_1 = 1L << 32;
    private static final long RING = 0x1_0000;
    private static final long REQS = 0x10_0000;

    final SparseGuestMemory mem = new SparseGuestMemory(0, 0x1000_0000L);
    final VirtioIommuDevice dev;
    final DriverRing ring;
    final int slots;

    VirtioRig(int queueSize, int maxMappings) {
        VirtioIommuConfig cfg = VirtioIommuConfig.builder()
                .endpoints(0, 15)
                .maxMappingsPerDomain(maxMappings)
                .maxMappings(maxMappings)
                .maxQueueSize(queueSize)
                .build();
        dev = new VirtioIommuDevice(cfg, mem, DmaHost.NONE);
        if (!dev.setDriverFeatures(F_VERSION_1 | F_MAP_UNMAP | F_EVENT_IDX)) {
            throw new IllegalStateException("features");
        }
        ring = new DriverRing(mem, queueSize, RING);
        ring.setEventIdx(true);
        dev.setQueueSize(0, queueSize);
        dev.setQueueAddresses(0, ring.descAddr(), ring.availAddr(), ring.usedAddr());
        dev.setQueueEnabled(0, true);
        slots = queueSize / 2;
        for (int s = 0; s < slots; s++) {
            int a = ring.allocDesc();
            int b = ring.allocDesc();
            ring.writeDesc(a, req(s), 36, VirtqDesc.F_NEXT, b);
            ring.writeDesc(b, req(s) + 0x40, 4, VirtqDesc.F_WRITE, 0);
        }
    }

    private static long req(int slot) {
        return REQS + 0x80L * slot;
    }

    /** Writes a MAP request into slot {@code s} (spec "MAP request" layout). */
    void map(int s, int domain, long virtStart, long virtEnd, long phys, int flags) {
        long a = req(s);
        mem.put64(a, 3L | ((long) domain << 32));
        mem.put64(a + 8, virtStart);
        mem.put64(a + 16, virtEnd);
        mem.put64(a + 24, phys);
        mem.put32(a + 32, flags);
        descLen(s, 36);
    }

    /** Writes an UNMAP request into slot {@code s}. */
    void unmap(int s, int domain, long virtStart, long virtEnd) {
        long a = req(s);
        mem.put64(a, 4L | ((long) domain << 32));
        mem.put64(a + 8, virtStart);
        mem.put64(a + 16, virtEnd);
        mem.put32(a + 24, 0);
        descLen(s, 28);
    }

    /** Writes an ATTACH request into slot {@code s}. */
    void attach(int s, int domain, int endpoint) {
        long a = req(s);
        mem.put64(a, 1L | ((long) domain << 32));
        mem.put64(a + 8, endpoint & 0xffff_ffffL);
        mem.put64(a + 16, 0);
        descLen(s, 20);
    }

    private void descLen(int s, int len) {
        ring.writeDesc(2 * s, req(s), len, VirtqDesc.F_NEXT, 2 * s + 1);
    }

    /** Publishes slots [0, n), kicks the device and reaps the used entries; returns the last status. */
    int submit(int n) {
        for (int s = 0; s < n; s++) {
            ring.publish(2 * s);
        }
        dev.queueNotified(0);
        int status = 0;
        for (int s = 0; s < n; s++) {
            DriverRing.Used u = ring.popUsed();
            if (u == null) {
                throw new IllegalStateException("not returned");
            }
            status |= mem.get32(req(u.id() / 2) + 0x40) & 0xff;
        }
        return status;
    }
}
