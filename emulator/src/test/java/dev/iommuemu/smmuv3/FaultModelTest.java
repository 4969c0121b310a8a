package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.smmuv3.ats.AtsResponse;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import org.junit.jupiter.api.Test;

/** Fault records (§7.3), queue overflow and aborts (§7.2, §7.4), stall (§3.12.2), PRI (§8), ATS (§3.9). */
class FaultModelTest {
    private static final int SID = 2;

    private static long s1(Harness h, long va, long pa, long attrs, long[] cd) {
        long root = h.tables.s1Root();
        h.tables.map(root, va, pa, attrs);
        Cd.TTB0.set(cd, root >>> 4);
        h.cd(Harness.CDS, cd);
        h.ste(SID, Harness.s1Ste(Harness.CDS, 0));
        return root;
    }

    @Test
    void permissionAccessAddressSizeAndWalkAbortRecords() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        s1(h, 0x1000, 0x2000, PageTables.AF | PageTables.S1_AP_RO_ALL | PageTables.NG, Harness.cd(0, 1));
        h.smmu.translate(SID, -1, 0x1008, DmaAccess.WRITE);
        // F_PERMISSION (§7.3.16): write (RnW 0), unprivileged, CLASS IN.
        assertArrayEquals(new long[] {0x13 | ((long) SID << 32), 2L << 40, 0x1008, 0}, h.rawEvents().get(0));

        Harness a = new Harness(Smmuv3Profile.DEFAULT).enable();
        s1(a, 0x1000, 0x2000, PageTables.S1_AP_RW_ALL | PageTables.NG, Harness.cd(0, 1)); // AF == 0
        a.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        assertEquals(EventType.F_ACCESS, a.events().get(0).type());

        Harness s = new Harness(Smmuv3Profile.DEFAULT).enable();
        long[] cd = Harness.cd(0, 1);
        Cd.IPS.set(cd, 0); // 32-bit output
        s1(s, 0x1000, 0x1_0000_0000L, PageTables.S1_RW, cd);
        s.smmu.translate(SID, -1, 0x1000, DmaAccess.READ);
        assertEquals(EventType.F_ADDR_SIZE, s.events().get(0).type());

