package dev.iommuemu.domain;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.Smmuv3;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.ArrayList;
import java.util.List;

/**
 * The host driver's side of one physical SMMUv3 (the part of Linux's arm-smmu-v3 driver that the
 * domain model needs), played against the emulated {@link Smmuv3}: it owns the stream table, the
 * command and event queues in host memory (a carve-out handed to a {@link HostAllocator}),
 * programs the device through its MMIO registers (IHI 0070 §6.3), writes STEs and CDs and makes
 * them visible with CMD_CFGI_* + CMD_SYNC (§4.3, §4.7.3), and drains the event queue (§7).
 */
public final class HostSmmu {
    public static final int CMDQ_LOG2 = 8;
    public static final int EVTQ_LOG2 = 8;
    public static final int PRIQ_LOG2 = 6;

    private final GuestMemory mem;
    private final Smmuv3 smmu;
    private final HostAllocator alloc;
    private final int streamTableLog2;
    private final long strtab;
    private final long cmdq;
    private final long evtq;
    /** The PRI queue, or -1 on an SMMU without PRI (IDR0.PRI). */
    private final long priq;
    private int cmdProd;
    private int evtCons;
    private int priCons;
    private EndpointPort endpoints = EndpointPort.NONE;
    private long commandErrors;
    /** The Event or PRI queue interrupt fired since the handler last ran (the hard IRQ half). */
    private boolean evtqIrq;
    private boolean priqIrq;

    /**
     * A host driving a new emulated SMMUv3 of {@code profile} over host physical memory {@code mem},
     * with its own structures in {@code [carveBase, carveBase + carveSize)} and a linear stream
     * table of {@code 2^streamTableLog2} STEs (capped by IDR1.SIDSIZE).
     */
    public HostSmmu(GuestMemory mem, long carveBase, long carveSize, Smmuv3Profile profile, DmaHost dmaHost,
            int streamTableLog2) {
        this(mem, carveBase, carveSize, null, profile, dmaHost, streamTableLog2);
    }

    /**
     * A host driving an existing SMMU instance (the daemon's session device) over {@code mem}, the
     * memory that instance reads. Its endpoint-facing calls go where the instance was built to send
     * them; {@link #endpointPort} has no effect.
     */
    public HostSmmu(Smmuv3 existing, GuestMemory mem, long carveBase, long carveSize, int streamTableLog2) {
        this(mem, carveBase, carveSize, existing, existing.profile(), null, streamTableLog2);
    }

    private HostSmmu(GuestMemory mem, long carveBase, long carveSize, Smmuv3 existing, Smmuv3Profile profile,
            DmaHost dmaHost, int streamTableLog2) {
        if (streamTableLog2 < 0 || streamTableLog2 > 20 || carveSize <= 0) {
            throw new IllegalArgumentException("stream table log2 must be 0..20 and the carve-out non-empty");
        }
        this.mem = mem;
        this.alloc = new HostAllocator(mem, carveBase, carveSize);
        EndpointPort port = new EndpointPort() {
            @Override
            public void priResponse(int streamId, int ssid, int prgIndex, int response) {
                endpoints.priResponse(streamId, ssid, prgIndex, response);
            }

            @Override
            public void atcInvalidate(int streamId, int ssid, long addr, long size, boolean global) {
                endpoints.atcInvalidate(streamId, ssid, addr, size, global);
            }

            @Override
            public void stallResolved(int streamId, int stag, boolean retry) {
                endpoints.stallResolved(streamId, stag, retry);
            }
        };
        this.smmu = existing != null ? existing : new Smmuv3(mem, irqTap(dmaHost), profile, port, Smmuv3.Options.DEFAULT);
        this.streamTableLog2 = Math.min(streamTableLog2, profile.sidBits());
        this.strtab = alloc.allocate(Ste.SIZE << this.streamTableLog2, Math.max(64, Ste.SIZE << this.streamTableLog2));
        this.cmdq = alloc.allocate(Command.SIZE << CMDQ_LOG2, Command.SIZE << CMDQ_LOG2);
        this.evtq = alloc.allocate(32L << EVTQ_LOG2, 32L << EVTQ_LOG2);
        this.priq = profile.pri() ? alloc.allocate((long) PageRequest.SIZE << PRIQ_LOG2,
                (long) PageRequest.SIZE << PRIQ_LOG2) : -1;
        if (strtab < 0 || cmdq < 0 || evtq < 0 || (profile.pri() && priq < 0)) {
            throw new IllegalArgumentException("host carve-out too small (or not in memory) for the stream table and queues");
        }
        enable();
    }

