package dev.iommuemu.bridge.fastpath;

import dev.iommuemu.bridge.memory.MappedRegion;

/**
 * The VMM's side of docs/protocol.md §4.8, written from the protocol text as the QEMU front-end
 * reads it (for Java VMMs: {@link dev.iommuemu.bridge.client.VmmClient}, tests and benchmarks):
 * lock-free lookups under each entry's sequence lock, the register mirror and writes_applied.
 */
public final class SharedCacheView {
    public record Hit(long iova, long output, int shift, int perm) {}

    private final MappedRegion mem;

    public SharedCacheView(MappedRegion mem) {
        this.mem = mem;
    }

    public int sets() {
        return mem.read32(0);
    }

    public int ways() {
        return mem.read32(4);
    }

    public long shifts() {
        return mem.read64(8);
    }

    public void setNotifiers(boolean any) {
        mem.write32(0x10, any ? 1 : 0);
    }

    public int mirrorCount() {
        return mem.read32(0x14);
    }

    public long writesApplied() {
        return mem.read64(0x18);
    }

    public long mirrorOffset(int i) {
        return mem.read32(0x40 + 16L * i) & 0xffffffffL;
    }

    public int mirrorSize(int i) {
        return mem.read32(0x44 + 16L * i);
    }

    public long mirrorValue(int i) {
        return mem.read64(0x48 + 16L * i);
    }

    /** The entry holding {@code iova} of {@code endpoint}, or null (a miss). */
    public Hit lookup(int endpoint, long iova) {
        long shifts = shifts();
        for (; shifts != 0; shifts &= shifts - 1) {
            int bit = Long.numberOfTrailingZeros(shifts);
            int s = bit == 0 ? 64 : bit;
            long m = s >= 64 ? -1L : (1L << s) - 1;
            long set = SharedCache.HEADER + 64L * ways() * SharedCache.setOf(endpoint, iova & ~m, s, sets());
            for (int w = 0; w < ways(); w++) {
                long at = set + 64L * w;
                int seq = mem.read32(at);
                java.lang.invoke.VarHandle.acquireFence();
                if ((seq & 1) != 0) {
                    continue;
                }
                int ep = mem.read32(at + 4);
                long in = mem.read64(at + 8);
                long out = mem.read64(at + 16);
                int perm = mem.read32(at + 24);
                int sh = mem.read32(at + 28);
                java.lang.invoke.VarHandle.loadLoadFence();
                if (mem.read32(at) != seq || perm == 0 || ep != endpoint || sh != s || in != (iova & ~m)) {
                    continue;
                }
                return new Hit(in, out, sh, perm);
            }
        }
        return null;
    }

    /** The sequence word of every entry (all even when no write is under way). */
    public int seq(int slot) {
        return mem.read32(SharedCache.HEADER + 64L * slot);
    }
}
