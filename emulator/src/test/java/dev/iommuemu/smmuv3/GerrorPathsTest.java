package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.MsiSource;
import dev.iommuemu.smmuv3.ats.AtsResponse;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The GERROR paths (IHI 0070 §6.3 SMMU_GERROR/GERRORN, §3.18): aborted MSIs of each source,
 * service failure mode, and the stall rule with the Event queue disabled (§3.12.2). Every check
 * reads GERROR and GERRORN as a driver would.
 */
class GerrorPathsTest {
    private static final int SID = 2;
    /** Addresses outside the harness's guest RAM (4 GiB): the host delivers these MSIs. */
    private static final long GERROR_MSI = 0x9_0000_1000L;
    private static final long EVTQ_MSI = 0x9_0000_0040L;
    private static final long PRIQ_MSI = 0x9_0000_0080L;
    private static final long SYNC_MSI = 0x9_0000_00c0L;

    private static Harness withMsis() {
        Harness h = new Harness(Smmuv3Profile.MAX);
        // IRQ_CFGs are Guarded by their enables (§6.3 SMMU_GERROR_IRQ_CFG0): programmed first.
        h.write64(GERROR_IRQ_CFG0.offset(), GERROR_MSI);
        h.write(GERROR_IRQ_CFG1.offset(), 0x33);
        h.write64(EVENTQ_IRQ_CFG0.offset(), EVTQ_MSI);
        h.write(EVENTQ_IRQ_CFG1.offset(), 0x77);
        h.write64(PRIQ_IRQ_CFG0.offset(), PRIQ_MSI);
        h.write(PRIQ_IRQ_CFG1.offset(), 0x55);
        return h.enable();
    }

    private static long gerror(Harness h) {
        return h.read(GERROR.offset());
    }

    private static long gerrorn(Harness h) {
        return h.read(GERRORN.offset());
    }

    @Test
    void anAbortedEventQueueMsiActivatesMsiEventqAbtErrOnce() {
        Harness h = withMsis();
        h.smmu.translate(1 << 30, -1, 0, DmaAccess.READ); // C_BAD_STREAMID: the queue's interrupt
        assertArrayEquals(new long[] {EVTQ_MSI, 0x77}, h.host.msis.get(0));
        assertEquals(MsiSource.EVENT_QUEUE, h.host.msiSources.get(0));
        assertEquals(0, gerror(h));

        assertEquals("MSI_EVENTQ_ABT_ERR", h.smmu.msiAborted(EVTQ_MSI, 0x77, MsiSource.EVENT_QUEUE));
        assertEquals(1L << 5, gerror(h)); // toggled: GERROR != GERRORN, active
        assertEquals(0, gerrorn(h));
        assertEquals(1, h.host.count(Interrupts.GERROR));
        assertArrayEquals(new long[] {GERROR_MSI, 0x33}, h.host.msis.get(1)); // the GERROR interrupt
        assertEquals(MsiSource.GERROR, h.host.msiSources.get(1));

        // A second abort while the error is active changes nothing (§6.3 SMMU_GERROR).
        h.smmu.msiAborted(EVTQ_MSI, 0x77, MsiSource.EVENT_QUEUE);
        assertEquals(1L << 5, gerror(h));
        assertEquals(1, h.host.count(Interrupts.GERROR));
        assertEquals(2, h.host.msis.size());

        // Acknowledged (GERRORN := GERROR), then a new abort toggles GERROR back: active again.
        h.write(GERRORN.offset(), 1L << 5);
        assertEquals(gerror(h), gerrorn(h));
        h.smmu.msiAborted(EVTQ_MSI, 0x77, MsiSource.EVENT_QUEUE);
        assertEquals(0, gerror(h));
        assertEquals(1L << 5, gerrorn(h));
        assertEquals(2, h.host.count(Interrupts.GERROR));
    }

    @Test
    void anAbortedGerrorMsiActivatesMsiGerrorAbtErrWithoutAnotherGerrorMsi() {
        Harness h = withMsis();
        h.cmd(new long[] {0xff, 0}); // CERROR_ILL: CMDQ_ERR and the GERROR MSI
        assertEquals(1L, gerror(h));
        assertArrayEquals(new long[] {GERROR_MSI, 0x33}, h.host.msis.get(0));
        assertEquals(MsiSource.GERROR, h.host.msiSources.get(0));
        assertEquals("MSI_GERROR_ABT_ERR", h.smmu.msiAborted(GERROR_MSI, 0x33, MsiSource.GERROR));
        assertEquals(1L | (1L << 7), gerror(h));
        assertEquals(0, gerrorn(h));
        // §7.5.1: MSI_GERROR_ABT_ERR triggers no GERROR interrupt, neither MSI nor wired.
        assertEquals(1, h.host.msis.size());
        assertEquals(1, h.host.count(Interrupts.GERROR));
    }

