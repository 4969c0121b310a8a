package dev.iommuemu.bridge.fastpath;

import static dev.iommuemu.bridge.fastpath.CommandHandOff.*;

import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * The VMM's part of the command-queue hand-off (docs/protocol.md §4.12), step by step as the spec
 * writes it, for tests: what QEMU does on a guest write of SMMU_CMDQ_PROD with a shared memory of
 * flags RECIPES | CMDQ. {@link #onProdWrite} consumes the batch itself or says the write must be
 * posted; the accessors read the daemon's fields.
 */
final class VmmHandOff {
    /** Why a write was posted instead of consumed, or CONSUMED. */
    enum Outcome { CONSUMED, NOTIFIERS, UNAPPLIED_WRITES, LOCK_BUSY, NOT_OK, NOT_HANDLED }

    private static final int TLBI_NH_ALL = 0x10;
    private static final int TLBI_NH_ASID = 0x11;
    private static final int TLBI_NH_VA = 0x12;
    private static final int TLBI_NH_VAA = 0x13;
    private static final int SYNC = 0x46;

    private final MappedRegion shm;
    private final int sets;
    private final int ways;
    private final GuestMemory ram;
    private final long c0;

    VmmHandOff(MappedRegion shm, int sets, int ways, GuestMemory ram) {
        this.shm = shm;
        this.sets = sets;
        this.ways = ways;
        this.ram = ram;
        this.c0 = SharedCache.commandRegion(sets, ways);
    }

    /** The lock at the first try: compare-and-swap 0 to 1 (acquire). */
    boolean tryLock() {
        return shm.compareAndSet32(c0 + OFF_LOCK, FREE, HELD_BY_VMM);
    }

    /** Gives the lock back: a store of 0 (release). */
    void unlock() {
        VarHandle.releaseFence();
        shm.write32(c0 + OFF_LOCK, FREE);
        VarHandle.fullFence();
    }

    int lock() { return shm.read32(c0 + OFF_LOCK); }
    int ok() { return shm.read32(c0 + OFF_OK); }
    long cmdqBase() { return shm.read64(c0 + OFF_CMDQ_BASE); }
    int prod() { return shm.read32(c0 + OFF_PROD); }
    int cons() { return shm.read32(c0 + OFF_CONS); }
    int count() { return shm.read32(c0 + OFF_COUNT); }
    int batches() { return shm.read32(c0 + OFF_BATCHES); }
    int features() { return shm.read32(c0 + OFF_FEATURES); }
    int oas() { return shm.read32(c0 + OFF_OAS); }
    int syncLine() { return shm.read32(c0 + OFF_SYNC_LINE); }
    void setCount(int n) { shm.write32(c0 + OFF_COUNT, n); }
    void setBatches(int n) { shm.write32(c0 + OFF_BATCHES, n); }
    void setProd(int v) { shm.write32(c0 + OFF_PROD, v); }
    void setCons(int v) { shm.write32(c0 + OFF_CONS, v); }

    /** The i-th command of the log. */
    void logCommand(int i, long w0, long w1) {
        shm.write64(c0 + OFF_LOG + 16L * i, w0);
        shm.write64(c0 + OFF_LOG + 16L * i + 8, w1);
    }

    /**
     * A guest write of {@code newProd} to SMMU_CMDQ_PROD (§4.12 "The VMM"): consumed here when every
     * condition holds ({@code writesSent}: the VMM's IOMMU_MMIO_WRITEs so far), else the write is to
     * be posted. {@code pulse} gets the sync line each CMD_SYNC with SIG_IRQ pulses.
     */
    Outcome onProdWrite(int newProd, long writesSent, IntConsumer pulse) {
        if (shm.read32(SharedCache.OFF_NOTIFIERS) != 0) {
            return Outcome.NOTIFIERS;
        }
        if (shm.read64(SharedCache.OFF_WRITES_APPLIED) != writesSent) {
            return Outcome.UNAPPLIED_WRITES;
        }
        if (!tryLock()) {
            return Outcome.LOCK_BUSY; // never waits
        }
        try {
            if (ok() != 1) {
                return Outcome.NOT_OK;
            }
            long base = cmdqBase();
            int log2 = (int) Smmuv3Regs.Q_BASE_LOG2SIZE.get(base);
            long addr = Smmuv3Regs.Q_BASE_ADDR.inPlace(base);
            int mask = (2 << log2) - 1;
            int cons = cons();
            int ptr = cons & mask;
            int end = newProd & mask;
            boolean msi = (features() & FEATURE_MSI) != 0;
            boolean ril = (features() & FEATURE_RIL) != 0;
            List<long[]> batch = new ArrayList<>();
            List<long[]> ranges = new ArrayList<>(); // {first, last} to drop; {0, -1} everything
            List<long[]> syncs = new ArrayList<>();
            int tlbis = 0;
            while (ptr != end) {
                long slot = addr + 16L * (ptr & ((1 << log2) - 1));
                var w0 = ram.load(slot, 8);
                var w1 = ram.load(slot + 8, 8);
                if (w0.isEmpty() || w1.isEmpty()) {
                    return Outcome.NOT_HANDLED; // outside RAM
                }
                long[] c = {w0.getAsLong(), w1.getAsLong()};
                int op = (int) Command.OPCODE.get(c[0]);
                switch (op) {
                    case TLBI_NH_ALL, TLBI_NH_ASID -> ranges.add(new long[] {0, -1L});
                    case TLBI_NH_VA, TLBI_NH_VAA -> {
                        long a = Command.TLBI_ADDR.inPlace(c);
                        int tg = (int) Command.TLBI_TG.get(c);
                        if (!ril || tg == 0) {
                            ranges.add(new long[] {a & ~0xfffL, (a & ~0xfffL) + 0xfff});
                        } else {
                            int num = (int) Command.TLBI_NUM.get(c);
                            int scale = (int) Command.TLBI_SCALE.get(c);
                            int ttl = (int) Command.TLBI_TTL.get(c);
                            if (tg == 2 && ttl == 1) {
                                ttl = 0; // §4.4.1.1: 16 KiB with TTL 1 needs SMMU_IDR5.DS; counts as 0
                            }
                            if (num == 0 && scale == 0 && ttl == 0) {
                                return Outcome.NOT_HANDLED; // Reserved: the daemon raises CERROR_ILL
                            }
                            int g = tg == 1 ? 12 : tg == 2 ? 14 : 16;
                            long first = a & ~((1L << g) - 1);
                            int sh = Math.min(scale, 39) + g;
                            long bytes = (num + 1L) << sh; // at most 32 << 55: no overflow
                            long last = Long.compareUnsigned(first + bytes - 1, first) < 0 ? -1L : first + bytes - 1; // saturated
                            ranges.add(new long[] {first, last});
                        }
                    }
                    case SYNC -> {
                        int cs = (int) Command.SYNC_CS.get(c);
                        long msiAddr = Command.SYNC_MSIADDR.get(c) << 2;
                        if (cs == 0b11) {
                            return Outcome.NOT_HANDLED;
                        }
                        if (cs == Command.CS_IRQ && msi && msiAddr != 0) {
                            long limited = oas() >= 64 ? msiAddr : msiAddr & ((1L << oas()) - 1);
                            if (ram.load(limited, 4).isEmpty()) {
                                return Outcome.NOT_HANDLED;
                            }
                            syncs.add(new long[] {cs, limited, Command.SYNC_MSIDATA.get(c)});
                        } else {
                            syncs.add(new long[] {cs, 0, 0});
                        }
                    }
                    default -> {
                        return Outcome.NOT_HANDLED;
                    }
                }
                if (op != SYNC) {
                    tlbis++;
                }
                batch.add(c);
                ptr = (ptr + 1) & mask;
            }
            if (Integer.toUnsignedLong(count()) + tlbis > MAX_LOG) {
                return Outcome.NOT_HANDLED;
            }
            // consume: the entries, inv_gen, the log, batches, prod and cons, the mirror, the syncs
            for (long[] r : ranges) {
                dropEntries(r[0], r[1]);
            }
            shm.getAndAdd64(SharedCache.OFF_INV_GEN, 1);
            VarHandle.fullFence();
            int n = count();
            for (long[] c : batch) {
                if ((int) Command.OPCODE.get(c[0]) != SYNC) {
                    logCommand(n++, c[0], c[1]);
                }
            }
            setCount(n);
            setBatches(batches() + 1);
            int newCons = (cons & ~mask) | (newProd & mask);
            setProd(newProd);
            setCons(newCons);
            mirror(Smmuv3Regs.CMDQ_PROD.offset(), newProd);
            mirror(Smmuv3Regs.CMDQ_CONS.offset(), newCons);
            VarHandle.fullFence();
            for (long[] s : syncs) {
                if (s[0] == Command.CS_IRQ) {
                    if (syncLine() != NO_LINE) {
                        pulse.accept(syncLine());
                    }
                    if (msi && s[1] != 0) {
                        ram.store(s[1], 4, s[2]);
                    }
                }
            }
            return Outcome.CONSUMED;
        } finally {
            unlock();
        }
    }

    /** Every entry, of any endpoint, overlapping [first, last]: odd seq, cleared, seq old + 2 with bit 31 flipped. */
    private void dropEntries(long first, long last) {
        dropEntries(shm, sets * ways, -1, first, last);
    }

    /**
     * §4.12's removal of a cache entry (also §4.13's after an UNMAP): every one of {@code endpoint}
     * (-1: any) of the {@code entries} overlapping [first, last].
     */
    static void dropEntries(MappedRegion shm, int entries, int endpoint, long first, long last) {
        for (int slot = 0; slot < entries; slot++) {
            long at = SharedCache.HEADER + 64L * slot;
            int seq = shm.read32(at);
            if ((seq & 1) != 0 || shm.read32(at + SharedCache.E_PERM) == 0) {
                continue;
            }
            if (endpoint != -1 && shm.read32(at + SharedCache.E_ENDPOINT) != endpoint) {
                continue;
            }
            long lo = shm.read64(at + SharedCache.E_IOVA);
            int sh = shm.read32(at + SharedCache.E_SHIFT);
            long hi = sh >= 64 ? -1L : lo + ((1L << sh) - 1);
            if (Long.compareUnsigned(hi, first) < 0 || Long.compareUnsigned(lo, last) > 0) {
                continue;
            }
            shm.write32(at, seq + 1);
            VarHandle.storeStoreFence();
            shm.write32(at + SharedCache.E_PERM, 0);
            shm.write64(at + SharedCache.E_IOVA, 0);
            shm.write64(at + SharedCache.E_OUTPUT, 0);
            VarHandle.releaseFence();
            shm.write32(at, (seq + 2) ^ 0x8000_0000);
        }
    }

    private void mirror(long offset, int value) {
        int n = shm.read32(SharedCache.OFF_MIRROR_COUNT);
        for (int i = 0; i < n; i++) {
            long at = SharedCache.OFF_MIRROR + 16L * i;
            if (shm.read32(at) == offset) {
                shm.write64(at + 8, Integer.toUnsignedLong(value));
            }
        }
    }
}
