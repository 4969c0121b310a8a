package dev.iommuemu.guest.virtio;

import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_BYPASS;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_BYPASS_CONFIG;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_DOMAIN_RANGE;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_EVENT_IDX;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_INDIRECT_DESC;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_INPUT_RANGE;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_MAP_UNMAP;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_MMIO;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_PROBE;
import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_VERSION_1;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.guest.virtio.VirtioIommuDriver.ProbeReply;
import dev.iommuemu.guest.virtio.VirtioIommuDriver.Reply;
import dev.iommuemu.guest.virtio.VirtioIommuDriver.Split;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.virtio.iommu.FaultEvent;
import dev.iommuemu.virtio.iommu.RecordingHost;
import dev.iommuemu.virtio.iommu.ResvRegion;
import dev.iommuemu.virtio.iommu.VirtioIommuConfig;
import dev.iommuemu.virtio.iommu.VirtioIommuDevice;
import dev.iommuemu.virtqueue.ChainError;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.VirtqDesc;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The virtio-iommu device driven by a spec-written guest driver through its virtqueues. */
class VirtioIommuGuestTest {
    // Status codes (spec "Device operations").
    static final int OK = 0;
    static final int UNSUPP = 2;
    static final int DEVERR = 3;
    static final int INVAL = 4;
    static final int RANGE = 5;
    static final int NOENT = 6;
    static final int NOMEM = 8;
    // MAP flags, ATTACH flags, fault reasons and flags.
    static final int READ = 1;
    static final int WRITE = 2;
    static final int MMIO = 4;
    static final int ATTACH_BYPASS = 1;

    static final long ALL = F_INPUT_RANGE | F_DOMAIN_RANGE | F_MAP_UNMAP | F_PROBE | F_MMIO | F_BYPASS_CONFIG
            | F_INDIRECT_DESC | F_EVENT_IDX | F_VERSION_1;
    static final long MSI_START = 0x0800_0000L;
    static final long MSI_END = 0x080f_ffffL;

    final SparseGuestMemory mem = new SparseGuestMemory(0, 0x4000_0000L);
    final RecordingHost host = new RecordingHost();
    VirtioIommuDevice dev;

    static VirtioIommuConfig.Builder base() {
        return VirtioIommuConfig.builder()
                .inputRange(0, (1L << 48) - 1)
                .domainRange(1, 1000)
                .endpoints(0, 0xff)
                .resv(ResvRegion.msi(MSI_START, MSI_END))
                .resv(5, ResvRegion.reserved(0xfee0_0000L, 0xfeef_ffffL))
                .maxDomains(8)
                .maxEndpoints(16)
                .maxMappingsPerDomain(64)
                .maxMappings(100);
    }

    VirtioIommuDriver driver(VirtioIommuConfig cfg, long wanted) {
        dev = new VirtioIommuDevice(cfg, mem, host);
        VirtioIommuDriver d = new VirtioIommuDriver(VirtioTransport.direct(dev), mem, 1);
        assertTrue(d.init(wanted, 64, 8, 24));
        return d;
    }

    VirtioIommuDriver driver() {
        return driver(base().build(), ALL);
    }

    IotlbEntry translated(int ep, long iova, DmaAccess access) {
        DmaResult r = dev.translate(ep, -1, iova, access);
        return assertInstanceOf(DmaResult.Translated.class, r, () -> "ep " + ep + " iova 0x" + Long.toHexString(iova) + ": " + r).entry();
    }

    String aborted(int ep, long iova, DmaAccess access) {
        return assertInstanceOf(DmaResult.Aborted.class, dev.translate(ep, -1, iova, access)).reason();
    }

    // ---- features and config ----

    @Test
    void offersFeaturesAndShowsTheConfigSpace() {
        VirtioIommuDriver d = driver();
        // INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, MMIO, BYPASS_CONFIG; INDIRECT_DESC, EVENT_IDX, VERSION_1.
        assertEquals(0x1_3000_0077L, dev.deviceFeatures());
        assertEquals(0x1_3000_0077L, d.features());
        assertEquals(0x4020_1000L, d.pageSizeMask);
        assertEquals(0L, d.inputStart);
        assertEquals(0xffff_ffff_ffffL, d.inputEnd);
        assertEquals(1, d.domainStart);
        assertEquals(1000, d.domainEnd);
        assertEquals(512, d.probeSize);
        assertEquals(0, d.bypass);
        byte[] expected = {
            0x00, 0x10, 0x20, 0x40, 0, 0, 0, 0, // page_size_mask
            0, 0, 0, 0, 0, 0, 0, 0, // input_range.start
            -1, -1, -1, -1, -1, -1, 0, 0, // input_range.end
            1, 0, 0, 0, (byte) 0xe8, 0x03, 0, 0, // domain_range
            0, 2, 0, 0, // probe_size
            0, 0, 0, 0 // bypass, reserved
        };
        assertArrayEquals(expected, dev.configBytes());
        assertEquals(0x03e8_0000_0001L, dev.readConfig(24, 8));
    }

