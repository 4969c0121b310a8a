package dev.iommuemu.guest.smmuv3;

import static dev.iommuemu.guest.smmuv3.Smmuv3GuestTest.bytes;
import static dev.iommuemu.guest.smmuv3.Smmuv3GuestTest.le;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.guest.socket.GuestDaemon;
import dev.iommuemu.guest.socket.SocketMmio;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.smmuv3.PageTables;
import dev.iommuemu.smmuv3.Smmuv3;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The spec-written SMMUv3 driver through the real daemon: the test is the VMM (memfd guest RAM
 * shared with ADD_MEM_REG, MMIO with IOMMU_MMIO_READ/WRITE, IOMMU_TRANSLATE for endpoint DMA, an
 * eventfd per interrupt line, the back-end channel for IOTLB invalidations) and, through the
 * driver, the guest. Structures are written in the VMM's mapping of guest RAM and read by the
 * model in the daemon's mapping of the same memfd; event records come back the same way.
 */
class Smmuv3SocketTest {
    static final long RAM = 32L << 20;
    static final long STRTAB = 0x10_0000, CMDQ = 0x20_0000, EVTQ = 0x30_0000, PRIQ = 0x38_0000;
    static final long CDS = 0x40_0000, L2_POOL = 0x60_0000, TABLES = 0x100_0000;
    /** Line numbers in Smmuv3Bridge's line_name order (IOMMU_GET_INFO, docs/protocol.md §4.1). */
    static final int LINE_EVTQ = 0;

    GuestDaemon daemon;
    VmmClient vmm;
    Smmuv3Driver drv;
    /** Back-end channel requests and MMIO completions in the order they happened. */
    final List<String> log = new CopyOnWriteArrayList<>();
    int evtqFd = -1;

    /** The daemon under test; a subclass records it and replays every session (docs/recording.md). */
    GuestDaemon newDaemon(String model, String profile) throws java.io.IOException {
        return new GuestDaemon(model, profile);
    }

    @BeforeEach
    void start() throws Exception {
        daemon = newDaemon("smmuv3", "default");
    }

    @AfterEach
    void stop() throws Exception {
        VmmClient.closeFd(evtqFd);
        if (vmm != null) {
            vmm.close();
        }
        if (daemon != null) {
            daemon.close();
        }
    }

    /** Connects as the VMM, selects the profile, shares guest RAM and wires line evtq and the back-end channel. */
    void connect(String profile) throws Exception {
        vmm = daemon.connect();
        if (!profile.equals("default")) {
            vmm.selectModel(1, profile);
        }
        Payloads.IommuInfo info = vmm.info();
        assertEquals(1, info.model());
        assertEquals(profile, info.profile());
        assertEquals(0x20000, info.mmioSize());
        assertEquals(List.of("evtq", "priq", "cmd-sync", "gerror"), info.irqLines());
        vmm.addMemory(0, RAM);
        evtqFd = vmm.irqEventFd(LINE_EVTQ);
        vmm.serveBackend(new VmmClient.BackendListener() {
            @Override
            public long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
                log.add(String.format("invalidate ep=%d iova=0x%x size=0x%x", inv.endpoint(), inv.iova(), inv.size()));
                try {
                    Thread.sleep(30); // a slow VMM: the guest's CMD_SYNC must wait for it
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                log.add("ack");
                return 0;
            }

            @Override
            public void pageResponse(Payloads.PriResponse r) {
                log.add(String.format("pri response sid=%d ssid=%d group=0x%x code=%d", r.streamId(), r.substreamId(), r.groupIndex(), r.code()));
            }

            @Override
            public long atcInvalidate(Payloads.AtcInvalidate inv) {
                log.add(String.format("atc sid=%d ssid=%d address=0x%x size=0x%x flags=%d", inv.streamId(), inv.substreamId(),
                        inv.address(), inv.size(), inv.flags()));
                return 0;
            }

            @Override
            public void stallResolved(Payloads.StallResolved r) {
                log.add(String.format("stall resolved sid=%d stag=%d flags=%d", r.streamId(), r.stag(), r.flags()));
            }

            @Override
            public void msi(Payloads.MsiWrite msi) {
                log.add(String.format("msi 0x%x 0x%x", msi.address(), msi.data()));
            }
        });
        Mmio socket = new SocketMmio(vmm);
        Mmio logged = new Mmio() {
            @Override
            public long read(long offset, int size) {
                return socket.read(offset, size);
            }

            @Override
            public void write(long offset, int size, long value) {
                socket.write(offset, size, value);
                if (offset == Smmuv3Driver.CMDQ_PROD) {
                    log.add("CMDQ_PROD write done");
                }
            }
        };
        drv = new Smmuv3Driver(logged, vmm.memory(), STRTAB, 5, CMDQ, 8, EVTQ, 6, PRIQ);
    }

