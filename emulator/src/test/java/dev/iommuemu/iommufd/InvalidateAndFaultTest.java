package dev.iommuemu.iommufd;

import static dev.iommuemu.iommufd.VsmmuFixture.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import org.junit.jupiter.api.Test;

/** IOMMU_HWPT_INVALIDATE of guest commands, vEVENT queue overflow, and stalls through the fault queue. */
class InvalidateAndFaultTest {
    static final long VA = 0x4000_0000L;
    /** Non-global (nG), as Linux maps user/DMA pages: tagged with the ASID, so TLBI_NH_ASID reaches them. */
    static final long RW = PageTableBuilder.S1_RW | PageTableBuilder.S1_USER
            | dev.iommuemu.pagetable.Descriptor.NG.prep(1);

    static long out(VsmmuFixture f, long va) {
        return ((DmaResult.Translated) f.fd.dma(SID, -1, va, DmaAccess.READ)).entry().translate(va);
    }

    static long[] cmds(Command.Builder... bs) {
        long[] w = new long[bs.length * 2];
        for (int i = 0; i < bs.length; i++) {
            long[] c = bs[i].words();
            w[2 * i] = c[0];
            w[2 * i + 1] = c[1];
        }
        return w;
    }

    static Command.Builder nhVa(long va) {
        return Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, ASID).set(Command.TLBI_VMID, 0x3)
                .set(Command.TLBI_ADDR, va >>> 12);
    }

    private static VsmmuFixture nested(Smmuv3Profile p, int pages) {
        VsmmuFixture f = new VsmmuFixture(p);
        for (int i = 0; i < pages; i++) {
            f.s1.map(VA + i * 4096L, 0x60_0000L + i * 4096L, 3, RW);
        }
        int h = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), 0).get();
        assertNull(f.fd.attach(f.devId, h));
        return f;
    }

    @Test
    void guestTlbisGetTheVmidAndStopAtTheFirstBadCommand() {
        VsmmuFixture f = nested(Smmuv3Profile.MAX, 4);
        for (int i = 0; i < 4; i++) {
            assertEquals(pa(0x60_0000L + i * 4096L), out(f, VA + i * 4096L));
            f.s1.map(VA + i * 4096L, 0x70_0000L + i * 4096L, 3, RW); // the guest remaps, TLB still stale
        }
        assertEquals(pa(0x60_0000L), out(f, VA), "stale until the guest invalidates");
        // NH_VA (the guest's VMID field is replaced by the vIOMMU's), then a CFGI_CD with an unknown
        // vSID: one handled, EIO, and the NH_VA after it is not run.
        Iommufd.InvalidateResult r = f.fd.invalidate(f.viommuId, cmds(nhVa(VA),
                Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, 0x77), nhVa(VA + 4096)));
        assertEquals(new Iommufd.InvalidateResult(Errno.EIO, 1), r);
        assertEquals(pa(0x70_0000L), out(f, VA));
        assertEquals(pa(0x60_1000L), out(f, VA + 4096), "the command after the bad one was not run");
        // Commands a guest may not send: CFGI_STE, S12_VMALL, an unknown opcode.
        assertEquals(new Iommufd.InvalidateResult(Errno.EIO, 0), f.fd.invalidate(f.viommuId,
                cmds(Command.build(Command.Op.CMD_CFGI_STE).set(Command.SID, VSID))));
        assertEquals(new Iommufd.InvalidateResult(Errno.EIO, 1), f.fd.invalidate(f.viommuId,
                cmds(nhVa(VA + 4096), Command.build(Command.Op.CMD_TLBI_S12_VMALL))));
        assertEquals(pa(0x70_1000L), out(f, VA + 4096));
        assertEquals(new Iommufd.InvalidateResult(Errno.EIO, 0), f.fd.invalidate(f.viommuId, new long[] {0xff, 0}));
        assertEquals(new Iommufd.InvalidateResult(Errno.EINVAL, 0), f.fd.invalidate(f.viommuId, new long[3]));
        assertEquals(new Iommufd.InvalidateResult(Errno.ENOENT, 0), f.fd.invalidate(9999, new long[2]));
        // NSNH_ALL becomes NH_ALL for this VMID only.
        assertEquals(pa(0x60_2000L), out(f, VA + 2 * 4096));
        assertEquals(new Iommufd.InvalidateResult(null, 1), f.fd.invalidate(f.viommuId,
                cmds(Command.build(Command.Op.CMD_TLBI_NSNH_ALL))));
        assertEquals(pa(0x70_2000L), out(f, VA + 2 * 4096));
        // NH_ASID and NH_ALL with a bogus VMID still hit this vIOMMU's entries.
        assertEquals(pa(0x70_3000L), out(f, VA + 3 * 4096));
        f.s1.map(VA + 3 * 4096L, 0x71_3000L, 3, RW);
        assertEquals(pa(0x70_3000L), out(f, VA + 3 * 4096));
        assertEquals(new Iommufd.InvalidateResult(null, 1), f.fd.invalidate(f.viommuId, cmds(Command.build(
                Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, ASID).set(Command.TLBI_VMID, 0xffff))));
        assertEquals(pa(0x71_3000L), out(f, VA + 3 * 4096));
        // CFGI_CD with the guest's vSID: a new CD (another table) takes effect only after it.
        PageTableBuilder other = PageTableBuilder.stage1(f.mem, new PageTableBuilder.Bump(0x40_0000L, 0x10_0000L),
                dev.iommuemu.pagetable.Granule.G4K, 16, 48, 48).tableWriter(VsmmuFixture::pa);
        other.map(VA, 0x7f_0000L, 3, RW);
        f.guestCd(CD_IPA, VsmmuFixture.cd(other.ttb(), 9, false));
        assertEquals(pa(0x70_0000L), out(f, VA), "the CD is cached");
        assertEquals(new Iommufd.InvalidateResult(null, 1), f.fd.invalidate(f.viommuId,
                cmds(Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, VSID).set(Command.CFGI_LEAF, true))));
        assertEquals(new Iommufd.InvalidateResult(null, 1), f.fd.invalidate(f.viommuId, cmds(Command.build(
                Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, 9))));
        assertEquals(pa(0x7f_0000L), out(f, VA));
        // ATC_INV reaches the physical endpoint with the physical StreamID.
        assertEquals(new Iommufd.InvalidateResult(null, 2), f.fd.invalidate(f.viommuId, cmds(
                Command.build(Command.Op.CMD_ATC_INV).set(Command.SID, VSID).set(Command.ATC_ADDR, VA >>> 12),
                Command.build(Command.Op.CMD_CFGI_CD_ALL).set(Command.SID, VSID))));
        assertEquals(List.of("atc " + SID + " 0x" + Long.toHexString(VA)), f.endpointCalls);
        assertEquals(0, f.core.host().commandErrors());
    }

    @Test
    void commandsTheSmmuLacksAreEio() {
        VsmmuFixture f = nested(Smmuv3Profile.DEFAULT, 1);
        assertEquals(new Iommufd.InvalidateResult(Errno.EIO, 0), f.fd.invalidate(f.viommuId,
                cmds(Command.build(Command.Op.CMD_ATC_INV).set(Command.SID, VSID))), "DEFAULT has no ATS");
    }

    @Test
    void veventQueueNumbersEventsAndReportsLostOnes() {
        VsmmuFixture f = nested(Smmuv3Profile.DEFAULT, 0);
        int q = f.fd.allocVeventq(f.viommuId, 2).get();
        for (int i = 0; i < 4; i++) {
            assertInstanceOf(DmaResult.Aborted.class, f.fd.dma(SID, -1, VA + i * 4096L, DmaAccess.WRITE));
        }
        List<Vevent> got = f.fd.readVevents(q, 10).get();
        assertEquals(3, got.size());
        assertEquals(0, got.get(0).sequence());
        assertEquals(1, got.get(1).sequence());
        assertTrue(got.get(2).lost());
        assertEquals(2, got.get(2).sequence(), "the first lost event's number");
        EventRecord e = EventRecord.decode(got.get(1).evt());
        assertEquals(EventType.F_TRANSLATION, e.type());
        assertEquals(VSID, e.streamId());
        assertEquals(VA + 4096, e.inputAddr());
        assertTrue(!e.rnw());
        f.fd.dma(SID, -1, VA, DmaAccess.READ);
        got = f.fd.readVevents(q, 10).get();
        assertEquals(1, got.size());
        assertEquals(4, got.get(0).sequence(), "lost events consumed 2 and 3");
        assertEquals(0, got.get(0).flags());
        assertTrue(f.core.takeHostEvents().isEmpty());
        // A bad guest CD is the guest's problem too: C_BAD_CD with the vSID.
        long[] bad = VsmmuFixture.cd(f.s1.ttb(), ASID, false);
        dev.iommuemu.smmuv3.cd.Cd.AA64.set(bad, 0);
        f.guestCd(CD_IPA, bad);
        f.fd.invalidate(f.viommuId, cmds(Command.build(Command.Op.CMD_CFGI_CD_ALL).set(Command.SID, VSID)));
        f.fd.dma(SID, -1, VA, DmaAccess.READ);
        e = EventRecord.decode(f.fd.readVevents(q, 10).get().get(0).evt());
        assertEquals(EventType.C_BAD_CD, e.type());
        assertEquals(VSID, e.streamId());
    }

    @Test
    void stallsGoToTheFaultQueueAndPageResponsesResumeThem() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.MAX);
        f.guestCd(CD_IPA, VsmmuFixture.cd(f.s1.ttb(), ASID, true)); // CD.S: stall on faults
        int veq = f.fd.allocVeventq(f.viommuId, 8).get();
        int fq = f.fd.allocFaultQueue();
        int h = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), fq).get();
        assertNull(f.fd.attach(f.devId, h));
        DmaResult r = f.fd.dma(SID, -1, VA + 0x123, DmaAccess.WRITE);
        DmaResult.Stalled st = assertInstanceOf(DmaResult.Stalled.class, r);
        List<PageFault> faults = f.fd.readFaults(fq, 8).get();
        assertEquals(1, faults.size());
        PageFault pf = faults.get(0);
        assertEquals(new PageFault(PageFault.LAST_PAGE, f.devId, 0, st.stag(), PageFault.PERM_WRITE, VA, 0, pf.cookie()),
                pf);
        assertTrue(f.fd.readVevents(veq, 8).get().isEmpty(), "a recoverable fault is not a vEVENT");
        // The guest pages in and answers SUCCESS: CMD_RESUME retry; the retried DMA translates.
        f.s1.map(VA, 0x60_0000L, 3, RW);
        assertNull(f.fd.pageResponse(fq, pf.cookie(), FaultQueue.RESP_SUCCESS));
        assertEquals(List.of("stall " + SID + " " + st.stag() + " true"), f.endpointCalls);
        assertEquals(pa(0x60_0123L), ((DmaResult.Translated) f.fd.dma(SID, -1, VA + 0x123, DmaAccess.WRITE)).entry()
                .translate(VA + 0x123));
        assertEquals(Errno.EINVAL, f.fd.pageResponse(fq, pf.cookie(), FaultQueue.RESP_SUCCESS), "answered already");
        // INVALID and FAILURE terminate.
        for (int code : new int[] {FaultQueue.RESP_INVALID, FaultQueue.RESP_FAILURE}) {
            f.endpointCalls.clear();
            DmaResult.Stalled s2 = (DmaResult.Stalled) f.fd.dma(SID, -1, VA + 0x5000, DmaAccess.READ);
            PageFault p2 = f.fd.readFaults(fq, 8).get().get(0);
            assertEquals(PageFault.PERM_READ, p2.perm());
            assertEquals(Errno.EINVAL, f.fd.pageResponse(fq, p2.cookie(), 7), "no such response code");
            assertNull(f.fd.pageResponse(fq, p2.cookie(), code));
            assertEquals(List.of("stall " + SID + " " + s2.stag() + " false"), f.endpointCalls);
        }
        assertEquals(Errno.EINVAL, f.fd.pageResponse(fq, 4242, FaultQueue.RESP_SUCCESS));
        assertEquals(Errno.ENOENT, f.fd.pageResponse(veq, 1, FaultQueue.RESP_SUCCESS));
        assertEquals(0, f.core.host().smmu().stats().stalled());
    }

    @Test
    void stallsWithoutAFaultQueueAreTerminatedAndStayWithTheHost() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.MAX);
        f.guestCd(CD_IPA, VsmmuFixture.cd(f.s1.ttb(), ASID, true));
        int h = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), 0).get();
        assertNull(f.fd.attach(f.devId, h));
        DmaResult.Stalled st = (DmaResult.Stalled) f.fd.dma(SID, -1, VA, DmaAccess.READ);
        assertEquals(List.of("stall " + SID + " " + st.stag() + " false"), f.endpointCalls);
        EventRecord e = f.core.takeHostEvents().get(0);
        assertTrue(e.stall());
        assertEquals(Ste.CONFIG_NESTED, Ste.CONFIG.getInt(f.core.host().ste(SID)));
    }

    @Test
    void priGroupsGoToTheFaultQueueWithOneCookieAndOneResponse() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.MAX);
        int fq = f.fd.allocFaultQueue();
        int h = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), fq).get();
        assertNull(f.fd.attach(f.devId, h));
        var smmu = f.core.host().smmu();
        assertTrue(smmu.pageRequest(new PageRequest(SID, 3, VA, 0x11, false, true, false, false, false)));
        assertTrue(smmu.pageRequest(new PageRequest(SID, 3, VA + 0x1000, 0x11, true, false, true, false, false)));
        List<PageFault> faults = f.fd.readFaults(fq, 8).get();
        assertEquals(2, faults.size());
        int cookie = faults.get(0).cookie();
        assertEquals(new PageFault(PageFault.PASID_VALID, f.devId, 3, 0x11, PageFault.PERM_READ, VA, 0, cookie),
                faults.get(0));
        assertEquals(new PageFault(PageFault.PASID_VALID | PageFault.LAST_PAGE, f.devId, 3, 0x11, PageFault.PERM_WRITE,
                VA + 0x1000, 0, cookie), faults.get(1), "one group, one cookie");
        assertEquals(Errno.EINVAL, f.fd.pageResponse(fq, cookie, 5));
        assertNull(f.fd.pageResponse(fq, cookie, FaultQueue.RESP_INVALID));
        assertEquals(List.of("pri " + SID + " 3 17 1"), f.endpointCalls, "CMD_PRI_RESP Invalid request");
        assertEquals(Errno.EINVAL, f.fd.pageResponse(fq, cookie, FaultQueue.RESP_SUCCESS), "answered already");
        // A group whose last request has not arrived cannot be answered yet.
        f.endpointCalls.clear();
        smmu.pageRequest(new PageRequest(SID, -1, VA, 0x12, false, true, false, false, false));
        int open = f.fd.readFaults(fq, 8).get().get(0).cookie();
        assertEquals(Errno.EINVAL, f.fd.pageResponse(fq, open, FaultQueue.RESP_SUCCESS));
        smmu.pageRequest(new PageRequest(SID, -1, VA + 0x2000, 0x12, true, true, false, false, false));
        assertEquals(open, f.fd.readFaults(fq, 8).get().get(0).cookie());
        assertNull(f.fd.pageResponse(fq, open, FaultQueue.RESP_SUCCESS));
        assertEquals(List.of("pri " + SID + " -1 18 0"), f.endpointCalls, "CMD_PRI_RESP Success, no PASID");
    }

    @Test
    void priWithoutAFaultQueueIsAnsweredFailureByTheHost() {
        VsmmuFixture f = nested(Smmuv3Profile.MAX, 0);
        f.core.host().smmu().pageRequest(new PageRequest(SID, -1, VA, 9, true, true, false, false, false));
        assertTrue(f.core.takeHostEvents().isEmpty());
        assertEquals(List.of("pri " + SID + " -1 9 15"), f.endpointCalls, "PCIe Response Failure");
    }

    @Test
    void aFullFaultQueueLeavesPageRequestsToTheHost() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.MAX);
        int fq = f.fd.allocFaultQueue();
        assertNull(f.fd.attach(f.devId, f.fd.allocHwptNested(f.viommuId, 0, guestSte(), fq).get()));
        var smmu = f.core.host().smmu();
        int n = FaultQueue.CAPACITY + 10;
        for (int i = 0; i < n; i++) {
            assertTrue(smmu.pageRequest(new PageRequest(SID, -1, VA, i & 0x1ff, true, true, false, false, false)));
            if (i % 16 == 15) {
                f.core.pollEvents(); // nobody reads the fault queue
            }
        }
        f.core.pollEvents();
        assertEquals(10, f.endpointCalls.size(), "the overflow is answered Response failure by the host");
        assertTrue(f.endpointCalls.get(0).endsWith(" 15"));
        assertEquals(FaultQueue.CAPACITY, f.fd.readFaults(fq, 4 * n).get().size());
        assertEquals(Errno.EINVAL, f.fd.allocVeventq(f.viommuId, Iommufd.MAX_VEVENTQ_DEPTH + 1).error());
        assertEquals(new Iommufd.InvalidateResult(Errno.EINVAL, 0),
                f.fd.invalidate(f.viommuId, new long[2 * Iommufd.MAX_COMMANDS + 2]));
    }

    @Test
    void aCommandTheSmmuRefusesIsEioAndTheHostQueueRunsOn() {
        VsmmuFixture f = nested(Smmuv3Profile.MAX, 1);
        assertEquals(pa(0x60_0000L), out(f, VA));
        f.s1.map(VA, 0x70_0000L, 3, RW);
        // IHI 0070 §4.4.1: TG 16KB with TTL 0b01 is CERROR_ILL; the host skips it and acknowledges.
        assertEquals(new Iommufd.InvalidateResult(Errno.EIO, 0), f.fd.invalidate(f.viommuId, cmds(nhVa(VA)
                .set(Command.TLBI_TG, 0b10).set(Command.TLBI_TTL, 0b01), nhVa(VA))));
        assertEquals(1, f.core.host().commandErrors());
        assertEquals(pa(0x60_0000L), out(f, VA), "nothing after the bad command ran");
        assertEquals(new Iommufd.InvalidateResult(null, 1), f.fd.invalidate(f.viommuId, cmds(nhVa(VA))));
        assertEquals(pa(0x70_0000L), out(f, VA), "the command queue runs on");
    }
}