    @Test
    void legacyBypassConfigOffersBypassAndNotBypassConfig() {
        dev = new VirtioIommuDevice(base().legacyBypass(true).mmio(false).probeSize(0).build(), mem, host);
        assertEquals(0x1_3000_000fL, dev.deviceFeatures()); // INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, BYPASS
    }

    @Test
    void refusesFeatureSetsADriverMustNotAccept() {
        dev = new VirtioIommuDevice(base().build(), mem, host);
        assertFalse(dev.setDriverFeatures(F_MAP_UNMAP), "without VERSION_1");
        assertFalse(dev.setDriverFeatures(F_VERSION_1 | F_BYPASS), "BYPASS is not offered next to BYPASS_CONFIG");
        assertTrue(dev.setDriverFeatures(F_VERSION_1 | F_MAP_UNMAP));
    }

    @Test
    void onlyBypassIsWritableAndOnlyWithBypassConfig() {
        VirtioIommuDriver d = driver(base().build(), ALL & ~F_BYPASS_CONFIG);
        d.writeBypass(1);
        d.readConfig();
        assertEquals(0, d.bypass);
        d = driver(base().build(), ALL);
        dev.writeConfig(0, 8, 0x1234); // page_size_mask is read-only
        d.writeBypass(2); // not 0 or 1
        d.readConfig();
        assertEquals(0x4020_1000L, d.pageSizeMask);
        assertEquals(0, d.bypass);
        d.writeBypass(1);
        d.readConfig();
        assertEquals(1, d.bypass);
        assertEquals(2, dev.counters().configWritesIgnored());
        // Device reset keeps bypass ("SHOULD NOT change on device reset"); system reset restores it.
        dev.reset();
        assertEquals(1, dev.readConfig(36, 1));
        dev.systemReset();
        assertEquals(0, dev.readConfig(36, 1));
    }

    // ---- requests over every split ----

    @ParameterizedTest
    @EnumSource(Split.class)
    void attachMapTranslateUnmapOverAnySplit(Split split) {
        VirtioIommuDriver d = driver();
        d.split(split);
        assertEquals(OK, d.attach(1, 3, 0));
        assertEquals(OK, d.map(1, 0x10_0000, 0x10_ffff, 0x4000_0000L, READ | WRITE));
        assertEquals(OK, d.map(1, 0x1000, 0x4fff, 0x20_1000, READ));
        IotlbEntry e = translated(3, 0x10_1234, DmaAccess.WRITE);
        assertEquals(new IotlbEntry(0x10_0000, 0x4000_0000L, 0xffff, Perm.UR | Perm.PR | Perm.UX | Perm.PX | Perm.UW | Perm.PW), e);
        assertEquals(0x4000_1234L, e.translate(0x10_1234));
        // 16 KiB at 0x1000 -> 0x201000: the largest aligned block holding 0x3abc is [0x2000, 0x3fff].
        e = translated(3, 0x3abc, DmaAccess.READ);
        assertEquals(new IotlbEntry(0x2000, 0x20_2000, 0x1fff, Perm.UR | Perm.PR | Perm.UX | Perm.PX), e);
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", aborted(3, 0x3abc, DmaAccess.WRITE));
        assertEquals(OK, d.unmap(1, 0x10_0000, 0x10_ffff));
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", aborted(3, 0x10_1234, DmaAccess.READ));
        ProbeReply p = d.probe(3);
        assertEquals(OK, p.status());
        assertEquals(512 + 4, p.usedLen());
        assertEquals(2, dev.counters().faultsDelivered());
    }

