package dev.iommuemu.bridge.fastpath;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge;
import dev.iommuemu.bridge.device.virtio.VirtioIommuBridge;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.Protocol;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.restart.StateJournal;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.virtio.iommu.RequestGuest;
import dev.iommuemu.virtio.iommu.VirtioIommuFeatures;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.VirtqRing;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The VMM's virtio-iommu request hand-off (docs/protocol.md §4.13, version 14) against the real
 * virtio-iommu model over the VMM socket, with {@link VmmRequestHandOff} doing the VMM's steps as
 * the spec writes them: requests the VMM served on the guest's ring and the daemon's drain (the
 * model's mappings, the ring's indexes, the counters, the journal), the slots byte for byte and
 * their ordering before an UNMAP completes, the cases where {@code ok} is 0, a rejected logged
 * request, the lock's bound, and the refusals of IOMMU_SET_SHARED_CACHE.
 */
class RequestHandOffSessionTest {
    private static final long RING = 0x20_0000L;
    private static final long OUT = 0x30_0000L;
    private static final long IN = 0x38_0000L;
    private static final int EP = 1;
    private static final int DOM = 7;
    private static final long IOVA = 0x10_0000L;
    private static final long PA = 0x5000_0000L;
    private static final int RW = RequestGuest.READ | RequestGuest.WRITE;

    private VhostUserServer server;
    private SessionRegistry registry;
    private VmmClient vmm;
    private GuestMemory mem;
    private DriverRing req;
    private SharedCacheView view;
    private VmmRequestHandOff h;
    private int call = -1;
    private int kick = -1;
    private int sent;
    private final WarningCapture capture = new WarningCapture();

    private void connect(String tag, DeviceFactory factory, String profile) throws Exception {
        Path socket = FakeVmm.socketPath(tag);
        registry = new SessionRegistry(new DeviceRegistry().register(factory), factory, profile);
        server = new VhostUserServer(socket, registry, 2000);
        vmm = VmmClient.connect(socket);
        vmm.addMemory(0, 0x400_0000L);
        mem = vmm.memory();
        Logger.getLogger(RequestHandOff.class.getName()).addHandler(capture);
        Logger.getLogger(DeviceSession.class.getName()).addHandler(capture);
    }

    /**
     * A virtio-iommu session of {@code profile} with a shared memory of 16 x 2 entries and the
     * §4.13 region, the features offered but {@code without}, EVENT_IDX off (the driver's
     * avail->flags ask for every notification), queue 0 running, and the VMM's side of it.
     */
    private void start(String tag, String profile, long without) throws Exception {
        start(tag, profile, without | (1L << VirtqRing.F_EVENT_IDX), false);
    }

    private void start(String tag, String profile, long without, boolean eventIdx) throws Exception {
        connect(tag, new VirtioIommuBridge.Factory(), profile);
        vmm.setFeatures((vmm.features() & ~without) | (1L << Protocol.F_PROTOCOL_FEATURES));
        view = vmm.sharedCacheWithRequestHandOff(16, 2);
        h = new VmmRequestHandOff(view.memory(), 16, 2, mem);
        req = new DriverRing(mem, 16, RING);
        req.setEventIdx(eventIdx);
        vmm.setVringNum(0, 16);
        vmm.setVringAddr(0, req.descAddr(), req.availAddr(), req.usedAddr());
        vmm.setVringBase(0, 0);
        call = vmm.vringCallEventFd(0);
        kick = vmm.vringKickEventFd(0);
        vmm.setVringEnable(0, true);
    }

    private void start(String tag) throws Exception {
        start(tag, "default", 0);
    }

    @AfterEach
    void stop() throws Exception {
        Logger.getLogger(RequestHandOff.class.getName()).removeHandler(capture);
        Logger.getLogger(DeviceSession.class.getName()).removeHandler(capture);
        if (call >= 0) {
            VmmClient.closeFd(call);
            call = -1;
        }
        if (kick >= 0) {
            VmmClient.closeFd(kick);
            kick = -1;
        }
        if (vmm != null) {
            vmm.close();
            vmm = null;
        }
        if (server != null) {
            server.close();
            server = null;
        }
        sent = 0;
    }

    private DeviceSession session() {
        return registry.list().get(0);
    }

    private long counter(String name) throws Exception {
        Long v = session().allCounters().get(name);
        return v == null ? -1 : v;
    }

    private List<String> warningTexts() {
        return capture.texts();
    }

