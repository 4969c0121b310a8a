package dev.iommuemu.bridge.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.virtio.VirtioIommuBridge;
import dev.iommuemu.bridge.memory.RamLayout;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.virtio.iommu.VirtioIommuState;
import dev.iommuemu.virtio.iommu.VirtioIommuWorkload;
import dev.iommuemu.virtqueue.SplitVirtqueue;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The virtio-iommu saved state through the daemon's seam (docs/device-state-virtio.md): a guest
 * drives a profile's device, the rings are stopped (GET_VRING_BASE), the blob is saved and loaded
 * into a fresh device of the same profile, the rings are started again (SET_VRING_*) and both
 * devices answer the rest of the guest identically; the blob re-encodes byte for byte; for the
 * {@code nesting} profile the iommufd objects come back with their ids. Seeds are printed on
 * failure; {@code -Diommuemu.state.iterations=N} (default 12) for more.
 */
class VirtioIommuSavedStateTest {

    /** The guest's memory as the daemon's is: listing its RAM regions (the nesting host maps them). */
    record LayoutMemory(SparseGuestMemory mem) implements GuestMemory, RamLayout {
        @Override
        public Region find(long addr, int len) {
            return mem.find(addr, len);
        }

        @Override
        public List<? extends Region> regions() {
            return List.of(mem.find(0, 1));
        }
    }

    /** A workload on a fresh device of {@code profile}; {@code out[0]} receives the bridge. */
    private static VirtioIommuWorkload workload(long seed, String profile, BridgedDevice[] out) {
        return new VirtioIommuWorkload(seed, (mem, host) -> {
            out[0] = bridge(profile, mem, host);
            return ((VirtioIommuBridge) out[0]).device();
        });
    }

    private static BridgedDevice bridge(String profile, SparseGuestMemory mem, dev.iommuemu.dma.DmaHost host) {
        return new VirtioIommuBridge.Factory().create(profile, new DeviceContext(new LayoutMemory(mem), host));
    }

    /** vhost-user GET_VRING_BASE on both rings: the queues' states as the front-end will start them again. */
    private static List<SplitVirtqueue.State> stop(BridgedDevice d) {
        List<SplitVirtqueue.State> qs = ((VirtioIommuBridge) d).device().saveState().queues();
        for (int q = 0; q < 2; q++) {
            assertEquals(qs.get(q).nextAvail(), d.queueStop(q));
        }
        return qs;
    }

    /** SET_VRING_NUM/ADDR/BASE, SET_VRING_KICK: the front-end starts the rings where GET_VRING_BASE left them. */
    private static void start(BridgedDevice d, List<SplitVirtqueue.State> qs) {
        for (int q = 0; q < 2; q++) {
            SplitVirtqueue.State s = qs.get(q);
            d.queueStart(q, new BridgedDevice.Vring(s.size(), s.descAddr(), s.availAddr(), s.usedAddr(), s.nextAvail()));
        }
    }

    @Test
    void aLoadedDeviceAnswersAsTheSavedOneAndTheBlobIsStable() throws Exception {
        long base = Long.getLong("iommuemu.state.seed", 100L);
        int iterations = Integer.getInteger("iommuemu.state.iterations", 12);
        for (int i = 0; i < iterations; i++) {
            long seed = base + i;
            String profile = List.of("default", "boot-bypass", "16k").get(i % 3);
            try {
                migrate(seed, profile);
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError("seed " + seed + " profile " + profile + " (rerun with -Diommuemu.state.seed=" + seed
                        + " -Diommuemu.state.iterations=1): " + e.getMessage(), e);
            }
        }
    }

