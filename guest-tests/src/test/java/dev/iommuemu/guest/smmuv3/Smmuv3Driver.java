package dev.iommuemu.guest.smmuv3;

import dev.iommuemu.memory.GuestMemory;
import java.util.ArrayList;
import java.util.List;

/**
 * A guest SMMUv3 driver written from the spec (IHI 0070 §3.11 initialization, §6.3 registers,
 * §4 commands, §7 events), following the order Linux's arm-smmu-v3 probe uses: read the ID
 * registers, disable, program CR1/CR2, the stream table and the queues, enable the command queue,
 * invalidate all configuration and TLBs, enable the event (and PRI) queue and interrupts, then
 * enable translation. Field positions are the driver's own constants taken from the spec (like a
 * kernel driver's GENMASK definitions), independent of the model's declarations, so a wrong bit
 * in either shows up.
 */
public final class Smmuv3Driver {
    // ---- register offsets (IHI 0070 §6.2)
    static final int IDR0 = 0x0, IDR1 = 0x4, IDR3 = 0xc, IDR5 = 0x14, IIDR = 0x18, AIDR = 0x1c;
    static final int CR0 = 0x20, CR0ACK = 0x24, CR1 = 0x28, CR2 = 0x2c, GBPA = 0x44;
    static final int IRQ_CTRL = 0x50, IRQ_CTRLACK = 0x54, GERROR = 0x60, GERRORN = 0x64;
    static final int GERROR_IRQ_CFG0 = 0x68, STRTAB_BASE = 0x80, STRTAB_BASE_CFG = 0x88;
    static final int CMDQ_BASE = 0x90, CMDQ_PROD = 0x98, CMDQ_CONS = 0x9c;
    static final int EVTQ_BASE = 0xa0, EVTQ_PROD = 0x100a8, EVTQ_CONS = 0x100ac, EVTQ_IRQ_CFG0 = 0xb0;
    static final int PRIQ_BASE = 0xc0, PRIQ_PROD = 0x100c8, PRIQ_CONS = 0x100cc, PRIQ_IRQ_CFG0 = 0xd0;

    // ---- register fields
    static final long CR0_SMMUEN = 1, CR0_PRIQEN = 1 << 1, CR0_EVTQEN = 1 << 2, CR0_CMDQEN = 1 << 3;
    static final long GBPA_UPDATE = 1L << 31, GBPA_ABORT = 1L << 20;
    static final long IRQ_GERROR = 1, IRQ_PRIQ = 2, IRQ_EVTQ = 4;
    static final long CR2_PTM = 1 << 2, CR2_RECINVSID = 1 << 1;
    static final long Q_BASE_RWA = 1L << 62;

    // ---- command opcodes (§4, Table 4-1)
    static final int CMD_CFGI_STE = 0x03, CMD_CFGI_ALL = 0x04, CMD_CFGI_CD = 0x05, CMD_TLBI_NH_ASID = 0x11;
    static final int CMD_TLBI_NH_VA = 0x12, CMD_TLBI_EL2_ALL = 0x20, CMD_TLBI_S12_VMALL = 0x28;
    static final int CMD_TLBI_NSNH_ALL = 0x30, CMD_SYNC = 0x46;
    static final int CMD_ATC_INV = 0x40;
    static final int CMD_PRI_RESP = 0x41, CMD_RESUME = 0x44, CMD_STALL_TERM = 0x45;

    public final Mmio mmio;
    /** Guest RAM: in-process memory, or the VMM's memfd RAM the daemon shares. */
    public final GuestMemory mem;
    public long idr0;
    public long idr1;
    public long idr3;
    public long idr5;
    public int sidBits;
    public int ssidBits;
    public boolean twoLevelStrtab;
    public boolean pri;
    public boolean hyp;

    private final long strtab;
    private final long cmdq;
    private final long evtq;
    private final long priq;
    private final int cmdqLog2;
    private final int evtqLog2;
    private final int strtabLog2;
    private int cmdProd;
    private int evtCons;
    private int priCons;
    /** 2-level stream table (SPLIT 8, as Linux uses when IDR0.ST_LEVEL says 2-level). */
    private boolean twoLevel;
    private long nextL2;