    /** An SMMU of its own wires its Event and PRI queue lines to this host as well as to {@code h}. */
    private DmaHost irqTap(DmaHost h) {
        return DmaHost.tapIrqs(h, line -> {
            interrupt(line);
            return false;
        });
    }

    /**
     * The SMMU's wired line {@code line} fired (IHI 0070 §3.18): the hard half of the driver's
     * interrupt handling, which only notes the Event queue ("evtq") or PRI queue ("priq") interrupt
     * for the threaded half, {@link IommuCore#serviceInterrupts} (as arm-smmu-v3 requests threaded
     * IRQs for both queues: arm_smmu_evtq_thread, arm_smmu_priq_thread). Returns whether the line is
     * one this host handles; others (cmd-sync, gerror) it does not enable.
     */
    public boolean interrupt(String line) {
        switch (line) {
            case dev.iommuemu.smmuv3.irq.Interrupts.EVTQ -> evtqIrq = true;
            case dev.iommuemu.smmuv3.irq.Interrupts.PRIQ -> priqIrq = true;
            default -> {
                return false;
            }
        }
        return true;
    }

    /** Whether an Event or PRI queue interrupt fired since the last call; clears the note. */
    public boolean takeInterrupts() {
        boolean any = evtqIrq || priqIrq;
        evtqIrq = false;
        priqIrq = false;
        return any;
    }

    /**
     * Probe-time programming (IHI 0070 §6.3 SMMU_STRTAB_BASE/_CFG, SMMU_CMDQ_BASE, SMMU_EVENTQ_BASE,
     * SMMU_CR0 with its CR0ACK handshake): every STE starts zero (V=0, so traffic aborts with C_BAD_STE).
     * The Event and PRI queue interrupts are enabled as wired lines (SMMU_IRQ_CTRL EVENTQ_IRQEN,
     * PRIQ_IRQEN, §6.3; IRQ_CFG0 cleared so no MSI is sent), as arm-smmu-v3's arm_smmu_setup_irqs
     * does: IRQ_CTRL written 0 first, the queues set up, then the enables.
     */
    private void enable() {
        smmu.mmioWrite(CR0.offset(), 4, 0); // a fresh start: SMMUEN and the queues off (§6.3.9)
        smmu.mmioWrite(IRQ_CTRL.offset(), 4, 0); // IRQ_CFG* are writable only with their IRQEN clear (§6.3)
        if (smmu.profile().msi()) {
            smmu.mmioWrite(EVENTQ_IRQ_CFG0.offset(), 8, 0);
            if (smmu.profile().pri()) {
                smmu.mmioWrite(PRIQ_IRQ_CFG0.offset(), 8, 0);
            }
        }
        smmu.mmioWrite(CMDQ_PROD.offset(), 4, 0);
        smmu.mmioWrite(CMDQ_CONS.offset(), 4, 0);
        smmu.mmioWrite(EVENTQ_PROD.offset(), 4, 0);
        smmu.mmioWrite(EVENTQ_CONS.offset(), 4, 0);
        smmu.mmioWrite(STRTAB_BASE.offset(), 8, strtab);
        smmu.mmioWrite(STRTAB_BASE_CFG.offset(), 4, streamTableLog2);
        smmu.mmioWrite(CMDQ_BASE.offset(), 8, cmdq | CMDQ_LOG2);
        smmu.mmioWrite(EVENTQ_BASE.offset(), 8, evtq | EVTQ_LOG2);
        long cr0 = CR0_CMDQEN.mask() | CR0_EVENTQEN.mask();
        if (priq >= 0) {
            smmu.mmioWrite(PRIQ_PROD.offset(), 4, 0);
            smmu.mmioWrite(PRIQ_CONS.offset(), 4, 0);
            smmu.mmioWrite(PRIQ_BASE.offset(), 8, priq | PRIQ_LOG2);
            cr0 |= CR0_PRIQEN.mask();
        }
        smmu.mmioWrite(IRQ_CTRL.offset(), 4, IRQ_CTRL_EVENTQ_IRQEN.mask() | (priq >= 0 ? IRQ_CTRL_PRIQ_IRQEN.mask() : 0));
        smmu.mmioWrite(CR0.offset(), 4, cr0);
        smmu.mmioWrite(CR0.offset(), 4, cr0 | CR0_SMMUEN.mask());
    }