    /** IommuModel#prefetch: the mappings after an address, as translate gives them, and no fault report. */
    @Test
    void prefetchFollowsTheMappingsAndReportsNothing() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 3, 0));
        assertEquals(OK, d.map(1, 0x10_0000, 0x10_2fff, 0x4000_0000L, READ | WRITE)); // 12 KiB
        assertEquals(OK, d.map(1, 0x10_3000, 0x10_3fff, 0x5000_7000L, READ)); // adjacent, elsewhere
        assertEquals(OK, d.map(1, 0x10_5000, 0x10_5fff, 0x5000_9000L, READ)); // after a hole
        int rw = Perm.UR | Perm.PR | Perm.UX | Perm.PX | Perm.UW | Perm.PW;
        int ro = Perm.UR | Perm.PR | Perm.UX | Perm.PX;
        // From 0x101000: the 8 KiB block holding it (translate's entry), the last 4 KiB of the
        // mapping, then the adjacent read-only page; the hole at 0x104000 ends the run.
        IotlbEntry first = new IotlbEntry(0x10_0000, 0x4000_0000L, 0x1fff, rw);
        IotlbEntry second = new IotlbEntry(0x10_2000, 0x4000_2000L, 0xfff, rw);
        assertEquals(List.of(first, second, new IotlbEntry(0x10_3000, 0x5000_7000L, 0xfff, ro)),
                dev.prefetch(3, -1, 0x10_1000, DmaAccess.READ, 64));
        assertEquals(List.of(first, second), dev.prefetch(3, -1, 0x10_1000, DmaAccess.WRITE, 64),
                "a write stops at the read-only page");
        assertEquals(List.of(new IotlbEntry(0x10_0000, 0x4000_0000L, 0x1fff, rw)), dev.prefetch(3, -1, 0x10_0000, DmaAccess.READ, 1),
                "one page asked for, the first entry covers it");
        assertEquals(List.of(), dev.prefetch(3, -1, 0x10_4000, DmaAccess.READ, 64), "unmapped: nothing");
        assertEquals(List.of(), dev.prefetch(4, -1, 0x10_0000, DmaAccess.READ, 64), "unattached endpoint: nothing");
        assertEquals(List.of(), dev.prefetch(3, -1, 0x10_3000, DmaAccess.WRITE, 64), "read-only for a write: nothing");
        assertEquals(0, dev.counters().faultsDelivered(), "a prefetch reports no fault");
        assertEquals(0, host.irqCount("vq1"));
        // Bypass: one entry covering everything ends the run.
        assertEquals(OK, d.attach(2, 5, ATTACH_BYPASS));
        assertEquals(List.of(new IotlbEntry(0, 0, -1L, Perm.ALL)), dev.prefetch(5, -1, 0x1234_5000L, DmaAccess.READ, 64));
    }

    @Test
    void replyLayoutAndUsedLength() {
        VirtioIommuDriver d = driver();
        Reply r = d.send(VirtioIommuDriver.attachReq(1, 1, 0, 0), 4);
        assertEquals(4, r.usedLen());
        assertArrayEquals(new byte[] {0, 0, 0, 0}, r.written(), "status OK, reserved zero");
        r = d.send(VirtioIommuDriver.attachReq(1, 0x1000, 0, 0), 4);
        assertArrayEquals(new byte[] {NOENT, 0, 0, 0}, r.written());
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(longs = {0x1000L, 0x4000L, 0x1_0000L})
    void granulesFromPageSizeMask(long granule) {
        VirtioIommuDriver d = driver(base().pageSizeMask(granule | 0x20_0000L).build(), ALL);
        assertEquals(granule | 0x20_0000L, d.pageSizeMask);
        assertEquals(OK, d.attach(1, 1, 0));
        long va = 4 * granule;
        assertEquals(granule == 0x1000 ? OK : RANGE, d.map(1, va + 0x1000, va + 0x1fff, 0x1000, READ), "4 KiB pieces");
        assertEquals(RANGE, d.map(1, va, va + granule - 1, granule / 2, READ), "phys_start off the granule");
        assertEquals(OK, d.map(1, va + 8 * granule, va + 10 * granule - 1, 6 * granule, READ));
        IotlbEntry e = translated(1, va + 9 * granule + 0x10, DmaAccess.READ);
        assertEquals(7 * granule + 0x10, e.translate(va + 9 * granule + 0x10));
        assertTrue(e.addrMask() + 1 >= granule, "at least one granule per IOTLB entry");
    }

    @Test
    void aBatchOfRequestsIsAnsweredInOrderWithOneNotification() {
        VirtioIommuDriver d = driver();
        DriverRing ring = d.requestRing();
        long buf = 0x60_0000;
        int[] heads = new int[5];
        for (int i = 0; i < 5; i++) {
            long r = buf + 0x100L * i;
            byte[] req = VirtioIommuDriver.attachReq(1, i == 3 ? 0x1000 : i, 0, 0);
            mem.write(r, req, 0, req.length);
            heads[i] = ring.add(List.of(DriverRing.Buf.out(r, 20), DriverRing.Buf.in(r + 0x80, 4)));
            ring.publish(heads[i]);
        }
        host.clear();
        assertTrue(ring.kickNeeded());
        assertTrue(dev.queueNotified(0));
        assertEquals(1, host.irqCount("vq0"));
        for (int i = 0; i < 5; i++) {
            DriverRing.Used u = ring.popUsed();
            assertEquals(new DriverRing.Used(heads[i], 4), u);
            assertEquals(i == 3 ? NOENT : OK, mem.load(buf + 0x100L * i + 0x80, 1).getAsLong());
        }
        assertEquals(1, dev.domainOf(4).getAsInt());
    }

    // ---- ATTACH / DETACH ----

    @Test
    void attachStatusCodes() {
        VirtioIommuDriver d = driver();
        assertEquals(INVAL, d.send(VirtioIommuDriver.attachReq(1, 1, 0, 1), 4).status(0), "reserved != 0");
        assertEquals(INVAL, d.attach(1, 1, 2), "unknown flag");
        assertEquals(RANGE, d.attach(0, 1, 0), "below domain_range");
        assertEquals(RANGE, d.attach(1001, 1, 0), "above domain_range");
        assertEquals(NOENT, d.attach(1, 0x100, 0), "no such endpoint");
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(INVAL, d.attach(1, 2, ATTACH_BYPASS), "F_BYPASS on a mapping domain");
        assertEquals(OK, d.attach(2, 2, ATTACH_BYPASS));
        assertEquals(INVAL, d.attach(2, 3, 0), "no F_BYPASS on a bypass domain");
        assertEquals(OK, d.attach(1, 1, 0), "attaching again to the same domain");
        assertEquals(0, dev.counters().status(UNSUPP));

        // Without BYPASS_CONFIG negotiated the flag is not recognised.
        d = driver(base().build(), ALL & ~F_BYPASS_CONFIG);
        assertEquals(INVAL, d.attach(2, 2, ATTACH_BYPASS));
    }

    @Test
    void attachWhenDomainsCannotBeSharedIsUnsupp() {
        VirtioIommuDriver d = driver(base().sharedDomains(false).build(), ALL);
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(UNSUPP, d.attach(1, 2, 0));
        assertEquals(OK, d.attach(2, 2, 0));
    }

    @Test
    void attachMovesTheEndpointAndAnEmptiedDomainCeasesToExist() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x5000, READ));
        host.clear();
        assertEquals(OK, d.attach(2, 1, 0));
        assertEquals(2, dev.domainOf(1).getAsInt());
        assertEquals(List.of(new IotlbInvalidation(1, 0, -1L)), host.invalidations);
        // Domain 1 lost its last endpoint: it and its mappings are gone.
        assertEquals(NOENT, d.map(1, 0x2000, 0x2fff, 0, READ));
        assertEquals(0, dev.mappingCount());
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", aborted(1, 0x1000, DmaAccess.READ));
    }

    @Test
    void detachStatusCodes() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(OK, d.attach(1, 2, 0));
        assertEquals(NOENT, d.detach(1, 0x100));
        assertEquals(RANGE, d.detach(0, 1));
        assertEquals(INVAL, d.detach(3, 1), "no such domain");
        assertEquals(INVAL, d.detach(1, 7), "endpoint not in the domain");
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x5000, READ));
        host.clear();
        assertEquals(OK, d.detach(1, 1));
        assertEquals(List.of(new IotlbInvalidation(1, 0, -1L)), host.invalidations);
        assertTrue(dev.domainOf(1).isEmpty());
        assertEquals("VIRTIO_IOMMU_FAULT_R_DOMAIN", aborted(1, 0x1000, DmaAccess.READ));
        assertEquals(0x5000L, translated(2, 0x1000, DmaAccess.READ).translatedAddr(), "the domain lives on with endpoint 2");
        assertEquals(OK, d.detach(1, 2));
        assertEquals(0, dev.domainCount());
        assertEquals(NOENT, d.unmap(1, 0x1000, 0x1fff));
    }

    // ---- MAP ----

    @Test
    void mapStatusCodes() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(OK, d.attach(2, 2, ATTACH_BYPASS));
        assertEquals(INVAL, d.map(1, 0x1000, 0x1fff, 0, 8), "unknown flag");
        assertEquals(RANGE, d.map(1001, 0x1000, 0x1fff, 0, READ));
        assertEquals(NOENT, d.map(3, 0x1000, 0x1fff, 0, READ));
        assertEquals(INVAL, d.map(2, 0x1000, 0x1fff, 0, READ), "bypass domain");
        assertEquals(RANGE, d.map(1, 0x1800, 0x1fff, 0, READ), "virt_start unaligned");
        assertEquals(RANGE, d.map(1, 0x1000, 0x1fff, 0x800, READ), "phys_start unaligned");
        assertEquals(RANGE, d.map(1, 0x1000, 0x1ffe, 0, READ), "virt_end + 1 unaligned");
        assertEquals(INVAL, d.map(1, 0x2000, 0x0fff, 0, READ), "virt_end below virt_start");
        assertEquals(RANGE, d.map(1, 0xffff_ffff_f000L, 0x1_0000_0000_0fffL, 0, READ), "beyond input_range.end");
        assertEquals(RANGE, d.map(1, 0x1000, 0x2fff, 0xffff_ffff_ffff_f000L, READ), "phys_end beyond 2^64");
        assertEquals(INVAL, d.map(1, MSI_START + 0x1000, MSI_START + 0x1fff, 0, READ), "overlaps the MSI RESV_MEM region");
        assertEquals(OK, d.map(1, 0x1000, 0x2fff, 0, READ | WRITE));
        assertEquals(INVAL, d.map(1, 0x2000, 0x3fff, 0, READ), "overlaps a mapping");
        assertEquals(OK, d.map(1, 0x3000, 0x3fff, 0, 0), "no permission at all is a valid mapping");
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", aborted(1, 0x3000, DmaAccess.READ));

        // Without MAP_UNMAP negotiated, MAP and UNMAP are unsupported; MMIO needs F_MMIO.
        d = driver(base().build(), ALL & ~F_MAP_UNMAP & ~F_MMIO);
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(UNSUPP, d.map(1, 0x1000, 0x1fff, 0, READ));
        assertEquals(UNSUPP, d.unmap(1, 0x1000, 0x1fff));
        d = driver(base().build(), ALL & ~F_MMIO);
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(INVAL, d.map(1, 0x1000, 0x1fff, 0, READ | MMIO));
    }

    @Test
    void mapRejectsTheEndpointsOwnReservedRegion() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 5, 0));
        assertEquals(INVAL, d.map(1, 0xfee0_0000L, 0xfee0_0fffL, 0, READ));
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", aborted(5, 0xfee0_0010L, DmaAccess.WRITE));
        assertEquals(OK, d.attach(2, 6, 0));
        assertEquals(OK, d.map(2, 0xfee0_0000L, 0xfee0_0fffL, 0, READ), "endpoint 6 has no such region");
    }

    @Test
    void mmioMappingsTranslateAndAreMarked() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 1, 0));
        long doorbell = 0x1_0000_0000L; // outside guest RAM: a device register page
        assertEquals(OK, d.map(1, 0x9000, 0x9fff, doorbell, WRITE | MMIO));
        assertEquals(OK, d.map(1, 0xa000, 0xafff, 0x7000, READ | WRITE));
        var t = dev.translateDetailed(1, 0x9040, DmaAccess.WRITE);
        assertTrue(t.mmio());
        assertEquals(doorbell + 0x40, ((DmaResult.Translated) t.result()).entry().translate(0x9040));
        assertFalse(dev.translateDetailed(1, 0xa000, DmaAccess.READ).mmio());
        // The MSI RESV_MEM region is reached untranslated, as MMIO.
        t = dev.translateDetailed(1, MSI_START + 0x40, DmaAccess.WRITE);
        assertTrue(t.mmio());
        assertEquals(MSI_START + 0x40, ((DmaResult.Translated) t.result()).entry().translate(MSI_START + 0x40));
        assertEquals(new IotlbEntry(MSI_START, MSI_START, 0xf_ffff, Perm.UR | Perm.PR | Perm.UW | Perm.PW),
                ((DmaResult.Translated) t.result()).entry());
        // ... also for an endpoint that is attached nowhere (bypass 0): the doorbell is not guest memory.
        assertEquals(MSI_START + 4, translated(0x40, MSI_START + 4, DmaAccess.WRITE).translate(MSI_START + 4));
        assertEquals("VIRTIO_IOMMU_FAULT_R_DOMAIN", aborted(0x40, MSI_START - 4, DmaAccess.WRITE));
    }

    // ---- UNMAP ----

    /** The seven examples of "UNMAP request", each from a blank address space, with a 1-byte granule. */
    @Test
    void unmapFollowsTheSpecExamples() {
        VirtioIommuDriver d = driver(base().pageSizeMask(1).build(), ALL);
        assertEquals(OK, d.attach(1, 1, 0));
        // (1) unmap(0, 4) on nothing: succeeds, unmaps nothing.
        assertEquals(OK, d.unmap(1, 0, 4));
        // (2) a = map(0, 9); unmap(0, 9): unmaps a.
        assertEquals(OK, d.map(1, 0, 9, 0x100, READ));
        assertEquals(OK, d.unmap(1, 0, 9));
        assertEquals(0, dev.mappingCount());
        // (3) a = map(0, 4); b = map(5, 9); unmap(0, 9): unmaps both.
        assertEquals(OK, d.map(1, 0, 4, 0x100, READ));
        assertEquals(OK, d.map(1, 5, 9, 0x200, READ));
        assertEquals(OK, d.unmap(1, 0, 9));
        assertEquals(0, dev.mappingCount());
        // (4) a = map(0, 9); unmap(0, 4): fails (RANGE), unmaps nothing.
        assertEquals(OK, d.map(1, 0, 9, 0x100, READ));
        assertEquals(RANGE, d.unmap(1, 0, 4));
        assertEquals(1, dev.mappingCount());
        assertEquals(RANGE, d.unmap(1, 5, 20), "splitting at the other end");
        assertEquals(OK, d.unmap(1, 0, 9));
        // (5) a = map(0, 4); b = map(5, 9); unmap(0, 4): unmaps a only.
        assertEquals(OK, d.map(1, 0, 4, 0x100, READ));
        assertEquals(OK, d.map(1, 5, 9, 0x200, READ));
        assertEquals(OK, d.unmap(1, 0, 4));
        assertEquals(1, dev.mappingCount());
        assertEquals(0x202L, translated(1, 7, DmaAccess.READ).translate(7));
        assertEquals(OK, d.unmap(1, 5, 9));
        // (6) a = map(0, 4); unmap(0, 9): unmaps a.
        assertEquals(OK, d.map(1, 0, 4, 0x100, READ));
        assertEquals(OK, d.unmap(1, 0, 9));
        assertEquals(0, dev.mappingCount());
        // (7) a = map(0, 4); b = map(10, 14); unmap(0, 14): unmaps both.
        assertEquals(OK, d.map(1, 0, 4, 0x100, READ));
        assertEquals(OK, d.map(1, 10, 14, 0x200, READ));
        assertEquals(OK, d.unmap(1, 0, 14));
        assertEquals(0, dev.mappingCount());
    }

    @Test
    void unmapStatusCodesAndInvalidationOfEveryAttachedEndpoint() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(OK, d.attach(1, 2, 0));
        assertEquals(OK, d.attach(2, 3, ATTACH_BYPASS));
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x5000, READ));
        assertEquals(OK, d.map(1, 0x3000, 0x4fff, 0x8000, READ));
        assertEquals(INVAL, d.send(VirtioIommuDriver.unmapReq(1, 0x1000, 0x1fff, 1), 4).status(0), "reserved != 0");
        assertEquals(2, dev.mappingCount(), "a rejected UNMAP unmaps nothing");
        assertEquals(RANGE, d.unmap(1001, 0, 0xfff));
        assertEquals(NOENT, d.unmap(4, 0, 0xfff));
        assertEquals(INVAL, d.unmap(2, 0, 0xfff), "bypass domain");
        assertEquals(RANGE, d.unmap(1, 0x1000, 0x1_0000_0000_0000L), "beyond input_range");
        host.clear();
        assertEquals(OK, d.unmap(1, 0, 0x10_0000));
        // Each endpoint of the domain drops the span of what was unmapped, before the reply.
        assertEquals(List.of(new IotlbInvalidation(1, 0x1000, 0x4000), new IotlbInvalidation(2, 0x1000, 0x4000)), host.invalidations);
        host.clear();
        assertEquals(OK, d.unmap(1, 0, 0x10_0000));
        assertEquals(List.of(), host.invalidations, "nothing unmapped, nothing to invalidate");
    }

    // ---- PROBE ----

    @Test
    void probeReportsResvMemPropertiesByteForByte() {
        VirtioIommuDriver d = driver();
        ProbeReply p = d.probe(5);
        assertEquals(OK, p.status());
        assertEquals(516, p.usedLen());
        assertEquals(2, p.resvMem().size());
        assertArrayEquals(new long[] {1, MSI_START, MSI_END}, p.resvMem().get(0));
        assertArrayEquals(new long[] {0, 0xfee0_0000L, 0xfeef_ffffL}, p.resvMem().get(1));
        byte[] first = java.util.Arrays.copyOf(p.raw(), 24);
        assertArrayEquals(new byte[] {
            1, 0, 20, 0, // type RESV_MEM, length 20
            1, 0, 0, 0, // subtype MSI, reserved
            0, 0, 0, 8, 0, 0, 0, 0, // start
            (byte) 0xff, (byte) 0xff, 0x0f, 8, 0, 0, 0, 0 // end
        }, first);
        for (int i = 48; i < 512; i++) {
            assertEquals(0, p.raw()[i], "unused properties bytes are zero: " + i);
        }
        assertEquals(1, d.probe(7).resvMem().size());
        assertEquals(NOENT, d.probe(0x100).status());
        // A properties buffer smaller than probe_size: INVAL, no property written.
        ProbeReply small = d.probe(5, 100);
        assertEquals(INVAL, small.status());
        assertTrue(small.resvMem().isEmpty());
    }

    @Test
    void probeWithoutTheFeatureIsReturnedUnwritten() {
        VirtioIommuDriver d = driver(base().build(), ALL & ~F_PROBE);
        Reply r = d.send(VirtioIommuDriver.probeReq(1), 516);
        assertEquals(0, r.usedLen());
        assertEquals((byte) 0xee, r.written()[512], "tail untouched");
        assertEquals(1, dev.counters().probeNotNegotiated());
    }

    // ---- unknown, short and malformed requests ----

    @Test
    void unknownTypeIsReturnedUnwrittenWithUsedLengthZero() {
        VirtioIommuDriver d = driver();
        byte[] req = VirtioIommuDriver.attachReq(1, 1, 0, 0);
        req[0] = 9;
        Reply r = d.send(req, 4);
        assertEquals(0, r.usedLen());
        assertArrayEquals(new byte[] {(byte) 0xee, (byte) 0xee, (byte) 0xee, (byte) 0xee}, r.written());
        assertEquals(1, dev.counters().unknownType());
    }

    @Test
    void shortRequestsGetDeverrAndMissingTailsGetNothing() {
        VirtioIommuDriver d = driver();
        byte[] map = VirtioIommuDriver.mapReq(1, 0x1000, 0x1fff, 0, READ);
        Reply r = d.send(java.util.Arrays.copyOf(map, 30), 4);
        assertEquals(4, r.usedLen());
        assertEquals(DEVERR, r.status(0));
        r = d.send(new byte[2], 4);
        assertEquals(DEVERR, r.status(0), "not even a head");
        r = d.send(VirtioIommuDriver.attachReq(1, 1, 0, 0), 2);
        assertEquals(0, r.usedLen(), "no room for the tail");
        assertTrue(dev.domainOf(1).isEmpty(), "a request without a tail is not executed");
        r = d.send(VirtioIommuDriver.attachReq(1, 1, 0, 0), 0);
        assertEquals(0, r.usedLen());
        assertEquals(2, dev.counters().noReply());
        assertEquals(2, dev.counters().deverrReplies());
    }

    @Test
    void malformedChainsGetDeverrWhereATailExistsAndAreOtherwiseSkipped() {
        VirtioIommuDriver d = driver();
        DriverRing ring = d.requestRing();
        // A loop through a readable head and a writable tail.
        int a = ring.allocDesc();
        int b = ring.allocDesc();
        mem.write(0x50_0000, VirtioIommuDriver.attachReq(1, 1, 0, 0), 0, 20);
        ring.writeDesc(a, 0x50_0000, 20, VirtqDesc.F_NEXT, b);
        ring.writeDesc(b, 0x50_1000, 4, VirtqDesc.F_NEXT | VirtqDesc.F_WRITE, b);
        ring.track(a, List.of(a, b));
        ring.publish(a);
        Reply r = d.complete(a, List.of(new long[] {0x50_1000, 4}), 4);
        assertEquals(DEVERR, r.status(0));
        assertTrue(dev.domainOf(1).isEmpty());

        // A readable buffer outside guest memory.
        a = ring.allocDesc();
        b = ring.allocDesc();
        ring.writeDesc(a, 0x8000_0000L, 20, VirtqDesc.F_NEXT, b);
        ring.writeDesc(b, 0x50_1000, 4, VirtqDesc.F_WRITE, 0);
        ring.track(a, List.of(a, b));
        ring.publish(a);
        assertEquals(DEVERR, d.complete(a, List.of(new long[] {0x50_1000, 4}), 4).status(0));

        // Wrong direction: readable after the writable tail, no usable tail before it.
        a = ring.allocDesc();
        b = ring.allocDesc();
        ring.writeDesc(a, 0x50_1000, 2, VirtqDesc.F_NEXT | VirtqDesc.F_WRITE, b);
        ring.writeDesc(b, 0x50_0000, 20, 0, 0);
        ring.track(a, List.of(a, b));
        ring.publish(a);
        assertEquals(0, d.complete(a, List.of(), 0).usedLen());

        // A head index beyond the queue size is skipped and counted; the queue keeps working.
        ring.publish(1000);
        d.requestRing().kickNeeded();
        dev.queueNotified(0);
        assertEquals(1, dev.counters().skippedHeads());
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(4, dev.counters().malformedChains(), "three bad chains and the bad head");
        Map<String, Long> q = dev.queueCounters(0);
        assertEquals(1L, q.get("chain_error." + ChainError.TOO_LONG.name().toLowerCase()));
        assertEquals(1L, q.get("chain_error.buffer_abort"));
        assertEquals(1L, q.get("chain_error.readable_after_writable"));
        assertEquals(1L, q.get("chain_error.head_out_of_range"));
    }

    @Test
    void aGarbageAvailableIndexBreaksTheQueueWithoutThrowing() {
        VirtioIommuDriver d = driver();
        d.requestRing().forceAvailIdx(5000);
        assertFalse(dev.queueNotified(0));
        assertTrue(dev.queueBroken(0));
        // A reset and a fresh initialisation bring it back.
        assertTrue(d.init(ALL, 64, 8, 24));
        assertEquals(OK, d.attach(1, 1, 0));
    }

    // ---- bypass ----

    @Test
    void bypassConfigBothWays() {
        VirtioIommuDriver d = driver(base().bypass(true).build(), ALL);
        assertEquals(1, d.bypass);
        IotlbEntry id = translated(9, 0x1234_5678L, DmaAccess.WRITE);
        assertEquals(new IotlbEntry(0, 0, -1L, Perm.ALL), id);
        host.clear();
        d.writeBypass(0);
        assertEquals(List.of(IotlbInvalidation.all()), host.invalidations, "identity translations are dropped");
        assertEquals("VIRTIO_IOMMU_FAULT_R_DOMAIN", aborted(9, 0x1234_5678L, DmaAccess.WRITE));
        // A bypass domain: identity for its endpoints while bypass is 0.
        assertEquals(OK, d.attach(7, 9, ATTACH_BYPASS));
        assertEquals(0x1234_5678L, translated(9, 0x1234_5678L, DmaAccess.READ).translate(0x1234_5678L));
        assertTrue(dev.domainIsBypass(7));
        // Attaching to a mapping domain ends the bypass.
        assertEquals(OK, d.attach(8, 9, 0));
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", aborted(9, 0x1234_5678L, DmaAccess.READ));
        d.writeBypass(1);
        assertEquals(OK, d.detach(8, 9));
        assertEquals(0x42L, translated(9, 0x42, DmaAccess.READ).translate(0x42));
    }

    @Test
    void bypassInitialisedToOneAppliesEvenIfTheDriverDoesNotAcceptBypassConfig() {
        driver(base().bypass(true).build(), ALL & ~F_BYPASS_CONFIG);
        assertEquals(0x42L, translated(9, 0x42, DmaAccess.READ).translate(0x42));
    }

    @Test
    void legacyBypassFeature() {
        VirtioIommuConfig cfg = base().legacyBypass(true).build();
        driver(cfg, ALL | F_BYPASS);
        assertEquals(0x42L, translated(9, 0x42, DmaAccess.READ).translate(0x42));
        driver(cfg, ALL);
        assertEquals("VIRTIO_IOMMU_FAULT_R_DOMAIN", aborted(9, 0x42, DmaAccess.READ));
    }

    // ---- fault events ----

    @Test
    void faultReportsAreWrittenByteForByte() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 0x21, 0));
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x5000, READ));
        aborted(0x21, 0x1008, DmaAccess.WRITE);
        aborted(0x21, 0x2000, DmaAccess.EXEC);
        aborted(0x22, 0x3000, DmaAccess.READ);
        byte[] first = d.eventBytes(0);
        assertArrayEquals(new byte[] {
            2, 0, 0, 0, // reason MAPPING, reserved
            2, 1, 0, 0, // flags WRITE | ADDRESS
            0x21, 0, 0, 0, // endpoint
            0, 0, 0, 0, // reserved1
            8, 0x10, 0, 0, 0, 0, 0, 0 // address
        }, first);
        List<FaultEvent> ev = d.events(true);
        assertEquals(List.of(
                new FaultEvent(2, 0x102, 0x21, 0x1008),
                new FaultEvent(2, 0x105, 0x21, 0x2000), // READ | EXEC | ADDRESS
                new FaultEvent(1, 0x101, 0x22, 0x3000)), ev); // DOMAIN: not attached
        assertTrue(host.irqCount("vq1") >= 1);
        assertEquals(3, dev.counters().faultsDelivered());
    }

    @Test
    void faultsWaitForBuffersThenDropBeyondTheBound() {
        dev = new VirtioIommuDevice(base().maxPendingFaults(2).build(), mem, host);
        VirtioIommuDriver d = new VirtioIommuDriver(VirtioTransport.direct(dev), mem, 1);
        assertTrue(d.init(ALL, 64, 0, 24)); // no event buffers yet
        for (int i = 0; i < 4; i++) {
            aborted(0x30, 0x1000L * i, DmaAccess.READ);
        }
        assertEquals(4, dev.counters().faultsReported());
        assertEquals(2, dev.counters().faultsDeferred());
        assertEquals(2, dev.counters().faultsDropped());
        assertEquals(2, dev.pendingFaults());
        // A buffer too small for a report is returned unused.
        d.addEventBuffer(0x3_0000, 16);
        d.addEventBuffer(0x3_0040, 24);
        d.addEventBuffer(0x3_0080, 24);
        d.kickEvents();
        assertEquals(1, dev.counters().eventBuffersRejected());
        assertEquals(0, dev.pendingFaults());
        List<FaultEvent> ev = d.events(false);
        assertEquals(List.of(new FaultEvent(1, 0x101, 0x30, 0), new FaultEvent(1, 0x101, 0x30, 0x1000)), ev, "oldest first");
    }

    // ---- bounds ----

    @Test
    void boundsAnswerNomem() {
        VirtioIommuDriver d = driver(base().maxDomains(2).maxEndpoints(3).maxMappingsPerDomain(3).maxMappings(4).build(), ALL);
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(OK, d.attach(2, 2, 0));
        assertEquals(NOMEM, d.attach(3, 3, 0), "a third domain");
        assertEquals(OK, d.attach(2, 3, 0));
        assertEquals(NOMEM, d.attach(2, 4, 0), "a fourth attached endpoint");
        // Moving the only endpoint of a domain to a new one frees a slot first.
        assertEquals(OK, d.attach(4, 1, 0));
        assertEquals(2, dev.domainCount());
        for (int i = 0; i < 3; i++) {
            assertEquals(OK, d.map(2, 0x1000L * (i + 1), 0x1000L * (i + 1) + 0xfff, 0, READ));
        }
        assertEquals(NOMEM, d.map(2, 0x10000, 0x10fff, 0, READ), "per-domain bound");
        assertEquals(OK, d.map(4, 0x1000, 0x1fff, 0, READ));
        assertEquals(NOMEM, d.map(4, 0x2000, 0x2fff, 0, READ), "device-wide bound");
        assertEquals(OK, d.unmap(2, 0x1000, 0x1fff));
        assertEquals(OK, d.map(4, 0x2000, 0x2fff, 0, READ));
        assertEquals(4, dev.counters().status(NOMEM));
    }

    // ---- notifications ----

    @Test
    void eventIdxSuppressesNeedlessKicksAndInterrupts() {
        VirtioIommuDriver d = driver();
        host.clear();
        for (int i = 0; i < 10; i++) {
            assertEquals(OK, d.attach(1, i, 0));
        }
        // used_event stays 0 (the driver never moves it), so only the first completion notifies.
        assertEquals(1, host.irqCount("vq0"));
        // avail_event follows the device, so every request still needs a kick.
        assertEquals(10 + 1, d.kicks());

        d = driver(base().build(), ALL & ~F_EVENT_IDX);
        host.clear();
        for (int i = 0; i < 10; i++) {
            assertEquals(OK, d.attach(1, i, 0));
        }
        assertEquals(10, host.irqCount("vq0"));
        d.requestRing().setNoInterrupt(true);
        host.clear();
        assertEquals(OK, d.detach(1, 1));
        assertEquals(0, host.irqCount("vq0"));
    }

    @Test
    void resetDetachesEverythingAndInvalidates() {
        VirtioIommuDriver d = driver();
        assertEquals(OK, d.attach(1, 1, 0));
        assertEquals(OK, d.map(1, 0x1000, 0x1fff, 0x5000, READ));
        host.clear();
        dev.reset();
        assertEquals(List.of(IotlbInvalidation.all()), host.invalidations);
        assertEquals(0, dev.domainCount());
        assertEquals(0, dev.driverFeatures());
        assertFalse(dev.queueEnabled(0));
        assertEquals("VIRTIO_IOMMU_FAULT_R_DOMAIN", aborted(1, 0x1000, DmaAccess.READ));
    }
}
