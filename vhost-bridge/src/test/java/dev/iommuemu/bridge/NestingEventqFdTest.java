package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge;
import dev.iommuemu.bridge.nesting.IommufdCall;
import dev.iommuemu.bridge.protocol.NestingPayloads;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.session.BridgeEvent;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.testing.OpenFds;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * IOMMUFD_SET_EVENTQ_FD (docs/protocol.md §4.6) through the socket: the eventfd a VMM gives a
 * vEVENT or fault queue is signalled once per record that becomes readable, when the host model
 * handles its SMMU's Event / PRI queue interrupt (before the reply of the request that caused it),
 * without the VMM reading first; detached, it is not; refusals are the model's errnos and close the
 * descriptor that came with them.
 */
class NestingEventqFdTest extends NestingVmmBase {
    private final List<BridgeEvent> published = new CopyOnWriteArrayList<>();
    private int dev;
    private int viommu;

    @Override
    void registry(SessionRegistry registry) {
        registry.events().subscribe(published::add);
    }

    /**
     * Host open, device bound, nest parent mapping IPA [0, 8 MiB) at GPA_BASE, a vIOMMU with the
     * device as guest StreamID VSID, guest tables mapping only VA page 0.
     */
    private void vsmmu() throws Exception {
        vmm.addMemory(CARVE, 16 << 20);
        vmm.addMemory(GPA_BASE, GUEST_RAM);
        ok(new IommufdCall.OpenHost(CARVE, 16 << 20, 6));
        ok(new IommufdCall.Probe(SID, ""));
        dev = ok(new IommufdCall.Bind(SID));
        int parent = ok(new IommufdCall.AllocHwpt(dev, 0, 1, null, 0));
        ok(new IommufdCall.Map(parent, 0, GPA_BASE, GUEST_RAM, true, true, false));
        viommu = ok(new IommufdCall.AllocViommu(dev, parent));
        ok(new IommufdCall.AllocVdevice(viommu, dev, VSID));
        guestCd(CD_IPA, false);
        guestCd(CD_STALL_IPA, true);
        guestTables();
        guestMap(0, 0x60_0000L);
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }

