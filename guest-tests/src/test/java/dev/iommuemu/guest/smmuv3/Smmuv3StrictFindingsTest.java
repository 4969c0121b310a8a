package dev.iommuemu.guest.smmuv3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.session.SessionFindings;
import dev.iommuemu.guest.socket.GuestDaemon;
import dev.iommuemu.guest.socket.SocketMmio;
import dev.iommuemu.proto.v1.Event;
import dev.iommuemu.proto.v1.Finding;
import dev.iommuemu.proto.v1.ViolationsResponse;
import dev.iommuemu.smmuv3.PageTables;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A deliberately wrong guest driver on a "+strict" profile, through the daemon's socket as QEMU
 * drives it: it changes a page-table entry and skips the TLBI (IHI 0070 §4.4), changes a CD and
 * skips CMD_CFGI_CD (§4.3.3), changes an STE and skips CMD_CFGI_STE (§4.3.1), then DMAs. Each
 * missed invalidation is reported exactly once, live on the control API's event stream, by the
 * control API's Violations and in the daemon's log (one line each, a summary at the end), naming
 * the stale entry and the command that would have removed it. The same driver doing its
 * invalidations is reported nothing.
 */
class Smmuv3StrictFindingsTest {
    static final long RAM = 32L << 20;
    static final long STRTAB = 0x10_0000, CMDQ = 0x20_0000, EVTQ = 0x30_0000, PRIQ = 0x38_0000;
    static final long CDS = 0x40_0000, TABLES = 0x100_0000;
    static final int SID_TLB = 5, SID_CD = 6, SID_STE = 7;
    static final long VA_TLB = 0x8080_0000L, VA_CD = 0x8090_0000L, VA_STE = 0x80a0_0000L;
    static final int ASID_TLB = 0x1e20, ASID_CD = 0x1e21, ASID_STE = 0x1e22;

    GuestDaemon daemon;
    VmmClient vmm;
    ControlClient events;
    Thread follower;
    final BlockingQueue<Event> stream = new LinkedBlockingQueue<>();
    final List<String> logged = new ArrayList<>();
    final Logger findingsLog = Logger.getLogger(SessionFindings.class.getName());
    final Handler capture = new Handler() {
        @Override
        public synchronized void publish(LogRecord r) {
            logged.add(r.getMessage());
        }

        @Override
        public void flush() {}

        @Override
        public void close() {}
    };
    Smmuv3Driver drv;
    PageTables pt;
    long root;
    /** The CD index SID_CD's DMA uses: 1 (a substream) where the profile has SSIDs, else 0 (no substream). */
    int cdIndex;

    @BeforeEach
    void start() throws Exception {
        daemon = new GuestDaemon("smmuv3", "default", true);
        findingsLog.addHandler(capture);
        findingsLog.setLevel(Level.ALL);
    }

    @AfterEach
    void stop() throws Exception {
        findingsLog.removeHandler(capture);
        findingsLog.setLevel(null);
        if (vmm != null) {
            vmm.close();
        }
        for (ControlClient c : requests) {
            c.close();
        }
        if (events != null) {
            events.close();
        }
        if (follower != null) {
            follower.join(5000);
        }
        daemon.close();
    }

    /** The VMM connects on {@code profile}; a control client follows the daemon's events. */
    void connect(String profile) throws Exception {
        events = ControlClient.connect(daemon.control);
        java.util.concurrent.CountDownLatch subscribed = new java.util.concurrent.CountDownLatch(1);
        follower = new Thread(() -> {
            try {
                events.followEvents(0, subscribed::countDown, e -> stream.add(e));
            } catch (Exception e) {
                // the stream ends when the test closes the client
            }
        }, "events");
        follower.setDaemon(true);
        follower.start();
        assertTrue(subscribed.await(5, TimeUnit.SECONDS), "subscribed");
        vmm = daemon.connect();
        vmm.selectModel(1, profile);
        assertEquals(profile, vmm.info().profile());
        vmm.addMemory(0, RAM);
        drv = new Smmuv3Driver(new SocketMmio(vmm), vmm.memory(), STRTAB, 5, CMDQ, 8, EVTQ, 6, PRIQ);
        drv.probe(true);
        cdIndex = drv.ssidBits > 0 ? 1 : 0;
        pt = new PageTables(vmm.memory(), TABLES);
        root = pt.s1Root();
        pt.map(root, VA_TLB, 0x5000_0000L, PageTables.S1_RW);
        pt.map(root, VA_CD, 0x5100_0000L, PageTables.S1_RW);
        pt.map(root, VA_STE, 0x5200_0000L, PageTables.S1_RW);
        // Three streams, each with its own CD table, ASID and page: a missed invalidation of one
        // leaves only its own entry stale.
        stream(SID_TLB, CDS, 0, ASID_TLB);
        stream(SID_CD, CDS + 0x1000, cdIndex, ASID_CD);
        stream(SID_STE, CDS + 0x2000, 0, ASID_STE);
        assertEquals(0x5000_0010L, dma(SID_TLB, VA_TLB + 0x10));
        assertEquals(0x5100_0010L, dma(SID_CD, VA_CD + 0x10));
        assertEquals(0x5200_0010L, dma(SID_STE, VA_STE + 0x10));
    }