    @Test
    void anAbortedCmdSyncMsiActivatesMsiCmdqAbtErr() {
        Harness h = withMsis();
        h.cmd(Command.build(Command.Op.CMD_SYNC).set(Command.SYNC_CS, Command.CS_IRQ).set(Command.SYNC_MSIDATA, 0x21)
                .set(Command.SYNC_MSIADDR, SYNC_MSI >>> 2).command());
        assertArrayEquals(new long[] {SYNC_MSI, 0x21}, h.host.msis.get(0));
        assertEquals(MsiSource.CMD_SYNC, h.host.msiSources.get(0));
        assertEquals("MSI_CMDQ_ABT_ERR", h.smmu.msiAborted(SYNC_MSI, 0x21, MsiSource.CMD_SYNC));
        assertEquals(1L << 4, gerror(h));
        assertEquals(MsiSource.GERROR, h.host.msiSources.get(1));
        // The command queue goes on (only CMDQ_ERR halts it, §7.1).
        int cons = (int) h.read(CMDQ_CONS.offset());
        h.sync();
        assertEquals(cons + 1, (int) h.read(CMDQ_CONS.offset()));
    }

    @Test
    void anAbortedPriQueueMsiActivatesMsiPriqAbtErr() {
        Harness h = withMsis();
        assertTrue(h.smmu.pageRequest(new PageRequest(0x42, 7, 0x1234_5000L, 0x1a5, true, true, true, false, true)));
        assertArrayEquals(new long[] {PRIQ_MSI, 0x55}, h.host.msis.get(0));
        assertEquals(MsiSource.PRI_QUEUE, h.host.msiSources.get(0));
        assertEquals("MSI_PRIQ_ABT_ERR", h.smmu.msiAborted(PRIQ_MSI, 0x55, MsiSource.PRI_QUEUE));
        assertEquals(1L << 6, gerror(h));
    }

    @Test
    void abortsThatNameNoSmmuMsiChangeNothing() {
        Harness h = withMsis();
        assertNull(h.smmu.msiAborted(0x9_0000_0000L, 1, MsiSource.OTHER));
        assertEquals(0, gerror(h));
        // SMMU_IDR0.MSI == 0: this SMMU sends no MSIs, so none can abort.
        Harness d = new Harness(Smmuv3Profile.DEFAULT).enable();
        assertNull(d.smmu.msiAborted(EVTQ_MSI, 0, MsiSource.EVENT_QUEUE));
        assertEquals(0, gerror(d));
        assertEquals(0, d.host.irqs.size());
    }

    @Test
    void anMsiToGuestRamIsStoredThereAndNeverReachesTheHost() {
        Harness h = new Harness(Smmuv3Profile.MAX);
        h.write64(EVENTQ_IRQ_CFG0.offset(), 0x50_0000L);
        h.write(EVENTQ_IRQ_CFG1.offset(), 0xabcd);
        h.enable();
        h.smmu.translate(1 << 30, -1, 0, DmaAccess.READ);
        assertEquals(0xabcd, h.mem.get32(0x50_0000L));
        assertEquals(0, h.host.msis.size());
        assertEquals(0, gerror(h));
    }

