package dev.iommuemu.bench;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.pagetable.Walker;
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
    private static final long TABLE = 0b11;
    private static final long LEAF = 0b11 | Descriptor.AF.mask() | Descriptor.AP_USER.mask();
    private static final long S2_LEAF = 0b11 | Descriptor.AF.mask() | Descriptor.S2AP_R.mask()
            | Descriptor.S2AP_W.mask() | (0xfL << 2); // MemAttr normal write-back

    private Walker walker;
    private Stage1Config s1;
    private Stage1Config s1Nested;
    private Stage2Config s2;
    private long[] vas;
    private int i;

    /** A bump-allocated 4K four-level table tree (48-bit input) in one address space. */
    private static final class Tree {
        final SparseGuestMemory mem;
        final long root;
        final long tableBase; // where tables live, as seen by the walker of this tree
        final long memOffset; // tree address + memOffset = where it sits in mem
        long next;

        Tree(SparseGuestMemory mem, long tableBase, long memOffset) {
            this.mem = mem;
            this.tableBase = tableBase;
            this.memOffset = memOffset;
            this.root = tableBase;
            this.next = tableBase + 0x1000;
        }

        void map(long in, long out, long leafBits) {
            long table = root;
            for (int level = 0; level < 3; level++) {
                long slot = table + (((in >>> Granule.G4K.levelShift(level)) & 511) << 3);
                long d = mem.get64(slot + memOffset);
                if ((d & 1) == 0) {
                    long t = next;
                    next += 0x1000;
                    d = Descriptor.withAddress(TABLE, t, Granule.G4K, false, false);
                    mem.put64(slot + memOffset, d);
                }
                table = Descriptor.address(d, Granule.G4K, false, false, 12);
            }
            long slot = table + (((in >>> 12) & 511) << 3);
            mem.put64(slot + memOffset, Descriptor.withAddress(leafBits, out, Granule.G4K, false, false));
        }
    }

    @Setup
    public void setup() {
        SparseGuestMemory mem = new SparseGuestMemory(1L << 40);
        Random rnd = new Random(42);
        vas = new long[PAGES];
        // Stage 1 only: tables at PA 0x1000_0000.
        Tree t1 = new Tree(mem, 0x1000_0000L, 0);
        for (int k = 0; k < PAGES; k++) {
            long va = (rnd.nextLong() & 0x0000_ffff_ffff_f000L);
            vas[k] = va | (k & 0xfff);
            t1.map(va, 0x4000_0000L + ((long) k << 12), LEAF);
        }
        s1 = Stage1Config.simple(t1.root, 16, Granule.G4K, 48);
        // Nested: stage 1 tables at IPA 0x2000_0000 (PA = IPA + 0x10_0000_0000), stage 2 tables at PA 0x3000_0000
        // mapping IPA [0, 4 GiB) to PA + 0x10_0000_0000 with 4K pages (four-level, start level 0).
        long shift = 0x10_0000_0000L;
        Tree t2 = new Tree(mem, 0x3000_0000L, 0);
        Tree n1 = new Tree(mem, 0x2000_0000L, shift);
        for (int k = 0; k < PAGES; k++) {
            n1.map(vas[k] & ~0xfffL, 0x4000_0000L + ((long) k << 12), LEAF);
        }
        for (long ipa = 0x2000_0000L; ipa < n1.next; ipa += 0x1000) {
            t2.map(ipa, ipa + shift, S2_LEAF);
        }
        for (int k = 0; k < PAGES; k++) {
            long ipa = 0x4000_0000L + ((long) k << 12);
            t2.map(ipa, ipa + shift, S2_LEAF);
        }
        s1Nested = Stage1Config.simple(n1.root, 16, Granule.G4K, 48);
        s2 = Stage2Config.simple(t2.root, 16, 0, Granule.G4K, 48);
        walker = new Walker(mem, 48);
        if (walker.stage1(s1, vas[7], DmaAccess.READ).isFault() || walker.nested(s1Nested, s2, vas[7], DmaAccess.READ).isFault()) {
            throw new IllegalStateException("benchmark tables do not translate");
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