    /** Structures go at the given guest addresses; queue and table sizes are log2 entries. */
    public Smmuv3Driver(Mmio mmio, GuestMemory mem, long strtab, int strtabLog2, long cmdq, int cmdqLog2,
            long evtq, int evtqLog2, long priq) {
        this.mmio = mmio;
        this.mem = mem;
        this.strtab = strtab;
        this.strtabLog2 = strtabLog2;
        this.cmdq = cmdq;
        this.cmdqLog2 = cmdqLog2;
        this.evtq = evtq;
        this.evtqLog2 = evtqLog2;
        this.priq = priq;
    }

    // ---- guest RAM accesses: a driver that touches memory it does not have is itself broken

    void put64(long addr, long value) {
        if (!mem.store(addr, 8, value)) {
            throw new IllegalStateException("driver store outside guest RAM: 0x" + Long.toHexString(addr));
        }
    }

    long get64(long addr) {
        return mem.load(addr, 8).orElseThrow(() -> new IllegalStateException("driver load outside guest RAM: 0x" + Long.toHexString(addr)));
    }

    int get32(long addr) {
        return (int) mem.load(addr, 4).orElseThrow(() -> new IllegalStateException("driver load outside guest RAM: 0x" + Long.toHexString(addr)));
    }

    private void waitAck(int ackReg, long value) {
        for (int i = 0; i < 1000; i++) {
            if (mmio.read32(ackReg) == value) {
                return;
            }
        }
        throw new AssertionError("no ack at 0x" + Integer.toHexString(ackReg) + " for 0x" + Long.toHexString(value));
    }

    private void writeCr0(long v) {
        mmio.write32(CR0, v);
        waitAck(CR0ACK, v);
    }

    /**
     * The probe with a 2-level stream table: SPLIT 8, {@code 2^strtabLog2} L1 descriptors covering
     * StreamIDs [0, 2^(strtabLog2 + 8)); level-2 tables of 256 STEs allocated from {@code l2Pool} as
     * STEs are installed (§3.3.2 2-level Stream tables, Linux's layout).
     */
    public void probeTwoLevel(boolean abortWhenDisabled, long l2Pool) {
        twoLevel = true;
        nextL2 = l2Pool;
        probe(abortWhenDisabled);
    }

    /** The probe and reset sequence. {@code abortWhenDisabled} sets GBPA.ABORT first, as Linux does. */
    public void probe(boolean abortWhenDisabled) {
        idr0 = mmio.read32(IDR0);
        idr1 = mmio.read32(IDR1);
        idr3 = mmio.read32(IDR3);
        idr5 = mmio.read32(IDR5);
        sidBits = (int) (idr1 & 0x3f);
        ssidBits = (int) ((idr1 >>> 6) & 0x1f);
        twoLevelStrtab = ((idr0 >>> 27) & 3) == 1;
        pri = ((idr0 >>> 16) & 1) != 0;
        hyp = ((idr0 >>> 9) & 1) != 0;
        int cmdqs = (int) ((idr1 >>> 21) & 0x1f);
        int evtqs = (int) ((idr1 >>> 16) & 0x1f);
        if (cmdqLog2 > cmdqs || evtqLog2 > evtqs) {
            throw new AssertionError("queues larger than the SMMU supports");
        }
        // §3.11: disable before reprogramming.
        writeCr0(0);
        if (abortWhenDisabled) {
            mmio.write32(GBPA, GBPA_UPDATE | GBPA_ABORT);
            for (int i = 0; i < 1000 && (mmio.read32(GBPA) & GBPA_UPDATE) != 0; i++) {
                // poll Update until the SMMU clears it (§6.3 SMMU_GBPA)
            }
        }
        mmio.write32(CR1, 0x0d75); // inner-shareable write-back queues and tables
        mmio.write32(CR2, CR2_PTM | CR2_RECINVSID);
        long bytes = (1L << strtabLog2) * (twoLevel ? 8 : 64);
        for (long s = 0; s < bytes; s += 8) {
            put64(strtab + s, 0);
        }
        mmio.write64(STRTAB_BASE, Q_BASE_RWA | strtab);
        if (twoLevel) {
            // FMT 2-level (bits [17:16] = 0b01), SPLIT 8 (bits [10:6]), LOG2SIZE = L1 bits + SPLIT.
            mmio.write32(STRTAB_BASE_CFG, (1L << 16) | (8L << 6) | (strtabLog2 + 8));
        } else {
            mmio.write32(STRTAB_BASE_CFG, strtabLog2); // linear
        }
        mmio.write64(CMDQ_BASE, Q_BASE_RWA | cmdq | cmdqLog2);
        mmio.write32(CMDQ_PROD, 0);
        mmio.write32(CMDQ_CONS, 0);
        cmdProd = 0;
        long cr0 = CR0_CMDQEN;
        writeCr0(cr0);
        // Invalidate any cached configuration and TLB entries (§3.11 step list).
        cmd(CMD_CFGI_ALL, 0, 31);
        sync();
        if (hyp) {
            cmd(CMD_TLBI_EL2_ALL, 0, 0);
        }
        cmd(CMD_TLBI_NSNH_ALL, 0, 0);
        sync();
        mmio.write64(EVTQ_BASE, Q_BASE_RWA | evtq | evtqLog2);
        mmio.write32(EVTQ_PROD, 0);
        mmio.write32(EVTQ_CONS, 0);
        evtCons = 0;
        cr0 |= CR0_EVTQEN;
        if (pri) {
            mmio.write64(PRIQ_BASE, Q_BASE_RWA | priq | 4);
            mmio.write32(PRIQ_PROD, 0);
            mmio.write32(PRIQ_CONS, 0);
            cr0 |= CR0_PRIQEN;
        }
        writeCr0(cr0);
        mmio.write32(IRQ_CTRL, 0);
        waitAck(IRQ_CTRLACK, 0);
        long irqs = IRQ_GERROR | IRQ_EVTQ | (pri ? IRQ_PRIQ : 0);
        mmio.write32(IRQ_CTRL, irqs);
        waitAck(IRQ_CTRLACK, irqs);
        writeCr0(cr0 | CR0_SMMUEN);
    }