    private static void migrate(long seed, String profile) throws com.google.protobuf.InvalidProtocolBufferException {
        BridgedDevice[] a = new BridgedDevice[1];
        BridgedDevice[] b = new BridgedDevice[1];
        VirtioIommuWorkload wa = workload(seed, profile, a);
        VirtioIommuWorkload wb = workload(seed, profile, b);
        int before = 20 + new Random(seed).nextInt(150);
        wa.run(before);
        wb.run(before);
        List<SplitVirtqueue.State> qa = stop(a[0]);
        stop(b[0]);
        byte[] blob = a[0].saveState();
        // The blob is the state, byte for byte, through the codec both ways.
        var m = inner(blob);
        VirtioIommuState decoded = VirtioIommuStateCodec.decode(m);
        assertEquals(((VirtioIommuBridge) a[0]).device().saveState(), decoded);
        assertArrayEquals(m.toByteArray(), VirtioIommuStateCodec.encode(decoded).toByteArray());

        BridgedDevice fresh = bridge(profile, wb.memory, wb.host);
        fresh.loadState(blob);
        assertArrayEquals(blob, fresh.saveState(), "the loaded device saves the same blob");
        start(a[0], qa);
        start(fresh, qa);
        wb.useDevice(((VirtioIommuBridge) fresh).device());
        wa.log.clear();
        wb.log.clear();
        wb.host.clear();
        wa.host.clear();
        wa.run(80);
        wb.run(80);
        assertEquals(wa.log, wb.log);
        stop(a[0]);
        stop(fresh);
        assertArrayEquals(a[0].saveState(), fresh.saveState());
    }