    /** STE {@code sid}: stage 1 through a CD table at {@code table} of 2^cdMax CDs, CD {@code index} for {@code asid}. */
    void stream(int sid, long table, int index, int asid) {
        drv.writeCd(table + 64L * index, Smmuv3Driver.cd(root, asid, 0x10, 4));
        drv.writeSte(sid, Smmuv3Driver.steS1(table, index == 0 ? 0 : 1, 0));
    }

    long dma(int sid, long va) throws Exception {
        int ssid = sid == SID_CD && cdIndex > 0 ? cdIndex : -1;
        Payloads.TranslateReply r = vmm.translate(sid, ssid, va, 0);
        assertEquals(Payloads.TRANSLATED, r.result().status(), r.reason());
        return r.result().output();
    }

    /**
     * The findings on the event stream up to a barrier: a DMA to an unmapped page, whose "fault"
     * event comes after every event published before it (one subscription's queue is in order).
     */
    List<Finding> findingsOnTheStream() throws Exception {
        assertEquals("F_TRANSLATION", vmm.translate(SID_TLB, -1, 0x9000_0000L, 0).reason());
        List<Finding> out = new ArrayList<>();
        while (true) {
            Event e = stream.poll(5, TimeUnit.SECONDS);
            assertTrue(e != null, "the barrier's fault event arrives");
            if (e.getKind().equals("fault") && e.getDetail().contains("iova=0x90000000")) {
                return out;
            }
            if (e.getKind().equals("coherency_violation")) {
                assertEquals(e.getFinding().getDetail(), e.getDetail(), "detail is the finding's sentence");
                out.add(e.getFinding());
            }
        }
    }

    /** The sentence of a finding: CoherencyViolation#detail's form, from its fields. */
    static String sentence(Finding f) {
        return f.getKind() + " at SID 0x" + Integer.toHexString(f.getStreamId())
                + (f.hasSsid() ? " SSID 0x" + Integer.toHexString(f.getSsid()) : "") + " address 0x" + Long.toHexString(f.getAddress())
                + ": the SMMU holds " + f.getStale() + ", memory holds " + f.getInMemory() + "; " + f.getRemedy();
    }