    // ---- command queue (§3.5, §4)

    /** Writes one command and publishes it; waits until the SMMU has consumed it. */
    public void cmd(int opcode, long w0Fields, long w1) {
        int mask = (1 << cmdqLog2) - 1;
        long slot = cmdq + (long) (cmdProd & mask) * 16;
        put64(slot, opcode | w0Fields);
        put64(slot + 8, w1);
        cmdProd = (cmdProd + 1) & ((2 << cmdqLog2) - 1);
        mmio.write32(CMDQ_PROD, cmdProd);
        for (int i = 0; i < 1000; i++) {
            long cons = mmio.read32(CMDQ_CONS);
            if ((cons & ((2 << cmdqLog2) - 1)) == cmdProd || (mmio.read32(GERROR) & 1) != (mmio.read32(GERRORN) & 1)) {
                return;
            }
        }
        throw new AssertionError("command queue stuck");
    }

    /**
     * Several commands published with one CMDQ_PROD write, as Linux's arm_smmu_cmdq_issue_cmdlist
     * batches them (§3.5: the SMMU consumes every command between CONS and PROD); each element is
     * {opcode | word-0 fields, word 1}. Waits until the SMMU has consumed them all.
     */
    public void cmds(long[]... commands) {
        int mask = (1 << cmdqLog2) - 1;
        for (long[] c : commands) {
            long slot = cmdq + (long) (cmdProd & mask) * 16;
            put64(slot, c[0]);
            put64(slot + 8, c[1]);
            cmdProd = (cmdProd + 1) & ((2 << cmdqLog2) - 1);
        }
        mmio.write32(CMDQ_PROD, cmdProd);
        for (int i = 0; i < 1000; i++) {
            long cons = mmio.read32(CMDQ_CONS);
            if ((cons & ((2 << cmdqLog2) - 1)) == cmdProd || (mmio.read32(GERROR) & 1) != (mmio.read32(GERRORN) & 1)) {
                return;
            }
        }
        throw new AssertionError("command queue stuck");
    }

    /**
     * CMD_SYNC completed the way Linux does on an MSI-capable, coherent SMMU: CS = SIG_IRQ with
     * MSIAddress = the command's own queue slot and MSIData = 0, then poll that word until the
     * SMMU's MSI write has zeroed it (§4.7.3, §3.18). Returns whether the write arrived.
     */
    public boolean syncMsi() {
        int mask = (1 << cmdqLog2) - 1;
        long slot = cmdq + (long) (cmdProd & mask) * 16;
        cmd(CMD_SYNC, 1L << 12, slot & 0x00ff_ffff_ffff_fffcL);
        for (int i = 0; i < 1000; i++) {
            if (get32(slot) == 0) {
                return true;
            }
        }
        return false;
    }

    /** CMD_SYNC with no completion signal: CONS passing it means everything before has completed. */
    public void sync() {
        cmd(CMD_SYNC, 0, 0);
    }