    @Test
    void theNestingHostsObjectsComeBackWithTheirIds() throws Exception {
        BridgedDevice[] a = new BridgedDevice[1];
        BridgedDevice[] b = new BridgedDevice[1];
        VirtioIommuWorkload wa = workload(5, "nesting", a);
        VirtioIommuWorkload wb = workload(5, "nesting", b);
        // The guest's stage 1: a linear CD table at IPA 0x5_0000 whose CD is invalid (V = 0), so DMA
        // of its endpoints ends in C_BAD_CD, which the host forwards as a vEVENT (docs/nesting.md §6).
        long ste0 = Ste.V.prep(1) | Ste.CONFIG.prep(Ste.CONFIG_S1) | Ste.S1CONTEXTPTR.prep(0x5_0000L >>> 6);
        long[] invalidate = Command.build(Command.Op.CMD_CFGI_CD_ALL).set(Command.SID, 1).words();
        // A second stage 1 whose CD (IPA 0x5_1000) stalls on faults (CD.S) over an empty table at
        // 0x6_0000: DMA of its endpoints stalls and comes back as a RECOVERABLE record for PAGE_RESP.
        long stallSte0 = Ste.V.prep(1) | Ste.CONFIG.prep(Ste.CONFIG_S1) | Ste.S1CONTEXTPTR.prep(0x5_1000L >>> 6);
        long[] cd = new long[Cd.WORDS];
        Cd.V.set(cd, 1);
        Cd.T0SZ.set(cd, 16);
        Cd.EPD1.set(cd, 1);
        Cd.IPS.set(cd, 5);
        Cd.AA64.set(cd, 1);
        Cd.R.set(cd, 1);
        Cd.A.set(cd, 1);
        Cd.S.set(cd, 1);
        Cd.ASID.set(cd, 9);
        Cd.TTB0.set(cd, 0x6_0000L >>> 4);
        for (VirtioIommuWorkload w : List.of(wa, wb)) {
            for (int i = 0; i < Cd.WORDS; i++) {
                w.memory.put64(0x5_1000L + 8L * i, cd[i]);
            }
        }
        wa.log.clear();
        wb.log.clear();
        a[0].queueNotified(0); // the daemon's kick: the nest parent follows the VMM's RAM (NestingHost.sync)
        b[0].queueNotified(0);
        for (VirtioIommuWorkload w : List.of(wa, wb)) {
            w.log.add(w.attachTable(10, 1, ste0, 0));
            w.log.add(w.attach(11, 2, 0));
            w.dma(1, 0x1000, DmaAccess.READ);
            w.log.add(w.invalidate(10, invalidate));
            w.log.add(w.attachTable(13, 4, stallSte0, 0));
            w.dma(4, 0x7000, DmaAccess.WRITE);
        }
        assertEquals(wa.log, wb.log);
        assertTrue(wa.log.get(0).endsWith("00000000"), "ATTACH_TABLE OK: " + wa.log);
        assertTrue(wa.log.stream().anyMatch(l -> l.startsWith("fault record ")), "a forwarded C_BAD_CD: " + wa.log);
        wa.host.clear();
        wb.host.clear();
        List<SplitVirtqueue.State> qa = stop(a[0]);
        stop(b[0]);
        byte[] blob = a[0].saveState();
        var m = inner(blob);
        assertTrue(m.getNesting().getHost().getIommufd().getObjectsCount() > 256, "256 bound devices and the nesting objects");
        assertEquals(1, m.getNesting().getOutstandingCount(), "the stall awaits PAGE_RESP: " + wa.log);
        int grpid = m.getNesting().getOutstanding(0).getGrpid();
        assertArrayEquals(m.getNesting().getHost().toByteArray(),
                NestingStateCodec.encode(NestingStateCodec.decode(m.getNesting().getHost()).iommufd(),
                        NestingStateCodec.decode(m.getNesting().getHost()).nestParentRegions()).toByteArray());

        BridgedDevice fresh = bridge("nesting", wb.memory, wb.host);
        refusedNestingStates(fresh, m);
        fresh.loadState(blob);
        assertArrayEquals(blob, fresh.saveState());
        start(a[0], qa);
        start(fresh, qa);
        wb.useDevice(((VirtioIommuBridge) fresh).device());
        assertEquals(List.of(dev.iommuemu.dma.IotlbInvalidation.all()), wb.host.invalidations, "the VMM drops what it cached");
        wb.host.clear();
        wa.host.clear();
        wa.log.clear();
        wb.log.clear();
        for (VirtioIommuWorkload w : List.of(wa, wb)) {
            w.log.add("PAGE_RESP " + w.pageResp(4, grpid, 0)); // the saved fault queue still owes it: OK
            w.log.add("PAGE_RESP again " + w.pageResp(4, grpid, 0)); // answered: INVAL
            w.dma(1, 0x2000, DmaAccess.WRITE);
            w.log.add(w.invalidate(10, invalidate));
            w.log.add(w.attachTable(12, 3, ste0, 0)); // the same words: the same nested hwpt
            w.dma(3, 0x3000, DmaAccess.READ);
            w.log.add(w.detach(10, 1));
            // Endpoint 4 leaves its stalling table domain: a new stall's grpid is the host SMMU's
            // next STAG, and the rebuilt host SMMU numbers them afresh (docs/device-state-virtio.md).
            w.log.add(w.detach(13, 4));
            w.run(30);
        }
        assertTrue(wa.log.stream().anyMatch(l -> l.startsWith("fault record ")), wa.log.toString());
        assertTrue(wa.log.get(0).startsWith("PAGE_RESP used 4 ") && wa.log.get(0).endsWith(" 00000000"), wa.log.get(0));
        assertTrue(wa.log.get(1).endsWith(" 04000000"), "VIRTIO_IOMMU_S_INVAL: " + wa.log.get(1));
        assertEquals(wa.log, wb.log);
        stop(a[0]);
        stop(fresh);
        assertArrayEquals(a[0].saveState(), fresh.saveState(), "the same objects, ids and nest parent");
    }