    @Test
    void serviceFailureModeStopsTheSmmuUntilReset() {
        Harness h = withMsis();
        long[] cd = Harness.cd(0, 1);
        Cd.S.set(cd, 1);
        long root = h.tables.s1Root();
        h.tables.map(root, 0x1000, 0x2000, PageTables.S1_RW);
        Cd.TTB0.set(cd, root >>> 4);
        h.cd(Harness.CDS, cd);
        long[] ste = Harness.s1Ste(Harness.CDS, 0);
        Ste.EATS.set(ste, 1);
        h.ste(SID, ste);
        DmaResult.Stalled st = assertInstanceOf(DmaResult.Stalled.class, h.smmu.translate(SID, -1, 0x5000,
                DmaAccess.READ));
        h.events();

        h.host.invalidations.clear();
        assertTrue(h.smmu.enterServiceFailureMode());
        assertEquals(java.util.List.of(dev.iommuemu.dma.IotlbInvalidation.all()), h.host.invalidations);
        assertFalse(h.smmu.enterServiceFailureMode()); // already in it
        assertEquals(1L << 8, gerror(h)); // SFM_ERR active
        assertEquals(0, gerrorn(h));
        assertEquals(1, h.host.count(Interrupts.GERROR));
        // The held stall is terminated.
        assertEquals("stall sid=2 stag=" + st.stag() + " retry=false", h.endpoints.calls.get(0));
        // Transactions are terminated without a record; ATS completes with CA; PRI is discarded.
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(1 << 30, -1, 0, DmaAccess.READ));
        assertEquals(AtsResponse.Status.CA, h.smmu.atsTranslate(SID, -1, 0x1000, DmaAccess.READ).status());
        assertNull(h.smmu.speculate(SID, -1, 0x1000, DmaAccess.READ)); // nothing for the VMM to cache
        assertFalse(h.smmu.pageRequest(new PageRequest(0x42, 7, 0x1234_5000L, 0x1a5, true, true, true, false, true)));
        assertEquals(0, h.rawEvents().size());
        // The command queue is not consumed: CONS stays where it was.
        long cons = h.read(CMDQ_CONS.offset());
        h.sync();
        assertEquals(cons, h.read(CMDQ_CONS.offset()));
        // Acknowledging SFM_ERR does not leave the mode.
        h.write(GERRORN.offset(), 1L << 8);
        assertEquals(gerror(h), gerrorn(h));
        assertTrue(h.smmu.serviceFailureMode());
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, 0x1000, DmaAccess.READ));
        assertEquals(cons, h.read(CMDQ_CONS.offset()));
        // A reset does: power-on state, GERROR clear.
        h.smmu.reset();
        assertFalse(h.smmu.serviceFailureMode());
        assertEquals(0, gerror(h));
        assertEquals(0, gerrorn(h));
    }

    @Test
    void cmdqpErrIsNeverSetWithoutEcmdq() {
        // §6.3 SMMU_GERROR.CMDQP_ERR reports an ECMDQ error (SMMU_IDR1.ECMDQ == 1, SMMUv3.3): this
        // model has no ECMDQ, so after every other error path the bit stays 0.
        Harness h = withMsis();
        h.cmd(new long[] {0xff, 0});
        h.smmu.msiAborted(GERROR_MSI, 0x33, MsiSource.GERROR);
        h.smmu.enterServiceFailureMode();
        assertFalse(GERROR_CMDQP_ERR.isSet(gerror(h)));
        assertEquals(0b1_1000_0001L, gerror(h));
    }

    @Test
    void aStallEnabledFaultWithTheEventQueueDisabledStallsAndIsRecordedOnceEnabled() {
        // §7.2.1: events caused by stalled transactions are not discarded when the Event queue is
        // not writable (EVENTQEN == 0 included); the record is written when it becomes writable.
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long[] cd = Harness.cd(0, 1);
        Cd.S.set(cd, 1);
        long root = h.tables.s1Root();
        h.tables.map(root, 0x1000, 0x2000, PageTables.S1_RW);
        Cd.TTB0.set(cd, root >>> 4);
        h.cd(Harness.CDS, cd);
        h.ste(SID, Harness.s1Ste(Harness.CDS, 0));
        h.write(CR0.offset(), CR0_CMDQEN.mask() | CR0_SMMUEN.mask()); // EVENTQEN = 0
        DmaResult.Stalled st = assertInstanceOf(DmaResult.Stalled.class,
                h.smmu.translate(SID, -1, 0x5000, DmaAccess.READ));
        assertEquals(1, h.smmu.stats().stalled());
        assertEquals(0, Q_PTR.get(h.read(EVENTQ_PROD.offset()))); // nothing written while disabled
        assertEquals(0, h.host.count(Interrupts.EVTQ));
        // A terminating fault meanwhile is discarded (§7.2.1), not held.
        h.smmu.translate(1 << 30, -1, 0, DmaAccess.READ);
        // Enabling the queue writes the stall record, byte for byte: F_TRANSLATION, Stall, STAG.
        h.write(CR0.offset(), CR0_CMDQEN.mask() | CR0_EVENTQEN.mask() | CR0_SMMUEN.mask());
        List<long[]> recs = h.rawEvents();
        assertEquals(1, recs.size());
        assertArrayEquals(new long[] {0x10 | ((long) SID << 32), (1L << 31) | (1L << 35) | (2L << 40) | st.stag(),
            0x5000, 0}, recs.get(0));
        assertEquals(1, h.host.count(Interrupts.EVTQ));
        assertEquals(0, gerror(h));
        // Resolved as usual.
        h.cmd(Command.build(Command.Op.CMD_RESUME).set(Command.SID, SID).set(Command.RESUME_STAG, st.stag())
                .set(Command.RESUME_AC, Command.RESUME_RETRY).command());
        assertEquals("stall sid=2 stag=" + st.stag() + " retry=true", h.endpoints.calls.get(0));
        // A stall terminated while the queue is disabled never gets a record.
        h.write(CR0.offset(), CR0_CMDQEN.mask() | CR0_SMMUEN.mask());
        DmaResult.Stalled st2 = assertInstanceOf(DmaResult.Stalled.class,
                h.smmu.translate(SID, -1, 0x6000, DmaAccess.READ));
        h.cmd(Command.build(Command.Op.CMD_STALL_TERM).set(Command.SID, SID).command());
        assertEquals("stall sid=2 stag=" + st2.stag() + " retry=false", h.endpoints.calls.get(1));
        h.write(CR0.offset(), CR0_CMDQEN.mask() | CR0_EVENTQEN.mask() | CR0_SMMUEN.mask());
        assertEquals(0, h.rawEvents().size());
    }
}
