package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.virtio.iommu.Structs.Attach;
import dev.iommuemu.virtio.iommu.Structs.Detach;
import dev.iommuemu.virtio.iommu.Structs.Head;
import dev.iommuemu.virtio.iommu.Structs.Probe;
import dev.iommuemu.virtio.iommu.Structs.Unmap;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.DriverRing.Buf;
import dev.iommuemu.virtqueue.VirtqRing;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;

/**
 * A guest driving a virtio-iommu with a seeded random sequence (saved-state tests, here and in
 * vhost-bridge through the test-jar): ATTACH (with and without F_BYPASS), DETACH, MAP, UNMAP,
 * PROBE, config bypass writes, DMA translations (faults fill the event queue, whose buffers the
 * driver adds only now and then, so reports wait and are dropped), topology changes, unknown
 * request types. Requests are encoded through {@link Structs}' declared layouts and sent on a
 * {@link DriverRing}. Everything the device answers goes to {@link #log}: request statuses and
 * PROBE bytes, translations with addresses and permissions, fault records byte for byte, used
 * lengths, ring indices, interrupts and invalidations.
 *
 * <p>Two workloads of the same seed are the same guest: its memory and driver state evolve
 * identically as long as their devices answer identically, which is what a saved-state test
 * checks after {@link #useDevice} moves one of them to a device loaded from the other's state.
 */
public final class VirtioIommuWorkload {
    // the rings where RequestGuest (the restart tests' guest) has them
    private static final long REQ_RING = RequestGuest.REQ_RING;
    private static final long EVT_RING = RequestGuest.EVT_RING;
    private static final long REQ_OUT = RequestGuest.OUT;
    private static final long REQ_IN = 0x1_1000;
    private static final long EVT_BUFS = 0x2_0000;
    private static final int QSIZE = RequestGuest.QSIZE;
    private static final int EVT_BUF_LEN = 32;
    /** The MSI doorbell region every endpoint has (RESV_MEM, subtype MSI). */
    public static final long MSI_BASE = 0x800_0000;

    public final SparseGuestMemory memory = new SparseGuestMemory(0, 0x10_0000);
    public final RecordingHost host = new RecordingHost();
    public final List<String> log = new ArrayList<>();
    private final Random rnd;
    private VirtioIommuDevice dev;
    private DriverRing req;
    private DriverRing evt;
    private final Map<Integer, Long> evtBufOf = new HashMap<>();
    private long nextEvtBuf;

    /** The device configuration of these tests: small bounds so they are reached. */
    public static VirtioIommuConfig config() {
        return VirtioIommuConfig.builder().maxQueueSize(64).maxPendingFaults(4).maxDomains(5).maxMappingsPerDomain(12)
                .endpoints(0, 5).resv(ResvRegion.msi(MSI_BASE, MSI_BASE + 0xf_ffff)).resv(3, ResvRegion.reserved(0x3_0000, 0x3_ffff))
                .probeSize(128).build();
    }

    public VirtioIommuWorkload(long seed) {
        this(seed, (mem, host) -> new VirtioIommuDevice(config(), mem, host));
    }

    /** A workload on the device {@code make} builds over this guest's memory and host (e.g. a daemon profile's). */
    public VirtioIommuWorkload(long seed, java.util.function.BiFunction<SparseGuestMemory, RecordingHost, VirtioIommuDevice> make) {
        this.rnd = new Random(seed);
        this.dev = make.apply(memory, host);
        start();
    }

    public VirtioIommuDevice device() {
        return dev;
    }

    /** Sends the rest of the workload to {@code d} (a device that took this one's saved state). */
    public void useDevice(VirtioIommuDevice d) {
        dev = d;
    }

    /** Driver initialisation (virtio 1.x §3.1.1): features, the two queues, a few event buffers. */
    private void start() {
        long f = dev.deviceFeatures();
        if (rnd.nextBoolean()) {
            f &= ~(1L << VirtqRing.F_EVENT_IDX);
        }
        if (rnd.nextBoolean()) {
            f &= ~VirtioIommuFeatures.bit(VirtioIommuFeatures.MMIO);
        }
        if (!dev.setDriverFeatures(f)) {
            throw new IllegalStateException("features refused");
        }
        boolean eventIdx = (f & 1L << VirtqRing.F_EVENT_IDX) != 0;
        req = new DriverRing(memory, QSIZE, REQ_RING);
        evt = new DriverRing(memory, QSIZE, EVT_RING);
        req.setEventIdx(eventIdx);
        evt.setEventIdx(eventIdx);
        setUp(0, req);
        setUp(1, evt);
        evtBufOf.clear();
        nextEvtBuf = 0;
        addEventBuffers(2);
    }

