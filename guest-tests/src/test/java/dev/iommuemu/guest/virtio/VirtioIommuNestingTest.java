package dev.iommuemu.guest.virtio;

import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_NESTING_SMMUV3;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.domain.HostSmmu;
import dev.iommuemu.domain.IommuCore;
import dev.iommuemu.domain.PagingDomain;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.iommufd.Iommufd;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.pagetable.testing.ReferenceWalker;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.virtio.iommu.FaultEvent;
import dev.iommuemu.virtio.iommu.PvNesting;
import dev.iommuemu.virtio.iommu.RecordingHost;
import dev.iommuemu.virtio.iommu.VirtioIommuConfig;
import dev.iommuemu.virtio.iommu.VirtioIommuDevice;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Paravirtual nesting (docs/nesting.md §6) driven by the spec-written driver: a virtio-iommu whose
 * endpoints 0x10 and 0x11 are devices behind the emulated SMMUv3 (StreamIDs 5 and 6), a nest
 * parent mapping the guest's RAM, and the guest's own STE words, CD table and stage 1 tables in
 * guest memory.
 */
class VirtioIommuNestingTest {
    static final int OK = 0;
    static final int UNSUPP = 2;
    static final int DEVERR = 3;
    static final int INVAL = 4;
    static final int RANGE = 5;
    static final int NOENT = 6;
    // Fault record reasons and flags ("Fault reporting"; PASID_VALID and RECOVERABLE: docs/nesting.md §6).
    static final int R_DOMAIN = 1;
    static final int R_MAPPING = 2;
    static final int F_READ = 1;
    static final int F_WRITE = 2;
    static final int F_ADDRESS = 1 << 8;
    static final int F_PASID_VALID = 1 << 9;
    static final int F_RECOVERABLE = 1 << 10;

    static final int EP = 0x10;
    static final int EP2 = 0x11;
    static final int SID = 5;
    static final int SID2 = 6;
    static final long CD_TABLE = 0x50_0000L;
    static final int ASID = 7;
    static final long VA = 0x4000_0000L;
    /** The nest parent: IPA [0, 8M) identity (tables, rings), IPA [8M, 16M) at PA 32M (DMA data). */
    static final long DATA_IPA = 0x80_0000L;
    static final long DATA_PA = 0x200_0000L;
    static final long RW = PageTableBuilder.S1_RW | PageTableBuilder.S1_USER | Descriptor.NG.prep(1);
    static final long ALL = VirtioIommuGuestTest.ALL | F_NESTING_SMMUV3;

    final SparseGuestMemory mem = new SparseGuestMemory(0, 0x4000_0000L);
    final RecordingHost vmm = new RecordingHost();
    final List<String> endpointCalls = new ArrayList<>();
    final IommuCore core;
    final PagingDomain parent;
    final PvNesting nesting;
    final PageTableBuilder s1;
    VirtioIommuDevice dev;

    VirtioIommuNestingTest() {
        HostSmmu host = new HostSmmu(mem, 0x3000_0000L, 0x1000_0000L, Smmuv3Profile.MAX, DmaHost.NONE, 6);
        host.endpointPort(new EndpointPort() {
            @Override
            public void priResponse(int streamId, int ssid, int prgIndex, int response) {}

            @Override
            public void atcInvalidate(int streamId, int ssid, long addr, long size, boolean global) {}

            @Override
            public void stallResolved(int streamId, int stag, boolean retry) {
                endpointCalls.add("stall " + streamId + " " + stag + " " + retry);
            }
        });
        core = new IommuCore(host, IommuCore.Options.DEFAULT);
        core.probe(SID, null).get();
        core.probe(SID2, null).get();
        nesting = PvNesting.create(new Iommufd(core), Map.of(EP, SID, EP2, SID2)).get();
        parent = nesting.nestParent();
        int prot = HostPageTable.IOMMU_READ | HostPageTable.IOMMU_WRITE;
        assertNull(parent.map(0, 0, DATA_IPA, prot));
        assertNull(parent.map(DATA_IPA, DATA_PA, 0x80_0000L, prot));
        s1 = PageTableBuilder.stage1(mem, new PageTableBuilder.Bump(0x20_0000L, 0x20_0000L), Granule.G4K, 16, 48, 48);
        s1.ttb();
        // The guest's CD table: CD 0 (no PASID) and CD 1 (PASID 1) share the tables.
        guestCd(0, false);
        guestCd(1, false);
    }