    /** The guest posts a request (its readable part, a 4-byte tail poisoned with 0xee); returns its head. */
    private int post(byte[] out) {
        long o = OUT + 0x100L * sent;
        long in = IN + 0x100L * sent;
        sent++;
        mem.write(o, out, 0, out.length);
        mem.store(in, 4, 0xeeee_eeeeL);
        int head = req.add(List.of(DriverRing.Buf.out(o, out.length), DriverRing.Buf.in(in, 4)));
        req.publish(head);
        return head;
    }

    /** The status in the tail of the last request posted. */
    private long lastTail() {
        return mem.load(IN + 0x100L * (sent - 1), 4).getAsLong();
    }

    /** A request the daemon serves: posted, kicked, its notification awaited; its used element. */
    private DriverRing.Used daemonServes(byte[] out) throws Exception {
        post(out);
        VmmClient.signalEventFd(kick);
        assertEquals(1, VmmClient.awaitEventFd(call, 5000), "the daemon's used-buffer notification");
        settle();
        return req.popUsed();
    }

    /**
     * The notification comes while the kick's thread still holds the session lock: a message after
     * it (GET_CONFIG, under the same lock) is answered only once that thread let go of it.
     */
    private void settle() throws Exception {
        vmm.getConfig(0, 4);
    }

    /** Waits (at most 5 s) for the used ring's idx to reach {@code idx}: a completion without a notification. */
    private void awaitUsedIdx(int idx) throws Exception {
        long end = System.nanoTime() + 5_000_000_000L;
        while (req.usedIdx() != idx && System.nanoTime() < end) {
            Thread.sleep(1);
        }
        assertEquals(idx, req.usedIdx());
    }

    /** A request the VMM serves itself; its used element. */
    private DriverRing.Used vmmServes(byte[] out) {
        int before = h.served();
        post(out);
        assertEquals(VmmRequestHandOff.Outcome.SERVED_ALL, h.onNotify(false));
        assertEquals(before + 1, h.served(), "served by the VMM");
        return req.popUsed();
    }

    private Payloads.TranslateResult translate(long iova, boolean write) throws Exception {
        return vmm.translate(EP, Payloads.NO_SUBSTREAM, iova, write ? Payloads.ACCESS_WRITE : 0).result();
    }

