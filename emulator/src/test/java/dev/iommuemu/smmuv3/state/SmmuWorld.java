package dev.iommuemu.smmuv3.state;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.MsiSource;
import dev.iommuemu.field.Register;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.smmuv3.Harness;
import dev.iommuemu.smmuv3.PageTables;
import dev.iommuemu.smmuv3.Recorders;
import dev.iommuemu.smmuv3.Smmuv3;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.queue.QueueGeometry;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;

/**
 * A guest and its SMMUv3 for device-state tests: fixed tables in guest memory (stage 1 streams,
 * one with a stall-enabled CD where the profile stalls, one with substreams, stage 2, bypass,
 * abort, an invalid STE), the three queues, and a seeded random driver that does what guest
 * drivers and endpoints do (DMA, commands, GERROR acknowledgements, queue draining, PRI page
 * requests, register writes, MSI aborts, service failure). The driver keeps no state of its own:
 * it reads the queue pointers from the SMMU, so it carries on unchanged with a restored model.
 * It never changes a table after the SMMU may have cached it, so a model with empty caches must
 * answer exactly as one with warm caches (IHI 0070 §3.21).
 */
public final class SmmuWorld {
    static final long STRTAB = 0x10_0000;
    static final long CMDQ = 0x20_0000;
    static final long EVTQ = 0x30_0000;
    static final long PRIQ = 0x38_0000;
    static final long CDS = 0x40_0000;
    static final long MSI_RAM = 0x50_0000;
    /** Beyond guest RAM: an MSI here goes to the VMM (IHI 0070 §3.18.2). */
    static final long MSI_DEVICE = 0x9_0000_1000L;
    static final int CMDQ_LOG2 = 5;
    static final int EVTQ_LOG2 = 2;
    static final int PRIQ_LOG2 = 2;
    /** Stream 1: stage 1 with a stall-enabled CD (when the profile stalls); 2: stage 1; 3: stage 2;
     * 4: bypass; 5: abort; 6: invalid; 7: stage 1 with 4 substreams; 300: beyond the table. */
    static final int[] SIDS = {1, 2, 3, 4, 5, 6, 7, 300};
    private static final DmaAccess[] ACCESSES = {DmaAccess.READ, DmaAccess.WRITE, DmaAccess.PRIV_READ,
            DmaAccess.PRIV_WRITE, DmaAccess.EXEC, DmaAccess.PRIV_EXEC};

    public final Smmuv3Profile profile;
    public final SparseGuestMemory mem = new SparseGuestMemory(0, 1L << 32);
    public Recorders.Host host = new Recorders.Host();
    public Recorders.Endpoints endpoints = new Recorders.Endpoints();
    public Smmuv3 smmu;

    public SmmuWorld(Smmuv3Profile profile) {
        this.profile = profile;
        this.smmu = new Smmuv3(mem, host, profile, endpoints, Smmuv3.Options.DEFAULT);
        tables();
        enable();
    }

    /** A fresh SMMU of the same profile on the same memory, with new recorders (the old model is dropped). */
    public Smmuv3 replaceModel() {
        host = new Recorders.Host();
        endpoints = new Recorders.Endpoints();
        smmu = new Smmuv3(mem, host, profile, endpoints, Smmuv3.Options.DEFAULT);
        return smmu;
    }

