package dev.iommuemu.domain;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import org.junit.jupiter.api.Test;

/** The iommu-core attach/replace contract, with the exact errno of every path. */
class DomainAttachTest {
    static final long CARVE = 0x1000_0000L;
    static final int RW = HostPageTable.IOMMU_READ | HostPageTable.IOMMU_WRITE;

    static IommuCore core(Smmuv3Profile p, IommuCore.Options o) {
        return core(p, o, 0x1000_0000L);
    }

    static IommuCore core(Smmuv3Profile p, IommuCore.Options o, long carveSize) {
        SparseGuestMemory mem = new SparseGuestMemory(0, 1L << 40);
        return new IommuCore(new HostSmmu(mem, CARVE, carveSize, p, DmaHost.NONE, 6), o);
    }

    static long out(DmaResult r, long iova) {
        return ((DmaResult.Translated) r).entry().translate(iova);
    }

    @Test
    void probedDeviceIsInTheIdentityDomainAndBlockingAborts() {
        IommuCore c = core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT);
        Device d = c.probe(3, null).get();
        assertEquals(Ste.CONFIG_BYPASS, Ste.CONFIG.getInt(c.host().ste(3)));
        assertEquals(0x1234_5678L, out(c.dma(3, -1, 0x1234_5678L, DmaAccess.READ), 0x1234_5678L));
        assertNull(c.attach(d, c.blocking()));
        assertInstanceOf(DmaResult.Aborted.class, c.dma(3, -1, 0x1000, DmaAccess.READ));
        assertEquals(Ste.CONFIG_ABORT, Ste.CONFIG.getInt(c.host().ste(3)));
        assertTrue(c.takeHostEvents().isEmpty(), "Config abort records nothing (IHI 0070 §5.2)");
    }

    @Test
    void stage1AndStage2PagingDomainsTranslateAndUnmapInvalidates() {
        IommuCore c = core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT);
        Device d = c.probe(1, null).get();
        for (int stage = 1; stage <= 2; stage++) {
            PagingDomain p = c.allocPaging(stage, false).get();
                assertNull(p.map(0x4000_0000L, 0x8_0000_0000L + stage * 0x10000L, 0x2000, RW));
            assertEquals(Errno.EEXIST, p.map(0x4000_1000L, 0, 0x1000, RW));
            assertEquals(Errno.EINVAL, p.map(0x4000_0800L, 0, 0x1000, RW), "unaligned");
            assertEquals(Errno.EINVAL, p.map(0, 0, HostPageTable.MAX_CALL + 0x1000, RW), "too much for one call");
            assertEquals(Errno.EINVAL, p.map(0x5000_0000L, 0, 0x1000, 0), "no permission");
            assertEquals(Errno.EINVAL, p.map(1L << 48, 0, 0x1000, RW), "beyond the input range");
            assertNull(c.attach(d, p));
            assertEquals(stage == 1 ? Ste.CONFIG_S1 : Ste.CONFIG_S2, Ste.CONFIG.getInt(c.host().ste(1)));
            assertEquals(1, p.tag(), "first ASID / VMID after the reserved 0");
            assertEquals(0x8_0000_1234L + stage * 0x10000L, out(c.dma(1, -1, 0x4000_1234L, DmaAccess.WRITE), 0x4000_1234L));
            assertEquals(0x1000, p.unmap(0x4000_1000L, 0x1000));
            assertInstanceOf(DmaResult.Aborted.class, c.dma(1, -1, 0x4000_1234L, DmaAccess.READ),
                    "the cached translation went with the TLBI");
            assertEquals(EventType.F_TRANSLATION, c.takeHostEvents().get(0).type());
        }
        assertEquals(0, c.host().commandErrors());
    }

    /**
     * The host driver acknowledges an event queue overflow (IHI 0070 §7.4: EVENTQ_CONS.OVACKFLG =
     * EVENTQ_PROD.OVFLG) when it drains, so a later overflow is flagged again.
     */
    @Test
    void hostAcknowledgesEventQueueOverflows() {
        IommuCore c = core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT);
        Device d = c.probe(1, null).get();
        assertNull(c.attach(d, c.allocPaging(1, false).get()));
        int depth = 1 << HostSmmu.EVTQ_LOG2;
        for (round = 1; round <= 2; round++) {
            for (int i = 0; i <= depth; i++) { // one more F_TRANSLATION than the queue holds, undrained
                c.host().smmu().translate(1, -1, 0x9000_0000L + 0x1000L * i, DmaAccess.READ);
            }
            long prod = c.host().smmu().mmioRead(dev.iommuemu.smmuv3.registers.Smmuv3Regs.EVENTQ_PROD.offset(), 4);
            assertEquals(round % 2, dev.iommuemu.smmuv3.registers.Smmuv3Regs.Q_PROD_OVFLG.get(prod), "overflow " + round + " flagged");
            assertEquals(depth, c.takeHostEvents().size(), "the records that fitted");
            long cons = c.host().smmu().mmioRead(dev.iommuemu.smmuv3.registers.Smmuv3Regs.EVENTQ_CONS.offset(), 4);
            assertEquals(round % 2, dev.iommuemu.smmuv3.registers.Smmuv3Regs.Q_CONS_OVACKFLG.get(cons), "acknowledged");
        }
    }

    private int round;

    @Test
    void anotherInstancesDomainIsEinvalThenAFreshOneSucceeds() {
        IommuCore a = core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT);
        IommuCore b = core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT);
        Device d = a.probe(2, null).get();
        long[] before = a.host().ste(2);
        assertEquals(Errno.EINVAL, a.attach(d, b.allocPaging(1, false).get()));
        assertEquals(Errno.EINVAL, a.attach(d, b.blocking()));
        assertArrayEquals(before, a.host().ste(2), "a failed attach changes nothing");
        assertNull(a.attach(d, a.allocPaging(1, false).get()));
    }

    @Test
    void runningOutOfAsidsIsEnospcAndTheOldDomainStays() {
        IommuCore c = core(Smmuv3Profile.DEFAULT, new IommuCore.Options(2, 2, 4, true));
        Device d1 = c.probe(1, null).get();
        Device d2 = c.probe(2, null).get();
        assertNull(c.attach(d1, c.allocPaging(1, false).get()));
        PagingDomain second = c.allocPaging(1, false).get();
        assertNull(second.map(0, 0x9000_0000L, 0x1000, RW));
        assertEquals(Errno.ENOSPC, c.attach(d2, second));
        assertEquals(0x55L, out(c.dma(2, -1, 0x55, DmaAccess.READ), 0x55), "still identity");
        assertNull(c.attach(d2, c.allocPaging(2, false).get()), "VMID 1 is free");
        assertEquals(Errno.ENOSPC, c.attach(d1, c.allocPaging(2, false).get()), "VMIDs are out too");
        assertNull(c.attach(d2, c.identity()), "identity never fails");
    }

    @Test
    void noHostMemoryForTheCdTableIsEnomem() {
        // Stream table (64 STEs) 4 KiB + command queue 4 KiB + event queue 8 KiB, then one table root.
        IommuCore c = core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT, 0x5000);
        Device d = c.probe(1, null).get();
        PagingDomain p = c.allocPaging(1, false).get();
        assertEquals(0, c.host().allocator().remaining());
        assertEquals(Errno.ENOMEM, c.attach(d, p));
        assertEquals(Errno.ENOMEM, c.allocPaging(2, false).error());
        assertEquals(Ste.CONFIG_BYPASS, Ste.CONFIG.getInt(c.host().ste(1)));
        assertNull(c.attach(d, c.blocking()), "blocking never fails");
    }

    @Test
    void pasidsInUseMakeStage2Ebusy() {
        IommuCore c = core(Smmuv3Profile.MAX, IommuCore.Options.DEFAULT);
        Device d = c.probe(4, null).get();
        PagingDomain rid = c.allocPaging(1, false).get();
        PagingDomain pasidDom = c.allocPaging(1, false).get();
        PagingDomain s2 = c.allocPaging(2, false).get();
        assertNull(pasidDom.map(0x1000, 0xa000_0000L, 0x1000, RW));
        assertNull(c.attach(d, rid));
        assertNull(c.setPasid(d, 5, pasidDom));
        assertEquals(0xa000_0010L, out(c.dma(4, 5, 0x1010, DmaAccess.READ), 0x1010));
        assertEquals(Errno.EBUSY, c.attach(d, s2));
        assertEquals(Errno.EINVAL, c.setPasid(d, 0, pasidDom), "PASID 0 is the RID");
        assertEquals(Errno.EINVAL, c.setPasid(d, 16, pasidDom), "beyond the 16-entry CD table");
        assertEquals(Errno.EINVAL, c.setPasid(d, 6, s2), "only stage 1 domains take PASIDs");
        // Blocking keeps the PASID working and terminates the rest (S1DSS terminate).
        assertNull(c.attach(d, c.blocking()));
        assertEquals(Ste.S1DSS_TERMINATE, Ste.S1DSS.getInt(c.host().ste(4)));
        assertInstanceOf(DmaResult.Aborted.class, c.dma(4, -1, 0x1010, DmaAccess.READ));
        assertEquals(0xa000_0010L, out(c.dma(4, 5, 0x1010, DmaAccess.READ), 0x1010));
        assertNull(c.setPasid(d, 5, null));
        assertNull(c.attach(d, s2), "no PASIDs left: stage 2 attaches");
        assertEquals(Ste.CONFIG_S2, Ste.CONFIG.getInt(c.host().ste(4)));
        assertEquals(Errno.ENODEV, core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT).setPasid(
                d, 1, pasidDom), "no substreams (SSIDSIZE 0) on DEFAULT: no PASID anywhere");
    }

    @Test
    void enodevForStreamsBeyondTheTableAndReleasedDevices() {
        IommuCore c = core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT);
        assertEquals(Errno.ENODEV, c.probe(64, null).error());
        assertEquals(Errno.EEXIST, c.probe(1, null).isOk() ? c.probe(1, null).error() : null);
        Device d = c.device(1);
        c.release(d);
        assertEquals(Errno.ENODEV, c.attach(d, c.identity()));
        assertEquals(Errno.ENODEV, c.attach(d, c.allocPaging(1, false).get()));
        assertEquals(Errno.ENODEV, c.claimDmaOwner(d, "x"));
        assertInstanceOf(DmaResult.Aborted.class, c.dma(1, -1, 0, DmaAccess.READ));
        assertEquals(EventType.C_BAD_STE, c.takeHostEvents().get(0).type());
    }

    @Test
    void groupsShareOneDomainAndOwnershipBlocksAtOnce() {
        IommuCore c = core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT);
        Device a = c.probe(8, "g").get();
        Device b = c.probe(9, "g").get();
        assertEquals(a.group(), b.group());
        Object vfio = "vfio";
        assertNull(c.claimDmaOwner(a, vfio));
        assertEquals(c.blocking(), b.domain(), "a claim moves the whole group to blocking at once");
        assertInstanceOf(DmaResult.Aborted.class, c.dma(9, -1, 0x10, DmaAccess.READ));
        assertEquals(Errno.EPERM, c.claimDmaOwner(b, "someone else"));
        assertNull(c.claimDmaOwner(b, vfio), "the same owner may claim again");
        PagingDomain p = c.allocPaging(2, false).get();
        assertNull(p.map(0x2000, 0x7_0000_0000L, 0x1000, RW));
        assertNull(c.attach(a, p));
        assertEquals(p, b.domain());
        assertEquals(0x7_0000_0008L, out(c.dma(9, -1, 0x2008, DmaAccess.READ), 0x2008), "b shares a's domain");
        assertEquals(Errno.EPERM, c.releaseDmaOwner(a, "someone else"));
        assertNull(c.releaseDmaOwner(a, vfio));
        assertEquals(p, a.domain(), "one claim is still held");
        assertNull(c.releaseDmaOwner(b, vfio));
        assertEquals(c.identity(), a.domain(), "the last release returns to the default domain");
        assertEquals(0x2008L, out(c.dma(8, -1, 0x2008, DmaAccess.READ), 0x2008));
    }

    @Test
    void unsupportedStagesAreEopnotsupp() {
        IommuCore s1 = core(Smmuv3Profile.S1_ONLY, IommuCore.Options.DEFAULT);
        assertEquals(Errno.EOPNOTSUPP, s1.allocPaging(2, false).error());
        assertEquals(Errno.EOPNOTSUPP, s1.allocPaging(2, true).error());
        IommuCore s2 = core(Smmuv3Profile.S2_ONLY, IommuCore.Options.DEFAULT);
        assertEquals(Errno.EOPNOTSUPP, s2.allocPaging(1, false).error());
        assertEquals(Errno.EOPNOTSUPP, s2.allocPaging(2, true).error(), "no stage 1 to nest");
        assertEquals(Errno.EOPNOTSUPP, core(Smmuv3Profile.DEFAULT, IommuCore.Options.DEFAULT)
                .allocPaging(1, true).error(), "a nest parent is stage 2");
    }

    @Test
    void aDmaOwnerClaimEndsPasidAttachmentsForGood() {
        IommuCore c = core(Smmuv3Profile.MAX, IommuCore.Options.DEFAULT);
        Device d = c.probe(2, null).get();
        PagingDomain rid = c.allocPaging(1, false).get();
        PagingDomain pasidDom = c.allocPaging(1, false).get();
        assertNull(pasidDom.map(0x1000, 0xb000_0000L, 0x1000, RW));
        assertNull(c.attach(d, rid));
        assertNull(c.setPasid(d, 5, pasidDom));
        assertEquals(0xb000_0000L, out(c.dma(2, 5, 0x1000, DmaAccess.READ), 0x1000));
        assertNull(c.claimDmaOwner(d, "vfio"));
        assertTrue(d.pasids().isEmpty());
        assertInstanceOf(DmaResult.Aborted.class, c.dma(2, 5, 0x1000, DmaAccess.READ));
        assertNull(c.attach(d, rid), "the owner attaches a stage 1 domain again");
        assertInstanceOf(DmaResult.Aborted.class, c.dma(2, 5, 0x1000, DmaAccess.READ),
                "the old PASID's CD is gone, not revived");
        assertEquals(EventType.C_BAD_CD, c.takeHostEvents().get(0).type());
    }
}
