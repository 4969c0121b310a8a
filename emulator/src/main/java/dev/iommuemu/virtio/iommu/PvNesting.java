package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.PagingDomain;
import dev.iommuemu.domain.Result;
import dev.iommuemu.iommufd.FaultQueue;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.iommufd.Iommufd;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.virtio.iommu.Structs.Fault;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The host side of paravirtual nesting for virtio-iommu (docs/nesting.md §6 over the host model
 * of §2): the virtio-iommu endpoints are physical devices behind the emulated SMMUv3
 * ({@link Iommufd} over {@code IommuCore}/{@code HostSmmu}), bound to one iommufd context, with
 * one vIOMMU over a nest parent (the stage 2 that maps the guest's RAM), one vDEVICE per endpoint
 * whose virtual StreamID <em>is the endpoint ID</em> (so guest commands naming a StreamID name an
 * endpoint), a vEVENT queue and a fault queue.
 *
 * <p>A table domain of the device is a nested hwpt made from the guest's STE words; DMA of an
 * endpoint in one goes through the physical SMMU (stage 1 from guest memory, then the nest
 * parent). Stage 1 faults come back from the vEVENT queue, stalls from the fault queue; both
 * become virtio-iommu fault records. This object holds no lock: the device calls it under its own.
 */
public final class PvNesting {
    /** Most distinct nested hwpts (iommufd has no IOMMU_DESTROY in this model: hwpts are reused by STE words). */
    public static final int MAX_HWPTS = 256;
    private static final int VEVENTQ_DEPTH = 256;

    // Not final: a loaded state replaces them all at once (adopt), the device keeping this object.
    private Iommufd fd;
    private PagingDomain parent;
    private int viommuId;
    private int veventqId;
    private int faultId;
    private Map<Integer, Integer> devIdOf; // endpoint -> iommufd device id
    private Map<Integer, Integer> sidOf; // endpoint -> physical StreamID
    private Map<Integer, Integer> endpointOfDev = new HashMap<>();
    private Map<List<Long>, Integer> hwpts = new HashMap<>();
    /** Outstanding recoverable faults: (endpoint, grpid) -> fault queue cookie. */
    private Map<List<Integer>, Integer> pending = new LinkedHashMap<>();
    private long lostEvents;

    private PvNesting(Iommufd fd, PagingDomain parent, int viommuId, int veventqId, int faultId, Map<Integer, Integer> devIdOf,
            Map<Integer, Integer> sidOf) {
        this.fd = fd;
        this.parent = parent;
        this.viommuId = viommuId;
        this.veventqId = veventqId;
        this.faultId = faultId;
        this.devIdOf = devIdOf;
        this.sidOf = sidOf;
        devIdOf.forEach((ep, dev) -> endpointOfDev.put(dev, ep));
    }

    /**
     * Sets up nesting for {@code endpointToSid} (virtio-iommu endpoint ID -> physical StreamID of a
     * device the core has probed) on {@code fd}: binds every device (each is then blocked until the
     * guest attaches it), allocates the nest parent (IOMMU_HWPT_ALLOC_NEST_PARENT: the VMM maps the
     * guest's RAM into {@link #nestParent()}), the vIOMMU, a vDEVICE per endpoint (virtual StreamID
     * = endpoint ID), the vEVENT queue and the fault queue. The first errno of those iommufd calls
     * is returned as is.
     */
    public static Result<PvNesting> create(Iommufd fd, Map<Integer, Integer> endpointToSid) {
        if (endpointToSid.isEmpty()) {
            return Result.err(Errno.EINVAL);
        }
        Map<Integer, Integer> devs = new LinkedHashMap<>();
        for (Map.Entry<Integer, Integer> e : endpointToSid.entrySet()) {
            Result<Integer> d = fd.bind(e.getValue());
            if (!d.isOk()) {
                return Result.err(d.error());
            }
            devs.put(e.getKey(), d.get());
        }
        int first = devs.values().iterator().next();
        Result<Integer> parentId = fd.allocHwptPaging(first, Iommufd.HWPT_ALLOC_NEST_PARENT);
        if (!parentId.isOk()) {
            return Result.err(parentId.error());
        }
        Result<Integer> v = fd.allocViommu(first, parentId.get());
        if (!v.isOk()) {
            return Result.err(v.error());
        }
        for (Map.Entry<Integer, Integer> e : devs.entrySet()) {
            Result<Integer> vd = fd.allocVdevice(v.get(), e.getValue(), e.getKey() & 0xffff_ffffL);
            if (!vd.isOk()) {
                return Result.err(vd.error());
            }
        }
        Result<Integer> q = fd.allocVeventq(v.get(), VEVENTQ_DEPTH);
        if (!q.isOk()) {
            return Result.err(q.error());
        }
        int fq = fd.allocFaultQueue();
        return Result.ok(new PvNesting(fd, fd.paging(parentId.get()), v.get(), q.get(), fq, devs, new HashMap<>(endpointToSid)));
    }

    // ---- saved state (docs/device-state-virtio.md) ----

    /**
     * What the device's requests built on the iommufd objects (docs/nesting.md §6), by object id:
     * the vIOMMU, its vEVENT queue and the fault queue; each endpoint's device object; the nested
     * hwpt made for each distinct pair of STE words (ATTACH_TABLE reuses it); and the recoverable
     * fault records delivered to the driver and not yet answered by PAGE_RESP (endpoint, grpid,
     * the fault queue's cookie). The objects themselves are the iommufd's state ({@link Iommufd.State}).
     */
    public record State(int viommuId, int veventqId, int faultId, Map<Integer, Integer> devIdOf, List<TableHwpt> hwpts,
            List<Outstanding> outstanding) {
        public State {
            devIdOf = Map.copyOf(devIdOf);
            hwpts = List.copyOf(hwpts);
            outstanding = List.copyOf(outstanding);
        }
    }

    /** The nested hwpt made for STE words {@code ste0}, {@code ste1}. */
    public record TableHwpt(long ste0, long ste1, int hwpt) {}

    /** A RECOVERABLE fault record awaiting PAGE_RESP: endpoint, grpid, fault queue cookie. */
    public record Outstanding(int endpoint, int grpid, int cookie) {}

    /** The request-level state now. */
    public State saveState() {
        List<TableHwpt> hs = new ArrayList<>();
        hwpts.forEach((k, v) -> hs.add(new TableHwpt(k.get(0), k.get(1), v)));
        hs.sort((a, b) -> Integer.compare(a.hwpt(), b.hwpt()));
        List<Outstanding> os = new ArrayList<>();
        pending.forEach((k, v) -> os.add(new Outstanding(k.get(0), k.get(1), v)));
        return new State(viommuId, veventqId, faultId, devIdOf, hs, os);
    }

    /**
     * The nesting host of {@code s} over {@code fd}, an iommufd context restored from the same save
     * ({@link Iommufd#restore}), whose endpoints are {@code endpointToSid} as for {@link #create}.
     *
     * @throws IllegalArgumentException with a sentence when {@code s} names objects {@code fd} does
     *         not have, or of another kind, or endpoints other than {@code endpointToSid}'s
     */
    public static PvNesting restore(Iommufd fd, Map<Integer, Integer> endpointToSid, State s) {
        String why = refusal(fd, endpointToSid, s);
        if (why != null) {
            throw new IllegalArgumentException("paravirtual nesting state refused: " + why + ".");
        }
        PvNesting n = new PvNesting(fd, fd.viommu(s.viommuId()).parent(), s.viommuId(), s.veventqId(), s.faultId(),
                new LinkedHashMap<>(s.devIdOf()), new HashMap<>(endpointToSid));
        for (TableHwpt h : s.hwpts()) {
            n.hwpts.put(List.of(h.ste0(), h.ste1()), h.hwpt());
        }
        for (Outstanding o : s.outstanding()) {
            n.pending.put(List.of(o.endpoint(), o.grpid()), o.cookie());
        }
        return n;
    }

    private static String refusal(Iommufd fd, Map<Integer, Integer> endpointToSid, State s) {
        var v = fd.viommu(s.viommuId());
        if (v == null) {
            return "object " + s.viommuId() + " is not a vIOMMU";
        }
        if (v.veventq() == null || v.veventq().id() != s.veventqId()) {
            return "object " + s.veventqId() + " is not the vEVENT queue of vIOMMU " + s.viommuId();
        }
        if (fd.checkEventQueue(s.faultId()) != null || s.faultId() == s.veventqId()) {
            return "object " + s.faultId() + " is not a fault queue";
        }
        if (!s.devIdOf().keySet().equals(endpointToSid.keySet())) {
            return "its endpoints differ from this nesting host's " + endpointToSid.size() + " endpoints";
        }
        for (Map.Entry<Integer, Integer> e : s.devIdOf().entrySet()) {
            if (fd.streamIdOf(e.getValue()) != endpointToSid.get(e.getKey())) {
                return "endpoint " + e.getKey() + " names device object " + e.getValue() + ", which is not StreamID "
                        + endpointToSid.get(e.getKey());
            }
        }
        if (s.hwpts().size() > MAX_HWPTS) {
            return s.hwpts().size() + " nested hwpts exceed the bound of " + MAX_HWPTS;
        }
        java.util.Set<List<Long>> keys = new java.util.HashSet<>();
        for (TableHwpt h : s.hwpts()) {
            long[] ste = fd.nestedSte(h.hwpt(), s.viommuId());
            if (ste == null || !keys.add(List.of(h.ste0(), h.ste1()))) {
                return "object " + h.hwpt() + " is not a nested hwpt of vIOMMU " + s.viommuId() + " made once for its STE words";
            }
        }
        java.util.Set<List<Integer>> faults = new java.util.HashSet<>();
        java.util.Set<Integer> cookies = new java.util.HashSet<>();
        for (Outstanding o : s.outstanding()) {
            // PAGE_RESP names (endpoint, grpid) and answers the cookie's stall (grpid = its STAG) or PRI
            // group (grpid = its PRG index) of that endpoint's StreamID (docs/nesting.md §6): the record
            // must be for the response the fault queue owes, so no PAGE_RESP resumes another StreamID.
            FaultQueue.Pending p = fd.owed(s.faultId(), o.cookie());
            if (!endpointToSid.containsKey(o.endpoint()) || !faults.add(List.of(o.endpoint(), o.grpid()))
                    || !cookies.add(o.cookie()) || p == null || p.streamId() != endpointToSid.get(o.endpoint())
                    || o.grpid() != (p.stag() >= 0 ? p.stag() : p.prgIndex())) {
                return "the fault record of endpoint " + Integer.toUnsignedString(o.endpoint()) + " with grpid "
                        + Integer.toUnsignedString(o.grpid()) + " awaits a response the fault queue does not owe to that"
                        + " endpoint's StreamID and group";
            }
        }
        return null;
    }

    /**
     * The hwpt endpoint {@code ep}'s device is attached to at the host: a table domain's nested hwpt,
     * 0 when blocked (every endpoint outside a table domain is), -1 when {@code ep} is not behind this host.
     */
    int attachedHwpt(int ep) {
        Integer dev = devIdOf.get(ep);
        return dev == null ? -1 : fd.attachedHwpt(dev);
    }

    /** The endpoints behind this host. */
    java.util.Set<Integer> endpoints() {
        return java.util.Collections.unmodifiableSet(devIdOf.keySet());
    }

    /** Whether {@code hwptId} is the nested hwpt made for {@code ste} (a table domain's, checked on load). */
    boolean hasHwpt(int hwptId, long[] ste) {
        Integer h = ste == null || ste.length != 2 ? null : hwpts.get(List.of(ste[0], ste[1]));
        return h != null && h == hwptId;
    }

    /** Takes over everything of {@code restored} (built by {@link #restore}); the device keeps this object. */
    void adopt(PvNesting restored) {
        fd = restored.fd;
        parent = restored.parent;
        viommuId = restored.viommuId;
        veventqId = restored.veventqId;
        faultId = restored.faultId;
        devIdOf = restored.devIdOf;
        sidOf = restored.sidOf;
        endpointOfDev = restored.endpointOfDev;
        hwpts = restored.hwpts;
        pending = restored.pending;
    }

    public Iommufd iommufd() {
        return fd;
    }

    /** The stage 2 every table domain nests over: the VMM maps the guest's RAM (IPA -> PA) into it. */
    public PagingDomain nestParent() {
        return parent;
    }

    public int viommuId() {
        return viommuId;
    }

    /** Whether endpoint {@code ep} is a device behind the nesting host. */
    public boolean has(int ep) {
        return devIdOf.containsKey(ep);
    }

    /** IOMMU_GET_HW_INFO of the endpoint's SMMU (ENODEV without stage 2: no property). */
    Result<HwInfo> hwInfo(int ep) {
        Integer dev = devIdOf.get(ep);
        return dev == null ? Result.err(Errno.ENODEV) : fd.hwInfo(dev);
    }

    /** A nested hwpt for the validated STE words, shared by every domain with the same words. */
    Result<Integer> hwpt(long[] ste) {
        List<Long> key = List.of(ste[0], ste[1]);
        Integer id = hwpts.get(key);
        if (id != null) {
            return Result.ok(id);
        }
        if (hwpts.size() >= MAX_HWPTS) {
            return Result.err(Errno.ENOMEM);
        }
        Result<Integer> r = fd.allocHwptNested(viommuId, 0, ste, faultId);
        if (r.isOk()) {
            hwpts.put(key, r.get());
        }
        return r;
    }

    /** Attach (a replace) of endpoint {@code ep} to hwpt {@code hwptId}: the core's errno, or null. */
    Errno attach(int ep, int hwptId) {
        return fd.attach(devIdOf.get(ep), hwptId);
    }

    /** The endpoint leaves its table domain: blocked at the host, its held stalls terminated. */
    void detach(int ep) {
        Integer dev = devIdOf.get(ep);
        if (dev != null) {
            pending.entrySet().removeIf(e -> {
                if (e.getKey().get(0) == ep) {
                    fd.pageResponse(faultId, e.getValue(), FaultQueue.RESP_FAILURE);
                    return true;
                }
                return false;
            });
            fd.detach(dev);
        }
    }

    /** Device reset: every endpoint blocked, every held stall terminated, stale faults dropped. */
    void reset() {
        for (int ep : devIdOf.keySet()) {
            detach(ep);
        }
        drainFaults();
        for (int cookie : pending.values()) {
            fd.pageResponse(faultId, cookie, FaultQueue.RESP_FAILURE);
        }
        pending.clear();
    }

    /** IOMMU_HWPT_INVALIDATE on the vIOMMU: commands in order, stopping at the first bad one (docs/nesting.md §2.5). */
    Iommufd.InvalidateResult invalidate(long[] cmds) {
        return fd.invalidate(viommuId, cmds);
    }

    /** A DMA of endpoint {@code ep} (PASID {@code pasid}, or -1) through the physical SMMU. */
    DmaResult dma(int ep, int pasid, long iova, DmaAccess access) {
        return fd.dma(sidOf.get(ep), pasid, iova, access);
    }

    /**
     * The faults the host forwarded since the last call, as virtio-iommu records (docs/nesting.md
     * §6): a stage 1 translation fault (vEVENT F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION)
     * is R_MAPPING with its IOVA; a configuration fault (C_BAD_STE, C_BAD_CD, C_BAD_SUBSTREAMID,
     * F_STREAM_DISABLED) is R_UNKNOWN without an address; SubstreamID becomes the PASID. A stall
     * from the fault queue is a RECOVERABLE R_MAPPING record whose grpid (the STAG) PAGE_RESP names.
     */
    List<FaultEvent> drainFaults() {
        List<FaultEvent> out = new ArrayList<>();
        Result<List<Vevent>> vs = fd.readVevents(veventqId, VEVENTQ_DEPTH + 1);
        for (Vevent v : vs.isOk() ? vs.get() : List.<Vevent>of()) {
            if (v.lost()) {
                lostEvents++;
                continue;
            }
            EventRecord e = EventRecord.decode(v.evt());
            int ep = e.streamId(); // the virtual StreamID is the endpoint ID
            boolean translation = e.type() == EventType.F_TRANSLATION || e.type() == EventType.F_ADDR_SIZE
                    || e.type() == EventType.F_ACCESS || e.type() == EventType.F_PERMISSION;
            int flags = e.ssv() ? Fault.F_PASID_VALID : 0;
            if (translation) {
                flags |= (e.rnw() ? Fault.F_READ : Fault.F_WRITE) | (e.ind() ? Fault.F_EXEC : 0) | Fault.F_ADDRESS;
            }
            out.add(new FaultEvent(translation ? Fault.R_MAPPING : Fault.R_UNKNOWN, flags, ep,
                    translation ? e.inputAddr() : 0, e.ssv() ? e.substreamId() : 0, 0));
        }
        Result<List<PageFault>> fs = fd.readFaults(faultId, FaultQueue.CAPACITY);
        for (PageFault f : fs.isOk() ? fs.get() : List.<PageFault>of()) {
            Integer ep = endpointOfDev.get(f.devId());
            if (ep == null) {
                fd.pageResponse(faultId, f.cookie(), FaultQueue.RESP_FAILURE);
                continue;
            }
            boolean pasid = (f.flags() & PageFault.PASID_VALID) != 0;
            int flags = Fault.F_RECOVERABLE | Fault.F_ADDRESS | (pasid ? Fault.F_PASID_VALID : 0)
                    | ((f.perm() & PageFault.PERM_WRITE) != 0 ? Fault.F_WRITE : Fault.F_READ)
                    | ((f.perm() & PageFault.PERM_EXEC) != 0 ? Fault.F_EXEC : 0);
            Integer old = pending.put(List.of(ep, f.grpid()), f.cookie());
            if (old != null) {
                fd.pageResponse(faultId, old, FaultQueue.RESP_FAILURE); // a reused STAG ends the older one
            }
            out.add(new FaultEvent(Fault.R_MAPPING, flags, ep, f.addr(), pasid ? f.pasid() : 0, f.grpid()));
        }
        return out;
    }

    /** PAGE_RESP: {@code null}, or EINVAL for no such outstanding fault. */
    Errno pageResponse(int ep, int grpid, int code) {
        Integer cookie = pending.remove(List.of(ep, grpid));
        if (cookie == null) {
            return Errno.EINVAL;
        }
        return fd.pageResponse(faultId, cookie, code);
    }

    /** Recoverable faults delivered and not yet answered. */
    public int outstandingFaults() {
        return pending.size();
    }

    /** vEVENT queue overflows seen (their records are lost). */
    public long lostEvents() {
        return lostEvents;
    }

    @Override
    public String toString() {
        return "PvNesting" + Arrays.asList(viommuId, devIdOf);
    }
}