    private void tables() {
        PageTables pt = new PageTables(mem, 0x100_0000);
        long s1 = pt.s1Root();
        for (long va = 0x1000; va <= 0x8000; va += 0x1000) {
            pt.map(s1, va, 0x80_0000 + va, PageTables.S1_RW);
        }
        pt.map(s1, 0x9000, 0x90_0000, PageTables.AF | PageTables.S1_AP_RO_ALL | PageTables.NG);
        long s2 = pt.s2Root(24, 1);
        for (long ipa = 0x1000; ipa <= 0x8000; ipa += 0x1000) {
            pt.map(s2, ipa, 0xa0_0000 + ipa, PageTables.S2_RW);
        }
        long[] stallCd = Harness.cd(s1, 1);
        if (profile.stall()) {
            Cd.S.set(stallCd, 1); // §5.4 CD.S: faults stall (§3.12.2)
        }
        cd(CDS, stallCd);
        cd(CDS + 0x40, Harness.cd(s1, 2));
        for (int i = 0; i < 4; i++) {
            cd(CDS + 0x100 + 64L * i, Harness.cd(s1, 10 + i));
        }
        ste(1, Harness.s1Ste(CDS, 0));
        ste(2, Harness.s1Ste(CDS + 0x40, 0));
        if (profile.s2()) {
            ste(3, Harness.s2Ste(s2, 3));
        }
        ste(4, Harness.words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS));
        ste(5, Harness.words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT));
        // 6 stays invalid (V == 0).
        if (profile.ssidBits() >= 2) {
            ste(7, Harness.s1Ste(CDS + 0x100, 2));
        }
    }

    private void ste(int sid, long[] w) {
        for (int i = 0; i < 8; i++) {
            mem.put64(STRTAB + sid * 64L + i * 8L, w[i]);
        }
    }

    private void cd(long addr, long[] w) {
        for (int i = 0; i < 8; i++) {
            mem.put64(addr + i * 8L, w[i]);
        }
    }

    private void enable() {
        smmu.mmioWrite(STRTAB_BASE.offset(), 8, STRTAB);
        smmu.mmioWrite(STRTAB_BASE_CFG.offset(), 4, 8);
        smmu.mmioWrite(CMDQ_BASE.offset(), 8, CMDQ | CMDQ_LOG2);
        smmu.mmioWrite(EVENTQ_BASE.offset(), 8, EVTQ | EVTQ_LOG2);
        smmu.mmioWrite(PRIQ_BASE.offset(), 8, PRIQ | PRIQ_LOG2);
        smmu.mmioWrite(IRQ_CTRL.offset(), 4, 0b111);
        long cr0 = CR0_CMDQEN.mask() | CR0_EVENTQEN.mask() | CR0_PRIQEN.mask();
        smmu.mmioWrite(CR0.offset(), 4, cr0);
        smmu.mmioWrite(CR0.offset(), 4, cr0 | CR0_SMMUEN.mask());
    }

    // ------------------------------------------------------------------------------------------
    // The guest and its endpoints, one random action at a time

    /** One random action; returns what the SMMU answered, for comparing two models. */
    public String step(Random r) {
        int k = r.nextInt(100);
        if (k < 35) {
            return translate(r);
        } else if (k < 55) {
            return command(r);
        } else if (k < 62) {
            return ackGerror();
        } else if (k < 70) {
            return drainEvents(r);
        } else if (k < 75) {
            return profile.pri() ? drainPri(r) : drainEvents(r);
        } else if (k < 81) {
            return pageRequest(r);
        } else if (k < 92) {
            return registerWrite(r);
        } else if (k < 95) {
            return profile.msi() ? "msiAborted " + smmu.msiAborted(MSI_DEVICE, 1,
                    MsiSource.values()[r.nextInt(MsiSource.values().length)]) : translate(r);
        } else if (k < 98) {
            return endpointRequest(r);
        } else if (r.nextInt(8) == 0) {
            return "sfm " + smmu.enterServiceFailureMode();
        }
        return translate(r);
    }

    String translate(Random r) {
        int sid = SIDS[r.nextInt(SIDS.length)];
        int ssid = sid == 7 && profile.ssidBits() > 0 ? r.nextInt(5) : IommuModel.NO_SUBSTREAM;
        long iova = switch (r.nextInt(4)) {
            case 0, 1 -> 0x1000L * (1 + r.nextInt(8)) + r.nextInt(0x1000);
            case 2 -> 0x9000 + r.nextInt(0x1000); // read-only
            default -> 0x10_0000L + 0x1000L * r.nextInt(16); // unmapped
        };
        DmaAccess a = ACCESSES[r.nextInt(ACCESSES.length)];
        return "translate " + sid + "/" + ssid + " 0x" + Long.toHexString(iova) + " " + a + " -> "
                + smmu.translate(sid, ssid, iova, a);
    }

    String command(Random r) {
        Command.Builder b = switch (r.nextInt(11)) {
            case 0 -> Command.build(Command.Op.CMD_SYNC).set(Command.SYNC_CS, r.nextInt(3) == 0 ? 0b11 : r.nextInt(2))
                    .set(Command.SYNC_MSIADDR, (MSI_RAM + 4L * r.nextInt(4)) >>> 2).set(Command.SYNC_MSIDATA, r.nextInt());
            case 1 -> Command.build(Command.Op.CMD_CFGI_STE).set(Command.SID, SIDS[r.nextInt(SIDS.length)]);
            case 2 -> Command.build(Command.Op.CMD_CFGI_STE_RANGE).set(Command.CFGI_RANGE, 31);
            case 3 -> Command.build(Command.Op.CMD_TLBI_NSNH_ALL);
            case 4 -> Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, 1 + r.nextInt(2));
            case 5, 6 -> Command.build(Command.Op.CMD_RESUME).set(Command.SID, r.nextInt(3) == 0 ? 2 : 1)
                    .set(Command.RESUME_STAG, r.nextInt(6)).set(Command.RESUME_AC, r.nextInt(2));
            case 7 -> Command.build(Command.Op.CMD_STALL_TERM).set(Command.SID, 1);
            case 8 -> Command.build(Command.Op.CMD_PRI_RESP).set(Command.SID, 1 + r.nextInt(2))
                    .set(Command.PRI_PRGINDEX, r.nextInt(512)).set(Command.PRI_RESP, r.nextInt(4));
            case 9 -> null; // an unknown opcode: CMDQ_ERR with CERROR_ILL (§4.1.1)
            default -> Command.build(Command.Op.CMD_CFGI_CD_ALL).set(Command.SID, 1 + r.nextInt(2));
        };
        long[] w = b == null ? new long[] {0xff, 0} : b.words();
        return publish(w);
    }

    /** Writes a command at CMDQ_PROD and publishes it, as a driver does; returns CONS and GERROR after. */
    public String publish(long[] w) {
        QueueGeometry q = QueueGeometry.of(smmu.mmioRead(CMDQ_BASE.offset(), 8), profile.cmdqs(), Command.SIZE);
        long prodReg = smmu.mmioRead(CMDQ_PROD.offset(), 4);
        int prod = (int) prodReg & q.pointerMask();
        int cons = (int) smmu.mmioRead(CMDQ_CONS.offset(), 4) & q.pointerMask();
        if (q.full(prod, cons)) {
            return "cmdq full";
        }
        mem.put64(q.slot(prod), w[0]);
        mem.put64(q.slot(prod) + 8, w[1]);
        smmu.mmioWrite(CMDQ_PROD.offset(), 4, Q_PTR.insert(prodReg, q.next(prod)));
        return "command 0x" + Long.toHexString(w[0]) + " -> cons 0x" + Long.toHexString(smmu.mmioRead(CMDQ_CONS.offset(), 4))
                + " gerror 0x" + Long.toHexString(smmu.mmioRead(GERROR.offset(), 4));
    }

    String ackGerror() {
        long g = smmu.mmioRead(GERROR.offset(), 4);
        smmu.mmioWrite(GERRORN.offset(), 4, g);
        return "ack 0x" + Long.toHexString(g);
    }

    /** Reads up to a random number of event records, byte for byte, and acknowledges any overflow. */
    String drainEvents(Random r) {
        return drain(r, EVENTQ_BASE, EVENTQ_PROD, EVENTQ_CONS, profile.eventqs(), EventRecord.SIZE);
    }

    String drainPri(Random r) {
        return drain(r, PRIQ_BASE, PRIQ_PROD, PRIQ_CONS, profile.priqs(), PageRequest.SIZE);
    }

    private String drain(Random r, Register base, Register prodR, Register consR, int cap, int size) {
        QueueGeometry q = QueueGeometry.of(smmu.mmioRead(base.offset(), 8), cap, size);
        long p = smmu.mmioRead(prodR.offset(), 4);
        long c = smmu.mmioRead(consR.offset(), 4);
        int cons = (int) c & q.pointerMask();
        int budget = 1 + r.nextInt(1 << EVTQ_LOG2 + 1);
        StringBuilder out = new StringBuilder(base.name()).append(" drained");
        while (budget-- > 0 && !q.empty((int) p & q.pointerMask(), cons)) {
            byte[] b = new byte[size];
            mem.read(q.slot(cons), b, 0, size);
            out.append(' ').append(HexFormat.of().formatHex(b));
            cons = q.next(cons);
        }
        long v = Q_PTR.insert(c, cons);
        v = Q_CONS_OVACKFLG.insert(v, Q_PROD_OVFLG.get(p)); // §7.4: acknowledge an overflow
        smmu.mmioWrite(consR.offset(), 4, v);
        return out.toString();
    }

    String pageRequest(Random r) {
        if (!profile.pri()) {
            return translate(r);
        }
        boolean stop = r.nextInt(8) == 0;
        PageRequest req = new PageRequest(1 + r.nextInt(2), r.nextInt(3) == 0 ? IommuModel.NO_SUBSTREAM : r.nextInt(4),
                0x1000L * r.nextInt(64), r.nextInt(512), stop || r.nextBoolean(), !stop, !stop && r.nextBoolean(),
                r.nextBoolean(), r.nextBoolean());
        return "pri " + req + " -> " + smmu.pageRequest(req);
    }

    String endpointRequest(Random r) {
        int sid = SIDS[r.nextInt(SIDS.length)];
        long addr = 0x1000L * r.nextInt(12);
        return switch (r.nextInt(3)) {
            case 0 -> "translated " + smmu.translatedTransaction(sid, addr, ACCESSES[r.nextInt(ACCESSES.length)]);
            case 1 -> "hint " + smmu.pageRequestHint(sid, IommuModel.NO_SUBSTREAM, addr, 1 + r.nextInt(4), r.nextInt(64));
            default -> profile.ats() ? "ats " + smmu.atsTranslate(sid, IommuModel.NO_SUBSTREAM, addr,
                    ACCESSES[r.nextInt(ACCESSES.length)]) : "uut " + smmu.unsupportedTransaction(sid,
                    IommuModel.NO_SUBSTREAM, addr, DmaAccess.READ, r.nextInt(0x10000));
        };
    }

    String registerWrite(Random r) {
        Register reg;
        long v;
        switch (r.nextInt(10)) {
            case 0, 1 -> { // mostly enabled, sometimes queues or translation off (stalls wait, §7.2.1)
                reg = CR0;
                v = CR0_SMMUEN.mask() | CR0_CMDQEN.mask() | CR0_EVENTQEN.mask() | CR0_PRIQEN.mask();
                if (r.nextInt(3) == 0) {
                    v &= ~CR0_EVENTQEN.mask();
                }
                if (r.nextInt(6) == 0) {
                    v &= ~CR0_SMMUEN.mask();
                }
                if (r.nextInt(6) == 0) {
                    v &= ~CR0_CMDQEN.mask();
                }
                if (r.nextInt(4) == 0) {
                    v &= ~CR0_PRIQEN.mask();
                }
                if (r.nextInt(4) == 0) {
                    v |= CR0_ATSCHK.mask();
                }
            }
            case 2 -> {
                reg = IRQ_CTRL;
                v = r.nextInt(8);
            }
            case 3 -> {
                reg = GBPA;
                v = GBPA_UPDATE.mask() | (r.nextInt() & 0x1f_3f1fL);
            }
            case 4 -> {
                reg = r.nextBoolean() ? CR1 : CR2;
                v = r.nextInt(0x1000);
            }
            case 5 -> {
                Register[] cfg0 = {GERROR_IRQ_CFG0, EVENTQ_IRQ_CFG0, PRIQ_IRQ_CFG0};
                reg = cfg0[r.nextInt(3)];
                long[] addrs = {0, MSI_RAM + 4L * r.nextInt(8), MSI_DEVICE};
                smmu.mmioWrite(reg.offset(), 8, addrs[r.nextInt(3)]);
                return "write " + reg.name();
            }
            case 6 -> {
                Register[] cfg = {GERROR_IRQ_CFG1, GERROR_IRQ_CFG2, EVENTQ_IRQ_CFG1, EVENTQ_IRQ_CFG2, PRIQ_IRQ_CFG1,
                        PRIQ_IRQ_CFG2};
                reg = cfg[r.nextInt(cfg.length)];
                v = r.nextInt();
            }
            case 7 -> { // takes effect only while the queue is disabled (§6.3: Guarded)
                reg = EVENTQ_BASE;
                smmu.mmioWrite(reg.offset(), 8, EVTQ | (1 + r.nextInt(EVTQ_LOG2)));
                return "write " + reg.name();
            }
            case 8 -> { // any value in a pointer or error register, as a broken driver might write
                Register[] any = {EVENTQ_PROD, EVENTQ_CONS, PRIQ_PROD, PRIQ_CONS, CMDQ_CONS, GERRORN, CR0, CR2};
                reg = any[r.nextInt(any.length)];
                v = r.nextInt();
            }
            default -> {
                reg = CMDQ_PROD; // publishes whatever lies in the queue: zeros are CERROR_ILL
                v = r.nextInt(1 << (CMDQ_LOG2 + 1));
            }
        }
        smmu.mmioWrite(reg.offset(), 4, v);
        return "write " + reg.name() + " 0x" + Long.toHexString(v);
    }

    // ------------------------------------------------------------------------------------------
    // Observations

    /** Every register of the map read as software reads it: 32-bit halves, 64-bit, page-0 aliases. */
    public List<String> registerReads() {
        List<String> out = new ArrayList<>();
        for (Register reg : ALL) {
            for (int o = 0; o < reg.size(); o += 4) {
                out.add(reg.name() + "+" + o + "=" + Long.toHexString(smmu.mmioRead(reg.offset() + o, 4)));
            }
            if (reg.size() == 8) {
                out.add(reg.name() + "/64=" + Long.toHexString(smmu.mmioRead(reg.offset(), 8)));
            }
        }
        for (int alias : new int[] {0xa8, 0xac, 0xc8, 0xcc}) {
            out.add("alias " + alias + "=" + Long.toHexString(smmu.mmioRead(alias, 4)));
        }
        return out;
    }

    /** The guest memory the SMMU writes: the Event and PRI queues and the MSI words in RAM. */
    public String writtenMemory() {
        byte[] b = new byte[(32 << 4) + (16 << 4) + 64];
        mem.read(EVTQ, b, 0, 32 << 4);
        mem.read(PRIQ, b, 32 << 4, 16 << 4);
        mem.read(MSI_RAM, b, (32 << 4) + (16 << 4), 64);
        return HexFormat.of().formatHex(b);
    }
}
