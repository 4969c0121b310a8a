package dev.iommuemu.smmuv3.cmdq;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.queue.QueueGeometry;
import dev.iommuemu.smmuv3.registers.RegisterFile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import java.util.OptionalLong;

/**
 * The command queue consumer (IHI 0070 §3.5 and §4). Commands are consumed synchronously, in
 * order, whenever the guest makes them visible (a CMDQ_PROD write, CMDQEN set, a CMDQ_ERR
 * acknowledgement). A command that cannot be executed stops the queue with CMDQ_CONS.ERR set and
 * CONS pointing at it, and activates GERROR.CMDQ_ERR (§4.1.1, §7.1); consumption resumes once
 * software acknowledges the error through GERRORN.
 */
public final class CommandQueue {
    /** CMDQ_CONS.ERR codes (§4.1.1 Table 4-2). */
    public static final int CERROR_NONE = 0;
    public static final int CERROR_ILL = 1;
    public static final int CERROR_ABT = 2;
    public static final int CERROR_ATC_INV_SYNC = 3;

    /** Executes one decoded command; returns a CERROR code ({@link #CERROR_NONE} on success). */
    @FunctionalInterface
    public interface Executor {
        int execute(Command c);

        /**
         * The command just executed is consumed: CMDQ_CONS has moved past it. A completion signal
         * goes here (a CMD_SYNC's interrupt or MSI, §4.7.3), so that software woken by it finds
         * CMDQ_CONS past the command, and a state saved before the signal holds it consumed.
         */
        default void consumed() {}

        /** Called when processing stops (queue drained, or halted by an error). */
        default void endOfBatch() {}

        /**
         * The command just executed was consumed by the VMM, which signalled its completion itself
         * (docs/protocol.md §4.12): nothing is signalled for it (a CMD_SYNC's MSI is not written again).
         */
        default void consumedByVmm() {}
    }

    /**
     * What {@link #vmmConsumed} did: the logged commands executed and those the model rejected
     * (an unknown opcode, an absent feature, a CERROR: skipped, since the VMM completed the sync).
     */
    public record VmmBatch(int executed, int rejected) {}

    private final RegisterFile regs;
    private final GuestMemory mem;
    private final Interrupts irq;
    private final Smmuv3Profile profile;
    private final Executor executor;
    private long consumed;

    public CommandQueue(RegisterFile regs, GuestMemory mem, Interrupts irq, Smmuv3Profile profile, Executor executor) {
        this.regs = regs;
        this.mem = mem;
        this.irq = irq;
        this.profile = profile;
        this.executor = executor;
    }

    /** Commands executed since reset (for the control API and benchmarks). */
    public long consumed() {
        return consumed;
    }

    /** Consumes every command between CONS and PROD, unless the queue is disabled or in error. */
    public void process() {
        if (!Smmuv3Regs.CR0_CMDQEN.isSet(regs.get(Smmuv3Regs.CR0ACK))
                || irq.gerrorActive(Smmuv3Regs.GERROR_CMDQ_ERR)) {
            return;
        }
        try {
            drain();
        } finally {
            executor.endOfBatch();
        }
    }

    private void drain() {
        QueueGeometry q = QueueGeometry.of(regs.get(Smmuv3Regs.CMDQ_BASE), profile.cmdqs(), Command.SIZE);
        int prod = (int) regs.get(Smmuv3Regs.CMDQ_PROD) & q.pointerMask();
        int cons = (int) regs.get(Smmuv3Regs.CMDQ_CONS) & q.pointerMask();
        // At most 2^CMDQS entries lie between CONS and PROD, so this loop is bounded.
        while (!q.empty(prod, cons)) {
            int err = executeAt(q.slot(cons));
            if (err != CERROR_NONE) {
                regs.set(Smmuv3Regs.CMDQ_CONS, Smmuv3Regs.CMDQ_CONS_ERR.insert(Smmuv3Regs.Q_PTR.insert(regs.get(Smmuv3Regs.CMDQ_CONS), cons), err));
                irq.raiseGerror(Smmuv3Regs.GERROR_CMDQ_ERR);
                return;
            }
            consumed++;
            cons = q.next(cons);
            // §6.3 SMMU_CMDQ_CONS: the SMMU advances RD; ERR keeps the last error code.
            regs.set(Smmuv3Regs.CMDQ_CONS, Smmuv3Regs.Q_PTR, cons);
            executor.consumed();
        }
    }