    public int cmdProd() {
        return cmdProd;
    }

    /** CMD_CFGI_STE + CMD_SYNC (§4.3.1). */
    public void invalidateSte(int sid) {
        cmd(CMD_CFGI_STE, (long) sid << 32, 1);
        sync();
    }

    public void invalidateCd(int sid, int ssid) {
        cmd(CMD_CFGI_CD, ((long) sid << 32) | ((long) ssid << 12) | (ssid >= 0 ? 1L << 11 : 0), 1);
        sync();
    }

    /** CMD_TLBI_NH_VA + CMD_SYNC, as Linux's unmap does (§4.4.2). */
    public void tlbiVa(int asid, long va) {
        cmd(CMD_TLBI_NH_VA, (long) asid << 48, va & ~0xfffL);
        sync();
    }

    // ---- structures (§5.2 STE, §5.4 CD)

    public void writeSte(int sid, long[] words) {
        writeSte(sid, words, true);
    }

    /**
     * Writes STE {@code sid}; with {@code invalidate} false the driver "forgets" CMD_CFGI_STE, the
     * bug a strict-mode SMMU reports (IHI 0070 §4.3.1: a changed STE needs CMD_CFGI_STE + CMD_SYNC).
     */
    public void writeSte(int sid, long[] words, boolean invalidate) {
        long a;
        if (twoLevel) {
            long l1 = strtab + (long) (sid >>> 8) * 8;
            long desc = get64(l1);
            if ((desc & 0x1f) == 0) {
                long l2 = nextL2;
                nextL2 += 256 * 64;
                for (long s = 0; s < 256 * 64; s += 8) {
                    put64(l2 + s, 0);
                }
                put64(l1, l2 | 9); // L1STD: L2Ptr, Span 9 = 2^8 STEs (§5.1)
                desc = l2 | 9;
                cmd(CMD_CFGI_STE, (long) sid << 32, 0); // Leaf 0: the L1STD changed
            }
            a = (desc & 0x00ff_ffff_ffff_ffc0L) + (long) (sid & 0xff) * 64;
        } else {
            a = strtab + (long) sid * 64;
        }
        // §3.21.3: write everything but word 0, then word 0 (with V) last.
        for (int i = 7; i >= 0; i--) {
            put64(a + i * 8L, words[i]);
        }
        if (invalidate) {
            invalidateSte(sid);
        }
    }

    /**
     * Writes a CD (§5.4) at {@code address}, word 0 (with V) last; invalidating it is the caller's
     * ({@link #invalidateCd}: CMD_CFGI_CD + CMD_SYNC, §4.3.3).
     */
    public void writeCd(long address, long[] words) {
        for (int i = 7; i >= 0; i--) {
            put64(address + i * 8L, words[i]);
        }
    }

    public static long[] steAbort() {
        return new long[] {1, 0, 0, 0, 0, 0, 0, 0};
    }

    public static long[] steBypass() {
        return new long[] {1 | (0b100 << 1), 0, 0, 0, 0, 0, 0, 0};
    }

    /** Config 0b101 (stage 1): CD table at {@code cdTable}, 2^cdMax CDs, S1DSS. */
    public static long[] steS1(long cdTable, int cdMax, int s1dss) {
        long w0 = 1 | (0b101 << 1) | (cdTable & 0x00ff_ffff_ffff_ffc0L) | ((long) cdMax << 59);
        return new long[] {w0, s1dss, 0, 0, 0, 0, 0, 0};
    }

    /**
     * Config 0b110 (stage 2) with S2VMID, S2T0SZ, S2SL0, S2TG 4KB, S2PS, S2AA64, S2R and S2TTB
     * (§5.2: word 2 bits [15:0] VMID, [37:32] T0SZ, [39:38] SL0, [47:46] TG, [50:48] PS, 51 AA64,
     * 58 S2R; word 3 S2TTB[51:4]).
     */
    public static long[] steS2(long s2ttb, int vmid, int t0sz, int sl0, int ps) {
        long w2 = vmid | ((long) t0sz << 32) | ((long) sl0 << 38) | ((long) ps << 48) | (1L << 51) | (1L << 58);
        return new long[] {1 | (0b110 << 1), 0, w2, s2ttb & 0x000f_ffff_ffff_fff0L, 0, 0, 0, 0};
    }