    private static String le64(long v) {
        return hex(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
    }

    private static String le32(int v) {
        return hex(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
    }

    @Test
    void aVeventqEventfdIsSignalledOncePerEventBeforeTheRead() throws Exception {
        vsmmu();
        int veq = ok(new IommufdCall.AllocVeventq(viommu, 8));
        int efd = vmm.eventqEventFd(veq);
        try {
            int hwpt = ok(new IommufdCall.AllocHwpt(0, viommu, 0, new long[] {1 | (0b101L << 1) | CD_IPA, 0}, 0));
            ok(new IommufdCall.Attach(dev, hwpt));
            assertEquals(GPA_BASE + 0x60_0010L, dma(VA + 0x10, false).output());
            assertEquals(0, VmmClient.awaitEventFd(efd, 50), "a translation records nothing");
            // A stage 1 translation fault: routed by the host's evtq interrupt handling before the
            // reply to IOMMU_TRANSLATE, so the count is there before anything was read.
            assertEquals(Payloads.ABORTED, dma(VA + 0x1000, false).status());
            assertEquals(1, VmmClient.awaitEventFd(efd, 0), "one record readable");
            NestingPayloads.Reply rv = vmm.iommufd(new IommufdCall.ReadVevents(veq, 0));
            assertEquals(0, rv.errno());
            assertEquals(1, rv.count());
            // iommufd_vevent_header {flags 0, sequence 0} + iommu_vevent_arm_smmuv3 evt[4]: F_TRANSLATION
            // (IHI 0070 §7.3.4: EventNumber 0x10, StreamID = the guest's, RnW 1 (bit 99), CLASS IN
            // 0b10 (bits 105:104), InputAddr) + the reserved u64.
            assertEquals(le32(0) + le32(0) + le64(0x10 | (VSID << 32)) + le64((1L << 35) | (2L << 40)) + le64(VA + 0x1000)
                    + le64(0) + le64(0), hex(rv.records()));
            assertEquals(0, VmmClient.awaitEventFd(efd, 50), "the read did not signal");
            // Two faults, two records, count 2; a stage 2 fault stays with the host: no signal.
            guest64(TABLES_IPA + 0x3000 + 16, GUEST_RAM + 0x1000 | S1_PAGE);
            assertEquals(Payloads.ABORTED, dma(VA + 0x3000, true).status());
            assertEquals(Payloads.ABORTED, dma(VA + 0x4000, true).status());
            assertEquals(Payloads.ABORTED, dma(VA + 0x2000, false).status());
            assertEquals(2, VmmClient.awaitEventFd(efd, 0));
            List<Vevent> ev = vmm.iommufd(new IommufdCall.ReadVevents(veq, 0)).vevents();
            assertEquals(List.of(1, 2), ev.stream().map(Vevent::sequence).toList());
            assertTrue(published.stream().anyMatch(e -> e.kind().equals(BridgeEvent.VEVENT)
                    && e.detail().equals("queue=" + veq + " records=1")), published.toString());
            // Detached: records still queue and read, the eventfd stays quiet.
            assertEquals(0, vmm.setEventqFd(veq, -1).errno());
            assertEquals(Payloads.ABORTED, dma(VA + 0x1000, false).status());
            assertEquals(0, VmmClient.awaitEventFd(efd, 100));
            ev = vmm.iommufd(new IommufdCall.ReadVevents(veq, 0)).vevents();
            assertEquals(1, ev.size());
            assertEquals(3, ev.get(0).sequence());
        } finally {
            VmmClient.closeFd(efd);
        }
    }

    @Test
    void aFaultQueueEventfdIsSignalledForAStallAndAPriRequest() throws Exception {
        vsmmu();
        int fq = ok(new IommufdCall.AllocFaultQueue());
        int efd = vmm.eventqEventFd(fq);
        try {
            int stalling = ok(new IommufdCall.AllocHwpt(0, viommu, 0, new long[] {1 | (0b101L << 1) | CD_STALL_IPA, 0}, fq));
            ok(new IommufdCall.Attach(dev, stalling));
            Payloads.TranslateResult st = dma(VA + 0x3008, true);
            assertEquals(Payloads.STALLED, st.status());
            assertEquals(1, VmmClient.awaitEventFd(efd, 0), "the stall record, before any read");
            NestingPayloads.Reply rf = vmm.iommufd(new IommufdCall.ReadFaults(fq, 0));
            assertEquals(1, rf.count());
            // struct iommu_hwpt_pgfault: flags LAST_PAGE, dev_id, pasid 0, grpid = STAG, perm WRITE,
            // reserved, addr (the page), length 0, cookie 1 (the queue's first).
            assertEquals(le32(PageFaultBits.LAST_PAGE) + le32(dev) + le32(0) + le32(st.stag()) + le32(PageFaultBits.PERM_WRITE)
                    + le32(0) + le64(VA + 0x3000) + le32(0) + le32(1), hex(rf.records()));
            assertEquals(0, vmm.iommufd(new IommufdCall.PageResponse(fq, 1, 2)).errno());
            // A PRI Page Request (last of group 9, read+write) of the same device: the priq interrupt.
            vmm.pageRequest(SID, Payloads.NO_SUBSTREAM, VA + 0x5123,
                    Payloads.PAGE_REQUEST_READ | Payloads.PAGE_REQUEST_WRITE | Payloads.PAGE_REQUEST_LAST, 9);
            assertEquals(1, VmmClient.awaitEventFd(efd, 0), "the page request, before any read");
            rf = vmm.iommufd(new IommufdCall.ReadFaults(fq, 0));
            assertEquals(le32(PageFaultBits.LAST_PAGE) + le32(dev) + le32(0) + le32(9)
                    + le32(PageFaultBits.PERM_READ | PageFaultBits.PERM_WRITE) + le32(0) + le64(VA + 0x5000) + le32(0) + le32(2),
                    hex(rf.records()));
            assertTrue(published.stream().anyMatch(e -> e.kind().equals(BridgeEvent.IOPF)
                    && e.detail().equals("queue=" + fq + " records=1")), published.toString());
            // Detached: the next stall is queued and read, without a signal.
            assertEquals(0, vmm.setEventqFd(fq, -1).errno());
            Payloads.TranslateResult st2 = dma(VA + 0x6000, false);
            assertEquals(Payloads.STALLED, st2.status());
            assertEquals(0, VmmClient.awaitEventFd(efd, 100));
            List<PageFault> f = vmm.iommufd(new IommufdCall.ReadFaults(fq, 0)).faults();
            assertEquals(1, f.size());
            assertEquals(st2.stag(), f.get(0).grpid());
        } finally {
            VmmClient.closeFd(efd);
        }
    }

    /** iommu_hwpt_pgfault's flag and perm bits (include/uapi/linux/iommufd.h), stated here independently. */
    private static final class PageFaultBits {
        static final int LAST_PAGE = 1 << 1;
        static final int PERM_READ = 1 << 0;
        static final int PERM_WRITE = 1 << 1;
    }

    @Test
    void refusalsAreTheModelsErrnosAndCloseTheDescriptor() throws Exception {
        int efd = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        try {
            assertEquals(ENODEV, vmm.setEventqFd(1, efd).errno(), "no host opened");
            vsmmu();
            int veq = ok(new IommufdCall.AllocVeventq(viommu, 4));
            int fq = ok(new IommufdCall.AllocFaultQueue());
            // The descriptor set with the client's own eventfd open; every refused attach must leave it so.
            Map<Integer, String> before = OpenFds.settled();
            assertEquals(ENOENT, vmm.setEventqFd(fq + 100, efd).errno(), "no such object");
            assertEquals(ENOENT, vmm.setEventqFd(fq + 100, -1).errno(), "detaching no such object");
            assertEquals(EINVAL, vmm.setEventqFd(viommu, efd).errno(), "a vIOMMU is not an event queue");
            assertEquals(EINVAL, vmm.setEventqFd(dev, efd).errno(), "nor a device");
            assertEquals(before, OpenFds.awaitEqual(before), "the refused messages' descriptors were closed");
            // Accepted, replaced and detached: the daemon's copies go, the client's stays.
            assertEquals(0, vmm.setEventqFd(veq, efd).errno());
            assertEquals(0, vmm.setEventqFd(fq, efd).errno());
            assertEquals(before.size() + 2, OpenFds.snapshot().size(), "the daemon holds one copy per queue");
            assertEquals(0, vmm.setEventqFd(veq, efd).errno());
            assertEquals(0, vmm.setEventqFd(veq, -1).errno());
            assertEquals(0, vmm.setEventqFd(fq, -1).errno());
            assertEquals(before, OpenFds.awaitEqual(before), "replaced and detached eventfds were closed");
            // Flags other than NOFD: an error reply (a malformed request), the connection goes on.
            RequestRefusedException bad = assertThrows(RequestRefusedException.class,
                    () -> vmm.call(Request.IOMMUFD_SET_EVENTQ_FD, new byte[] {(byte) veq, 0, 0, 0, 1, 0, 0, 0}, efd));
            assertEquals(EINVAL, bad.errno());
            assertEquals(before, OpenFds.awaitEqual(before));
            assertEquals(0, vmm.setEventqFd(veq, -1).errno(), "the connection went on");
            // A missing descriptor breaks the framing rule: error reply EBADF, connection closed.
            RequestRefusedException missing = assertThrows(RequestRefusedException.class,
                    () -> vmm.call(Request.IOMMUFD_SET_EVENTQ_FD, new NestingPayloads.EventqFd(veq, false).encode()));
            assertEquals(ProtocolException.EBADF, missing.errno());
        } finally {
            LibC.closeQuietly(efd);
        }
    }
}