        Harness w = new Harness(Smmuv3Profile.DEFAULT).enable();
        w.cd(Harness.CDS, Harness.cd(0x10_0000_0000L, 1)); // tables outside memory
        w.ste(SID, Harness.s1Ste(Harness.CDS, 0));
        w.smmu.translate(SID, -1, 0x8000, DmaAccess.READ);
        // F_WALK_EABT (§7.3.12): S2 0, CLASS TT, FetchAddr = the level 0 descriptor's address.
        assertArrayEquals(new long[] {0x0b | ((long) SID << 32), (1L << 35) | (1L << 40), 0x8000, 0x10_0000_0000L},
                w.rawEvents().get(0));
    }

    @Test
    void hardwareAccessFlagUpdateOnTheMaxProfile() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long[] cd = Harness.cd(0, 1);
        Cd.HA.set(cd, 1);
        long root = s1(h, 0x1000, 0x2000, PageTables.S1_AP_RW_ALL | PageTables.NG, cd);
        assertInstanceOf(DmaResult.Translated.class, h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        long leaf = h.mem.get64(h.tables.leaf(root, 0x1000, 3));
        assertTrue((leaf & PageTables.AF) != 0); // §3.13: the SMMU set the Access flag
        // The default profile has no HTTU: CD.HA is ILLEGAL there (§5.4 CD.HA).
        Harness d = new Harness(Smmuv3Profile.DEFAULT).enable();
        s1(d, 0x1000, 0x2000, PageTables.S1_AP_RW_ALL | PageTables.NG, cd.clone());
        assertInstanceOf(DmaResult.Aborted.class, d.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        assertEquals(EventType.C_BAD_CD, d.events().get(0).type());
    }

    @Test
    void hardwareDirtyStateUpdateOnTheMaxProfile() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long[] cd = Harness.cd(0, 1);
        Cd.HA.set(cd, 1);
        Cd.HD.set(cd, 1);
        long dbm = 1L << 51;
        long root = s1(h, 0x1000, 0x2000, PageTables.S1_RW | PageTables.S1_AP_RO_ALL | dbm, cd); // clean, writable-clean
        assertInstanceOf(DmaResult.Translated.class, h.smmu.translate(SID, -1, 0x1000, DmaAccess.WRITE));
        long leaf = h.mem.get64(h.tables.leaf(root, 0x1000, 3));
        assertEquals(0, leaf & (1L << 7)); // §3.13.3: AP[2] cleared: the page is now dirty
    }

    @Test
    void interruptsFollowTheAcknowledgedEnables() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        h.write(IRQ_CTRL.offset(), 0);
        h.smmu.translate(1 << 30, -1, 0, DmaAccess.READ);
        h.cmd(new long[] {0xff, 0});
        assertEquals(0, h.host.irqs.size()); // recorded and activated, but no interrupt
        assertEquals(1, h.events().size());
        assertTrue(GERROR_CMDQ_ERR.isSet(h.read(GERROR.offset())));
        Harness m = new Harness(Smmuv3Profile.MAX);
        m.write64(GERROR_IRQ_CFG0.offset(), 0x9_0000_1000L);
        m.write(GERROR_IRQ_CFG1.offset(), 0x33);
        m.enable();
        m.cmd(new long[] {0xff, 0});
        assertArrayEquals(new long[] {0x9_0000_1000L, 0x33}, m.host.msis.get(0)); // GERROR as an MSI
        // IRQ_CFGs are Guarded by their enable (§6.3 SMMU_GERROR_IRQ_CFG0).
        m.write64(GERROR_IRQ_CFG0.offset(), 0);
        assertEquals(0x9_0000_1000L, m.smmu.mmioRead(GERROR_IRQ_CFG0.offset(), 8));
    }

    @Test
    void eventQueueOverflowTogglesOvflgOnceUntilAcknowledged() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        int entries = 1 << Harness.EVTQ_LOG2;
        for (int i = 0; i < entries + 3; i++) {
            h.smmu.translate(1 << Harness.STRTAB_LOG2, -1, 0, DmaAccess.READ); // C_BAD_STREAMID
        }
        long prod = h.read(EVENTQ_PROD.offset());
        assertTrue(Q_PROD_OVFLG.isSet(prod));
        assertEquals(entries, Q_PTR.get(prod)); // full: index 0 with the wrap bit set
        assertEquals(3, h.smmu.stats().eventsLost());
        h.rawEvents(); // drain
        h.write(EVENTQ_CONS.offset(), h.read(EVENTQ_CONS.offset()) | Q_CONS_OVACKFLG.mask()); // acknowledge
        h.smmu.translate(1 << Harness.STRTAB_LOG2, -1, 0, DmaAccess.READ);
        assertTrue(Q_PROD_OVFLG.isSet(h.read(EVENTQ_PROD.offset()))); // no new overflow: unchanged
        assertEquals(1, h.rawEvents().size());
    }

    @Test
    void eventQueueWriteAbortIsAGlobalError() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT);
        h.write64(EVENTQ_BASE.offset(), 0xf_0000_0000L | 2);
        h.write(IRQ_CTRL.offset(), 1);
        h.write(CR0.offset(), CR0_EVENTQEN.mask() | CR0_SMMUEN.mask());
        h.smmu.translate(0, -1, 0, DmaAccess.READ); // STRTAB_BASE 0, LOG2SIZE 0: C_BAD_STREAMID for 0? no: size 1
        h.smmu.translate(7, -1, 0, DmaAccess.READ);
        assertTrue(EVENTQ_ABT_ERR(h));
        assertEquals(1, h.host.count(Interrupts.GERROR));
    }

    private static boolean EVENTQ_ABT_ERR(Harness h) {
        return GERROR_EVENTQ_ABT_ERR.isSet(h.read(GERROR.offset()));
    }

    @Test
    void eventInterruptsWiredAndMsi() {
        Harness d = new Harness(Smmuv3Profile.DEFAULT).enable();
        d.smmu.translate(1 << Harness.STRTAB_LOG2, -1, 0, DmaAccess.READ);
        assertEquals(1, d.host.count(Interrupts.EVTQ));
        Harness m = new Harness(Smmuv3Profile.MAX);
        m.write64(EVENTQ_IRQ_CFG0.offset(), 0x9_0000_0040L);
        m.write(EVENTQ_IRQ_CFG1.offset(), 0x77);
        m.enable();
        m.smmu.translate(1 << 30, -1, 0, DmaAccess.READ);
        assertEquals(0x9_0000_0040L, m.host.msis.get(0)[0]);
        assertEquals(0x77, m.host.msis.get(0)[1]);
        assertEquals(1, m.host.count(Interrupts.EVTQ)); // §3.18.2: wired and MSI together
        m.smmu.translate(1 << 30, -1, 0, DmaAccess.READ); // queue not empty: no new interrupt
        assertEquals(1, m.host.msis.size());
        m.events();
        m.smmu.translate(1 << 30, -1, 0, DmaAccess.READ); // empty again: interrupt
        assertEquals(2, m.host.msis.size());
    }

    @Test
    void stallHoldsTheTransactionUntilResumeOrStallTerm() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long[] cd = Harness.cd(0, 1);
        Cd.S.set(cd, 1);
        s1(h, 0x1000, 0x2000, PageTables.S1_RW, cd);
        DmaResult r = h.smmu.translate(SID, -1, 0x5000, DmaAccess.READ);
        DmaResult.Stalled st = assertInstanceOf(DmaResult.Stalled.class, r);
        EventRecord ev = h.events().get(0);
        assertTrue(ev.stall());
        assertEquals(st.stag(), ev.stag());
        long[] raw = ev.encode();
        assertEquals(1L << 31, raw[1] & (1L << 31)); // Stall, bit 95
        h.cmd(Command.build(Command.Op.CMD_RESUME).set(Command.SID, SID).set(Command.RESUME_STAG, st.stag())
                .set(Command.RESUME_AC, Command.RESUME_RETRY).command());
        assertEquals("stall sid=2 stag=" + st.stag() + " retry=true", h.endpoints.calls.get(0));
        // A second RESUME of the same STAG matches nothing and is ignored.
        h.cmd(Command.build(Command.Op.CMD_RESUME).set(Command.SID, SID).set(Command.RESUME_STAG, st.stag()).command());
        assertEquals(1, h.endpoints.calls.size());
        DmaResult.Stalled a = assertInstanceOf(DmaResult.Stalled.class, h.smmu.translate(SID, -1, 0x6000, DmaAccess.READ));
        DmaResult.Stalled b = assertInstanceOf(DmaResult.Stalled.class, h.smmu.translate(SID, -1, 0x7000, DmaAccess.READ));
        assertTrue(a.stag() != b.stag());
        h.cmd(Command.build(Command.Op.CMD_STALL_TERM).set(Command.SID, SID).command());
        assertEquals(3, h.endpoints.calls.size());
        assertTrue(h.endpoints.calls.get(2).endsWith("retry=false"));
        // CD.S through an STE with S1STALLD is ILLEGAL: C_BAD_CD (§5.5).
        long[] ste = Harness.s1Ste(Harness.CDS, 0);
        Ste.S1STALLD.set(ste, 1);
        h.ste(SID, ste);
        h.cfgiSte(SID);
        h.events();
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, 0x5000, DmaAccess.READ));
        assertEquals(EventType.C_BAD_CD, h.events().get(0).type());
    }

    @Test
    void stallRecordsWaitForAWritableQueueAndNeverOverflow() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long[] cd = Harness.cd(0, 1);
        Cd.S.set(cd, 1);
        s1(h, 0x1000, 0x2000, PageTables.S1_RW, cd);
        int entries = 1 << Harness.EVTQ_LOG2;
        for (int i = 0; i < entries; i++) {
            h.smmu.translate(1 << 30, -1, 0, DmaAccess.READ); // fill the queue with C_BAD_STREAMID
        }
        DmaResult.Stalled st = assertInstanceOf(DmaResult.Stalled.class,
                h.smmu.translate(SID, -1, 0x5000, DmaAccess.READ));
        assertFalse(Q_PROD_OVFLG.isSet(h.read(EVENTQ_PROD.offset()))); // §7.4: stalls do not overflow
        assertEquals(entries, h.events().size()); // draining makes room; the stall record follows
        EventRecord ev = h.events().get(0);
        assertTrue(ev.stall());
        assertEquals(st.stag(), ev.stag());
        // With the Event queue disabled a stall-enabled fault still stalls (§7.2.1; GerrorPathsTest).
        h.write(CR0.offset(), CR0_CMDQEN.mask() | CR0_SMMUEN.mask());
        assertInstanceOf(DmaResult.Stalled.class, h.smmu.translate(SID, -1, 0x6000, DmaAccess.READ));
    }

    @Test
    void priQueueEntriesOverflowAndAutomaticResponse() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        PageRequest req = new PageRequest(0x42, 7, 0x1234_5000L, 0x1a5, true, true, true, false, true);
        assertTrue(h.smmu.pageRequest(req));
        // §8: SID[31:0], SSID[51:32], Priv 58, R 60, W 61, Last 62, SSV 63; PRGIndex[72:64], Addr[127:76].
        long w0 = 0x42 | (7L << 32) | (1L << 58) | (1L << 60) | (1L << 61) | (1L << 62) | (1L << 63);
        long w1 = 0x1a5 | 0x1234_5000L;
        assertEquals(w0, h.mem.get64(Harness.PRIQ));
        assertEquals(w1, h.mem.get64(Harness.PRIQ + 8));
        assertEquals(1, Q_PTR.get(h.read(PRIQ_PROD.offset())));
        assertEquals(1, h.host.count(Interrupts.PRIQ));
        assertEquals(req, PageRequest.decode(new long[] {w0, w1}));
        for (int i = 1; i < 1 << Harness.PRIQ_LOG2; i++) {
            assertTrue(h.smmu.pageRequest(req));
        }
        assertFalse(h.smmu.pageRequest(req)); // full
        assertTrue(Q_PROD_OVFLG.isSet(h.read(PRIQ_PROD.offset())));
        assertEquals("pri sid=66 ssid=7 prg=421 resp=0", h.endpoints.calls.get(0)); // Last: auto Success
        PageRequest notLast = new PageRequest(0x42, 7, 0x1234_5000L, 3, false, true, false, false, false);
        assertFalse(h.smmu.pageRequest(notLast));
        assertEquals(1, h.endpoints.calls.size());
        // §8.1: the overflow condition discards even once there is room, until acknowledged.
        h.write(PRIQ_CONS.offset(), Q_PTR.insert(h.read(PRIQ_CONS.offset()), 1 << Harness.PRIQ_LOG2));
        assertFalse(h.smmu.pageRequest(req));
        h.write(PRIQ_CONS.offset(), h.read(PRIQ_CONS.offset()) | Q_CONS_OVACKFLG.mask());
        assertTrue(h.smmu.pageRequest(req));
        // §8.2: with PRIQEN == 0 every request is answered with Response Failure, without a PASID.
        h.write(CR0.offset(), h.read(CR0.offset()) & ~CR0_PRIQEN.mask());
        assertFalse(h.smmu.pageRequest(notLast));
        assertEquals("pri sid=66 ssid=-1 prg=3 resp=15", h.endpoints.calls.get(h.endpoints.calls.size() - 1));
        assertFalse(new Harness(Smmuv3Profile.DEFAULT).enable().smmu.pageRequest(req)); // no PRI
    }

    @Test
    void priQueueWriteAbortIsAGlobalErrorAndFailsTheRequest() {
        Harness h = new Harness(Smmuv3Profile.MAX);
        h.write64(PRIQ_BASE.offset(), 0xf_0000_0000L | 2); // outside memory
        h.write(IRQ_CTRL.offset(), 1);
        h.write(CR0.offset(), CR0_PRIQEN.mask() | CR0_SMMUEN.mask());
        PageRequest req = new PageRequest(5, -1, 0x1000, 9, true, true, false, false, false);
        assertFalse(h.smmu.pageRequest(req));
        assertTrue(GERROR_PRIQ_ABT_ERR.isSet(h.read(GERROR.offset())));
        assertEquals("pri sid=5 ssid=-1 prg=9 resp=15", h.endpoints.calls.get(0)); // §8.2: Response Failure
        assertEquals(1, h.host.count(Interrupts.GERROR));
        assertEquals(0, Q_PTR.get(h.read(PRIQ_PROD.offset()))); // PROD not advanced
    }

    @Test
    void exactLayoutsOfTheRemainingFaultRecords() {
        Harness a = new Harness(Smmuv3Profile.DEFAULT).enable();
        s1(a, 0x1000, 0x2000, PageTables.S1_AP_RW_ALL | PageTables.NG, Harness.cd(0, 1)); // AF == 0
        a.smmu.translate(SID, -1, 0x1010, DmaAccess.PRIV_WRITE);
        // F_ACCESS (0x12): PnU (bit 97), RnW 0, CLASS IN.
        assertArrayEquals(new long[] {0x12 | ((long) SID << 32), (1L << 33) | (2L << 40), 0x1010, 0},
                a.rawEvents().get(0));
        Harness s = new Harness(Smmuv3Profile.DEFAULT).enable();
        long[] cd = Harness.cd(0, 1);
        Cd.IPS.set(cd, 0);
        s1(s, 0x1000, 0x1_0000_0000L, PageTables.S1_RW, cd);
        s.smmu.translate(SID, -1, 0x1000, DmaAccess.EXEC);
        // F_ADDR_SIZE (0x11): RnW 1, InD 1 (bit 98), CLASS IN.
        assertArrayEquals(new long[] {0x11 | ((long) SID << 32), (1L << 35) | (1L << 34) | (2L << 40), 0x1000, 0},
                s.rawEvents().get(0));
        // F_BAD_ATS_TREQ (0x05) with a PASID: SSV, SubstreamID, Span 1 in [79:64], RnW, InputAddr.
        Harness m = new Harness(Smmuv3Profile.MAX).enable();
        m.ste(SID, Harness.s1Ste(Harness.CDS, 2));
        m.smmu.atsTranslate(SID, 3, 0x7000, DmaAccess.READ);
        assertArrayEquals(new long[] {0x05 | (1L << 11) | (3L << 12) | ((long) SID << 32), 1 | (1L << 35), 0x7000, 0},
                m.rawEvents().get(0));
        // E_PAGE_REQUEST (0x24, §7.3.19): Span [115:108], pR 103 pW 102 pX 101 uR 100 uW 99 uX 98,
        // InputAddr[63:12] in [191:140].
        assertTrue(m.smmu.pageRequestHint(SID, 2, 0x1234_5678_9000L, 3,
                EventRecord.pageRequestHint(0, true, false, false, true, true, false)));
        assertArrayEquals(new long[] {0x24 | (1L << 11) | (2L << 12) | ((long) SID << 32),
            (3L << 44) | (1L << 39) | (1L << 36) | (1L << 35), 0x1234_5678_9000L, 0}, m.rawEvents().get(0));
        // F_VMS_FETCH (0x25) encodes like F_CD_FETCH.
        assertArrayEquals(new long[] {0x25 | (1L << 32), 0, 0, 0x4440},
                EventRecord.fetch(EventType.F_VMS_FETCH, 1, -1, 0x4447).encode());
    }

    @Test
    void atsTranslationRequests() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        s1(h, 0x1000, 0x2000, PageTables.S1_RW, Harness.cd(0, 1));
        AtsResponse r = h.smmu.atsTranslate(SID, -1, 0x1000, DmaAccess.WRITE);
        assertEquals(AtsResponse.Status.UR, r.status()); // STE.EATS == 0
        EventRecord bad = h.events().get(0);
        assertEquals(EventType.F_BAD_ATS_TREQ, bad.type());
        assertEquals(SID, bad.streamId());
        long[] ste = Harness.s1Ste(Harness.CDS, 0);
        Ste.EATS.set(ste, 1);
        h.ste(SID, ste);
        h.cfgiSte(SID);
        AtsResponse ok = h.smmu.atsTranslate(SID, -1, 0x1234, DmaAccess.WRITE);
        // No PASID: Data, Unprivileged; the completion has no Exe (§13.7).
        assertEquals(new AtsResponse(AtsResponse.Status.SUCCESS, 0x2000, 4096, true, true, false, false), ok);
        AtsResponse none = h.smmu.atsTranslate(SID, -1, 0x9000, DmaAccess.READ);
        assertEquals(AtsResponse.Status.SUCCESS, none.status());
        assertFalse(none.read() || none.write());
        assertEquals(0, h.rawEvents().size()); // translation faults of TRs are not recorded
        // An invalid STE: CA and no event (§5.2 STE.V); Config abort: UR and no event (§5.2 EATS).
        assertEquals(AtsResponse.Status.CA, h.smmu.atsTranslate(40, -1, 0, DmaAccess.READ).status());
        h.ste(41, Harness.words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_ABORT, Ste.EATS, 1));
        assertEquals(AtsResponse.Status.UR, h.smmu.atsTranslate(41, -1, 0, DmaAccess.READ).status());
        assertEquals(0, h.rawEvents().size());
        h.ste(42, Harness.words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS, Ste.EATS, 1));
        assertEquals(AtsResponse.Status.UR, h.smmu.atsTranslate(42, -1, 0, DmaAccess.READ).status());
        assertEquals(EventType.F_BAD_ATS_TREQ, h.events().get(0).type()); // bypass: EATS effectively 0
    }

    @Test
    void translatedTransactionsAndAtschk() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        h.ste(SID, Harness.s1Ste(Harness.CDS, 0));
        assertInstanceOf(DmaResult.Translated.class, h.smmu.translatedTransaction(SID, 0x5000, DmaAccess.READ));
        h.write(CR0.offset(), h.read(CR0.offset()) | CR0_ATSCHK.mask());
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translatedTransaction(SID, 0x5000, DmaAccess.WRITE));
        // F_TRANSL_FORBIDDEN (§7.3.8): StreamID, RnW, InputAddr.
        assertArrayEquals(new long[] {0x07 | ((long) SID << 32), 0, 0x5000, 0}, h.rawEvents().get(0));
    }

    @Test
    void unsupportedUpstreamTransaction() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        h.smmu.unsupportedTransaction(SID, 3, 0xabc0, DmaAccess.PRIV_READ, 0x55);
        // F_UUT (§7.3.2): SSV, SubstreamID, Reason[79:64], RnW 99, PnU 97, InputAddr.
        assertArrayEquals(new long[] {0x01 | (1L << 11) | (3L << 12) | ((long) SID << 32),
            0x55 | (1L << 35) | (1L << 33), 0xabc0, 0}, h.rawEvents().get(0));
    }

    @Test
    void conflictRecordLayouts() {
        // F_TLB_CONFLICT and F_CFG_CONFLICT (§7.3.17-18) are raised by strict mode (ConflictTest);
        // here with the S2 bit and an IPA (TLB), and a Reason using all 32 bits (CFG).
        EventRecord tlb = new EventRecord(EventType.F_TLB_CONFLICT, 1, false, 0, 0, false, true, false, false, true, 0,
                0x1000, 0x2000, 0);
        assertArrayEquals(new long[] {0x20 | (1L << 32), (1L << 35) | (1L << 39), 0x1000, 0x2000}, tlb.encode());
        // F_CFG_CONFLICT's Reason is 32 bits wide, [95:64].
        EventRecord reasoned = new EventRecord(EventType.F_CFG_CONFLICT, 1, false, 0, 0, false, false, false, false,
                false, 0, 0, 0, 0x8765_4321);
        assertArrayEquals(new long[] {0x21 | (1L << 32), 0x8765_4321L, 0, 0}, reasoned.encode());
        EventRecord cfg = EventRecord.config(EventType.F_CFG_CONFLICT, 1, 4);
        assertArrayEquals(new long[] {0x21 | (1L << 11) | (4L << 12) | (1L << 32), 0, 0, 0}, cfg.encode());
    }
}