    Payloads.TranslateResult translate(int sid, long iova, int access) throws Exception {
        return vmm.translate(sid, -1, iova, access).result();
    }

    Map<String, Long> counters() throws Exception {
        return daemon.daemon.registry().list().get(0).allCounters();
    }

    @ParameterizedTest
    @ValueSource(strings = {"default", "max"})
    void linuxProbeSequenceThroughTheSocket(String profile) throws Exception {
        connect(profile);
        if (profile.equals("max")) {
            drv = new Smmuv3Driver(drv.mmio, vmm.memory(), STRTAB, 4, CMDQ, 8, EVTQ, 6, PRIQ);
            drv.probeTwoLevel(true, L2_POOL);
            assertEquals(0x1_020c, drv.mmio.read32(Smmuv3Driver.STRTAB_BASE_CFG)); // FMT 2-level, SPLIT 8, LOG2SIZE 12
            assertEquals(0xf, drv.mmio.read32(Smmuv3Driver.CR0ACK)); // SMMUEN | EVENTQEN | PRIQEN | CMDQEN
        } else {
            drv.probe(true);
            assertEquals(5, drv.mmio.read32(Smmuv3Driver.STRTAB_BASE_CFG));
            assertEquals(0xd, drv.mmio.read32(Smmuv3Driver.CR0ACK)); // SMMUEN | EVENTQEN | CMDQEN
        }
        // The ID registers through the socket are the profile's, as the model reads them in-process.
        Smmuv3 local = new Smmuv3(new SparseGuestMemory(1L << 20), DmaHost.NONE, Smmuv3Profile.named(profile));
        for (int idr : new int[] {Smmuv3Driver.IDR0, Smmuv3Driver.IDR1, Smmuv3Driver.IDR3, Smmuv3Driver.IDR5, Smmuv3Driver.IIDR, Smmuv3Driver.AIDR}) {
            assertEquals(local.mmioRead(idr, 4) & 0xffff_ffffL, drv.mmio.read32(idr), "register 0x" + Integer.toHexString(idr));
        }
        assertEquals(0x0d75, drv.mmio.read32(Smmuv3Driver.CR1));
        assertEquals(0x100000, drv.mmio.read32(Smmuv3Driver.GBPA)); // ABORT, Update completed
        assertEquals(0, drv.activeErrors());
        assertEquals(drv.cmdProd(), drv.mmio.read32(Smmuv3Driver.CMDQ_CONS));
        assertEquals(List.of(), drv.drainEvents());
        // Each of these told the VMM to drop everything, and was acknowledged: the GBPA update while
        // SMMUEN = 0 (§6.3 SMMU_GBPA), CFGI_ALL, TLBI_EL2_ALL (with Hyp), TLBI_NSNH_ALL, SMMUEN 0 -> 1.
        long all = log.stream().filter(l -> l.equals("invalidate ep=-1 iova=0x0 size=0xffffffffffffffff")).count();
        assertEquals(drv.hyp ? 5 : 4, all, log.toString());
        assertEquals(all, log.stream().filter(l -> l.equals("ack")).count());
        // A bypass STE (Config 0b100), through the linear or the 2-level table the guest built.
        drv.writeSte(0x15, Smmuv3Driver.steBypass());
        Payloads.TranslateResult r = translate(0x15, 0xdead_b123L, Payloads.ACCESS_WRITE);
        assertEquals(Payloads.TRANSLATED, r.status());
        assertEquals(0xdead_b123L, r.output());
        // StreamID 0x16 has the all-zero STE the driver wrote: C_BAD_STE (0x04), byte for byte, in guest RAM.
        assertEquals(0, VmmClient.awaitEventFd(evtqFd, 0), "no event yet, no interrupt");
        Payloads.TranslateReply bad = vmm.translate(0x16, -1, 0x1000, 0);
        assertEquals(Payloads.ABORTED, bad.result().status());
        assertEquals("C_BAD_STE", bad.reason());
        assertEquals(1, VmmClient.awaitEventFd(evtqFd, 2000), "line evtq fired once");
        assertArrayEquals(le(0x04 | (0x16L << 32), 0, 0, 0), bytes(drv.drainEvents().get(0)));
    }

