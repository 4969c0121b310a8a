package dev.iommuemu.iommufd;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.domain.Device;
import dev.iommuemu.domain.Domain;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.domain.IommuCore;
import dev.iommuemu.domain.NestedDomain;
import dev.iommuemu.domain.PagingDomain;
import dev.iommuemu.domain.Result;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One iommufd context (include/uapi/linux/iommufd.h) over an {@link IommuCore}: what a VMM uses
 * to give its guest a vSMMU whose stage 1 the guest owns. Objects (devices, hwpts, vIOMMUs,
 * vDEVICEs, vEVENT queues, fault queues) share one id space, as iommufd's object table does; an
 * id of the wrong kind is {@link Errno#ENOENT}. Every call answers with a value or an errno.
 */
public final class Iommufd {
    /** enum iommufd_hwpt_alloc_flags IOMMU_HWPT_ALLOC_NEST_PARENT. */
    public static final int HWPT_ALLOC_NEST_PARENT = 1;
    /** Most commands one invalidation call takes, and the deepest vEVENT queue. */
    public static final int MAX_COMMANDS = 4096;
    public static final int MAX_VEVENTQ_DEPTH = 4096;

    private final IommuCore core;
    private final Map<Integer, Object> objects = new HashMap<>();
    private final Map<Integer, Device> devices = new HashMap<>();
    private final Map<Device, Integer> devIds = new HashMap<>();
    private final Map<NestedDomain, Hwpt> nestedHwpts = new HashMap<>();
    /** Queue id -> entries that became readable since {@link #takeReadable} (bounded by the queues). */
    private final Map<Integer, Integer> readable = new LinkedHashMap<>();
    private int nextId = 1;

    public IommuCore core() {
        return core;
    }

    public Iommufd(IommuCore core) {
        this.core = core;
        core.eventRouter(new IommuCore.EventRouter() {
            @Override
            public boolean route(EventRecord record, Device device) {
                return Iommufd.this.route(record, device);
            }

            @Override
            public boolean routePageRequest(PageRequest request, Device device) {
                return Iommufd.this.routePageRequest(request, device);
            }
        });
    }

    private int add(Object o) {
        int id = nextId++;
        objects.put(id, o);
        return id;
    }

    private <T> T get(int id, Class<T> kind) {
        Object o = objects.get(id);
        return kind.isInstance(o) ? kind.cast(o) : null;
    }

    // ------------------------------------------------------------------------------------------
    // Devices (VFIO_DEVICE_BIND_IOMMUFD)

    /**
     * Binds the device with StreamID {@code sid}: claims DMA ownership of its group for this
     * context (so it is blocked at once). {@link Errno#ENODEV} for no such device,
     * {@link Errno#EPERM} when another owner holds the group.
     */
    public Result<Integer> bind(int sid) {
        Device d = core.device(sid);
        if (d == null) {
            return Result.err(Errno.ENODEV);
        }
        if (devIds.containsKey(d)) {
            return Result.err(Errno.EEXIST);
        }
        Errno e = core.claimDmaOwner(d, this);
        if (e != null) {
            return Result.err(e);
        }
        int id = add(d);
        devices.put(id, d);
        devIds.put(d, id);
        return Result.ok(id);
    }

    /** Unbinds: the ownership claim is released (the group's default domain once the last goes). */
    public Errno unbind(int devId) {
        Device d = devices.remove(devId);
        if (d == null) {
            return Errno.ENOENT;
        }
        objects.remove(devId);
        devIds.remove(d);
        return core.releaseDmaOwner(d, this);
    }

    /** IOMMU_GET_HW_INFO (struct iommu_hw_info_arm_smmuv3); ENODEV where there is nothing to nest. */
    public Result<HwInfo> hwInfo(int devId) {
        if (devices.get(devId) == null) {
            return Result.err(Errno.ENOENT);
        }
        return HwInfo.of(core.host().profile());
    }

    // ------------------------------------------------------------------------------------------
    // Hardware page tables (IOMMU_HWPT_ALLOC)

    /**
     * A paging hwpt for device {@code devId}: with {@link #HWPT_ALLOC_NEST_PARENT} a stage 2 nest
     * parent, else stage 1 (stage 2 where the SMMU has no stage 1). Other flags are
     * {@link Errno#EOPNOTSUPP}.
     */
    public Result<Integer> allocHwptPaging(int devId, int flags) {
        if (devices.get(devId) == null) {
            return Result.err(Errno.ENOENT);
        }
        if ((flags & ~HWPT_ALLOC_NEST_PARENT) != 0) {
            return Result.err(Errno.EOPNOTSUPP);
        }
        boolean parent = flags == HWPT_ALLOC_NEST_PARENT;
        int stage = parent || !core.host().profile().s1() ? 2 : 1;
        Result<PagingDomain> r = core.allocPaging(stage, parent);
        if (!r.isOk()) {
            return Result.err(r.error());
        }
        int id = nextId;
        add(new Hwpt(id, r.get(), null, null));
        return Result.ok(id);
    }

    /** The vIOMMU object {@code id}, or {@code null} (diagnostics). */
    public Viommu viommu(int id) {
        return get(id, Viommu.class);
    }

    /** The paging domain of hwpt {@code id} (to map/unmap its IOVAs), or {@code null}. */
    public PagingDomain paging(int hwptId) {
        Hwpt h = get(hwptId, Hwpt.class);
        return h != null && h.domain() instanceof PagingDomain p ? p : null;
    }

    /**
     * A nested hwpt on vIOMMU {@code viommuId} from the guest's STE words (struct
     * iommu_hwpt_arm_smmuv3); {@code faultId} is a fault queue for its stalls, or 0. Errors: as
     * {@link ArmSmmuv3Ste#validate}; ENOENT for unknown objects.
     */
    public Result<Integer> allocHwptNested(int viommuId, int flags, long[] ste, int faultId) {
        Viommu v = get(viommuId, Viommu.class);
        FaultQueue fq = faultId == 0 ? null : get(faultId, FaultQueue.class);
        if (v == null || (faultId != 0 && fq == null)) {
            return Result.err(Errno.ENOENT);
        }
        Result<long[]> words = ArmSmmuv3Ste.validate(ste, flags);
        if (!words.isOk()) {
            return Result.err(words.error());
        }
        long[] w = words.get();
        if (!core.host().profile().ats()) {
            w[1] = dev.iommuemu.smmuv3.streamtable.Ste.EATS.insert(w[1], 0); // no ATS: the host never enables it
        }
        int id = nextId;
        Result<NestedDomain> n = core.allocNested(v.parent(), v.vmid(), w, this);
        if (!n.isOk()) {
            return Result.err(n.error());
        }
        Hwpt h = new Hwpt(id, n.get(), v, fq);
        nestedHwpts.put(n.get(), h);
        add(h);
        return Result.ok(id);
    }

    /** Attach (a replace) of {@code hwptId}'s domain to {@code devId}: the core's errno contract. */
    public Errno attach(int devId, int hwptId) {
        Device d = devices.get(devId);
        Hwpt h = get(hwptId, Hwpt.class);
        if (d == null || h == null) {
            return Errno.ENOENT;
        }
        return core.attach(d, h.domain());
    }

    /** Detach: the group goes to the blocking domain (it is owned). Never fails for a bound device. */
    public Errno detach(int devId) {
        Device d = devices.get(devId);
        return d == null ? Errno.ENOENT : core.attach(d, core.blocking());
    }

    // ------------------------------------------------------------------------------------------
    // vIOMMU and vDEVICE

    /**
     * IOMMU_VIOMMU_ALLOC over nest parent {@code hwptId} for the SMMU of {@code devId}.
     * {@link Errno#EINVAL} when the hwpt is not a nest parent of this SMMU, {@link Errno#ENOSPC}
     * without a free VMID.
     */
    public Result<Integer> allocViommu(int devId, int hwptId) {
        Device d = devices.get(devId);
        Hwpt h = get(hwptId, Hwpt.class);
        if (d == null || h == null) {
            return Result.err(Errno.ENOENT);
        }
        if (!(h.domain() instanceof PagingDomain p) || !p.nestParent() || p.owner() != core) {
            return Result.err(Errno.EINVAL);
        }
        Result<Integer> vmid = core.allocVmid();
        if (!vmid.isOk()) {
            return Result.err(vmid.error());
        }
        int id = nextId;
        add(new Viommu(id, p, vmid.get()));
        return Result.ok(id);
    }

    /**
     * IOMMU_VDEVICE_ALLOC: guest StreamID {@code virtId} is device {@code devId}.
     * {@link Errno#EEXIST} when the virtual ID or the device already has a vDEVICE on this vIOMMU;
     * {@link Errno#EINVAL} for a virtual ID beyond 32 bits.
     */
    public Result<Integer> allocVdevice(int viommuId, int devId, long virtId) {
        Viommu v = get(viommuId, Viommu.class);
        Device d = devices.get(devId);
        if (v == null || d == null) {
            return Result.err(Errno.ENOENT);
        }
        if (virtId < 0 || virtId > 0xffff_ffffL) {
            return Result.err(Errno.EINVAL);
        }
        if (v.byVirtId.containsKey(virtId) || v.byDevice.containsKey(d)) {
            return Result.err(Errno.EEXIST);
        }
        int id = nextId;
        Vdevice vd = new Vdevice(id, v, d, devId, virtId);
        add(vd);
        v.byVirtId.put(virtId, vd);
        v.byDevice.put(d, vd);
        return Result.ok(id);
    }

    // ------------------------------------------------------------------------------------------
    // Invalidation (IOMMU_HWPT_INVALIDATE on a vIOMMU, data type ARM_SMMUV3)

    /** The outcome of {@link #invalidate}: the errno of the first bad command, and how many were handled. */
    public record InvalidateResult(Errno error, int handled) {}

    /**
     * Runs the guest's 16-byte commands ({@code cmds} holds two words each) in order, stopping at
     * the first bad one. TLBI_NH_ALL/ASID/VA/VAA get the vIOMMU's VMID; TLBI_NSNH_ALL becomes
     * TLBI_NH_ALL with that VMID; ATC_INV, CFGI_CD and CFGI_CD_ALL get the physical StreamID of
     * their vSID. Any other command, an unknown vSID, or a command this SMMU lacks is
     * {@link Errno#EIO}. A CMD_SYNC follows the handled ones.
     */
    public InvalidateResult invalidate(int viommuId, long[] cmds) {
        Viommu v = get(viommuId, Viommu.class);
        if (v == null) {
            return new InvalidateResult(Errno.ENOENT, 0);
        }
        if (cmds == null || cmds.length % 2 != 0 || cmds.length > 2 * MAX_COMMANDS) {
            return new InvalidateResult(Errno.EINVAL, 0);
        }
        Smmuv3Profile profile = core.host().profile();
        int done = 0;
        Errno err = null;
        for (int i = 0; i < cmds.length / 2; i++) {
            long w0 = cmds[2 * i];
            long w1 = cmds[2 * i + 1];
            Command.Op op = Command.Op.of((int) Command.OPCODE.get(w0));
            if (op == null) {
                err = Errno.EIO;
                break;
            }
            switch (op) {
                case CMD_TLBI_NSNH_ALL -> w0 = Command.build(Command.Op.CMD_TLBI_NH_ALL)
                        .set(Command.TLBI_VMID, v.vmid()).words()[0];
                case CMD_TLBI_NH_ALL, CMD_TLBI_NH_ASID, CMD_TLBI_NH_VA, CMD_TLBI_NH_VAA ->
                        w0 = Command.TLBI_VMID.insert(w0, v.vmid());
                case CMD_ATC_INV, CMD_CFGI_CD, CMD_CFGI_CD_ALL -> {
                    Vdevice vd = v.vdevice(Command.SID.get(w0));
                    if (vd == null) {
                        err = Errno.EIO;
                    } else {
                        w0 = Command.SID.insert(w0, vd.device().streamId());
                    }
                }
                default -> err = Errno.EIO;
            }
            if (err == null && !Command.Op.of((int) Command.OPCODE.get(w0)).presentIn(profile)) {
                err = Errno.EIO;
            }
            if (err != null || !core.host().command(new long[] {w0, w1})) {
                err = Errno.EIO;
                break;
            }
            done++;
        }
        core.host().sync();
        return new InvalidateResult(err, done);
    }

    // ------------------------------------------------------------------------------------------
    // Events

    /** IOMMU_VEVENTQ_ALLOC (one per vIOMMU): {@link Errno#EEXIST} for a second, EINVAL for depth 0 or too deep. */
    public Result<Integer> allocVeventq(int viommuId, int depth) {
        Viommu v = get(viommuId, Viommu.class);
        if (v == null) {
            return Result.err(Errno.ENOENT);
        }
        if (depth <= 0 || depth > MAX_VEVENTQ_DEPTH) {
            return Result.err(Errno.EINVAL);
        }
        if (v.veventq != null) {
            return Result.err(Errno.EEXIST);
        }
        v.veventq = new VeventQueue(nextId, depth);
        return Result.ok(add(v.veventq));
    }

    public Result<List<Vevent>> readVevents(int veventqId, int max) {
        VeventQueue q = get(veventqId, VeventQueue.class);
        if (q == null) {
            return Result.err(Errno.ENOENT);
        }
        core.pollEvents();
        return Result.ok(q.read(max));
    }

    /** IOMMU_FAULT_QUEUE_ALLOC. */
    public int allocFaultQueue() {
        return add(new FaultQueue(nextId, core.host()));
    }

    public Result<List<PageFault>> readFaults(int faultId, int max) {
        FaultQueue q = get(faultId, FaultQueue.class);
        if (q == null) {
            return Result.err(Errno.ENOENT);
        }
        core.pollEvents();
        return Result.ok(q.read(max));
    }

    /**
     * Whether {@code id} names a vEVENT queue or a fault queue (the objects whose
     * fd iommufd makes readable: struct iommu_veventq_alloc out_veventq_fd, struct iommu_fault_alloc
     * out_fault_fd): {@code null} if so, {@link Errno#ENOENT} for no object, {@link Errno#EINVAL}
     * for an object of another kind (as iommufd answers an id looked up with IOMMUFD_OBJ_ANY whose
     * type the call cannot take, e.g. iommufd_device_change_pt's pt_id).
     */
    public Errno checkEventQueue(int id) {
        Object o = objects.get(id);
        if (o == null) {
            return Errno.ENOENT;
        }
        return o instanceof VeventQueue || o instanceof FaultQueue ? null : Errno.EINVAL;
    }

    /**
     * The threaded half of the host's Event/PRI queue interrupt ({@link IommuCore#serviceInterrupts}):
     * routes what the SMMU queued since its interrupt fired. Returns whether it ran.
     */
    public boolean serviceInterrupts() {
        return core.serviceInterrupts();
    }

    /** {@code entries} records became readable in queue {@code queueId} (a fault queue, or a vEVENT queue). */
    public record Readable(int queueId, boolean faultQueue, int entries) {}

    /**
     * The entries that became readable in each vEVENT or fault queue since the last call (routed by
     * {@link #serviceInterrupts}, {@link #dma} or a read), in the order the queues first got one;
     * clears. What iommufd's queue fds report with POLLIN (iommufd_vevent_handler and
     * iommufd_fault_iopf_handler wake the queue's readers for each record queued).
     */
    public List<Readable> takeReadable() {
        if (readable.isEmpty()) {
            return List.of();
        }
        List<Readable> out = new java.util.ArrayList<>(readable.size());
        readable.forEach((id, n) -> out.add(new Readable(id, objects.get(id) instanceof FaultQueue, n)));
        readable.clear();
        return out;
    }

    private void becameReadable(int queueId) {
        readable.merge(queueId, 1, (a, b) -> a == Integer.MAX_VALUE ? a : a + b);
    }

    /** A page response (struct iommu_hwpt_page_response) written to fault queue {@code faultId}. */
    public Errno pageResponse(int faultId, int cookie, int code) {
        FaultQueue q = get(faultId, FaultQueue.class);
        return q == null ? Errno.ENOENT : q.respond(cookie, code);
    }

    /** A DMA of the device with StreamID {@code sid} through the physical SMMU. */
    public DmaResult dma(int sid, int ssid, long iova, DmaAccess access) {
        return core.dma(sid, ssid, iova, access);
    }

    // ------------------------------------------------------------------------------------------
    // Saved state (live migration, back-end restart: docs/device-state-virtio.md)

    /**
     * One object of the context, by its id (include/uapi/linux/iommufd.h: ids are handed out by
     * the ALLOC ioctls and stay valid until IOMMU_DESTROY, so a restored VMM keeps using them).
     */
    public sealed interface ObjectState permits DeviceObject, PagingHwptObject, NestedHwptObject, ViommuObject,
            VdeviceObject, VeventqObject, FaultQueueObject {
        int id();
    }

    /** A bound device (VFIO_DEVICE_BIND_IOMMUFD) and the hwpt its group is attached to (0: blocked). */
    public record DeviceObject(int id, int streamId, int hwpt) implements ObjectState {}

    /** A paging hwpt (IOMMU_HWPT_ALLOC, optionally NEST_PARENT) and its mappings (IOMMU_IOAS_MAP's effect). */
    public record PagingHwptObject(int id, boolean nestParent, List<HostPageTable.Run> mappings) implements ObjectState {
        public PagingHwptObject {
            mappings = List.copyOf(mappings);
        }
    }

    /** A nested hwpt (struct iommu_hwpt_arm_smmuv3 ste[2]) on a vIOMMU, with its fault queue (0: none). */
    public record NestedHwptObject(int id, int viommu, long[] ste, int faultQueue) implements ObjectState {
        public NestedHwptObject {
            ste = ste.clone();
        }

        @Override
        public long[] ste() {
            return ste.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof NestedHwptObject n && n.id == id && n.viommu == viommu && java.util.Arrays.equals(n.ste, ste)
                    && n.faultQueue == faultQueue;
        }

        @Override
        public int hashCode() {
            return java.util.Objects.hash(id, viommu, java.util.Arrays.hashCode(ste), faultQueue);
        }
    }

    /** IOMMU_VIOMMU_ALLOC over nest parent {@code parentHwpt}. Its VMID is the host's to choose again. */
    public record ViommuObject(int id, int parentHwpt) implements ObjectState {}

    /** IOMMU_VDEVICE_ALLOC: device object {@code device} is guest StreamID {@code virtId} on {@code viommu}. */
    public record VdeviceObject(int id, int viommu, int device, long virtId) implements ObjectState {}

    /** IOMMU_VEVENTQ_ALLOC on {@code viommu}: its depth, the entries not yet read and the next sequence number. */
    public record VeventqObject(int id, int viommu, int depth, List<Vevent> queued, int nextSequence) implements ObjectState {
        public VeventqObject {
            queued = List.copyOf(queued);
        }
    }

    /** IOMMU_FAULT_QUEUE_ALLOC: faults not yet read, cookies owed a response, open PRI groups. */
    public record FaultQueueObject(int id, FaultQueue.State state) implements ObjectState {}

    /** Every object in id order, and the id the next allocation takes. */
    public record State(List<ObjectState> objects, int nextId) {
        public State {
            objects = List.copyOf(objects);
        }
    }

    /** The context's objects now. */
    public State saveState() {
        Map<Domain, Integer> hwptOf = new HashMap<>();
        objects.forEach((id, o) -> {
            if (o instanceof Hwpt h) {
                hwptOf.put(h.domain(), id);
            }
        });
        List<ObjectState> out = new java.util.ArrayList<>();
        objects.keySet().stream().sorted().forEach(id -> {
            Object o = objects.get(id);
            if (o instanceof Device d) {
                out.add(new DeviceObject(id, d.streamId(), hwptOf.getOrDefault(d.domain(), 0)));
            } else if (o instanceof Hwpt h && h.domain() instanceof PagingDomain p) {
                out.add(new PagingHwptObject(id, p.nestParent(), p.table().runs()));
            } else if (o instanceof Hwpt h && h.domain() instanceof NestedDomain n) {
                out.add(new NestedHwptObject(id, h.viommu().id(), n.vste(), h.faultQueue() == null ? 0 : h.faultQueue().id()));
            } else if (o instanceof Viommu v) {
                out.add(new ViommuObject(id, hwptOf.get(v.parent())));
            } else if (o instanceof Vdevice vd) {
                out.add(new VdeviceObject(id, vd.viommu().id(), vd.devId(), vd.virtId()));
            } else if (o instanceof VeventQueue q) {
                out.add(new VeventqObject(id, viommuOf(q), q.depth(), q.queued(), q.nextSequence()));
            } else if (o instanceof FaultQueue f) {
                out.add(new FaultQueueObject(id, f.state()));
            }
        });
        return new State(out, nextId);
    }

    /** The StreamID of device object {@code devId}, or -1. */
    public int streamIdOf(int devId) {
        Device d = devices.get(devId);
        return d == null ? -1 : d.streamId();
    }

    /** The hwpt device object {@code devId}'s group is attached to: its id, 0 when blocked, -1 for no such device. */
    public int attachedHwpt(int devId) {
        Device d = devices.get(devId);
        if (d == null) {
            return -1;
        }
        for (Map.Entry<Integer, Object> e : objects.entrySet()) {
            if (e.getValue() instanceof Hwpt h && h.domain() == d.domain()) {
                return e.getKey();
            }
        }
        return 0;
    }

    /** The STE words of nested hwpt {@code hwptId} when it is one on vIOMMU {@code viommuId}, else {@code null}. */
    public long[] nestedSte(int hwptId, int viommuId) {
        Hwpt h = get(hwptId, Hwpt.class);
        return h != null && h.domain() instanceof NestedDomain n && h.viommu() != null && h.viommu().id() == viommuId ? n.vste() : null;
    }

    /** The response fault queue {@code faultId} owes to {@code cookie}, or {@code null}. */
    public FaultQueue.Pending owed(int faultId, int cookie) {
        FaultQueue q = get(faultId, FaultQueue.class);
        return q == null ? null : q.state().pending().stream().filter(p -> p.cookie() == cookie).findFirst().orElse(null);
    }

    private int viommuOf(VeventQueue q) {
        for (Object o : objects.values()) {
            if (o instanceof Viommu v && v.veventq == q) {
                return v.id();
            }
        }
        return 0;
    }

    /**
     * A context over {@code core} (a fresh one, whose devices the owner has probed as the saved
     * context's host had them) holding exactly the objects of {@code s}, with their ids. Each object
     * is rebuilt through the same core calls as its ALLOC (its host page table mapped again, its
     * nested domain made from the same STE words, its VMID allocated anew: the VMID is the host
     * driver's, never seen through the uAPI), then the devices are attached as they were. Pending
     * stalls the saved host SMMU held are not there: a response to a saved cookie of a stall finds
     * no stalled transaction and is ignored by the SMMU (IHI 0070 §4.7.1 CMD_RESUME); the device
     * retries its access after the restart. Queues with entries are reported readable once.
     *
     * @throws IllegalArgumentException with a sentence when {@code s} could not have been produced
     *         (ids out of order or reused, an object naming one that does not exist or is of another
     *         kind, a StreamID the host lacks, a mapping or STE words the calls refuse); {@code core}
     *         must then be discarded.
     */
    public static Iommufd restore(IommuCore core, State s) {
        Iommufd fd = new Iommufd(core);
        String why = fd.rebuild(s);
        if (why != null) {
            throw new IllegalArgumentException("iommufd state refused: " + why + ".");
        }
        return fd;
    }

    private String rebuild(State s) {
        int last = 0;
        List<DeviceObject> devs = new java.util.ArrayList<>();
        for (ObjectState o : s.objects()) {
            int id = o.id();
            if (id <= last) {
                return "object " + id + " is out of id order or appears twice";
            }
            last = id;
            String why;
            if (o instanceof DeviceObject d) {
                why = rebuildDevice(d);
            } else if (o instanceof PagingHwptObject p) {
                why = rebuildPaging(p);
            } else if (o instanceof NestedHwptObject n) {
                why = rebuildNested(n);
            } else if (o instanceof ViommuObject v) {
                why = rebuildViommu(v);
            } else if (o instanceof VdeviceObject v) {
                why = rebuildVdevice(v);
            } else if (o instanceof VeventqObject q) {
                why = rebuildVeventq(q);
            } else {
                why = rebuildFaultQueue((FaultQueueObject) o);
            }
            if (why != null) {
                return why;
            }
            if (o instanceof DeviceObject d) {
                devs.add(d);
            }
        }
        if (Integer.compareUnsigned(s.nextId(), last) <= 0) {
            return "its next id " + s.nextId() + " was already handed out";
        }
        for (ObjectState o : s.objects()) {
            String why = o instanceof FaultQueueObject f ? restoreFaultQueue(f) : null;
            if (why != null) {
                return why;
            }
        }
        for (DeviceObject d : devs) {
            if (d.hwpt() != 0) {
                if (get(d.hwpt(), Hwpt.class) == null) {
                    return "device object " + d.id() + " is attached to object " + d.hwpt() + ", which is not a hwpt";
                }
                Errno e = attach(d.id(), d.hwpt());
                if (e != null) {
                    return notRebuilt("device object " + d.id() + " cannot be attached to hwpt " + d.hwpt() + " again", "the attach", e);
                }
            }
        }
        for (ObjectState o : s.objects()) {
            if ((o instanceof VeventqObject q && !q.queued().isEmpty())
                    || (o instanceof FaultQueueObject f && !f.state().queued().isEmpty())) {
                becameReadable(o.id());
            }
        }
        nextId = s.nextId();
        return null;
    }

    /**
     * A refusal of an object that the same call would not make again on this host: what failed, the
     * call and its errno (include/uapi/linux/iommufd.h, vfio.h: the errno is the uAPI's answer, for
     * whoever compares it with the kernel's), and what to do about it.
     */
    private static String notRebuilt(String what, String call, Errno e) {
        return what + " (" + call + " answers " + e + " on this host), so the state names objects a host built like this one"
                + " never made: load a state saved by a session of the same profile and properties, or start afresh";
    }

    private String rebuildDevice(DeviceObject o) {
        nextId = o.id();
        Result<Integer> r = bind(o.streamId());
        return r.isOk() ? null : notRebuilt("device object " + o.id() + " is StreamID " + Integer.toUnsignedString(o.streamId())
                + ", which this host cannot bind", "VFIO_DEVICE_BIND_IOMMUFD", r.error());
    }

    private String rebuildPaging(PagingHwptObject o) {
        int stage = o.nestParent() || !core.host().profile().s1() ? 2 : 1;
        Result<PagingDomain> r = core.allocPaging(stage, o.nestParent());
        if (!r.isOk()) {
            return notRebuilt("paging hwpt " + o.id() + " cannot be allocated again", "IOMMU_HWPT_ALLOC", r.error());
        }
        for (HostPageTable.Run m : o.mappings()) {
            for (long off = 0; off < m.size(); off += HostPageTable.MAX_CALL) {
                Errno e = r.get().map(m.iova() + off, m.pa() + off, Math.min(HostPageTable.MAX_CALL, m.size() - off), m.prot());
                if (e != null) {
                    return notRebuilt("paging hwpt " + o.id() + " cannot map 0x" + Long.toHexString(m.iova()) + " again", "IOMMU_IOAS_MAP", e);
                }
            }
        }
        objects.put(o.id(), new Hwpt(o.id(), r.get(), null, null));
        return null;
    }

    private String rebuildNested(NestedHwptObject o) {
        nextId = o.id();
        Result<Integer> r = allocHwptNested(o.viommu(), 0, o.ste(), o.faultQueue());
        return r.isOk() ? null : notRebuilt("nested hwpt " + o.id() + " on vIOMMU " + o.viommu() + " with fault queue "
                + o.faultQueue() + " cannot be allocated again", "IOMMU_HWPT_ALLOC", r.error());
    }

    private String rebuildViommu(ViommuObject o) {
        Hwpt h = get(o.parentHwpt(), Hwpt.class);
        if (h == null || !(h.domain() instanceof PagingDomain p) || !p.nestParent()) {
            return "vIOMMU " + o.id() + " names object " + o.parentHwpt() + " as its nest parent, which is not one";
        }
        Result<Integer> vmid = core.allocVmid();
        if (!vmid.isOk()) {
            return notRebuilt("vIOMMU " + o.id() + " gets no VMID", "IOMMU_VIOMMU_ALLOC", vmid.error());
        }
        objects.put(o.id(), new Viommu(o.id(), p, vmid.get()));
        return null;
    }

    private String rebuildVdevice(VdeviceObject o) {
        nextId = o.id();
        Result<Integer> r = allocVdevice(o.viommu(), o.device(), o.virtId());
        return r.isOk() ? null : notRebuilt("vDEVICE " + o.id() + " (device object " + o.device() + " on vIOMMU " + o.viommu()
                + ", virtual ID " + o.virtId() + ") cannot be allocated again", "IOMMU_VDEVICE_ALLOC", r.error());
    }

    private String rebuildVeventq(VeventqObject o) {
        nextId = o.id();
        Result<Integer> r = allocVeventq(o.viommu(), o.depth());
        if (!r.isOk()) {
            return notRebuilt("vEVENT queue " + o.id() + " on vIOMMU " + o.viommu() + " cannot be allocated again", "IOMMU_VEVENTQ_ALLOC",
                    r.error());
        }
        List<Vevent> q = o.queued();
        for (int i = 0; i < q.size(); i++) {
            Vevent v = q.get(i);
            boolean lostLast = v.lost() && i == q.size() - 1;
            if ((v.lost() && !lostLast) || (!v.lost() && (v.evt() == null || v.evt().length != 4)) // struct iommu_vevent_arm_smmuv3 evt[4]
                    || q.size() - (q.get(q.size() - 1).lost() ? 1 : 0) > o.depth()) {
                return "vEVENT queue " + o.id() + " holds entries it could not have queued";
            }
        }
        get(o.id(), VeventQueue.class).restore(q, o.nextSequence());
        return null;
    }

    private String rebuildFaultQueue(FaultQueueObject o) {
        nextId = o.id();
        allocFaultQueue(); // its entries are checked and taken once every device is bound (restoreFaultQueue)
        return null;
    }

    /**
     * Fills fault queue {@code o} once all objects exist: its entries must name devices bound in this
     * context (a page response resumes, or answers the PRI group of, the StreamID its entry holds:
     * IHI 0070 §4.7.1 CMD_RESUME, §4.5.2 CMD_PRI_RESP), with STAGs, PRG indexes and SubstreamIDs
     * that fit their fields ({@link FaultQueue#refusal}).
     */
    private String restoreFaultQueue(FaultQueueObject o) {
        FaultQueue f = get(o.id(), FaultQueue.class);
        java.util.Set<Integer> sids = new java.util.HashSet<>();
        devices.values().forEach(d -> sids.add(d.streamId()));
        String why = f.refusal(o.state(), sids, this::streamIdOf);
        if (why == null) {
            f.restore(o.state());
        }
        return why;
    }

    /**
     * A PRI page request of a device under a nested hwpt with a fault queue goes to that queue
     * (Stop markers are dropped: they get no response, §8); anything else, or a full queue, is the host's.
     */
    private boolean routePageRequest(PageRequest r, Device d) {
        if (d == null || !(d.domain() instanceof NestedDomain n) || !nestedHwpts.containsKey(n)) {
            return false;
        }
        Hwpt h = nestedHwpts.get(n);
        if (h.faultQueue() == null || !devIds.containsKey(d)) {
            return false;
        }
        if (r.stopMarker()) {
            return true;
        }
        if (!h.faultQueue().addPageRequest(devIds.get(d), r)) {
            return false;
        }
        becameReadable(h.faultQueue().id());
        return true;
    }

    /** The event numbers a vEVENT queue carries (stage 1 and configuration faults the guest caused). */
    static final Set<EventType> FORWARDED = Set.of(EventType.C_BAD_STE, EventType.F_STREAM_DISABLED,
            EventType.C_BAD_SUBSTREAMID, EventType.C_BAD_CD, EventType.F_TRANSLATION, EventType.F_ADDR_SIZE,
            EventType.F_ACCESS, EventType.F_PERMISSION);

    /**
     * Routes one host event record: a device under a nested domain gets its stage 1 records in its
     * vIOMMU's vEVENT queue with the virtual StreamID; its stalls go to the hwpt's fault queue (or
     * are terminated at once without one). Stage 2 faults and everything else stay with the host.
     */
    private boolean route(EventRecord e, Device d) {
        if (d == null || !(d.domain() instanceof NestedDomain n) || e.s2() || !nestedHwpts.containsKey(n)) {
            return false;
        }
        Hwpt h = nestedHwpts.get(n);
        if (e.stall()) {
            if (h.faultQueue() == null || !devIds.containsKey(d)) {
                core.host().resume(e.streamId(), e.stag(), false);
                return false;
            }
            int perm = (e.rnw() ? PageFault.PERM_READ : PageFault.PERM_WRITE) | (e.ind() ? PageFault.PERM_EXEC : 0)
                    | (e.pnu() ? PageFault.PERM_PRIV : 0);
            if (!h.faultQueue().add(devIds.get(d), e.streamId(), e.ssv(), e.substreamId(), e.stag(), perm,
                    e.inputAddr())) {
                core.host().resume(e.streamId(), e.stag(), false); // the queue is full: terminate
                return false;
            }
            becameReadable(h.faultQueue().id());
            return true;
        }
        Vdevice vd = h.viommu().byDevice.get(d);
        VeventQueue q = h.viommu().veventq();
        if (!FORWARDED.contains(e.type()) || vd == null || q == null) {
            return false;
        }
        long[] w = e.encode();
        EventRecord.STREAMID.set(w, vd.virtId());
        if (q.add(w)) {
            becameReadable(q.id());
        }
        return true;
    }
}