    private int executeAt(long addr) {
        OptionalLong w0 = mem.load(addr, 8);
        OptionalLong w1 = mem.load(addr + 8, 8);
        if (w0.isEmpty() || w1.isEmpty()) {
            return CERROR_ABT; // §4.1.1: an abort fetching the command
        }
        return execute(w0.getAsLong(), w1.getAsLong());
    }

    private int execute(long w0, long w1) {
        Command.Op op = Command.Op.of((int) Command.OPCODE.get(w0));
        if (op == null || !op.presentIn(profile)) {
            return CERROR_ILL; // §4.1.1: unknown opcode, or a command of an absent feature
        }
        return executor.execute(new Command(op, w0, w1));
    }

    /**
     * Commands the VMM consumed from this queue itself (docs/protocol.md §4.12): {@code count}
     * commands of two 64-bit words each in {@code words}, as they were in the queue, executed as
     * {@link #process} would have (the TLB, the configuration cache, the VMM's cached translations,
     * flushed at the end as after any batch) but without reading the queue memory and without
     * signalling anything: the VMM completed each CMD_SYNC itself (IHI 0070 §4.7.3). A command this
     * model rejects is skipped (the sync after it has completed already; no CERROR is raised, §4.1.1
     * describes the SMMU's own consumption). Then SMMU_CMDQ_PROD and SMMU_CMDQ_CONS take the VMM's
     * values (§6.3.26, §6.3.27: the index and wrap bit within the queue's 2^LOG2SIZE entries, and
     * CONS.ERR as the VMM left it), as if the queue had consumed up to PROD.
     */
    public VmmBatch vmmConsumed(long[] words, int count, int prod, int cons) {
        int n = Math.max(0, Math.min(count, words.length / 2));
        int rejected = 0;
        try {
            for (int i = 0; i < n; i++) {
                int err;
                try {
                    err = execute(words[2 * i], words[2 * i + 1]);
                } catch (RuntimeException e) {
                    err = CERROR_ILL; // a command the model cannot take is skipped like a rejected one
                }
                if (err != CERROR_NONE) {
                    rejected++;
                }
                executor.consumedByVmm();
            }
        } finally {
            try {
                executor.endOfBatch();
            } finally {
                // whatever happened above, the queue is where the VMM left it: a CONS left behind would
                // go backwards in the guest's eyes and make the next CMDQ_PROD write run the batch again
                QueueGeometry q = QueueGeometry.of(regs.get(Smmuv3Regs.CMDQ_BASE), profile.cmdqs(), Command.SIZE);
                regs.set(Smmuv3Regs.CMDQ_PROD, Smmuv3Regs.Q_PTR.insert(regs.get(Smmuv3Regs.CMDQ_PROD), prod & q.pointerMask()));
                long c = Smmuv3Regs.Q_PTR.insert(regs.get(Smmuv3Regs.CMDQ_CONS), cons & q.pointerMask());
                regs.set(Smmuv3Regs.CMDQ_CONS, Smmuv3Regs.CMDQ_CONS_ERR.insert(c, Smmuv3Regs.CMDQ_CONS_ERR.get(cons & 0xffff_ffffL)));
            }
        }
        consumed += n - rejected;
        return new VmmBatch(n - rejected, rejected);
    }

    /**
     * What the VMM needs to consume commands itself (docs/protocol.md §4.12): SMMU_CMDQ_BASE as this
     * queue uses it (the address aligned to the queue size, LOG2SIZE limited to IDR1.CMDQS, §6.3.24),
     * SMMU_CMDQ_PROD, SMMU_CMDQ_CONS, and whether the queue consumes now: CR0ACK.CMDQEN = 1 and
     * GERROR.CMDQ_ERR inactive (§7.1).
     */
    public HandOff handOff() {
        QueueGeometry q = QueueGeometry.of(regs.get(Smmuv3Regs.CMDQ_BASE), profile.cmdqs(), Command.SIZE);
        boolean consuming = Smmuv3Regs.CR0_CMDQEN.isSet(regs.get(Smmuv3Regs.CR0ACK))
                && !irq.gerrorActive(Smmuv3Regs.GERROR_CMDQ_ERR);
        return new HandOff(consuming, Smmuv3Regs.Q_BASE_LOG2SIZE.insert(q.base(), q.log2size()),
                (int) regs.get(Smmuv3Regs.CMDQ_PROD), (int) regs.get(Smmuv3Regs.CMDQ_CONS));
    }

    /** {@link #handOff}'s answer. */
    public record HandOff(boolean consuming, long base, int prod, int cons) {}
}
