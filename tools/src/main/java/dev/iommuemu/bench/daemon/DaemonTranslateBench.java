package dev.iommuemu.bench.daemon;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.CMDQ_BASE;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.CR0;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.EVENTQ_BASE;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.STRTAB_BASE;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.STRTAB_BASE_CFG;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.Daemon;
import dev.iommuemu.bridge.daemon.DaemonConfig;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.smmuv3.Harness;
import dev.iommuemu.smmuv3.PageTables;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * IOMMU_TRANSLATE round trips over the unix socket (docs/protocol.md §4.3) against the daemon
 * started in the benchmark's JVM, with {@link VmmClient} as the VMM: the built-in {@code identity}
 * model (transport, framing and dispatch only) next to the real {@code smmuv3} model with a stage 1
 * stream whose STE and CD are in the configuration cache and whose 64 pages are TLB hits. The
 * difference is what the model adds to a VMM's IOTLB miss.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class DaemonTranslateBench {
    private static final int PAGES = 64;
    private static final long VA = 0x40_0000_0000L;
    private static final long PA = 0x8000_0000L;

    @Param({"identity", "smmuv3"})
    public String model;

    private Daemon daemon;
    private VmmClient vmm;
    private dev.iommuemu.bridge.fastpath.SharedCacheView shared;
    private int i;

    @Setup(Level.Trial)
    public void setup() throws IOException {
        Path socket = Path.of("/tmp/ie-bench-" + ProcessHandle.current().pid() + "-" + model + ".sock");
        daemon = Daemon.start(new DaemonConfig(socket, null, model, "", java.util.logging.Level.WARNING, 5000, 8),
                DeviceRegistry.discover());
        vmm = VmmClient.connect(socket);
        if (model.equals("smmuv3")) {
            programSmmu();
        }
        shared = vmm.sharedCache(2048, 4); // docs/protocol.md §4.8: the translations below land in it
        for (int p = 0; p < PAGES; p++) { // fill the TLB (and check the set-up)
            Payloads.TranslateResult r = vmm.translate(1, -1, VA + p * 4096L + 8, 0).result();
            long expect = model.equals("smmuv3") ? PA + p * 4096L + 8 : -1;
            if (r.status() != Payloads.TRANSLATED || (expect >= 0 && r.output() != expect)) {
                throw new IllegalStateException("set-up does not translate: " + r);
            }
        }
    }

    /** Guest RAM as a memfd shared with the daemon; a linear stream table; StreamID 1 stage 1 (IHI 0070 §3.11). */
    private void programSmmu() throws IOException {
        vmm.addMemory(0, 32L << 20);
        PageTables tables = new PageTables(vmm.memory(), Harness.TABLES);
        long root = tables.s1Root();
        for (int p = 0; p < PAGES; p++) {
            tables.map(root, VA + p * 4096L, PA + p * 4096L, PageTables.S1_RW);
        }
        store(Harness.CDS, Harness.cd(root, 1));
        store(Harness.STRTAB + 64, Harness.s1Ste(Harness.CDS, 0));
        vmm.mmioWrite(STRTAB_BASE.offset(), 8, Harness.STRTAB);
        vmm.mmioWrite(STRTAB_BASE_CFG.offset(), 4, Harness.STRTAB_LOG2);
        vmm.mmioWrite(CMDQ_BASE.offset(), 8, Harness.CMDQ | Harness.CMDQ_LOG2);
        vmm.mmioWrite(EVENTQ_BASE.offset(), 8, Harness.EVTQ | Harness.EVTQ_LOG2);
        vmm.mmioWrite(CR0.offset(), 4, 0b1100); // CMDQEN | EVENTQEN
        vmm.mmioWrite(CR0.offset(), 4, 0b1101); // | SMMUEN
    }

    private void store(long addr, long[] words) {
        for (int w = 0; w < words.length; w++) {
            vmm.memory().store(addr + 8L * w, 8, words[w]);
        }
    }

    /** One IOMMU_TRANSLATE request and its reply (a VMM's IOTLB miss). */
    @Benchmark
    public long translate() throws IOException {
        i = (i + 1) & (PAGES - 1);
        return vmm.translate(1, -1, VA + i * 4096L + 8, 0).result().output();
    }

    /**
     * One IOMMU_TRANSLATE_RUN with max_pages 31 (docs/protocol.md §4.3), reported per page: the 32
     * pages a VMM caches from one round trip (the QEMU front-end's default run).
     */
    @Benchmark
    @OperationsPerInvocation(32)
    public int translateRun32() throws IOException {
        i = (i + 32) & (PAGES - 1);
        Payloads.TranslateRunReply r = vmm.translateRun(1, -1, VA + i * 4096L + 8, 0, 31);
        if (r.entries().size() != 31) {
            throw new IllegalStateException("a run of " + r.entries().size() + " entries, not 31");
        }
        return r.entries().size();
    }

    /**
     * The VMM's hit path of docs/protocol.md §4.8: a lock-free lookup in the shared cache the daemon
     * filled (what the QEMU front-end does in C instead of a round trip), beside {@link #translate}.
     */
    @Benchmark
    public long sharedCacheHit() {
        i = (i + 1) & (PAGES - 1);
        dev.iommuemu.bridge.fastpath.SharedCacheView.Hit h = shared.lookup(1, VA + i * 4096L + 8);
        if (h == null) {
            throw new IllegalStateException("page " + i + " is not in the shared cache");
        }
        return h.output();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        Map<String, Long> c = daemon.registry().list().get(0).allCounters();
        System.err.println("# " + model + ": translations " + c.get("translations") + ", tlb_hits " + c.get("tlb_hits")
                + ", tlb_misses " + c.get("tlb_misses"));
        vmm.close();
        daemon.close();
    }
}
