package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.Harness.words;
import static dev.iommuemu.smmuv3.cmdq.Command.Op.*;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.cmdq.CommandQueue;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** IHI 0070 §4: every command, its errors, and CMD_SYNC completion signals. */
class CommandsTest {

    private static long consErr(Harness h) {
        return CMDQ_CONS_ERR.get(h.read(CMDQ_CONS.offset()));
    }

    /** Every command the MAX profile has is consumed without error in its plain form. */
    @ParameterizedTest
    @EnumSource(Command.Op.class)
    void everyCommandExecutesOnTheMaxProfile(Command.Op op) {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        Command.Builder b = Command.build(op);
        if (op == CMD_PRI_RESP) {
            b.set(Command.PRI_RESP, Command.PRI_RESP_SUCCESS);
        }
        h.cmd(b.command());
        assertEquals(0, h.read(GERROR.offset()), op.name());
        assertEquals(1, Q_PTR.get(h.read(CMDQ_CONS.offset())), op.name());
    }

    /** Commands of features the profile lacks are ILLEGAL (§4.1.1: CERROR_ILL). */
    @Test
    void commandsOfAbsentFeaturesAreIllegal() {
        for (Command.Op op : List.of(CMD_ATC_INV, CMD_PRI_RESP, CMD_RESUME, CMD_STALL_TERM, CMD_TLBI_EL2_ALL,
                CMD_TLBI_EL2_VA)) {
            Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
            h.cmd(Command.build(op).command());
            assertEquals(CommandQueue.CERROR_ILL, consErr(h), op.name());
            assertEquals(1, h.read(GERROR.offset()) & 1, op.name());
        }
        Harness s2 = new Harness(Smmuv3Profile.S2_ONLY).enable();
        s2.cmd(Command.build(CMD_TLBI_NH_ASID).command());
        assertEquals(CommandQueue.CERROR_ILL, consErr(s2));
        Harness s1 = new Harness(Smmuv3Profile.S1_ONLY).enable();
        s1.cmd(Command.build(CMD_TLBI_S2_IPA).command());
        assertEquals(CommandQueue.CERROR_ILL, consErr(s1));
    }