    /** QEMU qtest's stage 1 vector (CD ASID 0x1e20, IPS 4, T0SZ 0x10), through the socket. */
    @Test
    void stage1TranslateTlbiSyncAndFaultThroughTheSocket() throws Exception {
        connect("default");
        drv.probe(true);
        long va = 0x8080_8000L;
        Stage1 s1 = stage1Stream(5, va, 0x5000_0000L);

        Payloads.TranslateResult r = translate(5, va + 0xabc, 0);
        assertEquals(Payloads.TRANSLATED, r.status());
        assertEquals(0x5000_0abcL, r.output());
        assertEquals(0xfff, r.addrMask());
        // AP 0b01 (read/write at EL0 and EL1), UXN = PXN = 0; EL0-writable memory is privileged
        // execute-never (Arm ARM D8.4.1.3).
        assertEquals(Perm.UR | Perm.UW | Perm.UX | Perm.PR | Perm.PW, r.perm());
        long hits = counters().get("tlb_hits");
        assertEquals(0x5000_0008L, translate(5, va + 8, Payloads.ACCESS_WRITE).output());
        assertEquals(hits + 1, counters().get("tlb_hits"), "STE, CD and translation cached: a TLB hit");

        // Unmap as Linux does: clear the PTE, then TLBI_NH_VA and CMD_SYNC published with one
        // CMDQ_PROD write. The write completes only after the VMM acknowledged the invalidation.
        vmm.memory().store(s1.pt().leaf(s1.root(), va, 3), 8, 0);
        log.clear();
        drv.cmds(new long[] {Smmuv3Driver.CMD_TLBI_NH_VA | (0x1e20L << 48), va}, new long[] {Smmuv3Driver.CMD_SYNC, 0});
        assertEquals(List.of("invalidate ep=-1 iova=0x80808000 size=0x1000", "ack", "CMDQ_PROD write done"), log);
        assertEquals(drv.cmdProd(), drv.mmio.read32(Smmuv3Driver.CMDQ_CONS));

        assertEquals(0, VmmClient.awaitEventFd(evtqFd, 0));
        Payloads.TranslateReply f = vmm.translate(5, -1, va + 0x10, Payloads.ACCESS_WRITE);
        assertEquals(Payloads.ABORTED, f.result().status());
        assertEquals("F_TRANSLATION", f.reason());
        assertEquals(1, VmmClient.awaitEventFd(evtqFd, 2000), "line evtq fired");
        // F_TRANSLATION: type 0x10, StreamID 5; RnW 0 (write); CLASS IN; InputAddr (IHI 0070 §7.3.10).
        assertArrayEquals(le(0x10 | (5L << 32), 2L << 40, va + 0x10, 0), bytes(drv.drainEvents().get(0)));
        assertEquals(drv.mmio.read32(Smmuv3Driver.EVTQ_PROD), drv.mmio.read32(Smmuv3Driver.EVTQ_CONS), "consumed");
    }

