package dev.iommuemu.iommufd;

import static dev.iommuemu.iommufd.VsmmuFixture.*;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.domain.IommuCore;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.pagetable.testing.ReferenceWalker;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** A guest-owned stage 1 over a host nest parent, through iommufd and the emulated SMMUv3. */
class NestingTest {
    static final long VA = 0x4000_0000L;

    @Test
    void hwInfoOffersOnlyTheNestingFieldsAndNothingWithoutStage2() {
        HwInfo i = HwInfo.of(Smmuv3Profile.MAX).get();
        long idr0 = IDR0_S1P.prep(1) | IDR0_TTF.prep(2) | IDR0_COHACC.prep(1) | IDR0_ASID16.prep(1) | IDR0_CD2L.prep(1)
                | IDR0_TTENDIAN.prep(2) | IDR0_STALL_MODEL.prep(0) | IDR0_TERM_MODEL.prep(1) | IDR0_ST_LEVEL.prep(1);
        assertEquals(idr0, i.idr()[0] & 0xffff_ffffL, "no S2P, HTTU, Hyp, ATS, PRI, MSI, VMID16, BTM");
        assertEquals(IDR1_SIDSIZE.prep(20) | IDR1_SSIDSIZE.prep(20), i.idr()[1]);
        assertEquals(0, i.idr()[2]);
        // BBML (2 on MAX, an SMMUv3.2: IHI 0070 §3.21.1.1) is offered; PPS and FWB are not.
        assertEquals(IDR3_RIL.prep(1) | IDR3_BBML.prep(2), i.idr()[3], "PPS and MPAM are not offered");
        assertEquals(0, i.idr()[4]);
        assertEquals(IDR5_GRAN4K.prep(1) | IDR5_GRAN16K.prep(1) | IDR5_GRAN64K.prep(1), i.idr()[5],
                "no OAS, no STALL_MAX");
        assertEquals(Smmuv3Profile.MAX.iidr(), i.iidr());
        assertEquals(Smmuv3Profile.MAX.aidr(), i.aidr());
        assertEquals(0, i.flags());
        assertEquals(new HwInfo.Entry("IDR0.ST_LEVEL", "[28:27]", 1), i.entries().stream()
                .filter(e -> e.name().equals("IDR0.ST_LEVEL")).findFirst().get());
        assertEquals(Errno.ENODEV, HwInfo.of(Smmuv3Profile.S1_ONLY).error());
        assertEquals(Errno.ENODEV, HwInfo.of(Smmuv3Profile.S2_ONLY).error());
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.DEFAULT);
        assertEquals(Errno.ENOENT, f.fd.hwInfo(999).error());
        assertTrue(f.fd.hwInfo(f.devId).isOk());
    }

    @Test
    void nestedTranslationsAgreeWithTheReferenceWalkAndFaultsGoWhereTheyBelong() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.MAX);
        int veq = f.fd.allocVeventq(f.viommuId, 64).get();
        Random rnd = new Random(7);
        for (int i = 0; i < 32; i++) {
            long attrs = rnd.nextInt(4) == 0 ? PageTableBuilder.S1_RW | PageTableBuilder.S1_RO : PageTableBuilder.S1_RW
                    | PageTableBuilder.S1_USER;
            // Pages 0-23 land in guest RAM, 24-31 beyond it (stage 2 faults); 32-39 unmapped (stage 1).
            long ipa = i < 24 ? 0x60_0000L + i * 4096L : GUEST_RAM + i * 4096L;
            f.s1.map(VA + i * 4096L, ipa, 3, attrs);
        }
        int nested = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), 0).get();
        assertNull(f.fd.attach(f.devId, nested));
        long[] ste = f.core.host().ste(SID);
        assertEquals(Ste.CONFIG_NESTED, Ste.CONFIG.getInt(ste));
        assertEquals(f.viommu.vmid(), Ste.S2VMID.getInt(ste));
        assertEquals(CD_IPA, Ste.S1CONTEXTPTR.inPlace(ste), "the guest's IPA, fetched through stage 2");
        ReferenceWalker ref = new ReferenceWalker(f.mem, 48);
        DmaAccess[] accesses = {DmaAccess.READ, DmaAccess.WRITE};
        int s1Faults = 0;
        int s2Faults = 0;
        for (int n = 0; n < 400; n++) {
            long va = VA + rnd.nextInt(40) * 4096L + rnd.nextInt(4096);
            DmaAccess acc = accesses[rnd.nextInt(2)];
            WalkResult want = ref.translate(f.s1.stage1Config(), f.s2Config(), va, acc);
            DmaResult got = f.fd.dma(SID, -1, va, acc);
            List<Vevent> vev = f.fd.readVevents(veq, 8).get();
            List<EventRecord> host = f.core.takeHostEvents();
            if (want instanceof Translation t) {
                assertEquals(t.outputAddress(), ((DmaResult.Translated) got).entry().translate(va));
                assertTrue(vev.isEmpty() && host.isEmpty());
                continue;
            }
            TranslationFault tf = (TranslationFault) want;
            assertInstanceOf(DmaResult.Aborted.class, got, tf.toString());
            if (tf.stage() == 1) {
                s1Faults++;
                assertEquals(1, vev.size(), tf.toString());
                assertTrue(host.isEmpty());
                EventRecord e = EventRecord.decode(vev.get(0).evt());
                assertEquals(VSID, e.streamId(), "the guest's StreamID");
                assertFalse(e.s2());
                assertEquals(va, e.inputAddr());
                assertEquals(tf.type().name().equals("PERMISSION") ? EventType.F_PERMISSION : EventType.F_TRANSLATION,
                        e.type());
            } else {
                s2Faults++;
                assertTrue(vev.isEmpty(), "stage 2 faults stay with the host");
                assertEquals(1, host.size());
                assertEquals(SID, host.get(0).streamId());
                assertTrue(host.get(0).s2());
                assertEquals(tf.ipa() & ~0xfffL, host.get(0).ipa(), "the record holds IPA[51:12]");
            }
        }
        assertTrue(s1Faults > 20 && s2Faults > 20, s1Faults + " / " + s2Faults);
        assertEquals(0, f.core.host().commandErrors());
    }

    @Test
    void vsteValidationIsExact() {
        long v = Ste.V.prep(1);
        long s1 = v | Ste.CONFIG.prep(Ste.CONFIG_S1);
        Object[][] vectors = {
            // word 0, word 1, flags, expected errno (null: accepted)
            {s1, 0L, 1, Errno.EOPNOTSUPP},
            {0L, 0L, 2, Errno.EOPNOTSUPP},
            {s1 | Ste.S1FMT.prep(1) | Ste.S1CDMAX.prep(5) | Ste.S1CONTEXTPTR.prep(0x1234), 0L, 0, null},
            {v | Ste.CONFIG.prep(Ste.CONFIG_BYPASS), 0L, 0, null},
            {v | Ste.CONFIG.prep(Ste.CONFIG_ABORT), 0L, 0, null},
            {v | Ste.CONFIG.prep(Ste.CONFIG_S2), 0L, 0, Errno.EIO},
            {v | Ste.CONFIG.prep(Ste.CONFIG_NESTED), 0L, 0, Errno.EIO},
            {v | Ste.CONFIG.prep(0b001), 0L, 0, Errno.EIO},
            {s1 | (1L << 56), 0L, 0, Errno.EIO},
            {s1, Ste.S1DSS.prep(2) | Ste.S1CIR.prep(1) | Ste.S1COR.prep(1) | Ste.S1CSH.prep(3)
                    | Ste.S1STALLD.prep(1) | Ste.EATS.prep(1), 0, null},
            {s1, 1L << (Ste.EATS.lsb() + 1), 0, Errno.EIO},
            {s1, Ste.STRW.prep(2), 0, Errno.EIO},
            {s1, Ste.DCP.prep(1), 0, Errno.EIO},
            {s1, Ste.SHCFG.prep(1), 0, Errno.EIO},
            {s1, 1L << 8, 0, Errno.EIO},
            {-1L & ~v, -1L, 0, null}, // V = 0: everything else ignored, an abort STE
        };
        for (Object[] t : vectors) {
            var r = ArmSmmuv3Ste.validate(new long[] {(Long) t[0], (Long) t[1]}, (Integer) t[2]);
            assertEquals(t[3], r.error(), "0x" + Long.toHexString((Long) t[0]) + " 0x" + Long.toHexString((Long) t[1]));
        }
        assertArrayEquals(new long[2], ArmSmmuv3Ste.validate(new long[] {-1L & ~v, -1L}, 0).get());
        assertEquals(Errno.EINVAL, ArmSmmuv3Ste.validate(new long[3], 0).error());
    }

    @Test
    void guestAbortAndBypassConfigsBecomeAbortAndStage2Only() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.DEFAULT);
        int abort = f.fd.allocHwptNested(f.viommuId, 0, new long[] {0, 0}, 0).get();
        assertNull(f.fd.attach(f.devId, abort));
        assertEquals(Ste.CONFIG_ABORT, Ste.CONFIG.getInt(f.core.host().ste(SID)));
        assertInstanceOf(DmaResult.Aborted.class, f.fd.dma(SID, -1, 0x1000, DmaAccess.READ));
        int bypass = f.fd.allocHwptNested(f.viommuId, 0,
                new long[] {Ste.V.prep(1) | Ste.CONFIG.prep(Ste.CONFIG_BYPASS), 0}, 0).get();
        assertNull(f.fd.attach(f.devId, bypass));
        assertEquals(Ste.CONFIG_S2, Ste.CONFIG.getInt(f.core.host().ste(SID)));
        assertEquals(pa(0x1234), ((DmaResult.Translated) f.fd.dma(SID, -1, 0x1234, DmaAccess.WRITE)).entry()
                .translate(0x1234), "the guest's bypass is its IPA space");
    }

    @Test
    void nestingErrnoPaths() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.DEFAULT);
        VsmmuFixture other = new VsmmuFixture(Smmuv3Profile.DEFAULT);
        int foreign = other.fd.allocHwptNested(other.viommuId, 0, guestSte(), 0).get();
        // Another instance's domains (handed across by a confused VMM) are EINVAL at attach.
        assertEquals(Errno.EINVAL, f.core.attach(f.core.device(SID), other.core.blocking()));
        assertNull(other.fd.attach(other.devId, foreign));
        assertEquals(Errno.EINVAL, f.core.attach(f.core.device(SID), other.core.device(SID).domain()));
        int fresh = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), 0).get();
        assertNull(f.fd.attach(f.devId, fresh), "a fresh domain on the right instance succeeds");
        // A vIOMMU needs a nest parent.
        int s1 = f.fd.allocHwptPaging(f.devId, 0).get();
        assertEquals(Errno.EINVAL, f.fd.allocViommu(f.devId, s1).error());
        assertEquals(Errno.EOPNOTSUPP, f.fd.allocHwptPaging(f.devId, 2).error());
        assertEquals(Errno.ENOENT, f.fd.allocViommu(f.devId, 12345).error());
        assertEquals(Errno.ENOENT, f.fd.attach(f.devId, f.viommuId), "a vIOMMU is not a hwpt");
        // vDEVICEs: one per virtual ID and per device.
        assertEquals(Errno.EEXIST, f.fd.allocVdevice(f.viommuId, f.devId, 0x99).error());
        assertEquals(Errno.EINVAL, f.fd.allocVdevice(f.viommuId, f.devId, 1L << 32).error());
        assertEquals(Errno.EEXIST, f.fd.allocVeventq(f.viommuId, 4).isOk() ? f.fd.allocVeventq(f.viommuId, 4).error()
                : null);
        // A second iommufd cannot bind a device the first owns.
        Iommufd second = new Iommufd(f.core);
        assertEquals(Errno.EPERM, second.bind(SID).error());
        assertEquals(Errno.ENODEV, second.bind(33).error());
        // Profiles without stage 1 have nothing to nest; out of VMIDs is ENOSPC.
        VsmmuFixture few = new VsmmuFixture(Smmuv3Profile.DEFAULT);
        IommuCore c = few.core;
        while (c.allocVmid().isOk()) {
            // use them all
        }
        assertEquals(Errno.ENOSPC, few.fd.allocViommu(few.devId, few.parentId).error());
    }

    @Test
    void pasidsInUseMakeNestedAttachEbusy() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.MAX);
        var core = f.core;
        var dev = core.device(SID);
        var s1 = core.allocPaging(1, false).get();
        assertNull(core.attach(dev, core.identity()));
        assertNull(core.setPasid(dev, 3, s1));
        int nested = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), 0).get();
        assertEquals(Errno.EBUSY, f.fd.attach(f.devId, nested));
        assertNull(core.setPasid(dev, 3, null));
        assertNull(f.fd.attach(f.devId, nested));
        assertEquals(Errno.EINVAL, core.setPasid(dev, 3, s1), "a nested RID domain carries no host CD table");
        assertNull(s1.map(0, 0x1000, 0x1000, HostPageTable.IOMMU_READ));
    }
}
