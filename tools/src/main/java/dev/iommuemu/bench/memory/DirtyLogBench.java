package dev.iommuemu.bench.memory;

import dev.iommuemu.bridge.memory.DirtyLog;
import dev.iommuemu.bridge.memory.MappedGuestMemory;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.unix.LibC;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The cost the dirty log (docs/protocol.md §4.11) adds to the daemon's writes into guest RAM: an
 * 8-byte store through {@link MappedGuestMemory} into 16 MiB of memfd RAM, {@value #BATCH} stores
 * to consecutive pages per invocation, with {@code log}: {@code off} (no log: one volatile read more
 * than before version 11), {@code set} (a log whose bits are all set already: a fence and a read of
 * the word) and {@code clear} (a log the VMM cleared before each batch: a fence and an atomic OR per
 * page). Time per store.
 *
 * <p>{@code java -jar tools/target/benchmarks.jar DirtyLogBench -f 1 -wi 3 -i 5 -w 1 -r 1}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class DirtyLogBench {
    static final int BATCH = 1024;
    private static final long RAM = 16L << 20;
    /** 4096 pages of RAM: 512 bytes of bitmap. */
    private static final int LOG_SIZE = 512;

    @Param({"off", "set", "clear"})
    public String log;

    private MappedGuestMemory mem;
    private MappedRegion bitmap;
    private DirtyLog dirtyLog;
    private long value;

    @Setup
    public void setUp() throws IOException {
        mem = new MappedGuestMemory(1);
        mem.add(MappedRegion.allocate("bench-ram", 0, RAM));
        bitmap = MappedRegion.allocate("bench-dirty-log", 0, LOG_SIZE); // the VMM's view of the log
        if (!log.equals("off")) {
            dirtyLog = DirtyLog.map(LibC.dup(bitmap.fd()), LOG_SIZE, 0, true, "bench", new DirtyLog.Listener() {
                @Override
                public void marked(long pages) {
                }

                @Override
                public void overflow() {
                }
            });
            mem.dirtyLog(dirtyLog);
            if (log.equals("set")) {
                for (int i = 0; i < LOG_SIZE; i += 8) {
                    bitmap.write64(i, -1L);
                }
            }
        }
    }

    @Setup(Level.Invocation)
    public void clearLog() {
        if (log.equals("clear")) {
            for (int i = 0; i < BATCH / 8; i += 8) {
                bitmap.write64(i, 0);
            }
        }
    }

    @TearDown
    public void tearDown() {
        mem.dirtyLog(null);
        if (dirtyLog != null) {
            dirtyLog.close();
        }
        mem.close();
        bitmap.unmap();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public boolean store() {
        boolean ok = true;
        long v = ++value;
        for (int i = 0; i < BATCH; i++) {
            ok &= mem.store((long) i << 12, 8, v);
        }
        return ok;
    }
}
