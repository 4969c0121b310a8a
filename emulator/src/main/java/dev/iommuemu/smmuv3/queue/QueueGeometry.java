package dev.iommuemu.smmuv3.queue;

import dev.iommuemu.smmuv3.registers.Smmuv3Regs;

/**
 * A circular queue in guest memory as an SMMU_*Q_BASE register describes it (IHI 0070 §3.5
 * circular queues): {@code 2^log2size} entries of {@code entrySize} bytes from {@code base}.
 * Pointers are {@code log2size + 1} bits: the index and, above it, the wrap flag. LOG2SIZE is capped
 * by the matching SMMU_IDR1 field (§6.3 SMMU_CMDQ_BASE "values greater than IDR1.CMDQS are treated as
 * IDR1.CMDQS").
 */
public record QueueGeometry(long base, int log2size, int entrySize) {

    /** Decodes a queue base register, capping LOG2SIZE at {@code cap}. */
    public static QueueGeometry of(long baseRegister, int cap, int entrySize) {
        int log2 = Math.min(Smmuv3Regs.Q_BASE_LOG2SIZE.getInt(baseRegister), cap);
        long addr = Smmuv3Regs.Q_BASE_ADDR.inPlace(baseRegister);
        // §6.3 SMMU_CMDQ_BASE: the base is aligned to the queue size (bits below it are treated as zero).
        long bytes = (long) entrySize << log2;
        if (bytes > 32) {
            addr &= ~(bytes - 1);
        }
        return new QueueGeometry(addr, log2, entrySize);
    }

    public int entries() {
        return 1 << log2size;
    }

    /** The bits of a pointer register that hold index and wrap. */
    public int pointerMask() {
        return (2 << log2size) - 1;
    }

    public int index(int ptr) {
        return ptr & (entries() - 1);
    }

    public boolean wrap(int ptr) {
        return ((ptr >>> log2size) & 1) != 0;
    }

    public boolean empty(int prod, int cons) {
        return (prod & pointerMask()) == (cons & pointerMask());
    }

    public boolean full(int prod, int cons) {
        return index(prod) == index(cons) && wrap(prod) != wrap(cons);
    }

    /** The pointer after {@code ptr}, wrapping the index and toggling the wrap flag. */
    public int next(int ptr) {
        return (ptr + 1) & pointerMask();
    }

    /** The guest address of the entry {@code ptr} points at. */
    public long slot(int ptr) {
        return base + (long) index(ptr) * entrySize;
    }
}