    /** Config 0b111: stage 1 CD table (an IPA) over stage 2. */
    public static long[] steNested(long cdTableIpa, long s2ttb, int vmid, int t0sz, int sl0, int ps) {
        long[] w = steS2(s2ttb, vmid, t0sz, sl0, ps);
        w[0] = 1 | (0b111 << 1) | (cdTableIpa & 0x00ff_ffff_ffff_ffc0L);
        return w;
    }

    /**
     * A CD (§5.4): T0SZ, TG0 4KB, EPD1, V, IPS, AA64, R, A, ASID; TTB0. MAIR as Linux sets it.
     */
    public static long[] cd(long ttb0, int asid, int t0sz, int ips) {
        long w0 = t0sz | (1L << 30) /* EPD1 */ | (1L << 31) /* V */ | ((long) ips << 32) | (1L << 41) /* AA64 */
                | (1L << 45) /* R */ | (1L << 46) /* A */ | ((long) asid << 48);
        return new long[] {w0, ttb0 & 0x000f_ffff_ffff_fff0L, 0, 0x0000_0000_0044_ff04L, 0, 0, 0, 0};
    }

    // ---- event queue (§7.2)

    /** New event records (4 doublewords each), consumed by advancing EVENTQ_CONS. */
    public List<long[]> drainEvents() {
        List<long[]> out = new ArrayList<>();
        int mask = (2 << evtqLog2) - 1;
        int prod = (int) mmio.read32(EVTQ_PROD) & mask;
        while (evtCons != prod) {
            long slot = evtq + (long) (evtCons & ((1 << evtqLog2) - 1)) * 32;
            out.add(new long[] {get64(slot), get64(slot + 8), get64(slot + 16), get64(slot + 24)});
            evtCons = (evtCons + 1) & mask;
        }
        mmio.write32(EVTQ_CONS, evtCons);
        return out;
    }

    // ---- PRI queue (§8) and fault responses (§4.5.2, §4.7.1)

    /** New PRI queue entries (2 doublewords each), consumed by advancing PRIQ_CONS. */
    public List<long[]> drainPri() {
        List<long[]> out = new ArrayList<>();
        int log2 = 4;
        int mask = (2 << log2) - 1;
        int prod = (int) mmio.read32(PRIQ_PROD) & mask;
        while (priCons != prod) {
            long slot = priq + (long) (priCons & ((1 << log2) - 1)) * 16;
            out.add(new long[] {get64(slot), get64(slot + 8)});
            priCons = (priCons + 1) & mask;
        }
        mmio.write32(PRIQ_CONS, priCons);
        return out;
    }

    /** CMD_PRI_RESP(StreamID, SubstreamID, PRGIndex, Resp) + CMD_SYNC. */
    public void priResponse(int sid, int ssid, int prgIndex, int resp) {
        long w0 = ((long) sid << 32) | (ssid >= 0 ? (1L << 11) | ((long) ssid << 12) : 0);
        cmd(CMD_PRI_RESP, w0, prgIndex | ((long) resp << 12));
        sync();
    }

    /** CMD_RESUME(StreamID, STAG, Ac): retry (Ac 1) or terminate (Ac 0). */
    public void resume(int sid, int stag, boolean retry) {
        cmd(CMD_RESUME, ((long) sid << 32) | (retry ? 1L << 12 : 0), stag);
        sync();
    }

    /**
     * CMD_ATC_INV (IHI 0070 §4.5.1): StreamID [63:32], SubstreamID [31:12] with SSV [11] when
     * {@code ssid >= 0}, G [9]; Size [69:64] (4096 * 2^size bytes), Address [127:76]; then CMD_SYNC.
     */
    public void atcInv(int sid, int ssid, long address, int size, boolean global) {
        long w0 = ((long) sid << 32) | (global ? 1L << 9 : 0);
        if (ssid >= 0) {
            w0 |= ((long) ssid << 12) | (1L << 11);
        }
        cmd(CMD_ATC_INV, w0, (address & ~0xfffL) | (size & 0x3f));
        sync();
    }

    /** CMD_STALL_TERM (IHI 0070 §4.7.2): terminates every stalled transaction of {@code sid}; then CMD_SYNC. */
    public void stallTerm(int sid) {
        cmd(CMD_STALL_TERM, (long) sid << 32, 0);
        sync();
    }

    /** Global errors active now (GERROR ^ GERRORN, §6.3 SMMU_GERROR). */
    public long activeErrors() {
        return mmio.read32(GERROR) ^ mmio.read32(GERRORN);
    }
}
