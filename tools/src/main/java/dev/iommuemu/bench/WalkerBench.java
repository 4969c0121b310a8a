package dev.iommuemu.bench;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.pagetable.Walker;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.pagetable.testing.PageTableBuilder.Bump;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Full table walks with no TLB: a stage 1 4K four-level walk (4 descriptor reads) and a nested
 * 4K four-level walk over a four-level stage 2 (4 stage 1 reads, each preceded by a 4-read stage 2
 * walk, plus the final 4-read stage 2 walk: 24 reads). See BENCHMARKS.md.
 */
@State(Scope.Thread)
@BenchmarkMode({Mode.AverageTime, Mode.SampleTime})
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class WalkerBench {
    private static final int PAGES = 4096;

    private Walker walker;
    private Stage1Config s1;
    private Stage1Config s1Nested;
    private Stage2Config s2;
    private long[] vas;
    private int i;

    @Setup
    public void setup() {
        SparseGuestMemory mem = new SparseGuestMemory(1L << 40);
        Random rnd = new Random(42);
        vas = new long[PAGES];
        // Stage 1 only: 4K, T0SZ 16 (four levels), tables at PA 0x1000_0000.
        PageTableBuilder t1 = PageTableBuilder.stage1(mem, new Bump(0x1000_0000L, 0x1000_0000L), Granule.G4K, 16, 48, 48);
        for (int k = 0; k < PAGES; k++) {
            long va = rnd.nextLong() & 0x0000_ffff_ffff_f000L;
            vas[k] = va | (k & 0xfff);
            t1.map(va, 0x4000_0000L + ((long) k << 12), 3, PageTableBuilder.S1_RW | PageTableBuilder.S1_USER);
        }
        s1 = t1.stage1Config();
        // Nested: stage 1 tables at IPA 0x2000_0000.. (PA = IPA + 16 GiB); stage 2 4K, S2T0SZ 16,
        // start level 0 (four levels), mapping those table pages and the output pages.
        long shift = 0x4_0000_0000L;
        PageTableBuilder t2 = PageTableBuilder.stage2(mem, new Bump(0x3000_0000L, 0x1000_0000L), Granule.G4K, 16, 0, 48, 48);
        Bump ipaTables = new Bump(0x2000_0000L, 0x1000_0000L);
        PageTableBuilder n1 = PageTableBuilder.stage1(mem, ipaTables, Granule.G4K, 16, 48, 48)
                .tableWriter(ipa -> ipa + shift);
        for (int k = 0; k < PAGES; k++) {
            long ipa = 0x4000_0000L + ((long) k << 12);
            n1.map(vas[k] & ~0xfffL, ipa, 3, PageTableBuilder.S1_RW | PageTableBuilder.S1_USER);
            t2.map(ipa, ipa + shift, 3, PageTableBuilder.S2_RW);
        }
        long tablesEnd = ipaTables.allocate(0x1000, 0x1000);
        for (long ipa = 0x2000_0000L; ipa < tablesEnd; ipa += 0x1000) {
            t2.map(ipa, ipa + shift, 3, PageTableBuilder.S2_RW);
        }
        s1Nested = n1.stage1Config();
        s2 = t2.stage2Config();
        walker = new Walker(mem, 48);
        for (int k = 0; k < PAGES; k++) {
            if (walker.stage1(s1, vas[k], DmaAccess.READ).isFault() || walker.nested(s1Nested, s2, vas[k], DmaAccess.READ).isFault()) {
                throw new IllegalStateException("benchmark tables do not translate 0x" + Long.toHexString(vas[k]));
            }
        }
    }

    /** Stage 1, 4K granule, four levels, no TLB: 4 descriptor reads. */
    @Benchmark
    public WalkResult stage1FourLevelMiss() {
        long va = vas[i++ & (PAGES - 1)];
        return walker.stage1(s1, va, DmaAccess.READ);
    }

    /** Nested 4K four-level over 4K four-level stage 2: 24 descriptor reads. */
    @Benchmark
    public WalkResult nestedMiss() {
        long va = vas[i++ & (PAGES - 1)];
        return walker.nested(s1Nested, s2, va, DmaAccess.READ);
    }
}
