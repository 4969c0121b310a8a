package dev.iommuemu.domain;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The iommu core (drivers/iommu/iommu.c, include/linux/iommu.h) over one physical SMMUv3 driven
 * by {@link HostSmmu}: devices and {@link Group}s, the always-present blocking and identity
 * domains, paging and nested domains, attach as an atomic replace with the errno contract, PASID
 * attachments, DMA ownership, and the routing of event records.
 *
 * <p>Attach contract (include/linux/iommu.h attach_dev): {@code null} = attached;
 * {@link Errno#EINVAL} this domain is incompatible with this device (another instance's domain);
 * {@link Errno#ENOMEM} / {@link Errno#ENOSPC} resources (CD table memory, ASIDs, VMIDs);
 * {@link Errno#EBUSY} cannot change now (PASIDs in use under a stage 2 or nested domain);
 * {@link Errno#ENODEV} this device can attach nowhere (released). A failed attach changes
 * nothing: the group keeps its old domain and every STE is untouched.
 */
public final class IommuCore {

    /**
     * @param maxAsids        ASIDs available (0: as IDR0.ASID16 says); ASID 0 is reserved
     * @param maxVmids        VMIDs available (0: as IDR0.VMID16 says); VMID 0 is reserved for stage 1
     * @param cdBits          log2 of each device's CD table (capped by IDR1.SSIDSIZE)
     * @param defaultIdentity the default domain is identity (else blocking)
     */
    public record Options(int maxAsids, int maxVmids, int cdBits, boolean defaultIdentity) {
        public static final Options DEFAULT = new Options(0, 0, 4, true);
    }

    /** Where event records of devices go before the host log: iommufd's vEVENT and fault queues. */
    public interface EventRouter {
        /** Whether the record was taken; {@code device} is {@code null} for an unknown StreamID. */
        boolean route(EventRecord record, Device device);

        /** Whether the PRI page request was taken (it then owes the response). */
        default boolean routePageRequest(PageRequest request, Device device) {
            return false;
        }
    }

    private static final int HOST_EVENT_LOG = 256;

    private final HostSmmu host;
    private final Options options;
    private final Domain.Blocking blocking = new Domain.Blocking(this);
    private final Domain.Identity identity = new Domain.Identity(this);
    private final Map<Integer, Device> devices = new HashMap<>();
    private final Map<String, Group> groups = new HashMap<>();
    private final Set<Device> released = new HashSet<>();
    private final BitSet asids = new BitSet();
    private final BitSet vmids = new BitSet();
    private final int asidLimit;
    private final int vmidLimit;
    private final int cdBits;
    private final Map<PagingDomain, Set<Integer>> nestedVmids = new HashMap<>();
    private final Deque<EventRecord> hostEvents = new ArrayDeque<>();
    private EventRouter router;

    public IommuCore(HostSmmu host, Options options) {
        this.host = host;
        this.options = options;
        Smmuv3Profile p = host.profile();
        this.asidLimit = options.maxAsids() > 0 ? options.maxAsids() : (p.asid16() ? 1 << 16 : 1 << 8);
        this.vmidLimit = options.maxVmids() > 0 ? options.maxVmids() : (p.vmid16() ? 1 << 16 : 1 << 8);
        this.cdBits = Math.min(options.cdBits(), p.ssidBits());
        asids.set(0);
        vmids.set(0);
    }

    public HostSmmu host() {
        return host;
    }

    public Domain.Blocking blocking() {
        return blocking;
    }

    public Domain.Identity identity() {
        return identity;
    }

    public Domain defaultDomain() {
        return options.defaultIdentity() ? identity : blocking;
    }

    public void eventRouter(EventRouter r) {
        this.router = r;
    }

    // ------------------------------------------------------------------------------------------
    // Devices and groups

    /**
     * Adds the device with StreamID {@code sid} to group {@code groupName} ({@code null}: a group
     * of its own) and attaches it to the group's domain (the default domain for a new group).
     * {@link Errno#ENODEV} when the StreamID is beyond the stream table; {@link Errno#EEXIST} twice.
     */
    public Result<Device> probe(int sid, String groupName) {
        if (sid < 0 || sid >= host.streamIds()) {
            return Result.err(Errno.ENODEV);
        }
        if (devices.containsKey(sid)) {
            return Result.err(Errno.EEXIST);
        }
        String name = groupName == null ? "sid-" + sid : groupName;
        Group g = groups.computeIfAbsent(name, n -> new Group(n, defaultDomain()));
        Device d = new Device(sid, g);
        g.devices.add(d);
        devices.put(sid, d);
        host.installSte(sid, ste(d, g.domain));
        return Result.ok(d);
    }

    /** The device of {@code sid}, or {@code null}. */
    public Device device(int sid) {
        return devices.get(sid);
    }

    /** Hot-unplug: the device's STE goes back to V=0; from now on it can attach nowhere (ENODEV). */
    public void release(Device d) {
        released.add(d);
        d.group.devices.remove(d);
        devices.remove(d.streamId());
        host.installSte(d.streamId(), new long[Ste.WORDS]);
    }

    // ------------------------------------------------------------------------------------------
    // Domains

    /**
     * A paging domain of {@code stage} (1 or 2) with an empty host table; {@code nestParent}
     * requires stage 2. {@link Errno#EOPNOTSUPP} for a stage this SMMU lacks (IDR0.S1P/S2P),
     * {@link Errno#ENOMEM} when the table cannot be allocated.
     */
    public Result<PagingDomain> allocPaging(int stage, boolean nestParent) {
        Smmuv3Profile p = host.profile();
        if ((stage != 1 && stage != 2) || (stage == 1 && !p.s1()) || (stage == 2 && !p.s2())
                || (nestParent && (stage != 2 || !p.s1()))) {
            return Result.err(Errno.EOPNOTSUPP);
        }
        int bits = stage == 1 ? 48 : Math.min(p.oasBits(), 48);
        // As arm-smmu-v3 does: a nest parent on an SMMU with IDR3.FWB uses S2FWB (its STE sets
        // STE.S2FWB, its leaves the FWB MemAttr), so a guest's stage 1 cannot make DMA to its RAM
        // non-coherent (IHI 0070 §5.2 STE.S2FWB; Arm ARM D8.6.6).
        HostPageTable.Format f = stage == 1 ? HostPageTable.Format.STAGE1
                : nestParent && p.fwb() ? HostPageTable.Format.STAGE2_FWB : HostPageTable.Format.STAGE2;
        Result<HostPageTable> t = HostPageTable.create(host.memory(), host.allocator(), f, bits);
        if (!t.isOk()) {
            return Result.err(t.error());
        }
        return Result.ok(new PagingDomain(this, stage, nestParent, t.get()));
    }

    /**
     * A nested domain: validated guest STE words 0-1 over {@code parent} (a nest parent of this
     * instance) with the vIOMMU's {@code vmid}. {@link Errno#EINVAL} for a parent that is not a
     * nest parent of this instance.
     */
    public Result<NestedDomain> allocNested(PagingDomain parent, int vmid, long[] vste, Object context) {
        if (parent == null || parent.owner() != this || !parent.nestParent()) {
            return Result.err(Errno.EINVAL);
        }
        nestedVmids.computeIfAbsent(parent, k -> new HashSet<>()).add(vmid);
        return Result.ok(new NestedDomain(this, parent, vmid, vste, context));
    }

    /** A VMID for a vIOMMU (arm-smmu-v3 gives each vSMMU its own), or ENOSPC. */
    public Result<Integer> allocVmid() {
        int v = vmids.nextClearBit(1);
        if (v >= vmidLimit) {
            return Result.err(Errno.ENOSPC);
        }
        vmids.set(v);
        return Result.ok(v);
    }

    /** Returns a VMID (after CMD_TLBI_S12_VMALL so nothing tagged with it survives). */
    public void freeVmid(int vmid) {
        host.command(Command.build(Command.Op.CMD_TLBI_S12_VMALL).set(Command.TLBI_VMID, vmid).words());
        host.sync();
        vmids.clear(vmid);
    }

    /** The ASID or VMID is taken at the first attach, as arm-smmu-v3 finalises a domain. */
    private Errno finalise(Domain dom) {
        if (dom instanceof PagingDomain p && p.tag == 0) {
            BitSet set = p.stage() == 1 ? asids : vmids;
            int limit = p.stage() == 1 ? asidLimit : vmidLimit;
            int t = set.nextClearBit(1);
            if (t >= limit) {
                return Errno.ENOSPC;
            }
            set.set(t);
            p.tag = t;
        }
        return null;
    }

    // ------------------------------------------------------------------------------------------
    // Attach (an atomic replace)

    /** Attaches {@code dom} to {@code d}'s whole group (iommu_attach_group / replace semantics). */
    public Errno attach(Device d, Domain dom) {
        if (released.contains(d)) {
            return Errno.ENODEV;
        }
        if (dom == null || dom.owner() != this) {
            return Errno.EINVAL; // another SMMU instance's domain: try another domain, or a fresh one
        }
        return replace(d.group, dom);
    }

    private Errno replace(Group g, Domain dom) {
        if (g.domain == dom) {
            return null;
        }
        // Prepare: everything that can fail, before anything changes.
        boolean noPasids = dom instanceof NestedDomain || (dom instanceof PagingDomain p && p.stage() == 2);
        for (Device x : g.devices) {
            if (noPasids && !x.pasids.isEmpty()) {
                return Errno.EBUSY; // the STE cannot carry the CD table the PASIDs need
            }
        }
        boolean needsCds = dom instanceof PagingDomain p1 && p1.stage() == 1;
        for (Device x : g.devices) {
            if (needsCds && x.cdTable == 0 && !allocCdTable(x)) {
                return Errno.ENOMEM;
            }
        }
        Errno e = finalise(dom);
        if (e != null) {
            return e;
        }
        // Commit: nothing below fails.
        for (Device x : g.devices) {
            install(x, dom);
        }
        g.domain = dom;
        return null;
    }

    private boolean allocCdTable(Device x) {
        long t = host.allocator().allocate((long) Cd.SIZE << cdBits, Math.max(64, (long) Cd.SIZE << cdBits));
        if (t < 0) {
            return false;
        }
        x.cdTable = t;
        return true;
    }

    private void install(Device x, Domain dom) {
        if (x.cdTable != 0) {
            long[] cd0 = dom instanceof PagingDomain p && p.stage() == 1 ? cd(p) : new long[Cd.WORDS];
            host.installCd(x.cdTable, x.streamId(), 0, cd0);
        }
        host.installSte(x.streamId(), ste(x, dom));
    }

    // ------------------------------------------------------------------------------------------
    // PASIDs (SSIDs)

    /**
     * Attaches a stage 1 paging domain to PASID {@code pasid} of {@code d} (iommu_attach_device_pasid),
     * or removes it ({@code dom == null}). {@link Errno#ENODEV} without substreams (IDR1.SSIDSIZE 0)
     * or for a released device; {@link Errno#EINVAL} for PASID 0 or beyond the CD table, a domain
     * that is not stage 1 of this instance, or a RID domain that cannot carry a CD table (stage 2,
     * nested); {@link Errno#ENOSPC}/{@link Errno#ENOMEM} for resources.
     */
    public Errno setPasid(Device d, int pasid, Domain dom) {
        if (released.contains(d) || cdBits == 0) {
            return Errno.ENODEV;
        }
        if (pasid <= 0 || pasid >= 1 << cdBits) {
            return Errno.EINVAL;
        }
        if (dom == null) {
            if (d.pasids.remove(pasid) != null) {
                host.installCd(d.cdTable + (long) pasid * Cd.SIZE, d.streamId(), pasid, new long[Cd.WORDS]);
                host.installSte(d.streamId(), ste(d, d.group.domain));
            }
            return null;
        }
        if (!(dom instanceof PagingDomain p) || p.owner() != this || p.stage() != 1) {
            return Errno.EINVAL;
        }
        Domain rid = d.group.domain;
        if (rid instanceof NestedDomain || (rid instanceof PagingDomain r && r.stage() == 2)) {
            return Errno.EINVAL;
        }
        if (d.cdTable == 0 && !allocCdTable(d)) {
            return Errno.ENOMEM;
        }
        Errno e = finalise(p);
        if (e != null) {
            return e;
        }
        host.installCd(d.cdTable + (long) pasid * Cd.SIZE, d.streamId(), pasid, cd(p));
        boolean first = d.pasids.isEmpty();
        d.pasids.put(pasid, p);
        if (first) {
            host.installSte(d.streamId(), ste(d, rid));
        }
        return null;
    }

    // ------------------------------------------------------------------------------------------
    // DMA ownership (iommu_device_claim_dma_owner / iommu_device_release_dma_owner)

    /**
     * Claims DMA ownership of {@code d}'s group for {@code owner}: {@link Errno#EPERM} when another
     * owner holds it; the first claim moves the group to the blocking domain at once, so no DMA
     * reaches memory the new owner has not mapped. The same owner may claim again (counted).
     */
    public Errno claimDmaOwner(Device d, Object owner) {
        if (released.contains(d)) {
            return Errno.ENODEV;
        }
        Group g = d.group;
        if (g.owner != null) {
            if (g.owner != owner) {
                return Errno.EPERM;
            }
            g.ownerCount++;
            return null;
        }
        g.owner = owner;
        g.ownerCount = 1;
        dropPasids(g);
        replace(g, blocking); // never fails: no allocation, no PASIDs left
        return null;
    }

    /** Releases a claim; the last release returns the group to its default domain. */
    public Errno releaseDmaOwner(Device d, Object owner) {
        Group g = d.group;
        if (g.owner == null || g.owner != owner) {
            return Errno.EPERM;
        }
        if (--g.ownerCount == 0) {
            g.owner = null;
            dropPasids(g);
            replace(g, defaultDomain());
        }
        return null;
    }

    /** Ends every PASID attachment of the group: the CDs go invalid (CMD_CFGI_CD each). */
    private void dropPasids(Group g) {
        for (Device x : g.devices) {
            for (int pasid : x.pasids.keySet()) {
                host.installCd(x.cdTable + (long) pasid * Cd.SIZE, x.streamId(), pasid, new long[Cd.WORDS]);
            }
            x.pasids.clear();
        }
    }

    // ------------------------------------------------------------------------------------------
    // DMA and events

    /** A DMA of device {@code sid} through the physical SMMU; its event records are routed at once. */
    public DmaResult dma(int sid, int ssid, long iova, DmaAccess access) {
        DmaResult r = host.smmu().translate(sid, ssid, iova, access);
        pollEvents();
        return r;
    }

    /**
     * Reads the host event and PRI queues and routes each record (vEVENTQ, fault queue, else the
     * host log). A page request nobody takes is answered at once: a group's last request gets
     * CMD_PRI_RESP Failure, as the kernel's IOPF code answers requests without a handler.
     */
    public void pollEvents() {
        for (PageRequest p : host.drainPageRequests()) {
            if (router != null && router.routePageRequest(p, devices.get(p.streamId()))) {
                continue;
            }
            if (p.last() && !p.stopMarker()) {
                host.priResponse(p.streamId(), p.ssid(), p.prgIndex(), Command.PRI_RESP_FAILURE);
            }
        }
        for (EventRecord e : host.drainEvents()) {
            Device d = devices.get(e.streamId());
            if (router != null && router.route(e, d)) {
                continue;
            }
            if (hostEvents.size() == HOST_EVENT_LOG) {
                hostEvents.removeFirst();
            }
            hostEvents.addLast(e);
        }
    }

    /**
     * The threaded half of the host's Event and PRI queue interrupt handling (arm-smmu-v3's
     * arm_smmu_evtq_thread / arm_smmu_priq_thread): when the SMMU raised either interrupt since the
     * last call ({@link HostSmmu#interrupt}; IHI 0070 §3.18.2: the queue went from empty to
     * non-empty), reads both queues and routes every record ({@link #pollEvents}). Returns whether it ran.
     */
    public boolean serviceInterrupts() {
        if (!host.takeInterrupts()) {
            return false;
        }
        pollEvents();
        return true;
    }

    /** Records that stayed with the host (stage 2 faults, non-nested streams), oldest first; drains. */
    public List<EventRecord> takeHostEvents() {
        pollEvents();
        List<EventRecord> out = new ArrayList<>(hostEvents);
        hostEvents.clear();
        return out;
    }

    /** TLB maintenance after a change to {@code p}'s table (see {@link PagingDomain#unmap}). */
    void flushDomain(PagingDomain p) {
        if (p.tag == 0) {
            return;
        }
        if (p.stage() == 1) {
            host.command(Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, p.tag).words());
        } else {
            host.command(Command.build(Command.Op.CMD_TLBI_S12_VMALL).set(Command.TLBI_VMID, p.tag).words());
            for (int v : nestedVmids.getOrDefault(p, Set.of())) {
                host.command(Command.build(Command.Op.CMD_TLBI_S12_VMALL).set(Command.TLBI_VMID, v).words());
            }
        }
        host.sync();
    }

    // ------------------------------------------------------------------------------------------
    // STE and CD images (IHI 0070 §5.2, §5.4)

    private int oasEnc() {
        return Math.min(dev.iommuemu.smmuv3.registers.Smmuv3Regs.IDR5_OAS.getInt(host.profile().idr5()), 5);
    }

    /** The STE {@code x} needs for {@code dom}. */
    long[] ste(Device x, Domain dom) {
        long[] w = new long[Ste.WORDS];
        if (dom instanceof Domain.Blocking || dom instanceof Domain.Identity) {
            if (x.pasids.isEmpty()) {
                Ste.V.set(w, 1);
                Ste.CONFIG.set(w, dom instanceof Domain.Blocking ? Ste.CONFIG_ABORT : Ste.CONFIG_BYPASS);
                return w;
            }
            // PASIDs stay usable: the CD table with non-PASID traffic terminated or bypassed (§5.2 S1DSS).
            return cdTableSte(x, dom instanceof Domain.Blocking ? Ste.S1DSS_TERMINATE : Ste.S1DSS_BYPASS);
        }
        if (dom instanceof PagingDomain p) {
            return p.stage() == 1 ? cdTableSte(x, Ste.S1DSS_SUBSTREAM0) : s2Ste(p, p.tag);
        }
        NestedDomain n = (NestedDomain) dom;
        long[] v = n.vste();
        if (!Ste.V.isSet(v[0]) || Ste.CONFIG.get(v[0]) == Ste.CONFIG_ABORT) {
            Ste.V.set(w, 1);
            Ste.CONFIG.set(w, Ste.CONFIG_ABORT);
            return w;
        }
        w = s2Ste(n.parent(), n.vmid());
        if (Ste.CONFIG.get(v[0]) == Ste.CONFIG_S1) {
            // The guest's stage 1 fields (already limited to the allowed set) over the host's stage 2.
            Ste.CONFIG.set(w, Ste.CONFIG_NESTED);
            w[0] |= v[0] & ~(Ste.V.mask() | Ste.CONFIG.mask());
            w[1] |= v[1];
        }
        return w;
    }

    private long[] cdTableSte(Device x, int s1dss) {
        long[] w = new long[Ste.WORDS];
        Ste.V.set(w, 1);
        Ste.CONFIG.set(w, Ste.CONFIG_S1);
        Ste.S1FMT.set(w, Ste.S1FMT_LINEAR);
        Ste.S1CONTEXTPTR.set(w, x.cdTable >>> 6);
        Ste.S1CDMAX.set(w, cdBits);
        if (cdBits > 0) {
            Ste.S1DSS.set(w, s1dss);
        }
        return w;
    }

    private long[] s2Ste(PagingDomain p, int vmid) {
        HostPageTable t = p.table();
        long[] w = new long[Ste.WORDS];
        Ste.V.set(w, 1);
        Ste.CONFIG.set(w, Ste.CONFIG_S2);
        Ste.S2VMID.set(w, vmid);
        Ste.S2T0SZ.set(w, 64 - t.inputBits());
        Ste.S2SL0.set(w, 2); // 4KB granule: SL0 0b10 starts at level 0 (§5.2 S2SL0)
        Ste.S2TG.set(w, 0);
        Ste.S2IR0.set(w, 1);
        Ste.S2OR0.set(w, 1);
        Ste.S2SH0.set(w, 3);
        Ste.S2PS.set(w, oasEnc());
        Ste.S2AA64.set(w, 1);
        Ste.S2R.set(w, 1);
        Ste.S2FWB.set(w, t.format() == HostPageTable.Format.STAGE2_FWB);
        Ste.S2TTB.set(w, t.root() >>> 4);
        return w;
    }

    private long[] cd(PagingDomain p) {
        long[] w = new long[Cd.WORDS];
        Cd.V.set(w, 1);
        Cd.T0SZ.set(w, 64 - p.table().inputBits());
        Cd.TG0.set(w, 0);
        Cd.IR0.set(w, 1);
        Cd.OR0.set(w, 1);
        Cd.SH0.set(w, 3);
        Cd.EPD1.set(w, 1);
        Cd.IPS.set(w, oasEnc());
        Cd.AA64.set(w, 1);
        Cd.R.set(w, 1);
        Cd.A.set(w, 1);
        Cd.ASID.set(w, p.tag);
        Cd.TTB0.set(w, p.table().root() >>> 4);
        Cd.MAIR.set(w, 0xff); // Attr0: Normal write-back
        return w;
    }
}