    public Smmuv3 smmu() {
        return smmu;
    }

    public Smmuv3Profile profile() {
        return smmu.profile();
    }

    public GuestMemory memory() {
        return mem;
    }

    public HostAllocator allocator() {
        return alloc;
    }

    /** StreamIDs the stream table covers: {@code [0, 2^log2)}. */
    public int streamIds() {
        return 1 << streamTableLog2;
    }

    /** Where the endpoints learn of PRI responses, ATC invalidations and stall resolutions. */
    public void endpointPort(EndpointPort port) {
        this.endpoints = port == null ? EndpointPort.NONE : port;
    }

    /** Writes {@code sid}'s STE and makes it visible: CMD_CFGI_STE + CMD_SYNC (§4.3.1). */
    public void installSte(int sid, long[] words) {
        long a = strtab + (long) sid * Ste.SIZE;
        // Word 0 (V, Config) last, as a driver does, though nothing translates in between here.
        for (int i = Ste.WORDS - 1; i >= 0; i--) {
            mem.store(a + 8L * i, 8, words[i]);
        }
        command(Command.build(Command.Op.CMD_CFGI_STE).set(Command.SID, sid).set(Command.CFGI_LEAF, true).words());
        sync();
    }

    /** The STE words now in the host stream table (tests). */
    public long[] ste(int sid) {
        long[] w = new long[Ste.WORDS];
        for (int i = 0; i < Ste.WORDS; i++) {
            w[i] = mem.load(strtab + (long) sid * Ste.SIZE + 8L * i, 8).orElse(0);
        }
        return w;
    }

