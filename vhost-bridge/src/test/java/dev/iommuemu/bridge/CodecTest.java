package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.protocol.BackendRequest;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.VhostUserHeader;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The codec against docs/protocol.md, byte for byte. */
class CodecTest {
    private static byte[] hex(String s) {
        return HexFormat.of().parseHex(s.replace(" ", ""));
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }

    @Test
    void requestNumbersAreVhostUsers() {
        // docs/interop/vhost-user.rst front-end message numbers
        assertEquals(1, Request.GET_FEATURES.code());
        assertEquals(5, Request.SET_MEM_TABLE.code());
        assertEquals(12, Request.SET_VRING_KICK.code());
        assertEquals(15, Request.GET_PROTOCOL_FEATURES.code());
        assertEquals(21, Request.SET_BACKEND_REQ_FD.code());
        assertEquals(24, Request.GET_CONFIG.code());
        assertEquals(36, Request.GET_MAX_MEM_SLOTS.code());
        assertEquals(37, Request.ADD_MEM_REG.code());
        assertEquals(38, Request.REM_MEM_REG.code());
        assertEquals(1024, Request.IOMMU_GET_INFO.code());
        assertEquals(1028, Request.IOMMU_TRANSLATE.code());
        assertEquals(1030, Request.IOMMU_SET_IRQ_FD.code());
        assertEquals(1024, BackendRequest.IOMMU_IOTLB_INVALIDATE.code());
        assertEquals(1025, BackendRequest.IOMMU_MSI.code());
        assertEquals(1026, BackendRequest.IOMMU_ATC_INVALIDATE.code());
        assertEquals(1027, BackendRequest.IOMMU_PRI_RESPONSE.code());
        assertEquals(1028, BackendRequest.IOMMU_STALL_RESOLVED.code());
        assertEquals(1031, Request.IOMMU_ATS_TRANSLATE.code());
        assertEquals(1032, Request.IOMMU_PRI_PAGE_REQUEST.code());
        assertEquals(1033, Request.IOMMU_SET_TRANSLATE_RING.code());
        assertEquals(null, Request.of(4));
    }

    @Test
    void headerEncodesLittleEndian() {
        VhostUserMessage m = VhostUserMessage.request(Request.GET_FEATURES.code(), false, new byte[0]);
        assertEquals("010000000100000000000000", hex(m.encode()));
        VhostUserMessage r = VhostUserMessage.reply(1, Payloads.u64(0x1_4000_0007L));
        assertEquals("01000000" + "05000000" + "08000000" + "0700004001000000", hex(r.encode()));
        VhostUserMessage a = VhostUserMessage.request(Request.IOMMU_MMIO_WRITE.code(), true,
                new Payloads.MmioWrite(0x44, 4, 0xdeadbeefL).encode());
        assertEquals("03040000" + "09000000" + "18000000" + "4400000000000000" + "04000000" + "00000000" + "efbeadde00000000", hex(a.encode()));
    }

    @Test
    void headerDecodeRejectsBadVersionFlagsAndSize() throws Exception {
        VhostUserHeader h = VhostUserHeader.decode(hex("25000000 09000000 0c000000"), 0);
        assertEquals(new VhostUserHeader(0x25, 9, 12), h);
        assertTrue(h.needReply());
        assertFalse(h.isReply());
        ProtocolException v = assertThrows(ProtocolException.class, () -> VhostUserHeader.decode(hex("01000000 02000000 00000000"), 0));
        assertTrue(v.isFatal());
        assertEquals(ProtocolException.EPROTO, v.errno());
        assertThrows(ProtocolException.class, () -> VhostUserHeader.decode(hex("01000000 11000000 00000000"), 0));
        ProtocolException big = assertThrows(ProtocolException.class, () -> VhostUserHeader.decode(hex("01000000 01000000 01000100"), 0));
        assertEquals(ProtocolException.EMSGSIZE, big.errno());
        assertThrows(ProtocolException.class, () -> VhostUserHeader.decode(hex("01000000 01000000 ffffffff"), 0));
    }