    @Test
    void refusalsAreSentencesAndChangeNothing() throws Exception {
        BridgedDevice[] a = new BridgedDevice[1];
        VirtioIommuWorkload wa = workload(9, "default", a);
        wa.run(40);
        stop(a[0]);
        byte[] blob = a[0].saveState();
        BridgedDevice[] n = new BridgedDevice[1];
        workload(9, "nesting", n);
        stop(n[0]);
        byte[] before = n[0].saveState();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> n[0].loadState(blob));
        assertEquals("the device state is for virtio-iommu profile 'default' but this session's profile is 'nesting'; load it into"
                + " a session started with --profile default", e.getMessage());
        // the same profile name on a device built differently: the identity check says how
        e = assertThrows(IllegalArgumentException.class, () -> n[0].loadState(wrap(n[0], inner(blob))));
        assertTrue(e.getMessage().startsWith("virtio-iommu state refused: it was saved by a device built differently: offered features 0x"),
                e.getMessage());
        assertArrayEquals(before, n[0].saveState());

        // default and boot-bypass differ only in config bypass at power-on and after a system reset.
        BridgedDevice bootBypass = bridge("boot-bypass", new SparseGuestMemory(0, 0x10_0000), dev.iommuemu.dma.DmaHost.NONE);
        byte[] bbBefore = bootBypass.saveState();
        e = assertThrows(IllegalArgumentException.class, () -> bootBypass.loadState(wrap(bootBypass, inner(blob))));
        assertEquals("virtio-iommu state refused: it was saved by a device built differently: power-on bypass false (this device: "
                + "true); start the destination with the source's profile and properties.", e.getMessage());
        assertArrayEquals(bbBefore, bootBypass.saveState());

        BridgedDevice running = workloadDevice(9);
        e = assertThrows(IllegalArgumentException.class, () -> running.loadState(blob));
        assertEquals("virtio-iommu state refused: virtqueue 0 is running; a state is loaded only with the rings stopped "
                + "(GET_VRING_BASE first).", e.getMessage());