    @ParameterizedTest
    @ValueSource(strings = {"default+strict", "max+strict"})
    void eachSkippedInvalidationIsReportedOnceWithItsRemedy(String profile) throws Exception {
        connect(profile);
        // 1. A PTE changes; no CMD_TLBI_NH_VA.
        pt.map(root, VA_TLB, 0x5800_0000L, PageTables.S1_RW);
        // 2. A CD's ASID changes; no CMD_CFGI_CD.
        long cdAddr = CDS + 0x1000 + 64L * cdIndex;
        drv.writeCd(cdAddr, Smmuv3Driver.cd(root, 0x2e21, 0x10, 4));
        // 3. An STE becomes bypass; no CMD_CFGI_STE.
        drv.writeSte(SID_STE, Smmuv3Driver.steBypass(), false);
        for (int i = 0; i < 3; i++) {
            // The stale entries are used, as hardware would use them; each is reported once.
            assertEquals(0x5000_0020L, dma(SID_TLB, VA_TLB + 0x20));
            assertEquals(0x5100_0020L, dma(SID_CD, VA_CD + 0x20));
            assertEquals(0x5200_0020L, dma(SID_STE, VA_STE + 0x20));
        }
        List<Finding> live = findingsOnTheStream();
        assertEquals(3, live.size(), live.toString());

        Finding tlb = live.get(0);
        assertEquals("TLB", tlb.getKind());
        assertEquals(SID_TLB, tlb.getStreamId());
        assertEquals(false, tlb.hasSsid());
        assertEquals(VA_TLB + 0x20, tlb.getAddress());
        assertTrue(tlb.getStale().startsWith("0x50000020 "), tlb.getStale());
        assertTrue(tlb.getInMemory().startsWith("Translation[0x80800020 -> 0x58000020, 2^12,"), tlb.getInMemory());
        assertEquals("CMD_TLBI_NH_VA VMID 0x0 ASID 0x1e20 VA 0x80800000 (or CMD_TLBI_NH_ASID VMID 0x0 ASID 0x1e20) then CMD_SYNC",
                tlb.getRemedy());

        Finding cd = live.get(1);
        assertEquals("CD", cd.getKind());
        assertEquals(SID_CD, cd.getStreamId());
        assertEquals(cdIndex, cd.getSsid());
        assertEquals(cdAddr, cd.getAddress());
        assertTrue(cd.getStale().contains("ASID=0x1e21"), cd.getStale());
        assertTrue(cd.getInMemory().contains("ASID=0x2e21"), cd.getInMemory());
        assertEquals("CMD_CFGI_CD SID 0x6 SSID 0x" + cdIndex + " (or CMD_CFGI_CD_ALL SID 0x6) then CMD_SYNC", cd.getRemedy());

        Finding ste = live.get(2);
        assertEquals("STE", ste.getKind());
        assertEquals(SID_STE, ste.getStreamId());
        assertEquals(false, ste.hasSsid());
        assertEquals(STRTAB + 64L * SID_STE, ste.getAddress());
        assertTrue(ste.getStale().startsWith("STE{V=0x1, Config=0x5, S1ContextPtr="), ste.getStale());
        assertEquals("STE{V=0x1, Config=0x4}", ste.getInMemory());
        assertEquals("CMD_CFGI_STE SID 0x7 (or a CMD_CFGI_STE_RANGE / CMD_CFGI_ALL covering it) then CMD_SYNC", ste.getRemedy());
        for (Finding f : live) {
            assertEquals(sentence(f), f.getDetail());
        }

        // The control API lists the same three, and counts them by kind.
        ViolationsResponse v = requests().violations(0);
        assertTrue(v.getStrict());
        assertEquals(3, v.getTotal());
        assertEquals(Map.of("TLB", 1L, "CD", 1L, "STE", 1L), v.getByKindMap());
        assertEquals(live, v.getFindingsList());

        // The log: one line per finding, and at the session's end a summary.
        long id = daemon.daemon.registry().list().get(0).id();
        vmm.close();
        vmm = null;
        assertTrue(daemon.awaitNoConnections());
        List<String> lines;
        synchronized (capture) {
            lines = new ArrayList<>(logged);
        }
        assertEquals(List.of("session " + id + ": strict mode finding: " + tlb.getDetail(),
                "session " + id + ": strict mode finding: " + cd.getDetail(),
                "session " + id + ": strict mode finding: " + ste.getDetail(),
                "session " + id + ": strict mode found 3 findings: 1 TLB, 1 CD, 1 STE; first: " + tlb.getDetail()), lines);
    }

    /** A second control connection for requests (the first one only streams events). */
    ControlClient requests() throws Exception {
        ControlClient c = ControlClient.connect(daemon.control);
        requests.add(c);
        return c;
    }

    final List<ControlClient> requests = new ArrayList<>();

    @Test
    void aDriverThatInvalidatesIsReportedNothing() throws Exception {
        connect("default+strict");
        pt.map(root, VA_TLB, 0x5800_0000L, PageTables.S1_RW);
        drv.tlbiVa(ASID_TLB, VA_TLB);
        drv.writeCd(CDS + 0x1000, Smmuv3Driver.cd(root, 0x2e21, 0x10, 4));
        drv.invalidateCd(SID_CD, 0);
        drv.writeSte(SID_STE, Smmuv3Driver.steBypass(), true);
        for (int i = 0; i < 3; i++) {
            assertEquals(0x5800_0020L, dma(SID_TLB, VA_TLB + 0x20));
            assertEquals(0x5100_0020L, dma(SID_CD, VA_CD + 0x20));
            assertEquals(VA_STE + 0x20, dma(SID_STE, VA_STE + 0x20), "bypass");
        }
        assertEquals(List.of(), findingsOnTheStream());
        ViolationsResponse v = requests().violations(0);
        assertTrue(v.getStrict());
        assertEquals(0, v.getTotal());
        assertEquals(0, v.getFindingsCount());
        long id = daemon.daemon.registry().list().get(0).id();
        vmm.close();
        vmm = null;
        assertTrue(daemon.awaitNoConnections());
        synchronized (capture) {
            assertEquals(List.of("session " + id + ": strict mode found no findings"), logged);
        }
    }
}