    @Test
    void memTableLayout() throws Exception {
        Payloads.MemTable t = new Payloads.MemTable(List.of(new Payloads.MemRegion(0x4000_0000L, 0x1000_0000L, 0x7f00_0000_0000L, 0x200)));
        byte[] p = t.encode();
        assertEquals("01000000" + "00000000" + "0000004000000000" + "0000001000000000" + "00000000007f0000" + "0002000000000000", hex(p));
        assertEquals(t, Payloads.MemTable.decode(p));
        // nregions disagreeing with the size is fatal
        byte[] bad = p.clone();
        bad[0] = 2;
        assertThrows(ProtocolException.class, () -> Payloads.MemTable.decode(bad));
        byte[] nine = hex("09000000 00000000");
        assertThrows(ProtocolException.class, () -> Payloads.MemTable.decode(nine));
        byte[] single = new Payloads.SingleMemRegion(t.regions().get(0)).encode();
        assertEquals("0000000000000000" + hex(p).substring(16), hex(single));
    }

    @Test
    void vringAndConfigLayouts() throws Exception {
        assertEquals("0100000000010000", hex(new Payloads.VringState(1, 256).encode()));
        Payloads.VringAddr a = new Payloads.VringAddr(1, 0, 0x1000, 0x3000, 0x2000, 0);
        assertEquals("01000000" + "00000000" + "0010000000000000" + "0030000000000000" + "0020000000000000" + "0000000000000000", hex(a.encode()));
        assertEquals(a, Payloads.VringAddr.decode(a.encode()));
        Payloads.Config c = new Payloads.Config(36, 0, new byte[] {1});
        assertEquals("24000000" + "01000000" + "00000000" + "01", hex(c.encode()));
        Payloads.Config d = Payloads.Config.decode(c.encode());
        assertEquals(36, d.offset());
        assertArrayEquals(new byte[] {1}, d.data());
        assertThrows(ProtocolException.class, () -> Payloads.Config.decode(hex("24000000 02000000 00000000 01")));
    }

    @Test
    void translateLayouts() throws Exception {
        Payloads.TranslateRequest r = new Payloads.TranslateRequest(5, Payloads.NO_SUBSTREAM, 0x1234_5000L, Payloads.ACCESS_WRITE | Payloads.ACCESS_PRIV);
        assertEquals("05000000" + "ffffffff" + "0050341200000000" + "05000000" + "00000000", hex(r.encode()));
        assertEquals(r, Payloads.TranslateRequest.decode(r.encode()));
        Payloads.TranslateReply rep = new Payloads.TranslateReply(new Payloads.TranslateResult(0, 0x1b, 0x8000_1234L, 0xfff, 0), "");
        byte[] e = rep.encode();
        assertEquals(64, e.length);
        assertEquals("00000000" + "1b000000" + "3412008000000000" + "ff0f000000000000" + "00000000" + "00000000" + "00".repeat(32), hex(e));
        Payloads.TranslateReply fault = new Payloads.TranslateReply(new Payloads.TranslateResult(1, 0, 0, 0, 0), "F_TRANSLATION");
        assertEquals(fault, Payloads.TranslateReply.decode(fault.encode()));
        byte[] batch = Payloads.encodeBatch(List.of(r, r));
        assertEquals(8 + 48, batch.length);
        assertEquals("02000000" + "00000000", hex(batch).substring(0, 16));
        assertEquals(List.of(r, r), Payloads.decodeBatch(batch));
        byte[] lying = batch.clone();
        lying[0] = 3;
        assertThrows(ProtocolException.class, () -> Payloads.decodeBatch(lying));
    }

    /** docs/protocol.md §4.3 IOMMU_TRANSLATE_RUN: request + {u32 max_pages, u32 0}; reply + {u32 count, u32 0} + entries. */
    @Test
    void translateRunLayouts() throws Exception {
        Payloads.TranslateRequest r = new Payloads.TranslateRequest(5, Payloads.NO_SUBSTREAM, 0x1234_5000L, 0);
        Payloads.TranslateRunRequest q = new Payloads.TranslateRunRequest(r, 32);
        assertEquals(hex(r.encode()) + "20000000" + "00000000", hex(q.encode()));
        assertEquals(q, Payloads.TranslateRunRequest.decode(q.encode()));
        byte[] tooMany = new Payloads.TranslateRunRequest(r, Payloads.MAX_RUN_PAGES + 1).encode();
        ProtocolException refused = assertThrows(ProtocolException.class, () -> Payloads.TranslateRunRequest.decode(tooMany));
        assertEquals(ProtocolException.EINVAL, refused.errno());
        Payloads.TranslateReply head = new Payloads.TranslateReply(new Payloads.TranslateResult(0, 0x1b, 0x8000_1234L, 0xfff, 0), "");
        Payloads.TranslateRunReply rep = new Payloads.TranslateRunReply(head,
                List.of(new Payloads.RunEntry(0x1234_6000L, 0x9000_0000L, 0x1fff, 0x3)));
        byte[] e = rep.encode();
        assertEquals(64 + 8 + 32, e.length);
        assertEquals(hex(head.encode()) + "01000000" + "00000000" + "0060341200000000" + "0000009000000000"
                + "ff1f000000000000" + "03000000" + "00000000", hex(e));
        assertEquals(rep, Payloads.TranslateRunReply.decode(e));
        byte[] lying = e.clone();
        lying[64] = 2;
        assertThrows(ProtocolException.class, () -> Payloads.TranslateRunReply.decode(lying));
    }

