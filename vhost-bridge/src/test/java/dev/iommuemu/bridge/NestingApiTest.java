package dev.iommuemu.bridge;

import static dev.iommuemu.bridge.NestingVmmBase.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.client.ControlException;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.testing.TestDaemon;
import dev.iommuemu.proto.v1.AllocFaultQueue;
import dev.iommuemu.proto.v1.AllocHwpt;
import dev.iommuemu.proto.v1.AllocVdevice;
import dev.iommuemu.proto.v1.AllocVeventq;
import dev.iommuemu.proto.v1.AllocViommu;
import dev.iommuemu.proto.v1.AttachHwpt;
import dev.iommuemu.proto.v1.BindDevice;
import dev.iommuemu.proto.v1.FieldValue;
import dev.iommuemu.proto.v1.HwInfoRequest;
import dev.iommuemu.proto.v1.IommufdRequest;
import dev.iommuemu.proto.v1.IommufdResponse;
import dev.iommuemu.proto.v1.InvalidateRequest;
import dev.iommuemu.proto.v1.MapHwpt;
import dev.iommuemu.proto.v1.OpenHost;
import dev.iommuemu.proto.v1.PageFault;
import dev.iommuemu.proto.v1.PageResponseRequest;
import dev.iommuemu.proto.v1.ProbeDevice;
import dev.iommuemu.proto.v1.ReadFaults;
import dev.iommuemu.proto.v1.ReadVevents;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.Vevent;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A VMM-side test client that builds a vSMMU for its guest over the protobuf control API: the
 * session's SMMUv3 is the host's physical IOMMU; the guest's STE words, CD and stage 1 tables are
 * written in guest memory; the host's stage 2 is the nest parent. Every refused call asserts its
 * exact errno.
 */
class NestingApiTest {
    // CARVE, GPA_BASE, SID, VSID, VA, CD_IPA, TABLES_IPA, S1_PAGE, errnos: the same vSMMU as NestingVmmBase's

    private TestDaemon daemon;
    private ControlServer control;
    private Path controlPath;
    private ControlClient c;
    private long session;

    @BeforeEach
    void start() throws Exception {
        daemon = new TestDaemon("nest", 2000, new dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge.Factory());
        controlPath = FakeVmm.socketPath("nctl");
        control = new ControlServer(controlPath, daemon.registry, daemon.socket.toString());
        c = ControlClient.connect(controlPath);
    }

    @AfterEach
    void stop() throws Exception {
        c.close();
        control.close();
        daemon.close();
    }

    private static byte[] le64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    private void guest64(long ipa, long v) throws Exception {
        c.writeMemory(session, GPA_BASE + ipa, le64(v));
    }

    private IommufdResponse fd(IommufdRequest.Builder b) throws Exception {
        return c.iommufd(session, b);
    }

    private int ok(IommufdRequest.Builder b) throws Exception {
        IommufdResponse r = fd(b);
        assertEquals(0, r.getErrno(), b.toString());
        return r.getId();
    }

    /** A guest CD (IHI 0070 §5.4): 48-bit VA, 4KB granule, TTB0 at the guest's L0 table, ASID 3. */
    private void guestCd(long ipa, boolean stall) throws Exception {
        // T0SZ 16, EPD1, V, IPS 48-bit, AA64, S (stall), R, A, ASID 3
        long w0 = 16 | (1L << 30) | (1L << 31) | (5L << 32) | (1L << 41) | (stall ? 1L << 44 : 0) | (1L << 45)
                | (1L << 46) | (3L << 48);
        guest64(ipa, w0);
        guest64(ipa + 8, TABLES_IPA); // TTB0[51:4] in place
    }

    /** The guest's 4-level tables for VA: L0[0] -> L1, L1[1] -> L2, L2[0] -> L3, then pages. */
    private void guestTables() throws Exception {
        guest64(TABLES_IPA, TABLES_IPA + 0x1000 | 0b11);
        guest64(TABLES_IPA + 0x1000 + 8, TABLES_IPA + 0x2000 | 0b11);
        guest64(TABLES_IPA + 0x2000, TABLES_IPA + 0x3000 | 0b11);
    }

    private void guestMap(int page, long ipa) throws Exception {
        guest64(TABLES_IPA + 0x3000 + 8L * page, ipa | S1_PAGE);
    }

    /** The endpoint's access as DMA (Inject): Translate is a diagnostic that records nothing. */
    private TranslateResponse dma(long va, boolean write) throws Exception {
        return c.call(dev.iommuemu.proto.v1.ControlRequest.newBuilder().setInject(dev.iommuemu.proto.v1.InjectRequest.newBuilder()
                .setSession(session).setFault(dev.iommuemu.proto.v1.TranslateRequest.newBuilder().setStreamId(SID).setIova(va)
                        .setAccess(ControlClient.access(write, false, false))))).getTranslate();
    }

