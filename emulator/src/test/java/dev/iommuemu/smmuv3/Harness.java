package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;

import dev.iommuemu.field.Field;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.ArrayList;
import java.util.List;

/**
 * A minimal driver for unit tests: fixed memory layout, a linear stream table, the three queues,
 * helpers to write STEs, CDs and commands and to drain the event queue. The full Linux-style probe
 * lives in guest-tests.
 */
public final class Harness {
    public static final long STRTAB = 0x10_0000;
    public static final long CMDQ = 0x20_0000;
    public static final long EVTQ = 0x30_0000;
    public static final long PRIQ = 0x38_0000;
    public static final long CDS = 0x40_0000;
    public static final long TABLES = 0x100_0000;
    public static final int STRTAB_LOG2 = 8;
    public static final int CMDQ_LOG2 = 8;
    public static final int EVTQ_LOG2 = 4;
    public static final int PRIQ_LOG2 = 4;

    public final SparseGuestMemory mem = new SparseGuestMemory(0, 1L << 32);
    public final Recorders.Host host = new Recorders.Host();
    public final Recorders.Endpoints endpoints = new Recorders.Endpoints();
    public final Smmuv3 smmu;
    public final PageTables tables = new PageTables(mem, TABLES);
    private int cmdProd;
    private int evtCons;

    public Harness(Smmuv3Profile profile) {
        this(profile, Smmuv3.Options.DEFAULT);
    }

    public Harness(Smmuv3Profile profile, Smmuv3.Options options) {
        smmu = new Smmuv3(mem, host, profile, endpoints, options);
    }

    /** A harness whose device talks to {@code dmaHost} instead of the recorder (benchmarks). */
    public Harness(Smmuv3Profile profile, dev.iommuemu.dma.DmaHost dmaHost) {
        smmu = new Smmuv3(mem, dmaHost, profile, dev.iommuemu.smmuv3.ats.EndpointPort.NONE, Smmuv3.Options.DEFAULT);
    }

    public long read(int off) {
        return smmu.mmioRead(off, 4);
    }

    public void write(int off, long v) {
        smmu.mmioWrite(off, 4, v);
    }

    public void write64(int off, long v) {
        smmu.mmioWrite(off, 8, v);
    }

    /** Programs tables and queues, enables queues and translation (CR0 handshake each step). */
    public Harness enable() {
        write64(STRTAB_BASE.offset(), STRTAB);
        write(STRTAB_BASE_CFG.offset(), STRTAB_LOG2);
        write64(CMDQ_BASE.offset(), CMDQ | CMDQ_LOG2);
        write64(EVENTQ_BASE.offset(), EVTQ | EVTQ_LOG2);
        if (smmu.profile().pri()) {
            write64(PRIQ_BASE.offset(), PRIQ | PRIQ_LOG2);
        }
        write(IRQ_CTRL.offset(), 0b111);
        long cr0 = CR0_CMDQEN.mask() | CR0_EVENTQEN.mask() | (smmu.profile().pri() ? CR0_PRIQEN.mask() : 0);
        write(CR0.offset(), cr0);
        write(CR0.offset(), cr0 | CR0_SMMUEN.mask());
        return this;
    }

    /** Writes an STE for {@code sid} into the linear table. */
    public void ste(int sid, long[] words) {
        for (int i = 0; i < 8; i++) {
            mem.put64(STRTAB + sid * 64L + i * 8L, words[i]);
        }
    }

    public void cd(long addr, long[] words) {
        for (int i = 0; i < 8; i++) {
            mem.put64(addr + i * 8L, words[i]);
        }
    }

    /** Words with fields set: field, value, field, value... */
    public static long[] words(int n, Object... fv) {
        long[] w = new long[n];
        for (int i = 0; i < fv.length; i += 2) {
            Field f = (Field) fv[i];
            Object v = fv[i + 1];
            f.set(w, v instanceof Boolean b ? (b ? 1 : 0) : ((Number) v).longValue());
        }
        return w;
    }

    /** A stage 1 STE pointing at a linear CD table of {@code 2^cdMax} CDs. */
    public static long[] s1Ste(long cdTable, int cdMax) {
        return words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_S1, Ste.S1CONTEXTPTR, cdTable >>> 6, Ste.S1CDMAX, cdMax);
    }

    /** A 4KB-granule, 48-bit VA CD for ASID {@code asid} on table {@code ttb0}, recording faults. */
    public static long[] cd(long ttb0, int asid) {
        return words(8, Cd.V, 1, Cd.T0SZ, 16, Cd.TG0, 0, Cd.EPD1, 1, Cd.IPS, 5, Cd.AA64, 1, Cd.R, 1, Cd.A, 1,
                Cd.ASID, asid, Cd.TTB0, ttb0 >>> 4);
    }

    /** A stage 2 STE: 4KB granule, 40-bit IPA starting at level 1 (S2SL0 1), S2PS 48-bit. */
    public static long[] s2Ste(long s2ttb, int vmid) {
        return words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_S2, Ste.S2VMID, vmid, Ste.S2T0SZ, 24, Ste.S2SL0, 1,
                Ste.S2TG, 0, Ste.S2PS, 5, Ste.S2AA64, 1, Ste.S2R, 1, Ste.S2TTB, s2ttb >>> 4);
    }

    /** Queues a command and makes it visible (CMDQ_PROD write: the SMMU consumes it at once). */
    public void cmd(Command c) {
        cmdNoKick(c);
        kick();
    }

    public void cmd(long[] w) {
        long slot = CMDQ + (cmdProd & ((1 << CMDQ_LOG2) - 1)) * 16L;
        mem.put64(slot, w[0]);
        mem.put64(slot + 8, w[1]);
        cmdProd = (cmdProd + 1) & ((2 << CMDQ_LOG2) - 1);
        kick();
    }

    public void cmdNoKick(Command c) {
        long slot = CMDQ + (cmdProd & ((1 << CMDQ_LOG2) - 1)) * 16L;
        mem.put64(slot, c.w0());
        mem.put64(slot + 8, c.w1());
        cmdProd = (cmdProd + 1) & ((2 << CMDQ_LOG2) - 1);
    }

    public void kick() {
        write(CMDQ_PROD.offset(), cmdProd);
    }

    public int cmdProd() {
        return cmdProd;
    }

    public void sync() {
        cmd(Command.build(Command.Op.CMD_SYNC).command());
    }

    public void cfgiSte(int sid) {
        cmd(Command.build(Command.Op.CMD_CFGI_STE).set(Command.SID, sid).command());
        sync();
    }

    /** The raw 4 words of every new event record (advancing EVENTQ_CONS like a driver). */
    public List<long[]> rawEvents() {
        List<long[]> out = new ArrayList<>();
        int prod = (int) read(EVENTQ_PROD.offset()) & ((2 << EVTQ_LOG2) - 1);
        while (evtCons != prod) {
            long slot = EVTQ + (evtCons & ((1 << EVTQ_LOG2) - 1)) * 32L;
            long[] w = new long[4];
            for (int i = 0; i < 4; i++) {
                w[i] = mem.get64(slot + 8L * i);
            }
            out.add(w);
            evtCons = (evtCons + 1) & ((2 << EVTQ_LOG2) - 1);
        }
        long cons = read(EVENTQ_CONS.offset());
        write(EVENTQ_CONS.offset(), Q_PTR.insert(cons, evtCons));
        return out;
    }

    public List<EventRecord> events() {
        List<EventRecord> out = new ArrayList<>();
        for (long[] w : rawEvents()) {
            out.add(EventRecord.decode(w));
        }
        return out;
    }
}