    /**
     * IOMMU_TRANSLATE_RUN (docs/protocol.md §4.3): the request's translation, then the pages after
     * it as a prefetch (IHI 0070 §4.2): up to max_pages, ending at the first unmapped page without
     * any event; the run's pages are invalidated like any other by TLBI + CMD_SYNC.
     */
    @Test
    void translateRunPrefetchesFollowingPagesWithoutEvents() throws Exception {
        connect("default");
        drv.probe(true);
        long va = 0x8080_0000L;
        // 5 pages, scattered output; va + 5 pages is unmapped
        Stage1 s1 = stage1Stream(5, va, 0x5000_0000L, 0x5000_3000L, 0x5000_6000L, 0x5000_9000L, 0x5000_c000L);
        int rw = Perm.UR | Perm.UW | Perm.UX | Perm.PR | Perm.PW;

        Payloads.TranslateRunReply run = vmm.translateRun(5, -1, va + 0x10, Payloads.ACCESS_WRITE, 2);
        assertEquals(new Payloads.TranslateResult(Payloads.TRANSLATED, rw, 0x5000_0010L, 0xfff, 0), run.reply().result());
        assertEquals(List.of(new Payloads.RunEntry(va + 0x1000, 0x5000_3000L, 0xfff, rw),
                new Payloads.RunEntry(va + 0x2000, 0x5000_6000L, 0xfff, rw)), run.entries(), "max_pages 2");
        run = vmm.translateRun(5, -1, va + 0x2008, 0, 64);
        assertEquals(0x5000_6008L, run.reply().result().output());
        assertEquals(List.of(new Payloads.RunEntry(va + 0x3000, 0x5000_9000L, 0xfff, rw),
                new Payloads.RunEntry(va + 0x4000, 0x5000_c000L, 0xfff, rw)), run.entries(), "ends before the unmapped page");
        assertEquals(0, VmmClient.awaitEventFd(evtqFd, 0), "the prefetch's fault records nothing");
        assertEquals(drv.mmio.read32(Smmuv3Driver.EVTQ_PROD), drv.mmio.read32(Smmuv3Driver.EVTQ_CONS));
        assertEquals(List.of(), vmm.translateRun(5, -1, va + 0x4000, 0, 0).entries(), "max_pages 0: none");
        assertEquals(4, counters().get("prefetched_pages"), "2 + 2 pages");
        assertEquals(7, counters().get("translated_pages"), "3 requests of a page each, and the runs");

        // A faulting request gets its reason and no run; the fault is recorded as for IOMMU_TRANSLATE.
        Payloads.TranslateRunReply f = vmm.translateRun(5, -1, va + 0x5000, 0, 64);
        assertEquals("F_TRANSLATION", f.reply().reason());
        assertEquals(List.of(), f.entries());
        assertEquals(1, VmmClient.awaitEventFd(evtqFd, 2000));

        // A refused max_pages: EINVAL, the connection stays usable.
        RequestRefusedException refused = assertThrows(RequestRefusedException.class, () -> vmm.call(Request.IOMMU_TRANSLATE_RUN,
                new Payloads.TranslateRunRequest(new Payloads.TranslateRequest(5, -1, va, 0), Payloads.MAX_RUN_PAGES + 1).encode()));
        assertEquals(22, refused.errno(), "EINVAL");
        assertEquals(0x5000_0000L, translate(5, va, 0).output());

        // The prefetched page va + 0x3000 is a TLB entry like any other: unmapped with TLBI_NH_VA +
        // CMD_SYNC, a new run stops before it (and its own request faults).
        vmm.memory().store(s1.pt().leaf(s1.root(), va + 0x3000, 3), 8, 0);
        drv.cmds(new long[] {Smmuv3Driver.CMD_TLBI_NH_VA | (0x1e20L << 48), va + 0x3000}, new long[] {Smmuv3Driver.CMD_SYNC, 0});
        assertEquals(List.of(), vmm.translateRun(5, -1, va + 0x2000, 0, 64).entries());
        assertEquals("F_TRANSLATION", vmm.translateRun(5, -1, va + 0x3000, 0, 64).reply().reason());
    }

    record Stage1(PageTables pt, long root) {}

    /**
     * StreamID {@code sid} translating stage 1 through QEMU qtest's CD (ASID 0x1e20, T0SZ 0x10,
     * IPS 4) at CDS, over tables mapping page i from {@code va} to {@code pas[i]}.
     */
    Stage1 stage1Stream(int sid, long va, long... pas) throws Exception {
        PageTables pt = new PageTables(vmm.memory(), TABLES);
        long root = pt.s1Root();
        for (int i = 0; i < pas.length; i++) {
            pt.map(root, va + 0x1000L * i, pas[i], PageTables.S1_RW);
        }
        long[] cd = Smmuv3Driver.cd(root, 0x1e20, 0x10, 4);
        for (int i = 0; i < 8; i++) {
            vmm.memory().store(CDS + 8L * i, 8, cd[i]);
        }
        drv.writeSte(sid, Smmuv3Driver.steS1(CDS, 0, 0));
        return new Stage1(pt, root);
    }