    @Test
    void reservedEncodingsAreIllegal() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        h.cmd(Command.build(CMD_SYNC).set(Command.SYNC_CS, 3).command());
        assertEquals(CommandQueue.CERROR_ILL, consErr(h));
        Harness p = new Harness(Smmuv3Profile.MAX).enable();
        p.cmd(Command.build(CMD_PRI_RESP).set(Command.PRI_RESP, 3).command());
        assertEquals(CommandQueue.CERROR_ILL, consErr(p));
        Harness t = new Harness(Smmuv3Profile.MAX).enable(); // TG 16KB with TTL 0b01 and no DS
        t.cmd(Command.build(CMD_TLBI_NH_VA).set(Command.TLBI_TG, 2).set(Command.TLBI_TTL, 1).command());
        assertEquals(CommandQueue.CERROR_ILL, consErr(t));
        Harness s = new Harness(Smmuv3Profile.MAX).enable(); // SSIDSIZE 20: SubstreamID 2^20 is too big
        s.cmd(Command.build(CMD_PREFETCH_CONFIG).set(Command.SSV, 1).set(Command.SSID, 0xfffff).command());
        assertEquals(0, s.read(GERROR.offset()));
    }

    @Test
    void commandFetchAbortIsCerrorAbt() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT);
        h.write64(CMDQ_BASE.offset(), 0xf_0000_0000L | 4); // outside memory
        h.write(CR0.offset(), CR0_CMDQEN.mask());
        h.write(CMDQ_PROD.offset(), 1);
        assertEquals(CommandQueue.CERROR_ABT, consErr(h));
        assertEquals(1, h.read(GERROR.offset()) & 1);
    }

    @Test
    void disabledQueueConsumesNothingUntilEnabled() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT);
        h.write64(CMDQ_BASE.offset(), Harness.CMDQ | Harness.CMDQ_LOG2);
        h.cmdNoKick(Command.build(CMD_SYNC).command());
        h.kick();
        assertEquals(0, h.read(CMDQ_CONS.offset()));
        h.write(CR0.offset(), CR0_CMDQEN.mask());
        assertEquals(1, h.read(CMDQ_CONS.offset()));
    }

    @Test
    void queueWrapsAroundManyTimes() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        for (int i = 0; i < 3 * (1 << Harness.CMDQ_LOG2) + 5; i++) {
            h.sync();
        }
        assertEquals(h.cmdProd(), h.read(CMDQ_CONS.offset()));
        assertEquals(0, h.read(GERROR.offset()));
    }

    @Test
    void syncSignalsWiredIrqOrMsi() {
        Harness d = new Harness(Smmuv3Profile.DEFAULT).enable();
        d.cmd(Command.build(CMD_SYNC).set(Command.SYNC_CS, Command.CS_IRQ).command());
        assertEquals(1, d.host.count(Interrupts.CMD_SYNC));
        Harness m = new Harness(Smmuv3Profile.MAX).enable();
        long flag = 0x50_0000L;
        m.mem.put32(flag, 0);
        m.cmd(Command.build(CMD_SYNC).set(Command.SYNC_CS, Command.CS_IRQ).set(Command.SYNC_MSIDATA, 0xfeed)
                .set(Command.SYNC_MSIADDR, flag >>> 2).command());
        assertEquals(0xfeed, m.mem.get32(flag)); // an MSI to RAM is a memory write (Linux polls it)
        m.cmd(Command.build(CMD_SYNC).set(Command.SYNC_CS, Command.CS_IRQ).set(Command.SYNC_MSIDATA, 0x21)
                .set(Command.SYNC_MSIADDR, 0x8_0000_0000L >>> 2).command());
        assertEquals(0x8_0000_0000L, m.host.msis.get(0)[0]); // outside RAM: delivered by the host
        assertEquals(0x21, m.host.msis.get(0)[1]);
        m.cmd(Command.build(CMD_SYNC).set(Command.SYNC_CS, Command.CS_SEV).command());
        assertEquals(0, m.read(GERROR.offset()));
    }

    /**
     * §4.7.3: a CMD_SYNC's completion is signalled once CMDQ_CONS is past it, so a host that saves
     * the state before the signal (the daemon's restart journal) saves the sync consumed, and a
     * new daemon never runs it again (Linux's MSI lands in the sync's own queue slot, which the
     * driver reuses once it sees the MSI).
     */
    @Test
    void aSyncIsConsumedBeforeItsCompletionIsSignalled() {
        Harness[] h = new Harness[1];
        List<Long> consAtSignal = new ArrayList<>();
        DmaHost host = new DmaHost() {
            @Override
            public void raiseIrq(String line) {
                if (line.equals(Interrupts.CMD_SYNC)) {
                    consAtSignal.add(h[0].read(CMDQ_CONS.offset()));
                }
            }

            @Override
            public void msi(long address, int data) {}

            @Override
            public void invalidate(IotlbInvalidation inv) {}
        };
        h[0] = new Harness(Smmuv3Profile.DEFAULT, host).enable();
        h[0].cmdNoKick(Command.build(CMD_TLBI_NH_ALL).command());
        h[0].cmdNoKick(Command.build(CMD_SYNC).set(Command.SYNC_CS, Command.CS_IRQ).command());
        h[0].cmdNoKick(Command.build(CMD_TLBI_NH_ALL).command());
        h[0].kick();
        // slots 0, 1, 2: the sync in slot 1 is signalled with CONS = 2, not 1
        assertEquals(List.of(2L), consAtSignal);
        assertEquals(3, h[0].read(CMDQ_CONS.offset()));
    }

    @Test
    void cfgiStesAndRangesInvalidateTheConfigurationAndTheVmm() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        for (int sid = 0; sid < 8; sid++) {
            h.ste(sid, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS));
            h.smmu.translate(sid, -1, 0, DmaAccess.READ);
            h.ste(sid, words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT));
        }
        // CFGI_STE_RANGE Range 1: StreamIDs 4..7 (2^(Range+1) = 4, aligned).
        h.cmd(Command.build(CMD_CFGI_STE_RANGE).set(Command.SID, 5).set(Command.CFGI_RANGE, 1).command());
        assertInstanceOf(DmaResult.Translated.class, h.smmu.translate(3, -1, 0, DmaAccess.READ));
        for (int sid = 4; sid < 8; sid++) {
            assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(sid, -1, 0, DmaAccess.READ));
        }
        assertTrue(h.host.invalidations.contains(new IotlbInvalidation(6, 0, -1L)));
        h.cmd(Command.build(CMD_CFGI_STE_RANGE).set(Command.CFGI_RANGE, 31).command()); // CFGI_ALL
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(0, -1, 0, DmaAccess.READ));
        assertTrue(h.host.invalidations.contains(IotlbInvalidation.all()));
    }

    private static long s1Page(Harness h, long va, long pa) {
        long root = h.tables.s1Root();
        h.tables.map(root, va, pa, PageTables.S1_RW);
        h.cd(Harness.CDS, Harness.cd(root, 5));
        h.ste(1, Harness.s1Ste(Harness.CDS, 0));
        return root;
    }

    private static long out(Harness h, long va) {
        return assertInstanceOf(DmaResult.Translated.class, h.smmu.translate(1, -1, va, DmaAccess.READ)).entry()
                .translate(va);
    }

    /** Range invalidation (§4.4.1.1): (NUM+1) * 2^SCALE granules from Address. */
    @Test
    void rangeTlbiCoversExactlyItsPages() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long root = h.tables.s1Root();
        h.cd(Harness.CDS, Harness.cd(root, 5));
        h.ste(1, Harness.s1Ste(Harness.CDS, 0));
        for (int i = 0; i < 8; i++) {
            h.tables.map(root, 0x10_0000L + i * 4096L, 0x20_0000L + i * 4096L, PageTables.S1_RW);
            out(h, 0x10_0000L + i * 4096L);
            h.tables.map(root, 0x10_0000L + i * 4096L, 0x30_0000L + i * 4096L, PageTables.S1_RW);
        }
        // TG 4KB, SCALE 1, NUM 1: (1 + 1) * 2^1 = 4 pages from 0x101000.
        h.cmd(Command.build(CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 5).set(Command.TLBI_TG, 1)
                .set(Command.TLBI_NUM, 1).set(Command.TLBI_SCALE, 1).set(Command.TLBI_ADDR, 0x10_1000L >>> 12)
                .command());
        h.sync();
        assertEquals(0x20_0000L, out(h, 0x10_0000L));
        for (int i = 1; i <= 4; i++) {
            assertEquals(0x30_0000L + i * 4096L, out(h, 0x10_0000L + i * 4096L));
        }
        assertEquals(0x20_5000L, out(h, 0x10_5000L));
        assertTrue(h.host.invalidations.contains(new IotlbInvalidation(IotlbInvalidation.ALL_ENDPOINTS, 0x10_1000L,
                0x4000)));
    }

    @Test
    void vaaNsnhAndS12InvalidateAcrossAsids() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long root = s1Page(h, 0x10_0000L, 0x20_0000L);
        out(h, 0x10_0000L);
        h.tables.map(root, 0x10_0000L, 0x30_0000L, PageTables.S1_RW);
        h.cmd(Command.build(CMD_TLBI_NH_VAA).set(Command.TLBI_ADDR, 0x100L).command());
        assertEquals(0x30_0000L, out(h, 0x10_0000L));
        h.tables.map(root, 0x10_0000L, 0x40_0000L, PageTables.S1_RW);
        h.cmd(Command.build(CMD_TLBI_NSNH_ALL).command());
        assertEquals(0x40_0000L, out(h, 0x10_0000L));
        h.tables.map(root, 0x10_0000L, 0x50_0000L, PageTables.S1_RW);
        h.cmd(Command.build(CMD_TLBI_S12_VMALL).set(Command.TLBI_VMID, 0).command());
        assertEquals(0x50_0000L, out(h, 0x10_0000L));
        h.tables.map(root, 0x10_0000L, 0x60_0000L, PageTables.S1_RW);
        h.cmd(Command.build(CMD_TLBI_NH_ALL).set(Command.TLBI_VMID, 1).command()); // another VMID
        assertEquals(0x50_0000L, out(h, 0x10_0000L));
        h.cmd(Command.build(CMD_TLBI_NH_ALL).set(Command.TLBI_VMID, 0).command());
        assertEquals(0x60_0000L, out(h, 0x10_0000L));
    }

    @Test
    void s2IpaInvalidatesStage2Entries() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        long s2 = h.tables.s2Root(24, 1);
        h.tables.map(s2, 0x10_0000L, 0x20_0000L, PageTables.S2_RW);
        h.ste(1, Harness.s2Ste(s2, 9));
        assertEquals(0x20_0000L, out(h, 0x10_0000L));
        h.tables.map(s2, 0x10_0000L, 0x30_0000L, PageTables.S2_RW);
        h.cmd(Command.build(CMD_TLBI_S2_IPA).set(Command.TLBI_VMID, 8).set(Command.TLBI_IPA, 0x100L).command());
        assertEquals(0x20_0000L, out(h, 0x10_0000L)); // other VMID
        h.cmd(Command.build(CMD_TLBI_S2_IPA).set(Command.TLBI_VMID, 9).set(Command.TLBI_IPA, 0x100L).command());
        assertEquals(0x30_0000L, out(h, 0x10_0000L));
    }

    @Test
    void el2TlbisActOnEl2Streams() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long root = h.tables.s1Root();
        h.tables.map(root, 0x10_0000L, 0x20_0000L, PageTables.S1_RW);
        h.cd(Harness.CDS, Harness.cd(root, 5));
        long[] ste = Harness.s1Ste(Harness.CDS, 0);
        Ste.STRW.set(ste, Ste.STRW_EL2);
        h.ste(1, ste);
        assertEquals(0x20_0000L, out(h, 0x10_0000L));
        h.tables.map(root, 0x10_0000L, 0x30_0000L, PageTables.S1_RW);
        h.cmd(Command.build(CMD_TLBI_NH_ALL).command()); // not EL2 entries
        assertEquals(0x20_0000L, out(h, 0x10_0000L));
        h.cmd(Command.build(CMD_TLBI_EL2_VA).set(Command.TLBI_ASID, 5).set(Command.TLBI_ADDR, 0x100L).command());
        assertEquals(0x30_0000L, out(h, 0x10_0000L));
        h.tables.map(root, 0x10_0000L, 0x40_0000L, PageTables.S1_RW);
        h.cmd(Command.build(CMD_TLBI_EL2_ALL).command());
        assertEquals(0x40_0000L, out(h, 0x10_0000L));
    }

    @Test
    void atcInvAndPriRespReachTheEndpoint() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        h.cmd(Command.build(CMD_ATC_INV).set(Command.SID, 9).set(Command.SSV, 1).set(Command.SSID, 4)
                .set(Command.ATC_SIZE, 4).set(Command.ATC_ADDR, 0x12345L).command());
        // Size 4: 16 pages (64KB), the address aligned down to the span.
        assertEquals("atc sid=9 ssid=4 addr=0x12340000 size=0x10000 global=false", h.endpoints.calls.get(0));
        h.cmd(Command.build(CMD_PRI_RESP).set(Command.SID, 9).set(Command.PRI_PRGINDEX, 0x1ab)
                .set(Command.PRI_RESP, Command.PRI_RESP_FAILURE).command());
        assertEquals("pri sid=9 ssid=-1 prg=427 resp=15", h.endpoints.calls.get(1));
    }
}