    /** The expected bytes of a slot: {@code endpoints}, no RESV_MEM, then {mappings as {first, last, phys, flags}}. */
    private static byte[] slot(int seq, int domain, int[] endpoints, long[][] mappings) {
        ByteBuffer b = ByteBuffer.allocate(RequestHandOff.S_MAPPINGS + RequestHandOff.MAPPING * mappings.length)
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, seq).putInt(4, domain).putInt(8, 1).putInt(12, mappings.length).putInt(16, endpoints.length).putInt(20, 0);
        for (int i = 0; i < endpoints.length; i++) {
            b.putInt(0x18 + 4 * i, endpoints[i]);
        }
        for (int i = 0; i < mappings.length; i++) {
            int at = 0x100 + 32 * i;
            b.putLong(at, mappings[i][0]).putLong(at + 8, mappings[i][1]).putLong(at + 16, mappings[i][2])
                    .putInt(at + 24, (int) mappings[i][3]);
        }
        return b.array();
    }

    @Test
    void aMapTheVmmServedIsTranslatedByTheModelAndTheRingContinuesAfterIt() throws Exception {
        start("vreq1");
        DriverRing.Used attach = daemonServes(RequestGuest.attach(DOM, EP));
        assertEquals(4, attach.len());
        assertEquals(0, lastTail(), "VIRTIO_IOMMU_S_OK");
        // the header as §4.13 lays it out
        assertEquals(1, h.ok());
        assertEquals(HandOffLock.FREE, h.lock());
        assertEquals(req.descAddr(), h.desc());
        assertEquals(req.availAddr(), h.avail());
        assertEquals(req.usedAddr(), h.used());
        assertEquals(16, h.size());
        assertEquals(1, h.nextAvail());
        assertEquals(1, h.usedIdx());
        assertEquals(RequestHandOff.RING_INDIRECT_DESC, h.ringFlags(), "INDIRECT_DESC negotiated, EVENT_IDX not");
        assertEquals(0, h.inputStart());
        assertEquals(-1L, h.inputEnd());
        assertEquals(0xfff, h.granuleMask(), "MAPs are aligned on the 4 KiB granule");
        assertEquals(0, h.mappings());
        assertEquals(1 << 21, h.maxMappings());
        assertEquals(1024, h.maxPerDomain());
        assertEquals(16, h.slots());
        assertEquals(0, h.slotOfDomain(DOM));

        // the VMM serves a MAP on the guest's ring
        DriverRing.Used map = vmmServes(RequestGuest.map(DOM, IOVA, IOVA + 0xffff, PA, RW));
        assertEquals(4, map.len());
        assertEquals(0, lastTail());
        assertEquals(2, req.usedIdx());
        assertEquals(1, h.notified(), "the VMM notified the driver itself (avail->flags ask for it)");
        assertEquals(1, h.count());
        assertEquals(1, h.mappings());
        assertEquals(PA + 0x1234, h.translate(EP, IOVA + 0x1234, true), "the VMM translates from the mirror");
        assertEquals(-1, h.translate(EP + 1, IOVA, false), "an endpoint no slot lists");

        // the daemon drains it before anything else: the model translates it
        Payloads.TranslateResult t = translate(IOVA + 0x1234, true);
        assertEquals(Payloads.TRANSLATED, t.status());
        assertEquals(PA + 0x1234, t.output());
        assertEquals(0, h.count(), "the log zeroed");
        assertEquals(1, counter("vmm_requests"));
        assertEquals(0, counter("vmm_requests_rejected"));
        assertEquals(1, counter("requests.map"), "counted as the request queue counts a MAP");
        assertEquals(2, counter("status.ok"));

        // the next request the daemon serves lands in used slot 2 with its own head
        int before = req.numFree();
        DriverRing.Used second = daemonServes(RequestGuest.map(DOM, IOVA + 0x10000, IOVA + 0x1ffff, PA + 0x10000, RW));
        assertEquals(before, req.numFree(), "its descriptors came back");
        assertEquals(3, req.usedIdx());
        long elem = req.usedAddr() + VirtqRing.USED_RING + 8L * 2;
        assertEquals(second.id(), mem.load(elem, 4).getAsLong(), "used->ring[2] holds the daemon's request");
        assertEquals(0, lastTail());
        assertEquals(3, h.nextAvail());
        assertEquals(3, h.usedIdx());
        assertEquals(2, h.mappings());
        assertEquals(3, vmm.getVringBase(0), "GET_VRING_BASE: past the VMM's request and the daemon's");
        assertEquals(0, h.ok(), "the ring stopped: the VMM serves nothing");
    }

    @Test
    void anUnmapTheVmmServedRemovesTheMapping() throws Exception {
        start("vreq2");
        daemonServes(RequestGuest.attach(DOM, EP));
        vmmServes(RequestGuest.map(DOM, IOVA, IOVA + 0x1fff, PA, RW));
        assertEquals(PA, translate(IOVA, false).output(), "the model has the MAP (drained)");
        view.setNotifiers(false);
        vmmServes(RequestGuest.unmap(DOM, IOVA, IOVA + 0x1fff));
        assertEquals(0, h.mappings());
        assertEquals(-1, h.translate(EP, IOVA, false));
        Payloads.TranslateResult t = translate(IOVA, false);
        assertEquals(Payloads.ABORTED, t.status(), "unmapped in the model too");
        assertEquals(2, counter("vmm_requests"));
        assertEquals(1, counter("requests.unmap"));
        assertEquals(0L, (long) session().withDevice(d -> ((VirtioIommuBridge) unwrap(d)).device().mappingCount()));
    }

    private static dev.iommuemu.bridge.device.BridgedDevice unwrap(dev.iommuemu.bridge.device.BridgedDevice d) {
        return d instanceof dev.iommuemu.bridge.recording.RecordingDevice r ? r.device() : d;
    }

    @Test
    void theSlotsAfterDaemonServedRequestsByteForByte() throws Exception {
        start("vreq3");
        daemonServes(RequestGuest.attach(DOM, EP));
        // written once at the release after the ATTACH: seq 2
        assertArrayEquals(slot(2, DOM, new int[] {EP}, new long[0][]), h.slotBytes(0));
        daemonServes(RequestGuest.map(DOM, IOVA + 0x4000, IOVA + 0x4fff, PA + 0x4000, RequestGuest.READ));
        daemonServes(RequestGuest.map(DOM, IOVA, IOVA + 0x1fff, PA, RW));
        assertArrayEquals(slot(6, DOM, new int[] {EP}, new long[][] {{IOVA, IOVA + 0x1fff, PA, RW},
                {IOVA + 0x4000, IOVA + 0x4fff, PA + 0x4000, RequestGuest.READ}}), h.slotBytes(0), "ascending order");
        daemonServes(RequestGuest.attach(DOM, EP + 2));
        assertArrayEquals(slot(8, DOM, new int[] {EP, EP + 2}, new long[][] {{IOVA, IOVA + 0x1fff, PA, RW},
                {IOVA + 0x4000, IOVA + 0x4fff, PA + 0x4000, RequestGuest.READ}}), h.slotBytes(0));
        daemonServes(RequestGuest.unmap(DOM, IOVA, IOVA + 0x1fff));
        assertArrayEquals(slot(10, DOM, new int[] {EP, EP + 2}, new long[][] {{IOVA + 0x4000, IOVA + 0x4fff, PA + 0x4000,
                RequestGuest.READ}}), h.slotBytes(0));
        // a second domain takes slot 1; EP + 2 moving there rewrites slot 0 (an ATTACH that moves it)
        daemonServes(RequestGuest.attach(DOM + 1, EP + 2));
        assertEquals(1, h.slotOfDomain(DOM + 1));
        assertArrayEquals(slot(12, DOM, new int[] {EP}, new long[][] {{IOVA + 0x4000, IOVA + 0x4fff, PA + 0x4000,
                RequestGuest.READ}}), h.slotBytes(0));
        assertArrayEquals(slot(2, DOM + 1, new int[] {EP + 2}, new long[0][]), h.slotBytes(1));
        // DETACH of the last endpoint: the domain is gone, its slot emptied (state 0)
        daemonServes(detach(DOM, EP));
        assertEquals(-1, h.slotOfDomain(DOM));
        byte[] empty = new byte[RequestHandOff.S_MAPPINGS];
        ByteBuffer.wrap(empty).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 14);
        assertArrayEquals(empty, h.slotBytes(0));
        assertEquals(0, h.mappings());
        // a device reset empties every slot
        vmm.resetDevice();
        assertEquals(-1, h.slotOfDomain(DOM + 1));
        assertEquals(0, h.ok());
    }

    private static byte[] detach(int domain, int ep) {
        long[] w = new long[dev.iommuemu.virtio.iommu.Structs.Detach.LAYOUT.words()];
        dev.iommuemu.virtio.iommu.Structs.Head.TYPE.set(w, dev.iommuemu.virtio.iommu.Structs.T_DETACH);
        dev.iommuemu.virtio.iommu.Structs.Detach.DOMAIN.set(w, domain);
        dev.iommuemu.virtio.iommu.Structs.Detach.ENDPOINT.set(w, ep);
        return dev.iommuemu.virtio.iommu.Structs.toBytes(w, dev.iommuemu.virtio.iommu.Structs.Detach.READABLE);
    }

    /**
     * With EVENT_IDX (virtio 1.x §2.7.10) the VMM notifies for its own completions, and the daemon
     * decides its next notification from the VMM's used_idx: used_event 2 was passed by the VMM's
     * completions, so the daemon's completion at used index 3 -> 4 asks for none (deciding from the
     * daemon's own last index, 1, it would send one).
     */
    @Test
    void withEventIdxTheDaemonDecidesItsNextNotificationFromTheVmmsUsedIndex() throws Exception {
        start("vreq14", "default", 0, true);
        req.setUsedEvent(0);
        daemonServes(RequestGuest.attach(DOM, EP));
        assertEquals(RequestHandOff.RING_EVENT_IDX | RequestHandOff.RING_INDIRECT_DESC, h.ringFlags());
        long availEvent = req.usedAddr() + VirtqRing.availEventOffset(16);
        req.setUsedEvent(1);
        vmmServes(RequestGuest.map(DOM, IOVA, IOVA + 0xfff, PA, RW));
        assertEquals(1, h.notified(), "used_event 1 equals the old used_idx: the VMM notified");
        assertEquals(2, mem.load(availEvent, 2).getAsLong(), "avail_event: the new next_avail");
        vmmServes(RequestGuest.map(DOM, IOVA + 0x1000, IOVA + 0x1fff, PA, RW));
        assertEquals(1, h.notified(), "used_event 1 was passed already");
        req.setUsedEvent(2);
        post(RequestGuest.map(DOM, IOVA + 0x2000, IOVA + 0x2fff, PA, RW));
        VmmClient.signalEventFd(kick);
        awaitUsedIdx(4); // the daemon served it in used slot 3
        settle();
        assertEquals(0, lastTail());
        assertEquals(0, VmmClient.awaitEventFd(call, 300), "no notification: the VMM's completions passed used_event");
        assertEquals(4, mem.load(availEvent, 2).getAsLong(), "the daemon's avail_event");
        // and the next one the driver asks for comes
        req.setUsedEvent(4);
        daemonServes(RequestGuest.map(DOM, IOVA + 0x3000, IOVA + 0x3fff, PA, RW));
        assertEquals(5, req.usedIdx());
    }

    @Test
    void aDomainWithMoreThanEightEndpointsHasNoSlot() throws Exception {
        start("vreq15");
        for (int ep = 0; ep < 8; ep++) {
            daemonServes(RequestGuest.attach(DOM, ep));
        }
        assertEquals(0, h.slotOfDomain(DOM));
        daemonServes(RequestGuest.attach(DOM, 8));
        assertEquals(-1, h.slotOfDomain(DOM), "nine endpoints: the slot emptied");
        byte[] empty = new byte[RequestHandOff.S_MAPPINGS];
        ByteBuffer.wrap(empty).order(ByteOrder.LITTLE_ENDIAN).putInt(0, h.slotSeq(0));
        assertArrayEquals(empty, h.slotBytes(0));
        assertEquals(0, h.slotSeq(0) & 1);
        post(RequestGuest.map(DOM, IOVA, IOVA + 0xfff, PA, RW));
        assertEquals(VmmRequestHandOff.Outcome.KICK, h.onNotify(false), "its requests go to the daemon");
        VmmClient.signalEventFd(kick);
        assertEquals(1, VmmClient.awaitEventFd(call, 5000));
        settle();
        assertEquals(0, lastTail());
        daemonServes(detach(DOM, 8));
        assertEquals(0, h.slotOfDomain(DOM), "eight again: mirrored");
        assertEquals(1, h.mappingCountOfSlot(0));
    }

    /**
     * §4.13: the slot no longer holds an UNMAP's mapping before the UNMAP completes. With notifiers
     * present the daemon sends IOMMU_IOTLB_INVALIDATE (§5) in the middle of the UNMAP and waits for
     * the ack; the VMM's back-end listener reads the slot then, before the used element exists.
     */
    @Test
    void theSlotIsRewrittenBeforeADaemonServedUnmapCompletes() throws Exception {
        start("vreq4");
        daemonServes(RequestGuest.attach(DOM, EP));
        daemonServes(RequestGuest.map(DOM, IOVA, IOVA + 0xfff, PA, RW));
        assertEquals(1, h.mappingCountOfSlot(0));
        List<int[]> seen = new ArrayList<>();
        vmm.serveBackend(new VmmClient.BackendListener() {
            @Override
            public long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
                synchronized (seen) {
                    seen.add(new int[] {req.usedIdx(), h.mappingCountOfSlot(0), h.slotSeq(0)});
                }
                return 0;
            }
        });
        view.setNotifiers(true);
        int used = req.usedIdx();
        daemonServes(RequestGuest.unmap(DOM, IOVA, IOVA + 0xfff));
        synchronized (seen) {
            assertEquals(1, seen.size(), "one IOMMU_IOTLB_INVALIDATE, for the UNMAP's endpoint");
            assertEquals(used, seen.get(0)[0], "sent before the UNMAP's used element");
            assertEquals(0, seen.get(0)[1], "the slot holds no mapping by then");
            assertEquals(6, seen.get(0)[2], "rewritten once more (seq 4 -> 6), and not half written");
        }
        assertEquals(used + 1, req.usedIdx());
        assertEquals(0, lastTail());
    }

    @Test
    void okIsZeroWithoutMapUnmapWhileRecordingForNestingAndWhileTheRingIsStopped() throws Exception {
        start("vreq5", "default", VirtioIommuFeatures.bit(VirtioIommuFeatures.MAP_UNMAP));
        daemonServes(RequestGuest.attach(DOM, EP));
        assertEquals(0, h.ok(), "MAP_UNMAP not negotiated");
        post(RequestGuest.map(DOM, IOVA, IOVA + 0xfff, PA, RW));
        assertEquals(VmmRequestHandOff.Outcome.NOT_OK, h.onNotify(false));
        assertEquals(HandOffLock.FREE, h.lock());
        stop();

        start("vreq6");
        daemonServes(RequestGuest.attach(DOM, EP));
        assertEquals(1, h.ok());
        Path file = Files.createTempFile("vreq", ".iommurec");
        try {
            session().startRecording(file, 1 << 20);
            daemonServes(RequestGuest.map(DOM, IOVA, IOVA + 0xfff, PA, RW));
            assertEquals(0, h.ok(), "a recording holds every request the model handles");
            session().stopRecording();
            daemonServes(RequestGuest.map(DOM, IOVA + 0x1000, IOVA + 0x1fff, PA, RW));
            assertEquals(1, h.ok());
        } finally {
            Files.deleteIfExists(file);
        }
        vmm.getVringBase(0);
        assertEquals(0, h.ok(), "GET_VRING_BASE stopped queue 0");
        stop();

        start("vreq7", "nesting", 0);
        daemonServes(RequestGuest.attach(DOM, EP));
        assertEquals(0, h.ok(), "paravirtual nesting (docs/nesting.md §6)");
        assertEquals(0, h.slotOfDomain(DOM), "the slots are kept all the same");
    }

    @Test
    void aRejectedLoggedRequestIsCountedAndTheSessionGoesOn() throws Exception {
        start("vreq8");
        daemonServes(RequestGuest.attach(DOM, EP));
        daemonServes(RequestGuest.map(DOM, IOVA, IOVA + 0xfff, PA, RW));
        assertTrue(h.tryLock());
        h.log(3, DOM, IOVA, IOVA + 0xfff, PA + 0x9000, RW); // overlaps: INVAL
        h.log(4, DOM, IOVA + 0x800, IOVA + 0x8ff, 0, 0); // would split: RANGE
        h.log(9, DOM, 0, 0, 0, 0); // no MAP or UNMAP
        h.scribbleSlotCount(0, 0); // as if the VMM had removed the mapping for them
        h.unlock();
        assertEquals(PA, translate(IOVA, false).output(), "the model's mapping stands");
        assertEquals(3, counter("vmm_requests"));
        assertEquals(3, counter("vmm_requests_rejected"));
        assertTrue(warningTexts().stream().anyMatch(w -> w.contains("3 of the 3 virtio-iommu requests the VMM served itself"
                + " (docs/protocol.md §4.13) are not requests this device completes with S_OK")), warningTexts().toString());
        // the slot is rewritten from the model (the VMM may have changed it for them)
        assertEquals(1, h.mappingCountOfSlot(0));
        assertArrayEquals(slot(8, DOM, new int[] {EP}, new long[][] {{IOVA, IOVA + 0xfff, PA, RW}}), h.slotBytes(0));
        // a scribbled count: read as 1024, the session goes on
        assertTrue(h.tryLock());
        h.setCount(-1);
        h.unlock();
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> translate(IOVA, false));
        assertEquals(3 + 1024, counter("vmm_requests"));
        assertEquals(Payloads.TRANSLATED, translate(IOVA, false).status());
        daemonServes(RequestGuest.map(DOM, IOVA + 0x1000, IOVA + 0x1fff, PA, RW));
        assertEquals(0, lastTail());
    }

    /**
     * §4.13: a log of at least DeviceSession.APPLY_UNLOCKED requests goes into the model with the
     * region's lock given back, and the VMM serves meanwhile (three MAPs, appended after the log);
     * then the daemon drains those too: the model, the slot, the region's header, the counters and
     * the journal end holding all of them.
     */
    @Test
    void aLongLogAppliedWithTheLockGivenBackEndsAsAShortOne() throws Exception {
        start("vreq13");
        Supplier<StateJournal.Found> journal = vmm.stateJournal(1 << 20);
        daemonServes(RequestGuest.attach(DOM, EP));
        view.setNotifiers(false);
        int maps = 50;
        int unmaps = 20;
        for (int i = 0; i < maps; i++) {
            vmmServes(RequestGuest.map(DOM, IOVA + 0x1000L * i, IOVA + 0x1000L * i + 0xfff, PA + 0x2000L * i, RW));
        }
        for (int i = 0; i < unmaps; i++) {
            vmmServes(RequestGuest.unmap(DOM, IOVA + 0x1000L * i, IOVA + 0x1000L * i + 0xfff));
        }
        assertTrue(maps + unmaps >= DeviceSession.APPLY_UNLOCKED, "the log is long enough to be applied unlocked");
        assertEquals(maps + unmaps, h.count());
        int during = 3;
        List<Integer> lockSeen = new ArrayList<>();
        List<Integer> countSeen = new ArrayList<>();
        DeviceSession.unlockedApplyHook(() -> {
            lockSeen.add(h.lock());
            countSeen.add(h.count());
            for (int i = 0; i < during; i++) {
                vmmServes(RequestGuest.map(DOM, IOVA + 0x80000L + 0x1000L * i, IOVA + 0x80fffL + 0x1000L * i,
                        PA + 0x80000L + 0x1000L * i, RW));
            }
        });
        Payloads.TranslateResult t;
        try {
            // the daemon drains before it translates
            t = translate(IOVA + 0x1000L * 30 + 0x10, true);
        } finally {
            DeviceSession.unlockedApplyHook(null);
        }
        assertEquals(List.of(HandOffLock.FREE), lockSeen, "the lock given back while the daemon applied the log");
        assertEquals(List.of(maps + unmaps), countSeen, "the log left in place: the VMM appends after it");
        assertEquals(PA + 0x80000L + 0x1000L * 2 + 8, translate(IOVA + 0x80000L + 0x1000L * 2 + 8, false).output(),
                "a MAP the VMM served meanwhile, drained after the lock was taken again");
        assertEquals(Payloads.TRANSLATED, t.status());
        assertEquals(PA + 0x2000L * 30 + 0x10, t.output());
        assertEquals(Payloads.ABORTED, translate(IOVA + 0x1000L * 5, false).status(), "unmapped in the model");
        assertEquals(0, h.count(), "the log zeroed");
        assertEquals(HandOffLock.FREE, h.lock(), "given back");
        assertEquals(1, h.ok());
        assertEquals(maps + unmaps + during, counter("vmm_requests"));
        assertEquals(0, counter("vmm_requests_rejected"));
        assertEquals(maps + during, counter("requests.map"));
        assertEquals(unmaps, counter("requests.unmap"));
        assertEquals(maps + unmaps + during, journal.get().writesApplied(),
                "each of them one of the VMM's numbered writes (§4.10)");
        int left = maps - unmaps + during;
        assertEquals(left, h.mappings());
        assertEquals((long) left, (long) session().withDevice(d -> ((VirtioIommuBridge) unwrap(d)).device().mappingCount()));
        // the slot as the model has the domain (rewritten from it at the lock's release)
        long[][] expected = new long[left][];
        for (int i = unmaps; i < maps; i++) {
            expected[i - unmaps] = new long[] {IOVA + 0x1000L * i, IOVA + 0x1000L * i + 0xfff, PA + 0x2000L * i, RW};
        }
        for (int i = 0; i < during; i++) {
            expected[maps - unmaps + i] = new long[] {IOVA + 0x80000L + 0x1000L * i, IOVA + 0x80fffL + 0x1000L * i,
                    PA + 0x80000L + 0x1000L * i, RW};
        }
        byte[] actual = h.slotBytes(0);
        int seq = ByteBuffer.wrap(actual).order(ByteOrder.LITTLE_ENDIAN).getInt(0);
        assertEquals(0, seq & 1, "no change under way");
        assertArrayEquals(slot(seq, DOM, new int[] {EP}, expected), actual);
        // and the ring goes on: the next request the VMM serves, then one the daemon serves
        vmmServes(RequestGuest.map(DOM, IOVA + 0x100000, IOVA + 0x100fff, PA, RW));
        daemonServes(RequestGuest.map(DOM, IOVA + 0x200000, IOVA + 0x200fff, PA, RW));
        assertEquals(0, lastTail());
        assertEquals(maps + unmaps + during + 2 + 1, req.usedIdx());
    }

    @Test
    void theJournalCountsDrainedRequestsAmongItsAppliedWrites() throws Exception {
        start("vreq9");
        Supplier<StateJournal.Found> journal = vmm.stateJournal(1 << 20);
        daemonServes(RequestGuest.attach(DOM, EP));
        assertEquals(0, journal.get().writesApplied());
        vmmServes(RequestGuest.map(DOM, IOVA, IOVA + 0xfff, PA, RW));
        vmmServes(RequestGuest.map(DOM, IOVA + 0x1000, IOVA + 0x1fff, PA, RW));
        translate(IOVA, false); // the drain alone saves the state
        assertEquals(2, journal.get().writesApplied(), "the two requests are two of the VMM's numbered writes (§4.10)");
        assertEquals(0, view.writesApplied(), "not IOMMU_MMIO_WRITEs (§4.8 writes_applied)");
    }

    @Test
    void aVmmHoldingTheLockTooLongFailsTheSession() throws Exception {
        start("vreq10");
        DeviceSession s = session();
        s.commandLockTimeout(Duration.ofMillis(200));
        daemonServes(RequestGuest.attach(DOM, EP));
        assertTrue(h.tryLock());
        assertThrows(Exception.class, () -> assertTimeoutPreemptively(Duration.ofSeconds(10), () -> translate(IOVA, false)));
        assertEquals(0, h.ok());
        assertTrue(warningTexts().stream().anyMatch(w -> w.contains("the VMM held the request hand-off lock (docs/protocol.md"
                + " §4.13) for more than 200 ms (a VMM thread stopped inside a request, or a broken VMM)")), warningTexts().toString());
        assertEquals(HandOffLock.HELD_BY_VMM, h.lock(), "the daemon never took it");
        assertTrue(s.failure().contains("the VMM held the request hand-off lock (docs/protocol.md §4.13) past the bound"),
                s.failure());
        h.unlock();
    }

    @Test
    void refusals() throws Exception {
        connect("vreq11", new VirtioIommuBridge.Factory(), "default");
        long need = SharedCache.sizeWithRequestHandOff(16, 2);
        assertEquals(4096 + 64 * 16 * 2 + 64 * 256 + 0x8D000, need);
        RequestRefusedException e = assertThrows(RequestRefusedException.class, () -> vmm.sharedCache(16, 2,
                SharedCache.FLAG_REQUESTS, need));
        assertEquals(ProtocolException.EINVAL, e.errno());
        MappedRegion shm = MappedRegion.allocate("vreq-small", 0, need);
        MappedRegion small = MappedRegion.allocate("vreq-small", 0, need - 64);
        try {
            ProtocolException p = assertThrows(ProtocolException.class, () -> session().setSharedCache(LibC.dup(shm.fd()), 16, 2,
                    SharedCache.FLAG_REQUESTS));
            assertEquals("IOMMU_SET_SHARED_CACHE: flag REQUESTS (bit 2) needs RECIPES (bit 0) too: the request hand-off region"
                    + " follows the recipe table (docs/protocol.md §4.13)", p.getMessage());
            ProtocolException q = assertThrows(ProtocolException.class, () -> session().setSharedCache(LibC.dup(shm.fd()), 16, 2,
                    SharedCache.FLAG_RECIPES | SharedCache.FLAG_CMDQ | SharedCache.FLAG_REQUESTS));
            assertEquals(ProtocolException.EINVAL, q.errno());
            assertTrue(q.getMessage().contains("flag CMDQ (bit 1) is for a model with a command queue"), q.getMessage());
            ProtocolException r = assertThrows(ProtocolException.class, () -> session().setSharedCache(LibC.dup(small.fd()), 16, 2,
                    SharedCache.FLAG_RECIPES | SharedCache.FLAG_REQUESTS));
            assertEquals(ProtocolException.EINVAL, r.errno());
            assertEquals("the shared cache memfd holds 600000 bytes, but 16 x 2 entries with walk recipes and the request hand-off"
                    + " need 600064 (C0 + 0x8D000, C0 = 4096 + 64 * sets * ways + 64 * 256 = 22528): make it larger or leave out"
                    + " REQUESTS (docs/protocol.md §4.13)", r.getMessage());
        } finally {
            shm.unmap();
            small.unmap();
        }
        // the connection goes on
        view = vmm.sharedCacheWithRequestHandOff(16, 2);
        assertEquals(HandOffLock.FREE, new VmmRequestHandOff(view.memory(), 16, 2, mem).lock());
        stop();

        connect("vreq12", new Smmuv3Bridge.Factory(), "max");
        MappedRegion m = MappedRegion.allocate("vreq-smmu", 0, need);
        try {
            ProtocolException p = assertThrows(ProtocolException.class, () -> session().setSharedCache(LibC.dup(m.fd()), 16, 2,
                    SharedCache.FLAG_RECIPES | SharedCache.FLAG_REQUESTS));
            assertEquals(ProtocolException.EINVAL, p.errno());
            assertEquals("IOMMU_SET_SHARED_CACHE: flag REQUESTS (bit 2) is for a model with a virtio-iommu request queue"
                    + " (virtio-iommu), but this session's model is smmuv3: leave out REQUESTS (docs/protocol.md §4.13)",
                    p.getMessage());
        } finally {
            m.unmap();
        }
    }

    @Test
    void cmdqAndRequestsTogetherAreRefused() throws Exception {
        long need = SharedCache.sizeWithRequestHandOff(16, 2);
        MappedRegion m = MappedRegion.allocate("vreq-both", 0, need);
        try {
            IllegalArgumentException p = assertThrows(IllegalArgumentException.class, () -> SharedCache.map(LibC.dup(m.fd()), 16, 2,
                    false, SharedCache.FLAG_RECIPES | SharedCache.FLAG_CMDQ | SharedCache.FLAG_REQUESTS));
            assertEquals("IOMMU_SET_SHARED_CACHE: flags CMDQ (bit 1) and REQUESTS (bit 2) name two hand-off regions at the"
                    + " same place, for two kinds of model: give one of them (docs/protocol.md §4.13)", p.getMessage());
        } finally {
            m.unmap();
        }
    }
}