    /** QEMU qtest's stage 2 vector (S2T0SZ 0x14, S2SL0 2, S2PS 5): translation and a stage 2 fault record. */
    @Test
    void stage2TranslateAndFaultRecordThroughTheSocket() throws Exception {
        connect("default");
        drv.probe(true);
        PageTables pt = new PageTables(vmm.memory(), TABLES);
        long s2root = pt.s2Root(0x14, 0);
        pt.map(s2root, 0x8080_8000L, 0x6000_0000L, PageTables.S2_RW);
        drv.writeSte(6, Smmuv3Driver.steS2(s2root, 1, 0x14, 2, 5));
        Payloads.TranslateResult r = translate(6, 0x8080_8008L, 0);
        assertEquals(Payloads.TRANSLATED, r.status());
        assertEquals(0x6000_0008L, r.output());
        assertEquals(0xfff, r.addrMask());
        Payloads.TranslateReply f = vmm.translate(6, -1, 0x9000_0000L, 0);
        assertEquals("F_TRANSLATION", f.reason());
        assertEquals(1, VmmClient.awaitEventFd(evtqFd, 2000));
        // Stage 2 F_TRANSLATION: RnW 1, S2 1, CLASS IN, InputAddr, IPA (IHI 0070 §7.3.10).
        assertArrayEquals(le(0x10 | (6L << 32), (1L << 35) | (1L << 39) | (2L << 40), 0x9000_0000L, 0x9000_0000L),
                bytes(drv.drainEvents().get(0)));
    }

    /**
     * Lines cmd-sync and gerror (numbers 2 and 3 in line_name order) through their eventfds: a
     * CMD_SYNC with CS = SIG_IRQ (IHI 0070 §4.7.3), and an unknown opcode, which stops the queue
     * with CMDQ_CONS.ERR = CERROR_ILL and activates GERROR.CMDQ_ERR (§4.1.3, §7.1) until the driver
     * replaces the command with a CMD_SYNC and acknowledges through GERRORN, as Linux does.
     */
    @Test
    void cmdSyncAndGerrorLinesThroughTheirEventfds() throws Exception {
        connect("default");
        int cmdSync = vmm.irqEventFd(2);
        int gerror = vmm.irqEventFd(3);
        try {
            drv.probe(true);
            assertEquals(0, VmmClient.awaitEventFd(cmdSync, 0), "the probe's CMD_SYNCs signal nothing (CS = SIG_NONE)");
            drv.cmd(Smmuv3Driver.CMD_SYNC, 1L << 12, 0); // CS = SIG_IRQ, no MSI address
            assertEquals(1, VmmClient.awaitEventFd(cmdSync, 2000));
            assertEquals(0, VmmClient.awaitEventFd(gerror, 0));

            int bad = drv.cmdProd();
            drv.cmd(0x7f, 0, 0);
            assertEquals(1, VmmClient.awaitEventFd(gerror, 2000), "line gerror fired");
            assertEquals(1, drv.activeErrors(), "GERROR.CMDQ_ERR active");
            long cons = drv.mmio.read32(Smmuv3Driver.CMDQ_CONS);
            assertEquals(bad, cons & 0x1ff, "CONS stays on the failing command");
            assertEquals(1, (cons >>> 24) & 0x7f, "CMDQ_CONS.ERR = CERROR_ILL");
            vmm.memory().store(CMDQ + (bad & 0xff) * 16L, 8, Smmuv3Driver.CMD_SYNC);
            drv.mmio.write32(Smmuv3Driver.GERRORN, drv.mmio.read32(Smmuv3Driver.GERROR));
            assertEquals(0, drv.activeErrors());
            drv.sync();
            assertEquals(drv.cmdProd(), drv.mmio.read32(Smmuv3Driver.CMDQ_CONS) & 0x1ff, "the queue runs again");
            assertEquals(0, VmmClient.awaitEventFd(gerror, 0));
        } finally {
            VmmClient.closeFd(cmdSync);
            VmmClient.closeFd(gerror);
        }
    }