    private void setUp(int q, DriverRing r) {
        dev.setQueueSize(q, QSIZE);
        dev.setQueueAddresses(q, r.descAddr(), r.availAddr(), r.usedAddr());
        dev.setQueueEnabled(q, true);
    }

    /** {@code n} random steps, each logged. */
    public void run(int n) {
        for (int i = 0; i < n; i++) {
            step();
            drainEvents();
            log.add("  irqs " + host.irqs + " inv " + host.invalidations + " req.used " + req.usedIdx() + " evt.used "
                    + evt.usedIdx() + " pending " + dev.pendingFaults());
            host.clear();
        }
    }

    private void step() {
        int dom = 1 + rnd.nextInt(6);
        int ep = rnd.nextInt(7);
        switch (rnd.nextInt(12)) {
            case 0, 1 -> log.add("ATTACH " + dom + " " + ep + " -> "
                    + attach(dom, ep, rnd.nextInt(5) == 0 ? Attach.F_BYPASS : 0));
            case 2 -> log.add("DETACH " + dom + " " + ep + " -> " + detach(dom, ep));
            case 3, 4 -> {
                long iova = rnd.nextInt(64) * 0x1000L;
                long end = iova + (1 + rnd.nextInt(4)) * 0x1000L - 1;
                long phys = rnd.nextInt(256) * 0x1000L + (rnd.nextInt(20) == 0 ? 0x800 : 0);
                int flags = rnd.nextInt(8);
                log.add("MAP " + dom + " " + Long.toHexString(iova) + "-" + Long.toHexString(end) + " flags " + flags + " -> "
                        + map(dom, iova, end, phys, flags));
            }
            case 5 -> {
                long iova = rnd.nextInt(64) * 0x1000L;
                long end = iova + (1 + rnd.nextInt(8)) * 0x1000L - 1;
                log.add("UNMAP " + dom + " " + Long.toHexString(iova) + "-" + Long.toHexString(end) + " -> " + unmap(dom, iova, end));
            }
            case 6 -> log.add("PROBE " + ep + " -> " + probe(ep));
            case 7 -> {
                int v = rnd.nextInt(3) == 0 ? 2 : rnd.nextInt(2);
                dev.writeConfig(Structs.Config.BYPASS_OFFSET, 1, v); // config bypass ("Device configuration layout")
                log.add("bypass := " + v + " -> " + dev.readConfig(Structs.Config.BYPASS_OFFSET, 1));
            }
            case 8, 9 -> {
                long iova = rnd.nextInt(8) == 0 ? MSI_BASE + rnd.nextInt(0x1000) : rnd.nextInt(80) * 0x1000L + rnd.nextInt(0x1000);
                DmaAccess a = switch (rnd.nextInt(3)) {
                    case 0 -> DmaAccess.READ;
                    case 1 -> DmaAccess.WRITE;
                    default -> new DmaAccess(false, true, false);
                };
                Translation t = dev.translateDetailed(ep, iova, a);
                log.add("DMA " + ep + " " + Long.toHexString(iova) + " " + a + " -> " + t);
            }
            case 10 -> addEventBuffers(1 + rnd.nextInt(3));
            default -> {
                int k = rnd.nextInt(10);
                if (k == 0) {
                    Set<Integer> present = new TreeSet<>();
                    for (int e = 0; e < 6; e++) {
                        if (rnd.nextInt(5) != 0) {
                            present.add(e);
                        }
                    }
                    dev.setEndpoints(present);
                    log.add("endpoints " + present);
                } else {
                    long[] w = new long[Attach.LAYOUT.words()];
                    Head.TYPE.set(w, 0x40 + k);
                    log.add("type " + (0x40 + k) + " -> " + send(Structs.toBytes(w, Attach.READABLE), 4));
                }
            }
        }
    }

    public String attach(int domain, int ep, int flags) {
        long[] w = new long[Attach.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_ATTACH);
        Attach.DOMAIN.set(w, domain);
        Attach.ENDPOINT.set(w, ep);
        Attach.FLAGS.set(w, flags);
        return send(Structs.toBytes(w, Attach.READABLE), 4);
    }

    public String detach(int domain, int ep) {
        long[] w = new long[Detach.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_DETACH);
        Detach.DOMAIN.set(w, domain);
        Detach.ENDPOINT.set(w, ep);
        return send(Structs.toBytes(w, Detach.READABLE), 4);
    }

    public String map(int domain, long start, long end, long phys, int flags) {
        return send(RequestGuest.map(domain, start, end, phys, flags), 4);
    }

    public String unmap(int domain, long start, long end) {
        return send(RequestGuest.unmap(domain, start, end), 4);
    }