        BridgedDevice fresh = bridge("default", new SparseGuestMemory(0, 0x10_0000), dev.iommuemu.dma.DmaHost.NONE);
        byte[] freshBefore = fresh.saveState();
        e = assertThrows(IllegalArgumentException.class, () -> fresh.loadState(new byte[] {0x0a, 0x7f, 1}));
        assertTrue(e.getMessage().startsWith("the device state (3 bytes) is not an iommu-emu device state: "), e.getMessage());
        var m = inner(blob).toBuilder();
        m.addDomains(dev.iommuemu.proto.devstate.v1.VirtioIommuDomain.newBuilder().setId(77).addEndpoints(7).addSte(1));
        e = assertThrows(IllegalArgumentException.class, () -> fresh.loadState(wrap(fresh, m.build())));
        assertEquals("virtio-iommu state refused: domain 77 has 1 STE words, and a table domain has 2.", e.getMessage());
        assertArrayEquals(freshBefore, fresh.saveState());
    }

    /** The virtio-iommu state inside a saved blob's envelope (docs/device-state.md). */
    private static dev.iommuemu.proto.devstate.v1.VirtioIommuState inner(byte[] blob) throws com.google.protobuf.InvalidProtocolBufferException {
        return dev.iommuemu.proto.devstate.v1.DeviceState.parseFrom(blob).getVirtioIommu();
    }

    /** {@code s} in an envelope for {@code target}'s profile: what a VMM would give it. */
    private static byte[] wrap(BridgedDevice target, dev.iommuemu.proto.devstate.v1.VirtioIommuState s) {
        return DeviceStateCodec.encode(DeviceStateCodec.envelope("virtio-iommu", target.profile()).setVirtioIommu(s).build());
    }

    /** Nesting states naming objects that are not there are refused, and the target keeps its own state. */
    private static void refusedNestingStates(BridgedDevice target, dev.iommuemu.proto.devstate.v1.VirtioIommuState m) {
        byte[] before = target.saveState();
        int domain = -1;
        for (int i = 0; i < m.getDomainsCount(); i++) {
            if (m.getDomains(i).getSteCount() == 2 && domain < 0) {
                domain = i; // domain 10, endpoint 1's
            }
        }
        var badHwpt = m.toBuilder();
        badHwpt.getDomainsBuilder(domain).setHwpt(9999);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> target.loadState(wrap(target, badHwpt.build())));
        assertEquals("virtio-iommu state refused: domain 10 names nested hwpt 9999, which the nesting host does not have for its "
                + "STE words.", e.getMessage());
        var noViommu = m.toBuilder();
        var objects = noViommu.getNestingBuilder().getHostBuilder().getIommufdBuilder();
        int at = -1;
        for (int i = 0; i < objects.getObjectsCount(); i++) {
            if (objects.getObjects(i).hasViommu()) {
                at = i;
            }
        }
        int viommu = objects.getObjects(at).getId();
        objects.removeObjects(at);
        e = assertThrows(IllegalArgumentException.class, () -> target.loadState(wrap(target, noViommu.build())));
        assertTrue(e.getMessage().startsWith("iommufd state refused: vDEVICE ") && e.getMessage().contains(" on vIOMMU " + viommu + ", ")
                && e.getMessage().endsWith(") cannot be allocated again (IOMMU_VDEVICE_ALLOC answers ENOENT on this host), so the"
                + " state names objects a host built like this one never made: load a state saved by a session of the same profile"
                + " and properties, or start afresh."), e.getMessage());
        var notOwed = m.toBuilder();
        notOwed.getNestingBuilder().addOutstanding(dev.iommuemu.proto.devstate.v1.VirtioIommuOutstandingFault.newBuilder()
                .setEndpoint(1).setGrpid(3).setCookie(77));
        e = assertThrows(IllegalArgumentException.class, () -> target.loadState(wrap(target, notOwed.build())));
        assertEquals("paravirtual nesting state refused: the fault record of endpoint 1 with grpid 3 awaits a response the fault "
                + "queue does not owe to that endpoint's StreamID and group.", e.getMessage());
        // The stall's record (endpoint 4) moved to endpoint 1, or to another grpid, with the same cookie: a
        // PAGE_RESP would resume StreamID 4's STAG for another endpoint (docs/nesting.md §6).
        var rec = m.getNesting().getOutstanding(0);
        assertEquals(4, rec.getEndpoint());
        for (var moved : List.of(rec.toBuilder().setEndpoint(1).build(), rec.toBuilder().setGrpid(rec.getGrpid() + 1).build())) {
            var wrong = m.toBuilder();
            wrong.getNestingBuilder().setOutstanding(0, moved);
            e = assertThrows(IllegalArgumentException.class, () -> target.loadState(wrap(target, wrong.build())));
            assertEquals("paravirtual nesting state refused: the fault record of endpoint " + moved.getEndpoint() + " with grpid "
                    + moved.getGrpid() + " awaits a response the fault queue does not owe to that endpoint's StreamID and group.",
                    e.getMessage());
        }
        // The fault queue's owed stall for a StreamID no bound device has, or with a STAG beyond 16 bits.
        for (int[] sidStag : new int[][] {{4000, rec.getGrpid()}, {4, 0x1_0000}}) {
            var wrong = m.toBuilder();
            var objsq = wrong.getNestingBuilder().getHostBuilder().getIommufdBuilder();
            int fq = -1;
            for (int i = 0; i < objsq.getObjectsCount(); i++) {
                if (objsq.getObjects(i).hasFaultQueue()) {
                    fq = i;
                }
            }
            var pend = objsq.getObjectsBuilder(fq).getFaultQueueBuilder().getPendingBuilder(0);
            assertEquals(4, pend.getStreamId());
            pend.setStreamId(sidStag[0]).setStag(sidStag[1]);
            int fqId = objsq.getObjects(fq).getId();
            e = assertThrows(IllegalArgumentException.class, () -> target.loadState(wrap(target, wrong.build())));
            assertEquals("iommufd state refused: fault queue " + fqId + " owes a response to cookie " + rec.getCookie() + (sidStag[0] != 4
                    ? " for StreamID 4000, which is no device bound to this context."
                    : " with STAG 65536, PRG index -1 and SubstreamID -1, which is neither a stall (a 16-bit STAG) nor a PRI group"
                    + " (a 9-bit PRG index)."), e.getMessage());
        }
        // The nest parent is the identity over the RAM regions it lists (docs/nesting.md §6), never the
        // host's carve-out (NestingHost.CARVE_BASE 2^46, 256 MiB): a run that is not is refused.
        var regions = m.getNesting().getHost().getNestParentRegionsList();
        assertEquals(1, regions.size());
        long ramEnd = regions.get(0).getBase() + regions.get(0).getSize();
        long carve = 1L << 46;
        String[] expected = {
            "paging hwpt %d maps IPA [0x1000, +0x1000) to PA 0x2000, which is not the identity (IPA = PA)",
            "paging hwpt %d maps IPA [0x" + Long.toHexString(carve) + ", +0x1000) to PA 0x" + Long.toHexString(carve) + ", which reaches"
                    + " the host's private carve-out [0x400000000000, +0x10000000)",
            "paging hwpt %d maps IPA [0x" + Long.toHexString(ramEnd) + ", +0x1000) to PA 0x" + Long.toHexString(ramEnd) + ", which is not"
                    + " inside the RAM regions its nest parent lists"};
        long[][] runs = {{0x1000, 0x2000}, {carve, carve}, {ramEnd, ramEnd}};
        for (int k = 0; k < runs.length; k++) {
            var bad = m.toBuilder();
            var objs = bad.getNestingBuilder().getHostBuilder().getIommufdBuilder();
            int parent = -1;
            for (int i = 0; i < objs.getObjectsCount(); i++) {
                if (objs.getObjects(i).hasPagingHwpt() && objs.getObjects(i).getPagingHwpt().getNestParent()) {
                    parent = i;
                }
            }
            assertTrue(objs.getObjects(parent).getPagingHwpt().getMappingsCount() > 0, "the nest parent maps the guest's RAM");
            objs.getObjectsBuilder(parent).getPagingHwptBuilder().addMappings(dev.iommuemu.proto.devstate.v1.IommufdMappingRun
                    .newBuilder().setIova(runs[k][0]).setPa(runs[k][1]).setSize(0x1000).setProt(3));
            int parentId = objs.getObjects(parent).getId();
            e = assertThrows(IllegalArgumentException.class, () -> target.loadState(wrap(target, bad.build())));
            assertEquals("paravirtual nesting state refused: " + String.format(expected[k], parentId) + "; this nesting host maps only"
                    + " guest RAM, at its own address, so the state was not saved by one: load a state that was, or start afresh.",
                    e.getMessage());
        }
        var detached = m.toBuilder();
        var objs = detached.getNestingBuilder().getHostBuilder().getIommufdBuilder();
        int tableHwpt = m.getDomains(domain).getHwpt();
        for (int i = 0; i < objs.getObjectsCount(); i++) {
            if (objs.getObjects(i).hasDevice() && objs.getObjects(i).getDevice().getStreamId() == 1) {
                objs.getObjectsBuilder(i).getDeviceBuilder().setHwpt(0);
            }
        }
        e = assertThrows(IllegalArgumentException.class, () -> target.loadState(wrap(target, detached.build())));
        assertEquals("virtio-iommu state refused: endpoint 1 is attached to hwpt 0 at the nesting host, but its domain is nested hwpt "
                + tableHwpt + ".", e.getMessage());
        assertArrayEquals(before, target.saveState(), "refused states change nothing");
    }

    private static BridgedDevice workloadDevice(long seed) {
        BridgedDevice[] d = new BridgedDevice[1];
        workload(seed, "default", d);
        return d[0];
    }
}