    /**
     * max profile (IDR0.MSI): the event queue's MSI (EVENTQ_IRQ_CFG0/1, IHI 0070 §3.18.2) to a
     * doorbell outside guest RAM reaches the VMM as IOMMU_MSI on the back-end channel, and the
     * wired line evtq fires as well.
     */
    @Test
    void eventQueueMsiReachesTheVmm() throws Exception {
        connect("max");
        drv.probe(true);
        drv.mmio.write32(Smmuv3Driver.IRQ_CTRL, 0); // IRQ_CFGs are guarded by their enables (§6.3 SMMU_IRQ_CTRL)
        assertEquals(0, drv.mmio.read32(Smmuv3Driver.IRQ_CTRLACK));
        drv.mmio.write64(Smmuv3Driver.EVTQ_IRQ_CFG0, 0x0809_0040L); // a GIC ITS doorbell, not RAM
        drv.mmio.write32(Smmuv3Driver.EVTQ_IRQ_CFG0 + 8, 0x2a); // EVENTQ_IRQ_CFG1: MSI data
        drv.mmio.write32(Smmuv3Driver.IRQ_CTRL, Smmuv3Driver.IRQ_GERROR | Smmuv3Driver.IRQ_EVTQ | Smmuv3Driver.IRQ_PRIQ);
        log.clear();
        assertEquals("C_BAD_STE", vmm.translate(3, -1, 0x1000, 0).reason());
        assertEquals(1, VmmClient.awaitEventFd(evtqFd, 2000));
        for (int i = 0; i < 200 && !log.contains("msi 0x8090040 0x2a"); i++) {
            Thread.sleep(5); // IOMMU_MSI is posted (no ack): the listener sees it on its own thread
        }
        assertEquals(List.of("msi 0x8090040 0x2a"), log);
        assertArrayEquals(le(0x04 | (3L << 32), 0, 0, 0), bytes(drv.drainEvents().get(0)));
    }

    /**
     * What QEMU's SMMUv3 does not do, through the socket (max profile): two PASIDs behind one
     * StreamID (IOMMU_TRANSLATE substream_id), a stalled translation (status 2 with its STAG,
     * IHI 0070 §3.12.2) that the guest resolves with CMD_RESUME, and a PCIe page request
     * (IOMMU_PRI_PAGE_REQUEST) that reaches the PRI queue in guest RAM and whose CMD_PRI_RESP comes
     * back to the VMM as IOMMU_PRI_RESPONSE (§8, §4.7.1).
     */
    @Test
    void pasidsStallAndPageRequestThroughTheSocket() throws Exception {
        connect("max");
        int priq = vmm.irqEventFd(1);
        try {
            drv.probe(true);
            PageTables pt = new PageTables(vmm.memory(), TABLES);
            long as1 = pt.s1Root();
            long as2 = pt.s1Root();
            pt.map(as1, 0x7000_0000L, 0x1111_0000L, PageTables.S1_RW);
            pt.map(as2, 0x7000_0000L, 0x2222_0000L, PageTables.S1_RW);
            long[] cd1 = Smmuv3Driver.cd(as1, 1, 16, 5);
            long[] cd2 = Smmuv3Driver.cd(as2, 2, 16, 5);
            cd2[0] |= 1L << 44; // CD.S: stall on fault
            for (int i = 0; i < 8; i++) {
                vmm.memory().store(CDS + 64 + 8L * i, 8, cd1[i]);
                vmm.memory().store(CDS + 128 + 8L * i, 8, cd2[i]);
            }
            drv.writeSte(4, Smmuv3Driver.steS1(CDS, 2, 0b10)); // 4 CDs; S1DSS 0b10
            assertEquals(0x1111_0008L, vmm.translate(4, 1, 0x7000_0008L, 0).result().output());
            assertEquals(0x2222_0008L, vmm.translate(4, 2, 0x7000_0008L, 0).result().output());

            Payloads.TranslateReply st = vmm.translate(4, 2, 0x7000_5000L, Payloads.ACCESS_WRITE);
            assertEquals(Payloads.STALLED, st.result().status());
            assertEquals(1, VmmClient.awaitEventFd(evtqFd, 2000));
            long[] ev = drv.drainEvents().get(0);
            assertEquals(0x10 | (1L << 11) | (2L << 12) | (4L << 32), ev[0]); // F_TRANSLATION, SSV, SubstreamID 2
            assertEquals(st.result().stag(), (int) (ev[1] & 0xffff), "STAG");
            assertTrue((ev[1] & (1L << 31)) != 0, "Stall");
            pt.map(as2, 0x7000_5000L, 0x2222_5000L, PageTables.S1_RW);
            log.clear();
            drv.resume(4, st.result().stag(), true);
            // The held access is released to the VMM: IOMMU_STALL_RESOLVED {sid 4, STAG, retry} (docs/protocol.md §5).
            String resumed = "stall resolved sid=4 stag=" + st.result().stag() + " flags=1";
            awaitLog(resumed);
            assertEquals(List.of(resumed), log.stream().filter(l -> l.startsWith("stall")).toList());
            assertEquals(0x2222_5008L, vmm.translate(4, 2, 0x7000_5008L, Payloads.ACCESS_WRITE).result().output(), "retried");

            // A second stall, terminated by CMD_STALL_TERM (§4.7.2): the VMM learns it is aborted.
            Payloads.TranslateReply st2 = vmm.translate(4, 2, 0x7000_6000L, 0);
            assertEquals(Payloads.STALLED, st2.result().status());
            assertEquals(1, VmmClient.awaitEventFd(evtqFd, 2000));
            drv.drainEvents();
            log.clear();
            drv.stallTerm(4);
            String terminated = "stall resolved sid=4 stag=" + st2.result().stag() + " flags=0";
            awaitLog(terminated);
            assertEquals(List.of(terminated), log.stream().filter(l -> l.startsWith("stall")).toList());

            log.clear();
            vmm.ack(dev.iommuemu.bridge.protocol.Request.IOMMU_PRI_PAGE_REQUEST,
                    new Payloads.PageRequestMsg(4, 1, 0x7000_9000L, Payloads.PAGE_REQUEST_LAST, 0x17).encode());
            assertEquals(1, VmmClient.awaitEventFd(priq, 2000), "line priq fired");
            List<long[]> pri = drv.drainPri();
            assertEquals(1, pri.size());
            // StreamID 4, SubstreamID 1, R, Last, SSV; PRGIndex 0x17 and the page address (§8).
            assertEquals(4 | (1L << 32) | (1L << 60) | (1L << 62) | (1L << 63), pri.get(0)[0]);
            assertEquals(0x17 | 0x7000_9000L, pri.get(0)[1]);
            drv.priResponse(4, 1, 0x17, 0b10); // Success
            String response = "pri response sid=4 ssid=1 group=0x17 code=0";
            for (int i = 0; i < 200 && !log.contains(response); i++) {
                Thread.sleep(5); // IOMMU_PRI_RESPONSE is posted: the listener sees it on its own thread
            }
            assertEquals(List.of(response), log.stream().filter(l -> l.startsWith("pri")).toList());
            assertEquals(0, drv.activeErrors());
        } finally {
            VmmClient.closeFd(priq);
        }
    }