    void guestCd(int ssid, boolean stall) {
        long[] w = new long[Cd.WORDS];
        Cd.V.set(w, 1);
        Cd.T0SZ.set(w, 16);
        Cd.EPD1.set(w, 1);
        Cd.IPS.set(w, 5);
        Cd.AA64.set(w, 1);
        Cd.R.set(w, 1);
        Cd.A.set(w, 1);
        Cd.S.set(w, stall);
        Cd.ASID.set(w, ASID + ssid);
        Cd.TTB0.set(w, s1.ttb() >>> 4);
        for (int i = 0; i < Cd.WORDS; i++) {
            mem.put64(CD_TABLE + 64L * ssid + 8L * i, w[i]);
        }
    }

    /** The guest's STE words 0-1: stage 1, linear CD table of 4 CDs, no-PASID traffic uses CD 0. */
    static long[] guestSte() {
        return new long[] {Ste.V.prep(1) | Ste.CONFIG.prep(Ste.CONFIG_S1) | Ste.S1CONTEXTPTR.prep(CD_TABLE >>> 6)
                | Ste.S1CDMAX.prep(2), Ste.S1DSS.prep(Ste.S1DSS_SUBSTREAM0)};
    }

    VirtioIommuDriver driver(long wanted) {
        dev = new VirtioIommuDevice(VirtioIommuGuestTest.base().build(), mem, vmm, nesting);
        VirtioIommuDriver d = new VirtioIommuDriver(VirtioTransport.direct(dev), mem, 1);
        assertTrue(d.init(wanted, 64, 8, 32));
        return d;
    }

    VirtioIommuDriver attached() {
        VirtioIommuDriver d = driver(ALL);
        long[] ste = guestSte();
        assertEquals(OK, d.attachTable(1, EP, ste[0], ste[1]));
        return d;
    }

    long out(int ep, int pasid, long va, DmaAccess acc) {
        DmaResult r = dev.translate(ep, pasid, va, acc);
        return assertInstanceOf(DmaResult.Translated.class, r, () -> "0x" + Long.toHexString(va) + ": " + r).entry().translate(va);
    }

    static long[] cmd(Command.Builder b) {
        return b.words();
    }

    static long[] concat(long[]... cs) {
        long[] o = new long[cs.length * 2];
        for (int i = 0; i < cs.length; i++) {
            o[2 * i] = cs[i][0];
            o[2 * i + 1] = cs[i][1];
        }
        return o;
    }

