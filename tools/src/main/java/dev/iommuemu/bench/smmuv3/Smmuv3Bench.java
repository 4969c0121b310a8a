package dev.iommuemu.bench.smmuv3;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.smmuv3.Harness;
import dev.iommuemu.smmuv3.PageTables;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * The SMMUv3 device path (see BENCHMARKS.md): command throughput through the command queue in the
 * shape of a Linux unmap (a batch of CMD_TLBI_NH_VA then CMD_SYNC, published by one CMDQ_PROD
 * write), and translations through {@code Smmuv3.translate} with the STE and CD cached: TLB hits
 * for stage 1 and nested, and stage 1 TLB misses (a full 4-level walk each).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class Smmuv3Bench {
    private static final int BATCH = 32; // TLBI_NH_VA commands per CMD_SYNC
    private static final int PAGES = 64;
    private static final long VA = 0x40_0000_0000L;

    private Harness h;
    private Harness nested;
    private Harness miss;
    private long[][] batch;
    private int prod;
    private int i;

    @Setup
    public void setup() {
        h = new Harness(Smmuv3Profile.DEFAULT, DmaHost.NONE).enable();
        long root = h.tables.s1Root();
        for (int p = 0; p < PAGES; p++) {
            h.tables.map(root, VA + p * 4096L, 0x8000_0000L + p * 4096L, PageTables.S1_RW);
        }
        h.cd(Harness.CDS, Harness.cd(root, 1));
        h.ste(1, Harness.s1Ste(Harness.CDS, 0));
        batch = new long[BATCH + 1][];
        for (int b = 0; b < BATCH; b++) {
            batch[b] = Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 1)
                    .set(Command.TLBI_ADDR, (VA >>> 12) + b).words();
        }
        batch[BATCH] = Command.build(Command.Op.CMD_SYNC).words();

        nested = new Harness(Smmuv3Profile.DEFAULT, DmaHost.NONE).enable();
        long s2 = nested.tables.s2Root(24, 1);
        // Identity stage 2 over the first 1GB of IPA in 2MB blocks (tables, CD and pages all inside).
        for (long off = 0; off < 0x4000_0000L; off += 0x20_0000L) {
            nested.tables.map(s2, off, off, PageTables.S2_RW, 2);
        }
        long r2 = nested.tables.s1Root();
        for (int p = 0; p < PAGES; p++) {
            nested.tables.map(r2, VA + p * 4096L, 0x2000_0000L + p * 4096L, PageTables.S1_RW);
        }
        nested.cd(Harness.CDS, Harness.cd(r2, 1));
        long[] ste = Harness.s2Ste(s2, 1);
        Ste.CONFIG.set(ste, Ste.CONFIG_NESTED);
        Ste.S1CONTEXTPTR.set(ste, Harness.CDS >>> 6);
        nested.ste(1, ste);

        miss = new Harness(Smmuv3Profile.DEFAULT, DmaHost.NONE).enable();
        long r3 = miss.tables.s1Root();
        for (int p = 0; p < PAGES; p++) {
            miss.tables.map(r3, VA + p * 4096L, 0x8000_0000L + p * 4096L, PageTables.S1_RW);
        }
        miss.cd(Harness.CDS, Harness.cd(r3, 1));
        miss.ste(1, Harness.s1Ste(Harness.CDS, 0));
    }

    /** 33 commands (32 TLBI_NH_VA + SYNC) per invocation, one CMDQ_PROD write. */
    @Benchmark
    @OperationsPerInvocation(BATCH + 1)
    public long tlbiVaSyncBatch() {
        int mask = (1 << Harness.CMDQ_LOG2) - 1;
        for (long[] c : batch) {
            long slot = Harness.CMDQ + (long) (prod & mask) * 16;
            h.mem.put64(slot, c[0]);
            h.mem.put64(slot + 8, c[1]);
            prod = (prod + 1) & ((2 << Harness.CMDQ_LOG2) - 1);
        }
        h.smmu.mmioWrite(Smmuv3Regs.CMDQ_PROD.offset(), 4, prod);
        return h.smmu.mmioRead(Smmuv3Regs.CMDQ_CONS.offset(), 4);
    }

    /** Stage 1, STE + CD cached, TLB hit. */
    @Benchmark
    public DmaResult translateS1Hit() {
        i = (i + 1) & (PAGES - 1);
        return h.smmu.translate(1, -1, VA + i * 4096L + 8, DmaAccess.READ);
    }

    /** Nested stage 1 + stage 2, STE + CD cached, TLB hit. */
    @Benchmark
    public DmaResult translateNestedHit() {
        i = (i + 1) & (PAGES - 1);
        return nested.smmu.translate(1, -1, VA + i * 4096L + 8, DmaAccess.READ);
    }

    /** Stage 1, STE + CD cached, TLB miss: the TLB is invalidated with TLBI_NH_ALL every 64 pages. */
    @Benchmark
    public DmaResult translateS1Miss() {
        i = (i + 1) & (PAGES - 1);
        if (i == 0) {
            miss.cmd(Command.build(Command.Op.CMD_TLBI_NH_ALL).command());
        }
        return miss.smmu.translate(1, -1, VA + i * 4096L + 8, DmaAccess.READ);
    }
}
