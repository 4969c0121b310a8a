package dev.iommuemu.virtio.iommu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.virtqueue.VirtqRing;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Random bytes in the descriptor tables, rings and request buffers: the device answers or skips,
 * never throws and never loops. {@code -Diommuemu.fuzz.iterations=N} for longer runs.
 */
class GarbageQueueTest {

    @Test
    void garbageRingsNeverThrowOrHang() {
        long seed = Long.getLong("iommuemu.fuzz.seed", 5L);
        int iterations = Integer.getInteger("iommuemu.fuzz.iterations", 400);
        Random rnd = new Random(seed);
        // Two RAM regions with a hole, so random addresses hit both memory and aborts.
        SparseGuestMemory mem = new SparseGuestMemory(0, 0x2_0000, 0x10_0000, 0x1000);
        RecordingHost host = new RecordingHost();
        VirtioIommuDevice dev = new VirtioIommuDevice(VirtioIommuConfig.builder().maxQueueSize(16).probeSize(64).build(), mem, host);
        long all = dev.deviceFeatures();
        for (int it = 0; it < iterations; it++) {
            dev.reset();
            assertTrue(dev.setDriverFeatures(all & ~(rnd.nextBoolean() ? 1L << VirtqRing.F_INDIRECT_DESC : 0)));
            for (int q = 0; q < 2; q++) {
                long base = 0x1000L * (1 + q * 4);
                dev.setQueueSize(q, 16);
                dev.setQueueAddresses(q, base, base + 0x100, base + 0x200);
                dev.setQueueEnabled(q, true);
            }
            // Descriptors pointing at small addresses (in memory) or anywhere; lengths often small.
            for (long a = 0x1000; a < 0x6000; a += 8) {
                long v = rnd.nextLong();
                if ((a & 8) == 0 && rnd.nextInt(4) != 0) {
                    v = rnd.nextInt(0x2_0000); // addr inside the first region
                } else if ((a & 8) != 0 && rnd.nextInt(3) != 0) {
                    v = (v & ~0xffff_ffffL) | rnd.nextInt(96); // len small, flags/next random
                }
                mem.put64(a, v);
            }
            // Plausible request heads in the buffers the descriptors may point at.
            for (int k = 0; k < 64; k++) {
                mem.put32(rnd.nextInt(0x2_0000) & ~3, 1 + rnd.nextInt(6));
            }
            // Small available index advances most of the time, garbage sometimes.
            mem.store(0x1000 + 0x100 + 2, 2, rnd.nextInt(5) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(17));
            mem.store(0x1000 + 0x200 + 2, 2, 0);
            dev.queueNotified(0);
            dev.queueNotified(1);
            dev.translate(rnd.nextInt(4), -1, rnd.nextLong(), DmaAccess.WRITE);
            dev.queueNotified(rnd.nextInt(3));
        }
        VirtioIommuCounters c = dev.counters();
        assertTrue(c.malformedChains() > 0, "the run produced no malformed chain: " + c.asMap());
        long answered = 0;
        for (int s = 0; s < Status.count(); s++) {
            answered += c.status(s);
        }
        assertTrue(answered > 0, "the run produced no answered request: " + c.asMap());
        assertEquals(0, c.status(Status.IOERR));
    }
}