    /** ATTACH_TABLE (docs/nesting.md §6) with SMMUv3 STE words 0 and 1. */
    public String attachTable(int domain, int ep, long ste0, long ste1) {
        long[] w = new long[Structs.AttachTable.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_ATTACH_TABLE);
        Structs.AttachTable.DOMAIN.set(w, domain);
        Structs.AttachTable.ENDPOINT.set(w, ep);
        Structs.AttachTable.FORMAT.set(w, Structs.AttachTable.FMT_SMMUV3_STE);
        Structs.AttachTable.STE0.set(w, ste0);
        Structs.AttachTable.STE1.set(w, ste1);
        return send(Structs.toBytes(w, Structs.AttachTable.READABLE), 4);
    }

    /** INVALIDATE (docs/nesting.md §6): SMMUv3 commands, two words each; the answer holds handled and the status. */
    public String invalidate(int domain, long... cmds) {
        long[] w = new long[Structs.Invalidate.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_INVALIDATE);
        Structs.Invalidate.DOMAIN.set(w, domain);
        Structs.Invalidate.COUNT.set(w, cmds.length / 2);
        byte[] head = Structs.toBytes(w, Structs.Invalidate.HEADER);
        byte[] all = java.util.Arrays.copyOf(head, head.length + 8 * cmds.length);
        for (int i = 0; i < cmds.length; i++) {
            for (int k = 0; k < 8; k++) {
                all[head.length + 8 * i + k] = (byte) (cmds[i] >>> (8 * k));
            }
        }
        return send(all, Structs.Invalidate.WRITABLE);
    }

    /** PAGE_RESP (docs/nesting.md §6): the answer to a RECOVERABLE fault record of {@code ep} with {@code grpid}. */
    public String pageResp(int ep, int grpid, int code) {
        long[] w = new long[Structs.PageResp.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_PAGE_RESP);
        Structs.PageResp.ENDPOINT.set(w, ep);
        Structs.PageResp.GRPID.set(w, grpid);
        Structs.PageResp.CODE.set(w, code);
        return send(Structs.toBytes(w, Structs.PageResp.READABLE), 4);
    }

    /** A DMA of endpoint {@code ep}, logged with its translation and fault; the event queue drained. */
    public void dma(int ep, long iova, DmaAccess a) {
        log.add("DMA " + ep + " " + Long.toHexString(iova) + " " + a + " -> " + dev.translateDetailed(ep, iova, a));
        drainEvents();
    }

    public String probe(int ep) {
        long[] w = new long[Probe.LAYOUT.words()];
        Head.TYPE.set(w, Structs.T_PROBE);
        Probe.ENDPOINT.set(w, ep);
        byte[] head = Structs.toBytes(w, Probe.READABLE);
        return send(head, dev.config().probeSize() + 4);
    }

    /**
     * One request: the device-readable part and a device-writable part of {@code inLen} bytes
     * (virtio 1.x §2.7.4); returns the used length and the written bytes in hex (the status is
     * the last byte's word, "Device operations").
     */
    private String send(byte[] out, int inLen) {
        for (int i = 0; i < out.length; i++) {
            memory.store(REQ_OUT + i, 1, out[i] & 0xff);
        }
        for (int i = 0; i < inLen; i++) {
            memory.store(REQ_IN + i, 1, 0xee); // poison: what the device leaves unwritten shows
        }
        int head = req.add(List.of(Buf.out(REQ_OUT, out.length), Buf.in(REQ_IN, inLen)));
        req.publish(head);
        boolean kick = req.kickNeeded();
        dev.queueNotified(0);
        DriverRing.Used u = req.popUsed();
        if (u == null) {
            return "no used buffer (kick " + kick + ")";
        }
        byte[] in = new byte[inLen];
        for (int i = 0; i < inLen; i++) {
            in[i] = (byte) memory.load(REQ_IN + i, 1).getAsLong();
        }
        return "used " + u.len() + " kick " + kick + " " + HexFormat.of().formatHex(in);
    }

    /** Adds {@code n} event buffers (while descriptors are free) and notifies the event queue. */
    public void addEventBuffers(int n) {
        for (int i = 0; i < n && evt.numFree() > 0; i++) {
            long addr = EVT_BUFS + EVT_BUF_LEN * (nextEvtBuf++ % 64);
            int head = evt.add(List.of(Buf.in(addr, EVT_BUF_LEN)));
            evtBufOf.put(head, addr);
            evt.publish(head);
        }
        log.add("eventq kick " + evt.kickNeeded());
        dev.queueNotified(1);
    }

    /** Reads every used event buffer: the fault records byte for byte. */
    private void drainEvents() {
        DriverRing.Used u;
        while ((u = evt.popUsed()) != null) {
            long addr = evtBufOf.remove(u.id());
            byte[] b = new byte[u.len()];
            for (int i = 0; i < b.length; i++) {
                b[i] = (byte) memory.load(addr + i, 1).getAsLong();
            }
            log.add("fault record " + HexFormat.of().formatHex(b));
        }
    }
}
