package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.nesting.IommufdCall;
import dev.iommuemu.bridge.protocol.NestingPayloads;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.testing.FakeVmm;
import java.nio.file.Path;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The nesting messages of docs/protocol.md §4.6 through the socket: a VMM (VmmClient, guest RAM as
 * memfds) builds a vSMMU for its guest on the session's SMMUv3 as the host's physical IOMMU, the
 * same calls as NestingApiTest makes over protobuf: nest parent, vIOMMU, vDEVICE, a nested hwpt
 * from the guest's STE words, attach, IOMMU_TRANSLATE, invalidation, a vEVENT, a page fault.
 */
class NestingVmmTest extends NestingVmmBase {
    @Test
    void aVmmBuildsAVsmmuOverTheSocket() throws Exception {
        vmm.addMemory(CARVE, 16 << 20);
        vmm.addMemory(GPA_BASE, GUEST_RAM);
        assertEquals(ENODEV, errno(new IommufdCall.Bind(SID)), "no host opened yet");
        ok(new IommufdCall.OpenHost(CARVE, 16 << 20, 6));
        RequestRefusedException twice = assertThrows(RequestRefusedException.class,
                () -> fd(new IommufdCall.OpenHost(CARVE, 16 << 20, 0)));
        assertEquals(EINVAL, twice.errno(), "one host per SMMU: an error reply, the connection goes on");
        ok(new IommufdCall.Probe(SID, ""));
        assertEquals(ENODEV, errno(new IommufdCall.Probe(64, "g")), "beyond the stream table");
        int dev = ok(new IommufdCall.Bind(SID));
        assertEquals(EEXIST, errno(new IommufdCall.Bind(SID)));
        NestingPayloads.Reply hw = fd(new IommufdCall.HwInfo(dev));
        assertEquals(1, hw.count());
        assertEquals(0x0c48_101aL, hw.hwInfo().idr()[0] & 0xffff_ffffL,
                "S1P TTF=2 COHACC ASID16 CD2L TTENDIAN=2 STALL_MODEL=0 TERM_MODEL ST_LEVEL=1");
        // The nest parent: IPA [0, 8 MiB) -> host GPA_BASE.
        int parent = ok(new IommufdCall.AllocHwpt(dev, 0, 1, null, 0));
        ok(new IommufdCall.Map(parent, 0, GPA_BASE, GUEST_RAM, true, true, false));
        int viommu = ok(new IommufdCall.AllocViommu(dev, parent));
        int s1hwpt = ok(new IommufdCall.AllocHwpt(dev, 0, 0, null, 0));
        assertEquals(EINVAL, errno(new IommufdCall.AllocViommu(dev, s1hwpt)), "a vIOMMU needs a nest parent");
        ok(new IommufdCall.AllocVdevice(viommu, dev, VSID));
        int veq = ok(new IommufdCall.AllocVeventq(viommu, 8));
        guestCd(CD_IPA, false);
        guestTables();
        guestMap(0, 0x60_0000L);
        guestMap(2, GUEST_RAM + 0x1000); // beyond the nest parent: a stage 2 fault
        long ste0 = 1 | (0b101L << 1) | CD_IPA; // V, Config S1, S1ContextPtr
        assertEquals(EOPNOTSUPP, errno(new IommufdCall.AllocHwpt(0, viommu, 1, new long[] {ste0, 0}, 0)));
        assertEquals(EIO, errno(new IommufdCall.AllocHwpt(0, viommu, 0, new long[] {ste0, 1L << 30}, 0)), "STRW");
        int hwpt = ok(new IommufdCall.AllocHwpt(0, viommu, 0, new long[] {ste0, 0}, 0));
        assertEquals(ENOENT, errno(new IommufdCall.Attach(dev, viommu)));
        ok(new IommufdCall.Attach(dev, hwpt));
        // IOMMU_TRANSLATE walks both stages: VA -> IPA 0x60_0000 -> host GPA_BASE + IPA.
        Payloads.TranslateResult t = dma(VA + 0x123, true);
        assertEquals(Payloads.TRANSLATED, t.status());
        assertEquals(GPA_BASE + 0x60_0123L, t.output());
        // A stage 1 fault reaches the vEVENT queue with the guest's StreamID; a stage 2 one does not.
        assertEquals(Payloads.ABORTED, dma(VA + 0x1000, false).status());
        NestingPayloads.Reply rv = fd(new IommufdCall.ReadVevents(veq, 0));
        assertEquals(0, rv.errno());
        List<Vevent> ev = rv.vevents();
        assertEquals(1, ev.size());
        assertEquals(0, ev.get(0).flags());
        assertEquals(0, ev.get(0).sequence());
        assertEquals(0x10, ev.get(0).evt()[0] & 0xff, "F_TRANSLATION");
        assertEquals(VSID, ev.get(0).evt()[0] >>> 32, "the virtual StreamID");
        assertEquals(VA + 0x1000, ev.get(0).evt()[2], "InputAddr");
        assertEquals(Payloads.ABORTED, dma(VA + 0x2000, false).status());
        assertEquals(0, fd(new IommufdCall.ReadVevents(veq, 0)).count());
        assertEquals(ENOENT, errno(new IommufdCall.ReadVevents(veq + 100, 0)));
        // Guest invalidation: NH_VA for a remapped page, then a CFGI_STE it may not send (EIO, 1 handled).
        guestMap(0, 0x61_0000L);
        assertEquals(GPA_BASE + 0x60_0000L, dma(VA, false).output(), "stale TLB");
        NestingPayloads.Reply inv = fd(new IommufdCall.Invalidate(viommu, new long[] {0x12 | (3L << 48), VA, 0x03 | (VSID << 32), 0}));
        assertEquals(EIO, inv.errno());
        assertEquals(1, inv.handled());
        assertEquals(GPA_BASE + 0x61_0000L, dma(VA, false).output());
        // A recoverable fault: a stalling CD, a fault queue, a page response.
        guestCd(CD_STALL_IPA, true);
        int fq = ok(new IommufdCall.AllocFaultQueue());
        int stalling = ok(new IommufdCall.AllocHwpt(0, viommu, 0, new long[] {1 | (0b101L << 1) | CD_STALL_IPA, 0}, fq));
        ok(new IommufdCall.Attach(dev, stalling));
        Payloads.TranslateResult st = dma(VA + 0x3008, true);
        assertEquals(Payloads.STALLED, st.status());
        List<PageFault> faults = fd(new IommufdCall.ReadFaults(fq, 0)).faults();
        assertEquals(List.of(new PageFault(PageFault.LAST_PAGE, dev, 0, st.stag(), PageFault.PERM_WRITE, VA + 0x3000, 0,
                faults.get(0).cookie())), faults);
        guestMap(3, 0x62_0000L);
        assertEquals(EINVAL, errno(new IommufdCall.PageResponse(fq, faults.get(0).cookie(), 9)));
        ok(new IommufdCall.PageResponse(fq, faults.get(0).cookie(), 0));
        assertEquals(GPA_BASE + 0x62_0008L, dma(VA + 0x3008, true).output(), "the retried access translates");
        // Unmap answers the bytes it removed; detach goes to the blocking domain.
        NestingPayloads.Reply um = fd(new IommufdCall.Map(parent, 0x7f_0000L, 0, 0x1_0000L, false, false, true));
        assertEquals(0, um.errno());
        assertEquals(0x1_0000L, um.length());
        ok(new IommufdCall.Detach(dev));
        assertEquals(Payloads.ABORTED, dma(VA, false).status());
    }

    /** Before a host is opened every call but OPEN_HOST is ENODEV; payloads with bad fields are refused. */
    @Test
    void refusedCallsAreErrnosAndBadPayloadsErrors() throws Exception {
        assertEquals(ENODEV, errno(new IommufdCall.AllocFaultQueue()));
        byte[] badType = NestingPayloads.encode(new IommufdCall.AllocHwpt(1, 0, 0, null, 0));
        badType[16] = 2;
        RequestRefusedException e = assertThrows(RequestRefusedException.class, () -> vmm.call(Request.IOMMUFD_ALLOC_HWPT, badType));
        assertEquals(EINVAL, e.errno());
        byte[] badMap = NestingPayloads.encode(new IommufdCall.Map(1, 0, 0, 0x1000, true, false, false));
        badMap[4] = 8;
        e = assertThrows(RequestRefusedException.class, () -> vmm.call(Request.IOMMUFD_MAP_HWPT, badMap));
        assertEquals(EINVAL, e.errno());
        assertEquals(ENODEV, errno(new IommufdCall.HwInfo(1)), "the connection went on");
        assertTrue(Request.IOMMUFD_PAGE_RESPONSE.hasReply());
    }
}