    /**
     * IOMMU_PRI_PAGE_REQUEST's explicit PCIe fields (protocol version 3) reach the PRI queue entry
     * (IHI 0070 §8) bit for bit: read+write, write-only, a version-1 request (read), exec+priv with
     * a PASID and the Stop PASID marker (L/W/R = 0b100); malformed ones are refused with EINVAL.
     */
    @Test
    void pageRequestFieldsThroughTheSocket() throws Exception {
        connect("max");
        int priq = vmm.irqEventFd(1);
        try {
            drv.probe(true);
            final long ssv = 1L << 63, last = 1L << 62, w = 1L << 61, r = 1L << 60, x = 1L << 59, priv = 1L << 58;
            vmm.pageRequest(4, 1, 0x7000_1000L, Payloads.PAGE_REQUEST_READ | Payloads.PAGE_REQUEST_WRITE, 0x21);
            vmm.pageRequest(4, -1, 0x7000_2000L, Payloads.PAGE_REQUEST_WRITE, 0x22);
            vmm.pageRequest(4, -1, 0x7000_3000L, Payloads.PAGE_REQUEST_LAST, 0x23); // version 1: R
            vmm.pageRequest(4, 2, 0x7000_4000L, Payloads.PAGE_REQUEST_READ | Payloads.PAGE_REQUEST_EXEC
                    | Payloads.PAGE_REQUEST_PRIV | Payloads.PAGE_REQUEST_LAST, 0x24);
            vmm.pageRequest(4, 3, 0, Payloads.PAGE_REQUEST_STOP, 0x25);
            assertTrue(VmmClient.awaitEventFd(priq, 2000) >= 1, "line priq fired");
            List<long[]> pri = drv.drainPri();
            assertEquals(5, pri.size());
            assertEquals(4 | (1L << 32) | ssv | r | w, pri.get(0)[0]);
            assertEquals(0x7000_1000L | 0x21, pri.get(0)[1]);
            assertEquals(4 | w, pri.get(1)[0]);
            assertEquals(0x7000_2000L | 0x22, pri.get(1)[1]);
            assertEquals(4 | r | last, pri.get(2)[0]);
            assertEquals(4 | (2L << 32) | ssv | r | x | priv | last, pri.get(3)[0]);
            assertEquals(4 | (3L << 32) | ssv | last, pri.get(4)[0], "Stop marker: L/W/R = 0b100 with SSV");
            assertEquals(0x25, pri.get(4)[1]);
            for (int[] bad : new int[][] {{-1, Payloads.PAGE_REQUEST_STOP}, {3, Payloads.PAGE_REQUEST_STOP | Payloads.PAGE_REQUEST_READ},
                    {1, Payloads.PAGE_REQUEST_READ | 0x40}}) {
                dev.iommuemu.bridge.client.RequestRefusedException e = org.junit.jupiter.api.Assertions.assertThrows(
                        dev.iommuemu.bridge.client.RequestRefusedException.class, () -> vmm.pageRequest(4, bad[0], 0x7000_5000L, bad[1], 1));
                assertEquals(22, e.errno(), "EINVAL");
            }
            assertEquals(0, drv.drainPri().size());
            assertEquals(0, drv.activeErrors());
        } finally {
            VmmClient.closeFd(priq);
        }
    }

