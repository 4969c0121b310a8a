package dev.iommuemu.bench;

import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.tlb.Regime;
import dev.iommuemu.tlb.Tlb;
import dev.iommuemu.tlb.TlbInvalidation;
import dev.iommuemu.tlb.TlbRange;
import dev.iommuemu.tlb.TlbTag;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The TLB's costs, one thread (issue 2 target: a hit in at most 50 ns). Populations of 4096 live
 * entries in a TLB of capacity 4096: {@code 4k} is 4K pages only (NH, one VMID, four ASIDs);
 * {@code mixed} adds global entries, 64K contiguous spans, 16K and 64K pages, 2M and 1G blocks,
 * stage 2 and nested entries; {@code nested} is NESTED entries only, each a 4K piece of a guest
 * 2 MiB block (so VA invalidations must also look them up by stage 1 leaf). Each lookup benchmark makes {@value #BATCH} lookups at addresses
 * drawn at random beforehand, and reports the time per lookup.
 *
 * <p>{@code java -jar tools/target/benchmarks.jar TlbBench -f 1 -wi 3 -i 5 -w 1 -r 1}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class TlbBench {
    static final int BATCH = 1024;
    static final int LIVE = 4096;

    @Param({"4k", "mixed", "nested"})
    public String population;

    private Tlb tlb;
    private final TlbTag[] hitTags = new TlbTag[BATCH];
    private final long[] hitAddrs = new long[BATCH];
    private final TlbTag[] missTags = new TlbTag[BATCH];
    private final long[] missAddrs = new long[BATCH];
    private int next;
    private int vmid;
    private final TlbTag[] refillTags = new TlbTag[BATCH];
    private final Translation[] refillWalks = new Translation[BATCH];

    private static Translation s1(long va, long pa, Granule g, int level, int contigShift, boolean global) {
        int shift = g.levelShift(level);
        return new Translation(va, pa, shift, Math.max(shift, contigShift), Perm.ALL, 0, global, level,
                Translation.NO_LEVEL, pa, 0, g, null, 0, 0);
    }

    @Setup
    public void setup() {
        vmid = population.equals("nested") ? 2 : 1;
        tlb = new Tlb(LIVE);
        Random rnd = new Random(42);
        int n = 0;
        TlbTag[] tags = new TlbTag[LIVE];
        Translation[] walks = new Translation[LIVE];
        long[] addrs = new long[LIVE];
        int[] sizes = new int[LIVE];
        while (n < LIVE) {
            int asid = n & 3;
            TlbTag tag = new TlbTag(Regime.NH, 1, asid);
            long va = (long) (n >>> 2) << 12 | 0x10_0000_0000L;
            Translation t = s1(va, 0x8000_0000L + ((long) n << 12), Granule.G4K, 3, 0, false);
            if (population.equals("mixed")) {
                switch (n % 8) {
                    case 1 -> t = s1(0x20_0000_0000L + ((long) n << 21), 0x40_0000_0000L + ((long) n << 21),
                            Granule.G4K, 2, 0, false);
                    case 2 -> t = s1(0x30_0000_0000L + ((long) n << 16), (long) n << 16, Granule.G4K, 3, 16, false);
                    case 3 -> t = s1(0x40_0000_0000L + ((long) n << 16), (long) n << 16, Granule.G64K, 3, 0, false);
                    case 4 -> t = s1(0x50_0000_0000L + ((long) n << 14), (long) n << 14, Granule.G16K, 3, 0, true);
                    case 5 -> t = s1((long) n << 30, (long) n << 30, Granule.G4K, 1, 0, true);
                    case 6 -> {
                        tag = new TlbTag(Regime.S2, 1, 0);
                        t = new Translation(va, va, 12, 12, Perm.ALL, 0, true, Translation.NO_LEVEL, 3, va, 12,
                                null, Granule.G4K, 0, 0);
                    }
                    case 7 -> {
                        tag = new TlbTag(Regime.NESTED, 2, asid);
                        t = new Translation(va, va, 12, 12, Perm.ALL, 0, false, 3, 3, va, 12,
                                Granule.G4K, Granule.G4K, 0, 0);
                    }
                    default -> { }
                }
            }
            if (population.equals("nested")) {
                // A guest 2 MiB block over host 4K pages, one page of each block cached: every
                // entry's stage 1 leaf is larger than its span.
                tag = new TlbTag(Regime.NESTED, 2, asid);
                long v = ((long) n << 21) + ((long) (n & 511) << 12) + 0x100_0000_0000L;
                long ipa = 0x1_0000_0000L + ((long) n << 21) + ((long) (n & 511) << 12);
                t = new Translation(v, 0x8000_0000L + ((long) n << 12), 12, 12, Perm.ALL, 0, false, 2, 3, ipa, 12,
                        Granule.G4K, Granule.G4K, 0, 0);
            }
            tlb.insert(tag, t);
            tags[n] = tag;
            walks[n] = t;
            addrs[n] = t.inputAddress();
            sizes[n] = Math.max(t.pageShift(), t.contigShift());
            n++;
        }
        if (tlb.size() != LIVE) {
            throw new IllegalStateException("population did not fill the TLB: " + tlb);
        }
        for (int i = 0; i < BATCH; i++) {
            int k = rnd.nextInt(LIVE);
            hitTags[i] = tags[k];
            hitAddrs[i] = addrs[k] + (rnd.nextLong() & ((1L << sizes[k]) - 1));
            missTags[i] = tags[k];
            missAddrs[i] = 0x7000_0000_0000L + ((long) rnd.nextInt(1 << 20) << 12); // nothing lives there
            if (tlb.lookup(hitTags[i], hitAddrs[i]) == null || tlb.lookup(missTags[i], missAddrs[i]) != null) {
                throw new IllegalStateException("bad benchmark population");
            }
        }
        int[] pages = new int[LIVE];
        int np = 0;
        for (int k = 0; k < LIVE; k++) {
            Regime r = tags[k].regime();
            if ((r == Regime.NH || r == Regime.NESTED) && sizes[k] == 12 && !walks[k].global()) {
                pages[np++] = k;
            }
        }
        for (int i = 0; i < BATCH; i++) {
            int k = pages[rnd.nextInt(np)];
            refillTags[i] = tags[k];
            refillWalks[i] = walks[k];
        }
    }

    /** A hit: probe per live size, non-global and global, until found. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void hit(Blackhole bh) {
        for (int i = 0; i < BATCH; i++) {
            bh.consume(tlb.lookup(hitTags[i], hitAddrs[i]));
        }
    }

    /** A miss: every probe of every live size comes back empty. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void miss(Blackhole bh) {
        for (int i = 0; i < BATCH; i++) {
            bh.consume(tlb.lookup(missTags[i], missAddrs[i]));
        }
    }

    /**
     * CMD_TLBI_NH_VA of one live non-global 4K entry followed by re-inserting it, so the
     * population stays the same: the cost of an invalidation that finds its entry plus one insert.
     */
    @Benchmark
    public int nhVaInvalidateAndRefill() {
        int i = next++ & (BATCH - 1);
        TlbTag tag = refillTags[i];
        Translation t = refillWalks[i];
        int n = tlb.invalidate(TlbInvalidation.nhVa(tag.vmid(), tag.asid(), t.inputAddress(), true, TlbRange.SINGLE));
        tlb.insert(tag, t);
        if (n != 1) {
            throw new IllegalStateException("expected to remove one entry, removed " + n);
        }
        return n;
    }

    /** CMD_TLBI_NH_VA of an address nothing maps: the probes alone. */
    @Benchmark
    public int nhVaInvalidateMiss() {
        return tlb.invalidate(TlbInvalidation.nhVa(vmid, 0, 0x7000_0000_0000L, true, TlbRange.SINGLE));
    }

    /**
     * CMD_TLBI_NH_VAA over 1 MiB of 4K pages (TG 4K, NUM 31, SCALE 3: 256 granules) where nothing
     * is mapped: direct probes for the 4k population, a scan for the mixed one (more sizes).
     */
    @Benchmark
    public int nhVaaRange1M() {
        return tlb.invalidate(TlbInvalidation.nhVaa(vmid, 0x7000_0000_0000L, true, TlbRange.of(Granule.G4K, 31, 3)));
    }

    /** CMD_TLBI_NH_VAA over 64 MiB: always a scan of the whole table. */
    @Benchmark
    public int nhVaaRange64MScan() {
        return tlb.invalidate(TlbInvalidation.nhVaa(vmid, 0x7000_0000_0000L, true, TlbRange.of(Granule.G4K, 31, 9)));
    }

    /** CMD_TLBI_NH_ASID of an ASID with no entries: a scan that removes nothing. */
    @Benchmark
    public int nhAsidScan() {
        return tlb.invalidate(TlbInvalidation.nhAsid(vmid, 77));
    }
}