    /** Writes a CD at {@code addr} and invalidates it for {@code sid}/{@code ssid} (§4.3.3 CMD_CFGI_CD). */
    public void installCd(long addr, int sid, int ssid, long[] words) {
        for (int i = Cd.WORDS - 1; i >= 0; i--) {
            mem.store(addr + 8L * i, 8, words[i]);
        }
        command(Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, sid).set(Command.SSID, ssid)
                .set(Command.CFGI_LEAF, true).words());
        sync();
    }

    /**
     * Queues one 16-byte command (§4.1) and makes it visible; the model consumes it in the
     * CMDQ_PROD write. Returns false when the SMMU reported a command error (CMDQ_ERR, §7.1); the
     * driver then acknowledges it so the queue runs on.
     */
    public boolean command(long[] w) {
        long slot = cmdq + (long) (cmdProd & ((1 << CMDQ_LOG2) - 1)) * Command.SIZE;
        mem.store(slot, 8, w[0]);
        mem.store(slot + 8, 8, w[1]);
        cmdProd = (cmdProd + 1) & ((2 << CMDQ_LOG2) - 1);
        smmu.mmioWrite(CMDQ_PROD.offset(), 4, cmdProd);
        long gerror = smmu.mmioRead(GERROR.offset(), 4);
        long gerrorn = smmu.mmioRead(GERRORN.offset(), 4);
        if (((gerror ^ gerrorn) & GERROR_CMDQ_ERR.mask()) != 0) {
            commandErrors++;
            // As Linux does on CERROR_ILL: the failing command is replaced by a CMD_SYNC, then the
            // error is acknowledged (GERRORN) so consumption resumes (§7.1).
            long cons = Q_PTR.get(smmu.mmioRead(CMDQ_CONS.offset(), 4)) & ((1 << CMDQ_LOG2) - 1);
            long[] sync = Command.build(Command.Op.CMD_SYNC).words();
            mem.store(cmdq + cons * Command.SIZE, 8, sync[0]);
            mem.store(cmdq + cons * Command.SIZE + 8, 8, sync[1]);
            smmu.mmioWrite(GERRORN.offset(), 4, gerrorn ^ GERROR_CMDQ_ERR.mask());
            return false;
        }
        return true;
    }

    /** CMD_SYNC with no signal: every earlier command has completed when it is consumed (§4.7.3). */
    public void sync() {
        command(Command.build(Command.Op.CMD_SYNC).words());
    }

    /** CMD_RESUME (§4.7.1): retry or terminate the stalled transaction {@code stag} of {@code sid}. */
    public void resume(int sid, int stag, boolean retry) {
        command(Command.build(Command.Op.CMD_RESUME).set(Command.SID, sid).set(Command.RESUME_STAG, stag)
                .set(Command.RESUME_AC, retry ? Command.RESUME_RETRY : Command.RESUME_TERMINATE).words());
        sync();
    }

    /**
     * CMD_PRI_RESP (§4.5.2) for page request group {@code prgIndex} of {@code sid} ({@code ssid} -1:
     * no PASID) with {@code resp} one of Command.PRI_RESP_SUCCESS / INVALID / FAILURE.
     */
    public void priResponse(int sid, int ssid, int prgIndex, int resp) {
        Command.Builder b = Command.build(Command.Op.CMD_PRI_RESP).set(Command.SID, sid)
                .set(Command.PRI_PRGINDEX, prgIndex).set(Command.PRI_RESP, resp);
        if (ssid >= 0) {
            b.set(Command.SSV, true).set(Command.SSID, ssid);
        }
        command(b.words());
        sync();
    }

    /** Every new PRI queue entry (§8), advancing PRIQ_CONS; empty without PRI. */
    public List<PageRequest> drainPageRequests() {
        List<PageRequest> out = new ArrayList<>();
        if (priq < 0) {
            return out;
        }
        int mask = (2 << PRIQ_LOG2) - 1;
        long prodReg = smmu.mmioRead(PRIQ_PROD.offset(), 4);
        int prod = (int) Q_PTR.get(prodReg) & mask;
        while (priCons != prod) {
            long slot = priq + (long) (priCons & ((1 << PRIQ_LOG2) - 1)) * PageRequest.SIZE;
            long[] w = {mem.load(slot, 8).orElse(0), mem.load(slot + 8, 8).orElse(0)};
            out.add(PageRequest.decode(w));
            priCons = (priCons + 1) & mask;
        }
        long cons = smmu.mmioRead(PRIQ_CONS.offset(), 4);
        // Acknowledge an overflow (OVACKFLG = OVFLG, §8.2) along with the new read index.
        long v = Q_PTR.insert(cons, priCons);
        v = Q_CONS_OVACKFLG.insert(v, Q_PROD_OVFLG.get(prodReg));
        smmu.mmioWrite(PRIQ_CONS.offset(), 4, v);
        return out;
    }

    /** Commands the SMMU refused (CERROR_*) since construction: nonzero is a driver bug. */
    public long commandErrors() {
        return commandErrors;
    }

    /** Every new event record (§7.3), advancing EVENTQ_CONS as a driver's IRQ thread does. */
    public List<EventRecord> drainEvents() {
        List<EventRecord> out = new ArrayList<>();
        int mask = (2 << EVTQ_LOG2) - 1;
        long prodReg = smmu.mmioRead(EVENTQ_PROD.offset(), 4);
        int prod = (int) Q_PTR.get(prodReg) & mask;
        long cons = smmu.mmioRead(EVENTQ_CONS.offset(), 4);
        if (prod == evtCons && Q_CONS_OVACKFLG.get(cons) == Q_PROD_OVFLG.get(prodReg)) {
            return out;
        }
        while (evtCons != prod) {
            long slot = evtq + (long) (evtCons & ((1 << EVTQ_LOG2) - 1)) * 32;
            long[] w = new long[4];
            for (int i = 0; i < 4; i++) {
                w[i] = mem.load(slot + 8L * i, 8).orElse(0);
            }
            out.add(EventRecord.decode(w));
            evtCons = (evtCons + 1) & mask;
        }
        // Acknowledge an overflow (OVACKFLG = OVFLG, §7.4) along with the new read index, as for
        // the PRI queue: the records lost are gone, the queue goes on.
        long v = Q_PTR.insert(cons, evtCons);
        v = Q_CONS_OVACKFLG.insert(v, Q_PROD_OVFLG.get(prodReg));
        smmu.mmioWrite(EVENTQ_CONS.offset(), 4, v);
        return out;
    }
}