    @Test
    void backendLayouts() throws Exception {
        Payloads.IotlbInvalidate inv = new Payloads.IotlbInvalidate(-1, 0, 0, -1L);
        assertEquals("ffffffff" + "00000000" + "0000000000000000" + "ffffffffffffffff", hex(inv.encode()));
        assertEquals(inv, Payloads.IotlbInvalidate.decode(inv.encode()));
        assertEquals("0000e0fe00000000" + "41000000" + "00000000", hex(new Payloads.MsiWrite(0xfee0_0000L, 0x41).encode()));
        // version 8: the last u32 is the MSI's source (4 = GERROR), and decode reads it back
        assertEquals("0010000009000000" + "33000000" + "04000000", hex(new Payloads.MsiWrite(0x9_0000_1000L, 0x33, 4).encode()));
        assertEquals(new Payloads.MsiWrite(0x9_0000_1000L, 0x33, 4),
                Payloads.MsiWrite.decode(new Payloads.MsiWrite(0x9_0000_1000L, 0x33, 4).encode()));
        assertEquals("07000000" + "01000000" + "0040000000000000" + "09000000" + "03000000",
                hex(new Payloads.PageRequestMsg(7, 1, 0x4000, Payloads.ACCESS_WRITE | Payloads.PAGE_REQUEST_LAST, 3).encode()));
        // version 3 flags: bit 0 W, 1 exec, 2 priv, 3 L, 4 R, 5 Stop
        Payloads.PageRequestMsg rw = new Payloads.PageRequestMsg(7, -1, 0x5000, Payloads.PAGE_REQUEST_READ | Payloads.PAGE_REQUEST_WRITE, 4);
        assertEquals("07000000" + "ffffffff" + "0050000000000000" + "11000000" + "04000000", hex(rw.encode()));
        assertEquals(rw, Payloads.PageRequestMsg.decode(rw.encode()));
        assertTrue(rw.read() && rw.write() && !rw.last() && !rw.stop());
        Payloads.PageRequestMsg stop = Payloads.PageRequestMsg.decode(hex("07000000" + "02000000" + "0000000000000000" + "20000000" + "00000000"));
        assertTrue(stop.stop() && stop.last() && !stop.read() && !stop.write());
        Payloads.PageRequestMsg v1 = new Payloads.PageRequestMsg(7, 1, 0x4000, Payloads.PAGE_REQUEST_LAST | Payloads.PAGE_REQUEST_EXEC, 3);
        assertTrue(v1.read() && !v1.write() && v1.exec() && v1.last(), "version 1: R when W is clear");
        Payloads.PageRequestMsg wOnly = new Payloads.PageRequestMsg(7, 1, 0x4000, Payloads.PAGE_REQUEST_WRITE | Payloads.PAGE_REQUEST_PRIV, 3);
        assertTrue(!wOnly.read() && wOnly.write() && wOnly.priv());
        assertEquals("07000000" + "ffffffff" + "0000000000000000" + "ffffffffffffffff" + "00000000" + "00000000",
                hex(new Payloads.AtcInvalidate(7, -1, 0, -1L, 0).encode()));
        // version 4: flags bit 0 G (CMD_ATC_INV.G)
        Payloads.AtcInvalidate g = new Payloads.AtcInvalidate(7, 5, 0x10000, 0x2000, Payloads.ATC_INVALIDATE_GLOBAL);
        assertEquals("07000000" + "05000000" + "0000010000000000" + "0020000000000000" + "01000000" + "00000000", hex(g.encode()));
        assertEquals(g, Payloads.AtcInvalidate.decode(g.encode()));
        assertTrue(g.global());
        assertThrows(ProtocolException.class, () -> Payloads.AtcInvalidate.decode(new byte[24]));
        assertEquals("07000000" + "01000000" + "03000000" + "0f000000", hex(new Payloads.PriResponse(7, 1, 3, 0xf).encode()));
        // IOMMU_STALL_RESOLVED (version 2): {u32 stream_id, u32 stag, u32 flags (bit 0 retry), u32 reserved}
        Payloads.StallResolved sr = new Payloads.StallResolved(4, 0x1234, Payloads.STALL_RETRY);
        assertEquals("04000000" + "34120000" + "01000000" + "00000000", hex(sr.encode()));
        assertEquals(sr, Payloads.StallResolved.decode(sr.encode()));
        assertTrue(sr.retry());
        assertFalse(new Payloads.StallResolved(4, 7, 0).retry());
        assertThrows(ProtocolException.class, () -> Payloads.StallResolved.decode(new byte[12]));
        Payloads.IommuInfo info = new Payloads.IommuInfo(1, 1, 0x20000, 0, "default", List.of("evtq", "gerror"));
        byte[] b = info.encode();
        assertEquals(56 + 32, b.length);
        assertEquals("01000000" + "01000000" + "0000020000000000" + "02000000" + "00000000" + hex("default".getBytes()), hex(b).substring(0, 48 + 14));
        assertEquals(info, Payloads.IommuInfo.decode(b));
    }