    @Test
    void nestingInfoIsTheOfferedIdrsAndEnodevWithoutStage2() throws Exception {
        long max = c.createSession("smmuv3", "max").getId();
        List<FieldValue> f = c.nestingInfo(max).getFieldsList();
        assertTrue(f.contains(FieldValue.newBuilder().setName("IDR0.ST_LEVEL").setBits("[28:27]").setValue(1).build()));
        assertTrue(f.contains(FieldValue.newBuilder().setName("IDR1.SSIDSIZE").setBits("[10:6]").setValue(20).build()));
        assertTrue(f.stream().noneMatch(x -> x.getName().contains("HTTU") || x.getName().contains("BTM")
                || x.getName().contains("MPAM")));
        long s1 = c.createSession("smmuv3", "s1-only").getId();
        ControlException e = assertThrows(ControlException.class, () -> c.nestingInfo(s1));
        assertEquals(ENODEV, e.errno());
    }

    @Test
    void aVmmBuildsAVsmmuForItsGuest() throws Exception {
        session = c.createSession("smmuv3", "max").getId();
        c.addMemory(session, CARVE, 16 << 20);
        c.addMemory(session, GPA_BASE, GUEST_RAM);
        assertEquals(ENODEV, fd(IommufdRequest.newBuilder().setBind(BindDevice.newBuilder().setStreamId(SID)))
                .getErrno(), "no host opened yet");
        ok(IommufdRequest.newBuilder().setOpenHost(OpenHost.newBuilder().setCarveBase(CARVE).setCarveSize(16 << 20)
                .setStreamTableLog2(6)));
        ControlException twice = assertThrows(ControlException.class, () -> fd(IommufdRequest.newBuilder()
                .setOpenHost(OpenHost.newBuilder().setCarveBase(CARVE).setCarveSize(16 << 20))));
        assertEquals(EINVAL, twice.errno(), "one host per SMMU");
        ok(IommufdRequest.newBuilder().setProbe(ProbeDevice.newBuilder().setStreamId(SID)));
        assertEquals(ENODEV, fd(IommufdRequest.newBuilder().setProbe(ProbeDevice.newBuilder().setStreamId(64)))
                .getErrno(), "beyond the stream table");
        assertEquals(ENODEV, fd(IommufdRequest.newBuilder().setBind(BindDevice.newBuilder().setStreamId(6)))
                .getErrno(), "not probed");
        int dev = ok(IommufdRequest.newBuilder().setBind(BindDevice.newBuilder().setStreamId(SID)));
        assertEquals(EEXIST, fd(IommufdRequest.newBuilder().setBind(BindDevice.newBuilder().setStreamId(SID)))
                .getErrno());
        IommufdResponse hw = fd(IommufdRequest.newBuilder().setHwInfo(HwInfoRequest.newBuilder().setDevId(dev)));
        assertEquals(0x0c48_101aL, hw.getHwInfo().getIdr(0) & 0xffff_ffffL,
                "S1P TTF=2 COHACC ASID16 CD2L TTENDIAN=2 STALL_MODEL=0 TERM_MODEL ST_LEVEL=1");
        // The host's stage 2 for the guest: IPA [0, 8 MiB) -> host GPA_BASE.
        int parent = ok(IommufdRequest.newBuilder().setAllocHwpt(AllocHwpt.newBuilder().setDevId(dev).setFlags(1)));
        ok(IommufdRequest.newBuilder().setMap(MapHwpt.newBuilder().setHwptId(parent).setIova(0).setPhys(GPA_BASE)
                .setLength(GUEST_RAM).setRead(true).setWrite(true)));
        int viommu = ok(IommufdRequest.newBuilder().setAllocViommu(AllocViommu.newBuilder().setDevId(dev)
                .setHwptId(parent)));
        int s1hwpt = ok(IommufdRequest.newBuilder().setAllocHwpt(AllocHwpt.newBuilder().setDevId(dev)));
        assertEquals(EINVAL, fd(IommufdRequest.newBuilder().setAllocViommu(AllocViommu.newBuilder().setDevId(dev)
                .setHwptId(s1hwpt))).getErrno(), "a vIOMMU needs a nest parent");
        ok(IommufdRequest.newBuilder().setAllocVdevice(AllocVdevice.newBuilder().setViommuId(viommu).setDevId(dev)
                .setVirtId(VSID)));
        int veq = ok(IommufdRequest.newBuilder().setAllocVeventq(AllocVeventq.newBuilder().setViommuId(viommu)
                .setDepth(8)));
        // The guest: CD, stage 1 tables, one page VA -> IPA 0x60_0000, and its STE words.
        guestCd(CD_IPA, false);
        guestTables();
        guestMap(0, 0x60_0000L);
        guestMap(2, GUEST_RAM + 0x1000); // beyond the nest parent: a stage 2 fault
        long ste0 = 1 | (0b101L << 1) | CD_IPA; // V, Config S1, S1ContextPtr
        AllocHwpt.Builder nested = AllocHwpt.newBuilder().setPtId(viommu).addVste(ste0).addVste(0);
        assertEquals(EOPNOTSUPP, fd(IommufdRequest.newBuilder().setAllocHwpt(nested.clone().setFlags(1))).getErrno());
        assertEquals(EIO, fd(IommufdRequest.newBuilder().setAllocHwpt(nested.clone().setVste(1, 1L << 30)))
                .getErrno(), "STRW is not the guest's");
        assertEquals(EIO, fd(IommufdRequest.newBuilder().setAllocHwpt(nested.clone().setVste(0, ste0 | 0b110L << 1)))
                .getErrno(), "Config nested is not the guest's");
        int hwpt = ok(IommufdRequest.newBuilder().setAllocHwpt(nested));
        assertEquals(ENOENT, fd(IommufdRequest.newBuilder().setAttach(AttachHwpt.newBuilder().setDevId(dev)
                .setHwptId(viommu))).getErrno());
        ok(IommufdRequest.newBuilder().setAttach(AttachHwpt.newBuilder().setDevId(dev).setHwptId(hwpt)));
        // Translations agree with the direct nested walk: VA -> IPA 0x60_0000 -> host GPA_BASE + IPA.
        assertEquals(GPA_BASE + 0x60_0123L, dma(VA + 0x123, true).getTranslated().getOutputAddress());
        // A stage 1 fault goes to the vIOMMU's event queue with the guest's StreamID...
        assertTrue(dma(VA + 0x1000, false).hasFault());
        List<Vevent> ev = fd(IommufdRequest.newBuilder().setReadVevents(ReadVevents.newBuilder().setVeventqId(veq)))
                .getVeventsList();
        assertEquals(1, ev.size());
        assertEquals(0, ev.get(0).getSequence());
        assertEquals(0x10, ev.get(0).getEvt(0) & 0xff, "F_TRANSLATION");
        assertEquals(VSID, ev.get(0).getEvt(0) >>> 32, "the virtual StreamID");
        assertEquals(VA + 0x1000, ev.get(0).getEvt(2), "InputAddr");
        // ...a stage 2 fault does not.
        assertTrue(dma(VA + 0x2000, false).hasFault());
        assertEquals(0, fd(IommufdRequest.newBuilder().setReadVevents(ReadVevents.newBuilder().setVeventqId(veq)))
                .getVeventsCount());
        // Guest invalidation: NH_VA for a remapped page, then a CFGI_STE it may not send.
        guestMap(0, 0x61_0000L);
        assertEquals(GPA_BASE + 0x60_0000L, dma(VA, false).getTranslated().getOutputAddress(), "stale TLB");
        long nhVa0 = 0x12 | (3L << 48);
        long nhVa1 = VA; // Address[63:12] in place
        IommufdResponse inv = fd(IommufdRequest.newBuilder().setInvalidate(InvalidateRequest.newBuilder()
                .setViommuId(viommu).addCmd(nhVa0).addCmd(nhVa1).addCmd(0x03 | (VSID << 32)).addCmd(0)));
        assertEquals(EIO, inv.getErrno());
        assertEquals(1, inv.getHandled());
        assertEquals(GPA_BASE + 0x61_0000L, dma(VA, false).getTranslated().getOutputAddress());
        // A recoverable fault: a new guest CD that stalls, a fault queue, a page response.
        guestCd(CD_STALL_IPA, true);
        int fq = ok(IommufdRequest.newBuilder().setAllocFaultQueue(AllocFaultQueue.newBuilder()));
        int stalling = ok(IommufdRequest.newBuilder().setAllocHwpt(AllocHwpt.newBuilder().setPtId(viommu)
                .addVste(1 | (0b101L << 1) | CD_STALL_IPA).addVste(0).setFaultId(fq)));
        ok(IommufdRequest.newBuilder().setAttach(AttachHwpt.newBuilder().setDevId(dev).setHwptId(stalling)));
        TranslateResponse st = dma(VA + 0x3008, true);
        assertTrue(st.hasStalled(), st.toString());
        List<PageFault> faults = fd(IommufdRequest.newBuilder().setReadFaults(ReadFaults.newBuilder().setFaultId(fq)))
                .getFaultsList();
        assertEquals(1, faults.size());
        PageFault pf = faults.get(0);
        assertEquals(2, pf.getFlags(), "LAST_PAGE");
        assertEquals(dev, pf.getDevId());
        assertEquals(st.getStalled().getStag(), pf.getGrpid());
        assertEquals(2, pf.getPerm(), "write");
        assertEquals(VA + 0x3000, pf.getAddr());
        guestMap(3, 0x62_0000L);
        assertEquals(EINVAL, fd(IommufdRequest.newBuilder().setPageResponse(PageResponseRequest.newBuilder()
                .setFaultId(fq).setCookie(pf.getCookie()).setCode(9))).getErrno());
        ok(IommufdRequest.newBuilder().setPageResponse(PageResponseRequest.newBuilder().setFaultId(fq)
                .setCookie(pf.getCookie()).setCode(0)));
        assertEquals(GPA_BASE + 0x62_0008L, dma(VA + 0x3008, true).getTranslated().getOutputAddress(),
                "the retried access translates");
        assertEquals(EINVAL, fd(IommufdRequest.newBuilder().setPageResponse(PageResponseRequest.newBuilder()
                .setFaultId(fq).setCookie(pf.getCookie()).setCode(0))).getErrno(), "answered already");
    }
}
