package dev.iommuemu.bench.virtio;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.interval.IntervalMap;
import dev.iommuemu.interval.Mapping;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * virtio-iommu throughput (see BENCHMARKS.md, section "virtio-iommu"):
 * MAP+UNMAP request pairs through the split-virtqueue path, one kick per pair and 32 pairs per
 * kick; translations with 10^6 live mappings in one domain; the bare interval-map lookup.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class VirtioIommuBench {

    /** A device with endpoint 1 attached to domain 1 and an empty address space. */
    @State(Scope.Thread)
    public static class Queue {
        VirtioRig rig;
        long next;

        @Setup(Level.Trial)
        public void setUp() {
            rig = new VirtioRig(128, 1 << 20);
            rig.attach(0, 1, 1);
            if (rig.submit(1) != 0) {
                throw new IllegalStateException("attach failed");
            }
        }
    }

    /** One MAP (4 KiB, RW) then one UNMAP of it, each its own kick: the synchronous Linux pattern. */
    @Benchmark
    @OperationsPerInvocation(2)
    public int mapUnmapOneKickEach(Queue q) {
        long va = (q.next++ & 0xffff) << 12;
        q.rig.map(0, 1, va, va + 0xfff, 0x4000_0000L + va, 3);
        int s = q.rig.submit(1);
        q.rig.unmap(0, 1, va, va + 0xfff);
        return s | q.rig.submit(1);
    }

    /** 32 MAPs in one kick, then 32 UNMAPs in one kick (64 requests per invocation). */
    @Benchmark
    @OperationsPerInvocation(64)
    public int mapUnmapBatch32(Queue q) {
        long base = (q.next++ & 0xff) << 20;
        for (int i = 0; i < 32; i++) {
            long va = base + ((long) i << 12);
            q.rig.map(i, 1, va, va + 0xfff, 0x4000_0000L + va, 3);
        }
        int s = q.rig.submit(32);
        for (int i = 0; i < 32; i++) {
            long va = base + ((long) i << 12);
            q.rig.unmap(i, 1, va, va + 0xfff);
        }
        return s | q.rig.submit(32);
    }

    /** 10^6 live 4 KiB mappings in domain 1 (every other page), made by MAP requests through the queue. */
    @State(Scope.Benchmark)
    public static class Million {
        static final int N = 1_000_000;
        VirtioRig rig;
        IntervalMap map;
        long[] probes;
        int i;

        @Setup(Level.Trial)
        public void setUp() {
            rig = new VirtioRig(128, N);
            rig.attach(0, 1, 1);
            rig.submit(1);
            // Insert in a scattered order, as a real IOVA allocator's frees and reuses would.
            int batch = rig.slots;
            map = new IntervalMap();
            for (int k = 0; k < N; k += batch) {
                int n = Math.min(batch, N - k);
                for (int j = 0; j < n; j++) {
                    long page = scatter(k + j);
                    rig.map(j, 1, page << 13, (page << 13) + 0xfff, 0x1_0000_0000L + (page << 12), 3);
                    map.insert(page << 13, (page << 13) + 0xfff, 0x1_0000_0000L + (page << 12), 3);
                }
                if (rig.submit(n) != 0) {
                    throw new IllegalStateException("map failed at " + k);
                }
            }
            if (rig.dev.mappingCount() != N) {
                throw new IllegalStateException("mappings " + rig.dev.mappingCount());
            }
            SplittableRandom rnd = new SplittableRandom(1);
            probes = new long[1 << 16];
            for (int k = 0; k < probes.length; k++) {
                probes[k] = ((long) rnd.nextInt(N) << 13) + rnd.nextInt(0x1000);
            }
        }

        /** A bijection of [0, N) that spreads consecutive k over the space. */
        static long scatter(int k) {
            return (k * 7919L) % N;
        }
    }

    /** IommuModel.translate for a random address in one of 10^6 mappings (the device lock included). */
    @Benchmark
    public long translateMillion(Million m) {
        long iova = m.probes[m.i++ & 0xffff];
        DmaResult r = m.rig.dev.translate(1, -1, iova, DmaAccess.READ);
        return ((DmaResult.Translated) r).entry().translate(iova);
    }

    /** The bare IntervalMap lookup over the same 10^6 mappings. */
    @Benchmark
    public long intervalFindMillion(Million m) {
        long iova = m.probes[m.i++ & 0xffff];
        Mapping hit = m.map.find(iova);
        return hit.translate(iova);
    }
}