    /**
     * CMD_ATC_INV reaches the VMM as IOMMU_ATC_INVALIDATE with its span, its PASID and its G flag
     * (IHI 0070 §4.5.1; protocol version 4), acknowledged before the CMD_SYNC completes.
     */
    @Test
    void atcInvalidationCarriesGlobal() throws Exception {
        connect("max");
        drv.probe(true);
        log.clear();
        drv.atcInv(4, 3, 0x7000_3000L, 1, true); // 8 KiB at an 8 KiB-aligned address, PASID 3, G
        drv.atcInv(4, 3, 0x7000_4000L, 0, false);
        drv.atcInv(4, -1, 0x1234_5000L, 52, false); // everything, no PASID
        assertEquals(List.of("atc sid=4 ssid=3 address=0x70002000 size=0x2000 flags=1",
                "atc sid=4 ssid=3 address=0x70004000 size=0x1000 flags=0",
                "atc sid=4 ssid=-1 address=0x0 size=0xffffffffffffffff flags=0"),
                log.stream().filter(l -> l.startsWith("atc")).toList());
        assertEquals(0, drv.activeErrors());
    }

    /**
     * docs/protocol.md §4.4: "a model without ATS or PRI answers ENOSYS". The default profile has
     * neither (SMMU_IDR0.ATS = PRI = 0, IHI 0070 §6.3.1): a page request is not silently dropped.
     */
    @Test
    void withoutAtsAndPriTheRequestsAreEnosys() throws Exception {
        connect("default");
        drv.probe(true);
        dev.iommuemu.bridge.client.RequestRefusedException e = org.junit.jupiter.api.Assertions.assertThrows(
                dev.iommuemu.bridge.client.RequestRefusedException.class,
                () -> vmm.pageRequest(4, -1, 0x7000_0000L, Payloads.PAGE_REQUEST_LAST, 1));
        assertEquals(38, e.errno(), "ENOSYS");
        e = org.junit.jupiter.api.Assertions.assertThrows(dev.iommuemu.bridge.client.RequestRefusedException.class,
                () -> vmm.call(dev.iommuemu.bridge.protocol.Request.IOMMU_ATS_TRANSLATE,
                        new Payloads.TranslateRequest(4, Payloads.NO_SUBSTREAM, 0x7000_0000L, 0).encode()));
        assertEquals(38, e.errno(), "ENOSYS");
        assertEquals(0, drv.activeErrors());
    }

    /** Waits (bounded) for a posted back-end message to reach the listener's thread. */
    void awaitLog(String line) throws InterruptedException {
        for (int i = 0; i < 400 && !log.contains(line); i++) {
            Thread.sleep(5);
        }
    }

    /** max profile: CMD_SYNC signalled by an MSI into the command queue slot, which the daemon stores in the memfd. */
    @Test
    void cmdSyncMsiLandsInTheSharedGuestRam() throws Exception {
        connect("max");
        drv.probe(true);
        assertTrue(drv.syncMsi(), "the MSI zeroed the CMD_SYNC's first word in the VMM's view of guest RAM");
        assertEquals(0, drv.activeErrors());
    }
}