    @Test
    void framingRulesCountFds() throws Exception {
        byte[] one = new Payloads.MemTable(List.of(new Payloads.MemRegion(0, 4096, 0, 0))).encode();
        Request.SET_MEM_TABLE.validate(new VhostUserMessage(5, 1, one, new int[] {7}));
        ProtocolException e = assertThrows(ProtocolException.class, () -> Request.SET_MEM_TABLE.validate(new VhostUserMessage(5, 1, one, new int[0])));
        assertEquals(ProtocolException.EBADF, e.errno());
        Request.SET_VRING_CALL.validate(new VhostUserMessage(13, 1, Payloads.u64(0x100), new int[0]));
        assertThrows(ProtocolException.class, () -> Request.SET_VRING_CALL.validate(new VhostUserMessage(13, 1, Payloads.u64(0), new int[0])));
        assertThrows(ProtocolException.class, () -> Request.SET_FEATURES.validate(new VhostUserMessage(2, 1, new byte[4], new int[0])));
        assertThrows(ProtocolException.class, () -> Request.GET_FEATURES.validate(new VhostUserMessage(1, 1, new byte[0], new int[] {3})));
        Request.REM_MEM_REG.validate(new VhostUserMessage(38, 1, new byte[40], new int[] {3}));
        Request.REM_MEM_REG.validate(new VhostUserMessage(38, 1, new byte[40], new int[0]));
    }