    static long[] nhVa(int asid, long va) {
        return cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, asid).set(Command.TLBI_ADDR, va >>> 12));
    }

    // ---- feature and PROBE property ----

    @Test
    void theFeatureIsOfferedAndProbeShowsTheNestingInfo() {
        VirtioIommuDriver d = driver(ALL);
        assertEquals(0x1_3000_00f7L, dev.deviceFeatures(), "bit 7 NESTING_SMMUV3 next to the plain set");
        assertEquals(F_NESTING_SMMUV3, d.features() & F_NESTING_SMMUV3);
        VirtioIommuDriver.ProbeReply p = d.probe(EP);
        assertEquals(OK, p.status());
        // The MSI RESV_MEM property, then SMMUV3_NESTING: type 0x800, length 40, struct iommu_hw_info_arm_smmuv3.
        ByteBuffer b = ByteBuffer.wrap(p.raw()).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(0x800, b.getShort(24) & 0xffff);
        assertEquals(40, b.getShort(26));
        HwInfo want = HwInfo.of(Smmuv3Profile.MAX).get();
        int[] got = VirtioIommuDriver.nestingProperty(p, d.probeSize);
        int[] expect = new int[10];
        System.arraycopy(want.idr(), 0, expect, 2, 6);
        expect[8] = want.iidr();
        expect[9] = want.aidr();
        assertArrayEquals(expect, got);
        assertEquals(2, (got[2] >>> 2) & 3, "IDR0.TTF: AArch64 page tables");
        assertEquals(0, b.getShort(68), "nothing after it");
        // An endpoint that is not behind the nesting host has no such property.
        assertNull(VirtioIommuDriver.nestingProperty(d.probe(0x20), d.probeSize));
        // Nor does any endpoint when the driver did not accept the feature.
        VirtioIommuDriver plain = driver(VirtioIommuGuestTest.ALL);
        assertNull(VirtioIommuDriver.nestingProperty(plain.probe(EP), plain.probeSize));
        // NESTING_SMMUV3 requires PROBE; a probe_size without room for the property cannot offer it.
        assertTrue(!dev.setDriverFeatures(ALL & ~VirtioIommuDriver.F_PROBE));
        assertThrows(IllegalArgumentException.class, () -> new VirtioIommuDevice(
                VirtioIommuConfig.builder().probeSize(40).build(), mem, vmm, nesting));
    }

    @Test
    void aDeviceWithoutNestingDoesNotKnowTheNewRequestTypes() {
        VirtioIommuDevice plainDev = new VirtioIommuDevice(VirtioIommuGuestTest.base().build(), mem, vmm);
        assertEquals(0, plainDev.deviceFeatures() & F_NESTING_SMMUV3);
        VirtioIommuDriver d = new VirtioIommuDriver(VirtioTransport.direct(plainDev), mem, 1);
        assertTrue(d.init(VirtioIommuGuestTest.ALL, 64, 8, 24));
        long[] ste = guestSte();
        assertEquals(0, d.send(VirtioIommuDriver.attachTableReq(1, EP, 1, 0, ste[0], ste[1]), 4).usedLen(), "unknown type");
        assertEquals(0, d.send(VirtioIommuDriver.invalidateReq(1, 0), 8).usedLen());
        assertEquals(0, d.send(VirtioIommuDriver.pageRespReq(EP, 0, 0, 0, 0), 4).usedLen());
    }

    // ---- ATTACH_TABLE and translation ----

    @Test
    void translationsAgreeWithTheReferenceNestedWalkAndStage1FaultsAreFaultRecords() {
        Random rnd = new Random(11);
        for (int i = 0; i < 24; i++) {
            // Pages 0-15 in the data region, 16-23 in the identity region; 24-31 unmapped (stage 1 faults).
            long ipa = i < 16 ? DATA_IPA + i * 4096L : 0x70_0000L + i * 4096L;
            s1.map(VA + i * 4096L, ipa, 3, rnd.nextInt(4) == 0 ? PageTableBuilder.S1_RO | RW : RW);
        }
        VirtioIommuDriver d = attached();
        assertEquals(1, dev.domainOf(EP).getAsInt());
        assertEquals(new IotlbInvalidation(EP, 0, -1L), vmm.invalidations.get(vmm.invalidations.size() - 1));
        ReferenceWalker ref = new ReferenceWalker(mem, 48);
        Stage2Config s2 = Stage2Config.simple(parent.table().root(), 16, 0, Granule.G4K, 48);
        int faults = 0;
        for (int n = 0; n < 200; n++) {
            long va = VA + rnd.nextInt(32) * 4096L + rnd.nextInt(4096);
            DmaAccess acc = rnd.nextBoolean() ? DmaAccess.READ : DmaAccess.WRITE;
            WalkResult want = ref.translate(s1.stage1Config(), s2, va, acc);
            if (want instanceof Translation t) {
                assertEquals(t.outputAddress(), out(EP, -1, va, acc));
                assertTrue(d.events(true).isEmpty());
                continue;
            }
            TranslationFault tf = (TranslationFault) want;
            assertEquals(1, tf.stage(), tf.toString());
            faults++;
            assertInstanceOf(DmaResult.Aborted.class, dev.translate(EP, -1, va, acc));
            assertEquals(List.of(new FaultEvent(R_MAPPING, (acc.write() ? F_WRITE : F_READ) | F_ADDRESS, EP, va, 0, 0)),
                    d.events(true), tf.toString());
        }
        assertTrue(faults > 10, "faults " + faults);
        // PASID 1 uses CD 1; its faults carry the PASID (32-byte record, byte for byte, in the first
        // event buffer of a freshly reset device).
        d = attached();
        assertEquals(DATA_PA + 0x123, out(EP, 1, VA + 0x123, DmaAccess.READ));
        assertInstanceOf(DmaResult.Aborted.class, dev.translate(EP, 1, VA + 0x1f_0008L, DmaAccess.WRITE));
        assertEquals(List.of(new FaultEvent(R_MAPPING, F_WRITE | F_ADDRESS | F_PASID_VALID, EP, VA + 0x1f_0008L, 1, 0)),
                d.events(false));
        byte[] rec = d.eventBytes32(0);
        assertArrayEquals(new byte[] {2, 0, 0, 0, 0x02, 0x03, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0,
            0x08, 0, 0x1f, 0x40, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, rec);
        // A configuration fault the guest caused (PASID 2's CD is not valid: C_BAD_CD) is reason
        // UNKNOWN with the PASID and no address.
        assertInstanceOf(DmaResult.Aborted.class, dev.translate(EP, 2, VA, DmaAccess.READ));
        assertEquals(List.of(new FaultEvent(0, F_PASID_VALID, EP, 0, 2, 0)), d.events(true));
        // A stage 2 fault (an IPA the nest parent does not map) stays with the host: no record.
        s1.map(VA + 0x40_0000L, 0x100_0000L, 3, RW);
        core.takeHostEvents();
        assertInstanceOf(DmaResult.Aborted.class, dev.translate(EP, -1, VA + 0x40_0000L, DmaAccess.READ));
        assertTrue(d.events(true).isEmpty());
        List<dev.iommuemu.smmuv3.evtq.EventRecord> hostEvents = core.takeHostEvents();
        assertEquals(1, hostEvents.size());
        assertTrue(hostEvents.get(0).s2());
        assertEquals(SID, hostEvents.get(0).streamId());
        // MAP into a table domain, plain ATTACH to it: INVAL. DETACH: the endpoint is blocked again.
        assertEquals(INVAL, d.map(1, 0, 0xfff, 0, 3));
        assertEquals(INVAL, d.attach(1, EP2, 0));
        assertEquals(OK, d.detach(1, EP));
        assertInstanceOf(DmaResult.Aborted.class, dev.translate(EP, -1, VA, DmaAccess.READ));
        assertEquals(R_DOMAIN, d.events(true).get(0).reason());
        assertEquals(0, dev.domainCount());
    }

    @Test
    void attachTableStatuses() {
        long[] ste = guestSte();
        VirtioIommuDriver off = driver(VirtioIommuGuestTest.ALL);
        assertEquals(UNSUPP, off.attachTable(1, EP, ste[0], ste[1]), "feature not negotiated");
        VirtioIommuDriver d = driver(ALL);
        assertEquals(INVAL, d.attachTable(1, EP, ste[0] | Ste.CONFIG.prep(0b110), ste[1]), "stage 2 Config is the host's");
        assertEquals(INVAL, d.attachTable(1, EP, ste[0] | 1L << 57, ste[1]), "an undeclared bit (word 0 bits [58:56] are not the guest's)");
        assertEquals(INVAL, d.attachTable(1, EP, ste[0], ste[1] | Ste.EATS.prep(2)));
        assertEquals(INVAL, d.send(VirtioIommuDriver.attachTableReq(1, EP, 1, 1, ste[0], ste[1]), 4).status(0), "flags");
        assertEquals(UNSUPP, d.send(VirtioIommuDriver.attachTableReq(1, EP, 2, 0, ste[0], ste[1]), 4).status(0), "format");
        assertEquals(NOENT, d.attachTable(1, 0x1000, ste[0], ste[1]), "no such endpoint");
        assertEquals(UNSUPP, d.attachTable(1, 0x20, ste[0], ste[1]), "not behind the nesting host");
        assertEquals(RANGE, d.attachTable(0, EP, ste[0], ste[1]));
        assertEquals(RANGE, d.attachTable(1001, EP, ste[0], ste[1]));
        byte[] shortReq = java.util.Arrays.copyOf(VirtioIommuDriver.attachTableReq(1, EP, 1, 0, ste[0], ste[1]), 36);
        assertEquals(DEVERR, d.send(shortReq, 4).status(0));
        assertEquals(0, dev.domainCount(), "nothing changed");
        // A plain domain cannot become a table domain; a table domain takes only its own words.
        assertEquals(OK, d.attach(2, 0x20, 0));
        assertEquals(INVAL, d.attachTable(2, EP, ste[0], ste[1]));
        assertEquals(OK, d.attachTable(1, EP, ste[0], ste[1]));
        assertEquals(OK, d.attachTable(1, EP, ste[0], ste[1]), "again: nothing to do");
        assertEquals(12, dev.counters().requests(6), "ATTACH_TABLE requests that reached their handler");
        assertEquals(INVAL, d.attachTable(1, EP2, ste[0], ste[1] | Ste.S1STALLD.prep(1)));
        // V=0 is an abort STE: allowed, and DMA aborts at the host without a fault record.
        assertEquals(OK, d.attachTable(3, EP2, 0, 0));
        assertInstanceOf(DmaResult.Aborted.class, dev.translate(EP2, -1, VA, DmaAccess.READ));
        // Moving EP to a plain domain takes it off the host's nested hwpt.
        assertEquals(OK, d.attach(4, EP, 0));
        assertEquals(3, dev.domainCount(), "2 (0x20), 3 (EP2), 4 (EP); 1 ceased to exist");
        assertEquals(4, dev.domainOf(EP).getAsInt());
    }

    // ---- INVALIDATE ----

    @Test
    void invalidateOfTlbiNhVaTakesEffectAndStopsAtTheFirstBadCommand() {
        s1.map(VA, DATA_IPA, 3, RW);
        s1.map(VA + 0x1000, DATA_IPA + 0x1000, 3, RW);
        VirtioIommuDriver d = attached();
        assertEquals(DATA_PA, out(EP, -1, VA, DmaAccess.READ));
        assertEquals(DATA_PA + 0x1000, out(EP, -1, VA + 0x1000, DmaAccess.READ));
        s1.map(VA, DATA_IPA + 0x4000, 3, RW); // the guest remaps; the SMMU's TLB still holds the old one
        s1.map(VA + 0x1000, DATA_IPA + 0x5000, 3, RW);
        assertEquals(DATA_PA, out(EP, -1, VA, DmaAccess.READ), "stale until the guest invalidates");
        vmm.clear();
        // NH_VA, then CFGI_STE (a guest may not send it): one handled, INVAL; the NH_VA after it is not run.
        assertArrayEquals(new int[] {INVAL, 1}, d.invalidate(1, concat(nhVa(ASID, VA),
                cmd(Command.build(Command.Op.CMD_CFGI_STE).set(Command.SID, EP)), nhVa(ASID, VA + 0x1000))));
        assertEquals(DATA_PA + 0x4000, out(EP, -1, VA, DmaAccess.READ));
        assertEquals(DATA_PA + 0x1000, out(EP, -1, VA + 0x1000, DmaAccess.READ), "not run");
        assertEquals(List.of(new IotlbInvalidation(EP, 0, -1L)), vmm.invalidations, "the VMM's cached entries go too");
        assertArrayEquals(new int[] {OK, 1}, d.invalidate(1, nhVa(ASID, VA + 0x1000)));
        assertEquals(DATA_PA + 0x5000, out(EP, -1, VA + 0x1000, DmaAccess.READ));
        // CFGI_CD names the endpoint as its StreamID; an unknown one is INVAL with nothing handled.
        assertArrayEquals(new int[] {OK, 1}, d.invalidate(1, cmd(Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, EP))));
        assertArrayEquals(new int[] {INVAL, 0}, d.invalidate(1, cmd(Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, 0x77))));
        assertArrayEquals(new int[] {OK, 0}, d.invalidate(1));
        // Statuses: unknown domain, out of range, a plain domain, too many commands, short, no feature.
        assertArrayEquals(new int[] {NOENT, 0}, d.invalidate(9, nhVa(ASID, VA)));
        assertArrayEquals(new int[] {RANGE, 0}, d.invalidate(0, nhVa(ASID, VA)));
        assertEquals(OK, d.attach(2, 0x20, 0));
        assertArrayEquals(new int[] {INVAL, 0}, d.invalidate(2, nhVa(ASID, VA)));
        VirtioIommuDriver.Reply many = d.send(VirtioIommuDriver.invalidateReq(1, 257), 8);
        assertEquals(INVAL, many.written()[4]);
        assertEquals(8, many.usedLen());
        VirtioIommuDriver.Reply cut = d.send(VirtioIommuDriver.invalidateReq(1, 2, nhVa(ASID, VA)), 8);
        assertEquals(DEVERR, cut.written()[4], "two commands announced, one present");
        assertEquals(DEVERR, d.send(VirtioIommuDriver.invalidateReq(1, 1, nhVa(ASID, VA)), 4).status(0), "no room for handled");
        VirtioIommuDriver off = driver(VirtioIommuGuestTest.ALL);
        assertArrayEquals(new int[] {UNSUPP, 0}, off.invalidate(1, nhVa(ASID, VA)));
    }

    // ---- stalls and PAGE_RESP ----

    @Test
    void aStalledAccessIsARecoverableFaultResumedByPageResp() {
        guestCd(0, true); // CD.S: stall on faults
        guestCd(1, true);
        VirtioIommuDriver d = attached();
        DmaResult.Stalled st = assertInstanceOf(DmaResult.Stalled.class, dev.translate(EP, 1, VA + 0x123, DmaAccess.WRITE));
        List<FaultEvent> ev = d.events(true);
        assertEquals(List.of(new FaultEvent(R_MAPPING, F_WRITE | F_ADDRESS | F_PASID_VALID | F_RECOVERABLE, EP, VA, 1,
                st.stag())), ev);
        // Statuses before the right answer: no feature elsewhere, bad code, bad flags, unknown group,
        // unknown endpoint, short request.
        assertEquals(INVAL, d.pageResp(EP, 1, 1, st.stag(), 3));
        assertEquals(INVAL, d.pageResp(EP, 2, 1, st.stag(), 0));
        assertEquals(INVAL, d.pageResp(EP, 1, 1, st.stag() + 1, 0));
        assertEquals(INVAL, d.pageResp(EP2, 1, 1, st.stag(), 0));
        assertEquals(NOENT, d.pageResp(0x1000, 1, 1, st.stag(), 0));
        assertEquals(DEVERR, d.send(java.util.Arrays.copyOf(VirtioIommuDriver.pageRespReq(EP, 1, 1, st.stag(), 0), 20), 4).status(0));
        assertTrue(endpointCalls.isEmpty(), "still held");
        // The guest pages in and answers SUCCESS: the SMMU retries the access, which now translates.
        s1.map(VA, DATA_IPA, 3, RW);
        assertEquals(OK, d.pageResp(EP, 1, 1, st.stag(), 0));
        assertEquals(List.of("stall " + SID + " " + st.stag() + " true"), endpointCalls);
        assertEquals(DATA_PA + 0x123, out(EP, 1, VA + 0x123, DmaAccess.WRITE));
        assertEquals(INVAL, d.pageResp(EP, 1, 1, st.stag(), 0), "answered already");
        // FAILURE terminates; a DETACH terminates what is still held.
        endpointCalls.clear();
        DmaResult.Stalled s2 = (DmaResult.Stalled) dev.translate(EP, -1, VA + 0x9000, DmaAccess.READ);
        assertEquals(F_READ | F_ADDRESS | F_RECOVERABLE, d.events(true).get(0).flags());
        assertEquals(OK, d.pageResp(EP, 0, 0, s2.stag(), 2));
        DmaResult.Stalled s3 = (DmaResult.Stalled) dev.translate(EP, -1, VA + 0xa000, DmaAccess.READ);
        d.events(true);
        assertEquals(1, nesting.outstandingFaults());
        assertEquals(OK, d.detach(1, EP));
        assertEquals(List.of("stall " + SID + " " + s2.stag() + " false", "stall " + SID + " " + s3.stag() + " false"),
                endpointCalls);
        assertEquals(0, nesting.outstandingFaults());
        VirtioIommuDriver off = driver(VirtioIommuGuestTest.ALL);
        assertEquals(UNSUPP, off.pageResp(EP, 0, 0, 0, 0));
    }

    // ---- garbage ----

    @Test
    void garbageNestingRequestsAnswerAndNeverThrow() {
        s1.map(VA, DATA_IPA, 3, RW);
        VirtioIommuDriver d = attached();
        Random rnd = new Random(Long.getLong("iommuemu.fuzz.seed", 3L));
        int iterations = Integer.getInteger("iommuemu.fuzz.iterations", 300);
        for (int i = 0; i < iterations; i++) {
            byte[] req = new byte[rnd.nextInt(90)];
            rnd.nextBytes(req);
            if (req.length > 0) {
                req[0] = (byte) (6 + rnd.nextInt(3));
            }
            if (req.length > 12 && rnd.nextBoolean()) {
                req[8] = (byte) (rnd.nextInt(4)); // a small INVALIDATE count, or endpoint 0-3
                req[9] = req[10] = req[11] = 0;
            }
            VirtioIommuDriver.Reply r = d.send(req, rnd.nextInt(12));
            assertTrue(r.usedLen() <= 12);
            dev.translate(EP, rnd.nextInt(3) - 1, VA + rnd.nextInt(0x3000), DmaAccess.READ);
            d.events(true);
        }
        // Still working: a fresh ATTACH_TABLE translates.
        d = attached();
        assertEquals(DATA_PA + 0x10, out(EP, -1, VA + 0x10, DmaAccess.READ));
    }
}