    /** docs/protocol.md §4.6: the nesting messages 1040-1055, each a fixed payload, and their reply. */
    @Test
    void nestingLayouts() throws Exception {
        List<dev.iommuemu.bridge.nesting.IommufdCall> calls = List.of(
                new dev.iommuemu.bridge.nesting.IommufdCall.OpenHost(0x1000_0000L, 0x100_0000L, 6),
                new dev.iommuemu.bridge.nesting.IommufdCall.Probe(5, "gpu"),
                new dev.iommuemu.bridge.nesting.IommufdCall.Bind(5),
                new dev.iommuemu.bridge.nesting.IommufdCall.HwInfo(2),
                new dev.iommuemu.bridge.nesting.IommufdCall.AllocHwpt(2, 4, 0, new long[] {0x100_00bL, 0}, 7),
                new dev.iommuemu.bridge.nesting.IommufdCall.Attach(2, 6),
                new dev.iommuemu.bridge.nesting.IommufdCall.Detach(2),
                new dev.iommuemu.bridge.nesting.IommufdCall.Map(3, 0x1000, 0x4000_0000L, 0x2000, true, true, false),
                new dev.iommuemu.bridge.nesting.IommufdCall.AllocViommu(2, 3),
                new dev.iommuemu.bridge.nesting.IommufdCall.AllocVdevice(4, 2, 0x42),
                new dev.iommuemu.bridge.nesting.IommufdCall.Invalidate(4, new long[] {0x12, 0x4000_0000L}),
                new dev.iommuemu.bridge.nesting.IommufdCall.AllocVeventq(4, 8),
                new dev.iommuemu.bridge.nesting.IommufdCall.ReadVevents(9, 0),
                new dev.iommuemu.bridge.nesting.IommufdCall.AllocFaultQueue(),
                new dev.iommuemu.bridge.nesting.IommufdCall.ReadFaults(7, 16),
                new dev.iommuemu.bridge.nesting.IommufdCall.PageResponse(7, 3, 1));
        for (int i = 0; i < calls.size(); i++) {
            Request r = dev.iommuemu.bridge.protocol.NestingPayloads.request(calls.get(i));
            assertEquals(1040 + i, r.code(), r.name());
            assertTrue(r.hasReply() && r.isNesting());
            byte[] p = dev.iommuemu.bridge.protocol.NestingPayloads.encode(calls.get(i));
            r.validate(new VhostUserMessage(r.code(), 1, p, new int[0]));
            // records with arrays compare by identity: compare their encodings
            assertEquals(hex(p), hex(dev.iommuemu.bridge.protocol.NestingPayloads.encode(
                    dev.iommuemu.bridge.protocol.NestingPayloads.decode(r, p))), r.name());
        }
        // 1056 IOMMUFD_SET_EVENTQ_FD: {u32 queue_id, u32 flags (bit 8 NOFD)}, one fd unless NOFD; 1057 is the
        // last number of the nesting range's block, IOMMU_SAVE_STATE (§4.9), not a nesting request.
        assertEquals(Request.IOMMUFD_SET_EVENTQ_FD, Request.of(1056));
        assertTrue(Request.IOMMUFD_SET_EVENTQ_FD.hasReply() && Request.IOMMUFD_SET_EVENTQ_FD.isNesting());
        assertEquals("07000000" + "00000000", hex(new dev.iommuemu.bridge.protocol.NestingPayloads.EventqFd(7, false).encode()));
        assertEquals("07000000" + "00010000", hex(new dev.iommuemu.bridge.protocol.NestingPayloads.EventqFd(7, true).encode()));
        Request.IOMMUFD_SET_EVENTQ_FD.validate(new VhostUserMessage(1056, 1, new dev.iommuemu.bridge.protocol.NestingPayloads.EventqFd(7, false).encode(), new int[] {99}));
        Request.IOMMUFD_SET_EVENTQ_FD.validate(new VhostUserMessage(1056, 1, new dev.iommuemu.bridge.protocol.NestingPayloads.EventqFd(7, true).encode(), new int[0]));
        assertEquals(ProtocolException.EBADF, assertThrows(ProtocolException.class, () -> Request.IOMMUFD_SET_EVENTQ_FD.validate(
                new VhostUserMessage(1056, 1, new dev.iommuemu.bridge.protocol.NestingPayloads.EventqFd(7, false).encode(), new int[0]))).errno(),
                "no fd without NOFD");
        assertEquals(ProtocolException.EBADF, assertThrows(ProtocolException.class, () -> Request.IOMMUFD_SET_EVENTQ_FD.validate(
                new VhostUserMessage(1056, 1, new dev.iommuemu.bridge.protocol.NestingPayloads.EventqFd(0x100, true).encode(), new int[] {99}))).errno(),
                "an fd with NOFD (the queue id's bit 8 is not the flag)");
        assertEquals(ProtocolException.EINVAL, assertThrows(ProtocolException.class, () -> dev.iommuemu.bridge.protocol.NestingPayloads.EventqFd.decode(
                new byte[] {7, 0, 0, 0, 1, 0, 0, 0})).errno(), "other flag bits");
        assertEquals(Request.IOMMU_SAVE_STATE, Request.of(1057));
        assertTrue(!Request.IOMMU_SAVE_STATE.isNesting() && Request.IOMMU_SAVE_STATE.hasReply());
        assertEquals("00000010" + "00000000" + "00000001" + "00000000" + "06000000" + "00000000",
                hex(dev.iommuemu.bridge.protocol.NestingPayloads.encode(calls.get(0))));
        assertEquals("05000000" + "00000000" + hex("gpu".getBytes()) + "00".repeat(29), hex(dev.iommuemu.bridge.protocol.NestingPayloads.encode(calls.get(1))));
        // ALLOC_HWPT: dev_id, pt_id, flags, fault_id, type 1 (nested), reserved, vste[2]
        assertEquals("02000000" + "04000000" + "00000000" + "07000000" + "01000000" + "00000000" + "0b00100000000000" + "0000000000000000",
                hex(dev.iommuemu.bridge.protocol.NestingPayloads.encode(calls.get(4))));
        // MAP_HWPT: hwpt_id, flags READ|WRITE, iova, phys, length
        assertEquals("03000000" + "03000000" + "0010000000000000" + "0000004000000000" + "0020000000000000",
                hex(dev.iommuemu.bridge.protocol.NestingPayloads.encode(calls.get(7))));
        // INVALIDATE: viommu_id, count (commands), cmd words
        assertEquals("04000000" + "01000000" + "1200000000000000" + "0000004000000000",
                hex(dev.iommuemu.bridge.protocol.NestingPayloads.encode(calls.get(10))));
        assertEquals("07000000" + "03000000" + "01000000" + "00000000", hex(dev.iommuemu.bridge.protocol.NestingPayloads.encode(calls.get(15))));
        byte[] lying = dev.iommuemu.bridge.protocol.NestingPayloads.encode(calls.get(10));
        lying[4] = 2;
        assertThrows(ProtocolException.class, () -> dev.iommuemu.bridge.protocol.NestingPayloads.decode(Request.IOMMUFD_INVALIDATE, lying));

        // Replies: {errno, id, handled, count} + records
        var ids = dev.iommuemu.bridge.protocol.NestingPayloads.Reply.of(
                new dev.iommuemu.bridge.nesting.IommufdCalls.Outcome(5, 0, 1, 0, null, null, null));
        assertEquals("05000000" + "00000000" + "01000000" + "00000000", hex(ids.encode()));
        var ev = dev.iommuemu.bridge.protocol.NestingPayloads.Reply.of(new dev.iommuemu.bridge.nesting.IommufdCalls.Outcome(0, 0, 0, 0, null,
                List.of(new dev.iommuemu.iommufd.Vevent(0, 3, new long[] {0x42_0000_0010L, 0, 0x4000_1000L, 0})), null));
        assertEquals("00000000" + "00000000" + "00000000" + "01000000" + "00000000" + "03000000" + "1000000042000000"
                + "0000000000000000" + "0010004000000000" + "0000000000000000" + "0000000000000000", hex(ev.encode()));
        var evBack = dev.iommuemu.bridge.protocol.NestingPayloads.Reply.decode(ev.encode()).vevents();
        assertEquals(3, evBack.get(0).sequence());
        assertEquals(0x4000_1000L, evBack.get(0).evt()[2]);
        dev.iommuemu.iommufd.PageFault pf = new dev.iommuemu.iommufd.PageFault(2, 1, 0, 7, 2, 0x4000_3000L, 0, 9);
        var fr = dev.iommuemu.bridge.protocol.NestingPayloads.Reply.of(new dev.iommuemu.bridge.nesting.IommufdCalls.Outcome(0, 0, 0, 0, null, null, List.of(pf)));
        assertEquals("00000000" + "00000000" + "00000000" + "01000000" + "02000000" + "01000000" + "00000000" + "07000000" + "02000000"
                + "00000000" + "0030004000000000" + "00000000" + "09000000", hex(fr.encode()));
        assertEquals(List.of(pf), dev.iommuemu.bridge.protocol.NestingPayloads.Reply.decode(fr.encode()).faults());
        var hw = dev.iommuemu.bridge.protocol.NestingPayloads.Reply.of(new dev.iommuemu.bridge.nesting.IommufdCalls.Outcome(0, 0, 0, 0,
                new dev.iommuemu.iommufd.HwInfo(0, new int[] {0x0c48101a, 0x1, 0, 0x4, 0, 0x55}, 0x43b, 3), null, null));
        assertEquals("00000000" + "00000000" + "00000000" + "01000000" + "00000000" + "00000000" + "1a10480c" + "01000000" + "00000000"
                + "04000000" + "00000000" + "55000000" + "3b040000" + "03000000", hex(hw.encode()));
        var hwBack = dev.iommuemu.bridge.protocol.NestingPayloads.Reply.decode(hw.encode()).hwInfo();
        assertEquals(0x55, hwBack.idr()[5]);
        assertEquals(0x43b, hwBack.iidr());
        var um = dev.iommuemu.bridge.protocol.NestingPayloads.Reply.of(new dev.iommuemu.bridge.nesting.IommufdCalls.Outcome(0, 0, 0, 0x1_0000L, null, null, null));
        assertEquals("00000000" + "00000000" + "00000000" + "01000000" + "0000010000000000", hex(um.encode()));
        assertThrows(ProtocolException.class, () -> dev.iommuemu.bridge.protocol.NestingPayloads.Reply.decode(hex("00000000" + "00000000" + "00000000" + "02000000" + "000000")));
    }
}
