package dev.iommuemu.virtio.iommu;

import static dev.iommuemu.virtio.iommu.VirtioIommuFeatures.has;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.interval.IntervalMap;
import dev.iommuemu.interval.Mapping;
import dev.iommuemu.virtio.iommu.Structs.Attach;
import dev.iommuemu.virtio.iommu.Structs.Fault;
import dev.iommuemu.virtio.iommu.Structs.Map;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.Result;
import dev.iommuemu.iommufd.ArmSmmuv3Ste;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.iommufd.Iommufd;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The device's address-space state and the semantics of its requests: domains, which endpoint is
 * attached where, each domain's mappings (an {@link IntervalMap}), and translation through them
 * (virtio spec, IOMMU device, "Device operations" and its ATTACH / DETACH / MAP / UNMAP / PROBE
 * subsections). Every request either changes nothing and returns an error status, or completes.
 * Sizes are bounded by {@link VirtioIommuConfig}: a bound answers {@link Status#NOMEM}.
 */
final class DomainTable {

    /** One domain: created by the first ATTACH naming it, gone when its last endpoint leaves (DETACH request). */
    static final class Domain {
        final int id;
        final boolean bypass;
        final IntervalMap mappings;
        final Set<Integer> endpoints = new LinkedHashSet<>();
        /** A table domain (ATTACH_TABLE, docs/nesting.md §6): its nested hwpt and STE words; else -1 and null. */
        final int hwpt;
        final long[] ste;

        Domain(int id, boolean bypass) {
            this(id, bypass, -1, null);
        }

        Domain(int id, boolean bypass, int hwpt, long[] ste) {
            this.id = id;
            this.bypass = bypass;
            this.hwpt = hwpt;
            this.ste = ste;
            this.mappings = bypass || ste != null ? null : new IntervalMap();
        }

        boolean table() {
            return ste != null;
        }

        int mappingCount() {
            return mappings == null ? 0 : mappings.size();
        }
    }

    private final VirtioIommuConfig cfg;
    private final DmaHost host;
    private final VirtioIommuCounters counters;
    private final HashMap<Integer, Domain> domains = new HashMap<>();
    private final HashMap<Integer, Domain> attached = new HashMap<>();
    private long totalMappings;
    private long negotiated;
    private boolean bypassField;
    /** The nesting host, or {@code null} (no paravirtual nesting: docs/nesting.md §6). */
    private final PvNesting nesting;
    /**
     * The endpoints the VMM's bus has (docs/protocol.md IOMMU_SET_ENDPOINTS), or {@code null} when
     * it never said: then every endpoint of {@link VirtioIommuConfig#endpointRanges()} exists.
     */
    private Set<Integer> topology;
    /**
     * Domains whose endpoints or mappings changed since {@link #takeChanged()} (docs/protocol.md
     * §4.13: the daemon rewrites their mirror slots), or every domain when {@link #allChanged}.
     * Recorded before the DmaHost#invalidate of the change, so a host that republishes there sees it.
     */
    private final Set<Integer> changed = new LinkedHashSet<>();
    private boolean allChanged;

    DomainTable(VirtioIommuConfig cfg, DmaHost host, VirtioIommuCounters counters) {
        this(cfg, host, counters, null);
    }

    DomainTable(VirtioIommuConfig cfg, DmaHost host, VirtioIommuCounters counters, PvNesting nesting) {
        this.cfg = cfg;
        this.host = host;
        this.counters = counters;
        this.bypassField = cfg.bypass();
        this.nesting = nesting;
    }

    private boolean nestingNegotiated() {
        return nesting != null && has(negotiated, VirtioIommuFeatures.NESTING_SMMUV3);
    }

    void setNegotiated(long features) {
        negotiated = features;
    }

    boolean bypassField() {
        return bypassField;
    }

    /** Sets config field bypass; leaving bypass drops every cached identity translation. */
    void setBypassField(boolean on) {
        boolean was = bypassField;
        bypassField = on;
        if (was && !on) {
            invalidate(IotlbInvalidation.all());
        }
    }

    /** Device reset ("Device initialization": endpoints are not attached to any domain after reset). */
    void reset() {
        if (nesting != null) {
            nesting.reset();
        }
        domains.clear();
        attached.clear();
        totalMappings = 0;
        negotiated = 0;
        allChanged = true;
        invalidate(IotlbInvalidation.all());
    }

    /**
     * Whether endpoint {@code ep} exists ("Device operations": a request naming an endpoint that
     * does not exist gets VIRTIO_IOMMU_S_NOENT): in the configured ranges and, once the VMM gave
     * its topology, on its bus.
     */
    boolean exists(int ep) {
        return cfg.endpointExists(ep) && (topology == null || topology.contains(ep));
    }

    /**
     * The VMM's topology changed (start, hotplug, unplug): {@code present} is every endpoint that
     * has a device. An attached endpoint that is gone leaves its domain as with DETACH (the domain
     * ceases to exist with its last endpoint) and whatever the VMM cached for it is invalidated.
     */
    void setTopology(Set<Integer> present) {
        Set<Integer> next = Set.copyOf(present);
        for (Integer ep : List.copyOf(attached.keySet())) {
            if (!next.contains(ep)) {
                Domain d = attached.get(ep);
                leaveTable(d, ep);
                leave(d, ep);
                invalidate(new IotlbInvalidation(ep, 0, -1L));
            }
        }
        topology = next;
    }

    private boolean domainInRange(int domain) {
        // "Device operations": if DOMAIN_RANGE is offered, domain_range bounds the domain field.
        return Integer.compareUnsigned(domain, cfg.domainStart()) >= 0 && Integer.compareUnsigned(domain, cfg.domainEnd()) <= 0;
    }

    private boolean inInputRange(long first, long last) {
        return Long.compareUnsigned(first, cfg.inputStart()) >= 0 && Long.compareUnsigned(last, cfg.inputEnd()) <= 0;
    }

    /** Whether an endpoint that is not attached to a domain is in bypass mode ("Device operations"). */
    boolean unattachedBypass() {
        boolean configOffered = !cfg.legacyBypass();
        return (configOffered && bypassField) || has(negotiated, VirtioIommuFeatures.BYPASS);
    }

    // ---- ATTACH ----

    int attach(int domain, int ep, int flags, int reserved) {
        // "ATTACH request", device requirements.
        if (reserved != 0) {
            return Status.INVAL;
        }
        boolean wantBypass = (flags & Attach.F_BYPASS) != 0;
        // An unrecognised flag is INVAL; F_BYPASS is only defined once BYPASS_CONFIG is negotiated.
        if ((flags & ~Attach.F_BYPASS) != 0 || (wantBypass && !has(negotiated, VirtioIommuFeatures.BYPASS_CONFIG))) {
            return Status.INVAL;
        }
        if (!domainInRange(domain)) {
            return Status.RANGE;
        }
        if (!exists(ep)) {
            return Status.NOENT;
        }
        Domain d = domains.get(domain);
        Domain old = attached.get(ep);
        if (d != null) {
            if (d.bypass != wantBypass || d.table()) {
                return Status.INVAL; // F_BYPASS inconsistent with the existing domain, or a table domain
            }
            if (old == d) {
                return Status.OK;
            }
            if (!cfg.sharedDomains() && !d.endpoints.isEmpty()) {
                return Status.UNSUPP; // "If it cannot do so, the device MUST ... UNSUPP"
            }
        } else {
            boolean oldGoes = old != null && old.endpoints.size() == 1;
            if (domains.size() - (oldGoes ? 1 : 0) >= cfg.maxDomains()) {
                return Status.NOMEM;
            }
        }
        if (old == null && attached.size() >= cfg.maxEndpoints()) {
            return Status.NOMEM;
        }
        // Already attached elsewhere: behave as DETACH followed by ATTACH.
        if (old != null) {
            leaveTable(old, ep);
            leave(old, ep);
        }
        if (d == null) {
            d = new Domain(domain, wantBypass);
            domains.put(domain, d);
        }
        d.endpoints.add(ep);
        attached.put(ep, d);
        changed.add(domain);
        // Whatever the endpoint could reach before (bypass, another domain) is gone.
        invalidate(new IotlbInvalidation(ep, 0, -1L));
        return Status.OK;
    }

    // ---- DETACH ----

    int detach(int domain, int ep) {
        // "DETACH request", device requirements; reserved is ignored.
        if (!exists(ep)) {
            return Status.NOENT;
        }
        if (!domainInRange(domain)) {
            return Status.RANGE;
        }
        Domain d = domains.get(domain);
        if (d == null || attached.get(ep) != d) {
            return Status.INVAL;
        }
        leaveTable(d, ep);
        leave(d, ep);
        invalidate(new IotlbInvalidation(ep, 0, -1L));
        return Status.OK;
    }

    /** An endpoint leaving a table domain for anything else is blocked at the host first. */
    private void leaveTable(Domain d, int ep) {
        if (d.table()) {
            nesting.detach(ep);
        }
    }

    private void leave(Domain d, int ep) {
        changed.add(d.id);
        d.endpoints.remove(ep);
        attached.remove(ep);
        if (d.endpoints.isEmpty()) {
            // "After all endpoints have been successfully detached from a domain, it ceases to exist."
            domains.remove(d.id);
            totalMappings -= d.mappingCount();
        }
    }

    // ---- MAP ----

    int map(int domain, long virtStart, long virtEnd, long physStart, int flags) {
        return map(domain, virtStart, virtEnd, physStart, flags, true);
    }

    /**
     * MAP; {@code offer} false for a MAP the VMM served itself (docs/protocol.md §4.13): its log is
     * drained after the fact, when a later UNMAP of the same log may already have completed, so its
     * translations are not offered to the VMM's cache (the VMM translates it from the mirror).
     */
    int map(int domain, long virtStart, long virtEnd, long physStart, int flags, boolean offer) {
        // "MAP request", device requirements.
        if (!has(negotiated, VirtioIommuFeatures.MAP_UNMAP)) {
            return Status.UNSUPP;
        }
        int known = Map.F_READ | Map.F_WRITE | (has(negotiated, VirtioIommuFeatures.MMIO) ? Map.F_MMIO : 0);
        if ((flags & ~known) != 0) {
            return Status.INVAL;
        }
        if (!domainInRange(domain)) {
            return Status.RANGE;
        }
        Domain d = domains.get(domain);
        if (d == null) {
            return Status.NOENT;
        }
        if (d.bypass || d.table()) {
            return Status.INVAL; // a table domain's mappings are the guest's own page tables
        }
        if (Long.compareUnsigned(virtEnd, virtStart) < 0) {
            return Status.INVAL; // the driver MUST make virt_end > virt_start
        }
        long g = cfg.granule() - 1;
        if (cfg.granuleAlignedMaps() && ((virtStart & g) != 0 || (physStart & g) != 0 || ((virtEnd + 1) & g) != 0)) {
            return Status.RANGE; // SHOULD; a device built as QEMU's (which does not check) maps any range
        }
        if (!inInputRange(virtStart, virtEnd)) {
            return Status.RANGE;
        }
        if (Long.compareUnsigned(physStart + (virtEnd - virtStart), physStart) < 0) {
            return Status.RANGE; // phys_end beyond 2^64
        }
        for (int ep : d.endpoints) {
            for (ResvRegion r : cfg.resvRegions(ep)) {
                if (r.overlaps(virtStart, virtEnd)) {
                    return Status.INVAL; // "Property RESV_MEM": SHOULD reject a MAP overlapping a RESV_MEM region
                }
            }
        }
        if (d.mappings.overlaps(virtStart, virtEnd)) {
            return Status.INVAL; // a mapping already exists in the range
        }
        if (d.mappings.size() >= cfg.maxMappingsPerDomain() || totalMappings >= cfg.maxMappings()) {
            return Status.NOMEM;
        }
        d.mappings.insert(virtStart, virtEnd, physStart, flags);
        totalMappings++;
        changed.add(domain);
        if (offer) {
            prefill(d, virtStart, virtEnd, physStart, flags);
        }
        return Status.OK;
    }

    /** Entries offered per endpoint for one MAP; the rest of a larger mapping is answered on a miss. */
    static final int PREFILL_MAX = 64;

    /**
     * Offers the VMM a new mapping's translations for each endpoint of the domain (DmaHost#prefill),
     * as {@link #translate} would answer them: the mapping is usable once the MAP completes
     * ("MAP request"), so the first DMA need not ask. Never for MMIO mappings, which are not cached
     * (as {@link #speculate}); a MAP overlapping a reserved region was refused above.
     */
    private void prefill(Domain d, long first, long last, long target, int flags) {
        int perm = perm(flags);
        if ((flags & Map.F_MMIO) != 0 || perm == 0) {
            return;
        }
        for (int ep : d.endpoints) {
            long iova = first;
            for (int n = 0; n < PREFILL_MAX; n++) {
                IotlbEntry e = block(iova, first, last, target, perm);
                host.prefill(ep, e);
                long end = e.iova() | e.addrMask();
                if (Long.compareUnsigned(end, last) >= 0) {
                    break;
                }
                iova = end + 1;
            }
        }
    }

    // ---- UNMAP ----

    int unmap(int domain, long virtStart, long virtEnd, int reserved) {
        // "UNMAP request", device requirements.
        if (!has(negotiated, VirtioIommuFeatures.MAP_UNMAP)) {
            return Status.UNSUPP;
        }
        if (reserved != 0) {
            return Status.INVAL; // MAY: we reject and do not unmap
        }
        if (!domainInRange(domain)) {
            return Status.RANGE;
        }
        Domain d = domains.get(domain);
        if (d == null) {
            return Status.NOENT;
        }
        if (d.bypass || d.table()) {
            return Status.INVAL;
        }
        if (Long.compareUnsigned(virtEnd, virtStart) < 0) {
            return Status.INVAL;
        }
        if (!inInputRange(virtStart, virtEnd)) {
            return Status.RANGE;
        }
        // Mappings are disjoint, so only the ones holding virt_start or virt_end can be split.
        Mapping a = d.mappings.find(virtStart);
        Mapping b = d.mappings.find(virtEnd);
        if ((a != null && a.first() != virtStart) || (b != null && b.last() != virtEnd)) {
            return Status.RANGE; // would split a mapping: remove nothing (example (4))
        }
        IntervalMap.Removed r = d.mappings.removeWithin(virtStart, virtEnd);
        if (r.count() > 0) {
            totalMappings -= r.count();
            changed.add(domain);
            long size = r.last() - r.first() + 1; // 0 when the span is all of 2^64
            for (int ep : d.endpoints) {
                invalidate(new IotlbInvalidation(ep, r.first(), size == 0 ? -1L : size));
            }
        }
        return Status.OK;
    }

    // ---- PROBE ----

    /**
     * Fills {@code properties} (probe_size bytes, zeroed by the caller) with the endpoint's
     * RESV_MEM properties ("PROBE request", "Property RESV_MEM"); returns the status.
     */
    int probe(int ep, byte[] properties) {
        if (!exists(ep)) {
            return Status.NOENT;
        }
        int off = 0;
        for (ResvRegion r : cfg.resvRegions(ep)) {
            long[] w = new long[Structs.ResvMem.LAYOUT.words()];
            Structs.ProbeProperty.TYPE.set(w, Structs.ProbeProperty.T_RESV_MEM);
            // length excludes the 4-byte property header (device requirement).
            Structs.ProbeProperty.LENGTH.set(w, Structs.ResvMem.SIZE - Structs.ProbeProperty.HEADER_SIZE);
            Structs.ResvMem.SUBTYPE.set(w, r.subtype());
            Structs.ResvMem.START.set(w, r.start());
            Structs.ResvMem.END.set(w, r.end());
            System.arraycopy(Structs.toBytes(w, Structs.ResvMem.SIZE), 0, properties, off, Structs.ResvMem.SIZE);
            off += Structs.ResvMem.SIZE;
        }
        if (nestingNegotiated() && nesting.has(ep) && off + Structs.NestingProperty.SIZE <= properties.length) {
            // SMMUV3_NESTING (docs/nesting.md §6): IOMMU_GET_HW_INFO; absent where the host cannot nest.
            Result<HwInfo> info = nesting.hwInfo(ep);
            if (info.isOk()) {
                long[] w = new long[Structs.NestingProperty.LAYOUT.words()];
                Structs.ProbeProperty.TYPE.set(w, Structs.NestingProperty.TYPE);
                Structs.ProbeProperty.LENGTH.set(w, Structs.NestingProperty.SIZE - Structs.ProbeProperty.HEADER_SIZE);
                Structs.NestingProperty.FLAGS.set(w, info.get().flags() & 0xffff_ffffL);
                for (int i = 0; i < 6; i++) {
                    Structs.NestingProperty.IDR[i].set(w, info.get().idr()[i] & 0xffff_ffffL);
                }
                Structs.NestingProperty.IIDR.set(w, info.get().iidr() & 0xffff_ffffL);
                Structs.NestingProperty.AIDR.set(w, info.get().aidr() & 0xffff_ffffL);
                System.arraycopy(Structs.toBytes(w, Structs.NestingProperty.SIZE), 0, properties, off, Structs.NestingProperty.SIZE);
            }
        }
        return Status.OK;
    }

    // ---- paravirtual nesting (docs/nesting.md §6) ----

    /**
     * ATTACH_TABLE: endpoint {@code ep} joins table domain {@code domain}, whose stage 1 is the
     * guest's STE words validated as IOMMU_HWPT_ALLOC of a nested SMMUv3 hwpt (struct
     * iommu_hwpt_arm_smmuv3). An existing table domain is joined only with the same words. Nothing
     * changes unless the status is OK.
     */
    int attachTable(int domain, int ep, int format, int reserved, int flags, int reserved1, long[] ste) {
        if (nesting == null || !has(negotiated, VirtioIommuFeatures.NESTING_SMMUV3)) {
            return Status.UNSUPP;
        }
        if (reserved != 0 || reserved1 != 0 || flags != 0) {
            return Status.INVAL; // no flag is defined
        }
        if (format != Structs.AttachTable.FMT_SMMUV3_STE) {
            return Status.UNSUPP;
        }
        if (!domainInRange(domain)) {
            return Status.RANGE;
        }
        if (!exists(ep)) {
            return Status.NOENT;
        }
        if (!nesting.has(ep)) {
            return Status.UNSUPP; // the endpoint is not behind the nesting host
        }
        Result<long[]> words = ArmSmmuv3Ste.validate(ste, 0);
        if (!words.isOk()) {
            return status(words.error());
        }
        Domain d = domains.get(domain);
        Domain old = attached.get(ep);
        if (d != null) {
            if (!d.table() || !Arrays.equals(d.ste, words.get())) {
                return Status.INVAL; // another kind of domain, or another stage 1
            }
            if (old == d) {
                return Status.OK;
            }
            if (!cfg.sharedDomains() && !d.endpoints.isEmpty()) {
                return Status.UNSUPP;
            }
        } else {
            boolean oldGoes = old != null && old.endpoints.size() == 1;
            if (domains.size() - (oldGoes ? 1 : 0) >= cfg.maxDomains()) {
                return Status.NOMEM;
            }
        }
        if (old == null && attached.size() >= cfg.maxEndpoints()) {
            return Status.NOMEM;
        }
        int hwpt;
        if (d != null) {
            hwpt = d.hwpt;
        } else {
            Result<Integer> h = nesting.hwpt(words.get());
            if (!h.isOk()) {
                return status(h.error());
            }
            hwpt = h.get();
        }
        Errno e = nesting.attach(ep, hwpt); // a replace: on failure the endpoint keeps what it had
        if (e != null) {
            return status(e);
        }
        if (old != null) {
            leave(old, ep);
        }
        if (d == null) {
            d = new Domain(domain, false, hwpt, words.get());
            domains.put(domain, d);
        }
        d.endpoints.add(ep);
        attached.put(ep, d);
        invalidate(new IotlbInvalidation(ep, 0, -1L));
        return Status.OK;
    }

    /** The outcome of INVALIDATE: a status and how many commands were handled. */
    record InvalidateOutcome(int status, int handled) {}

    /** INVALIDATE: the guest's SMMUv3 commands for table domain {@code domain}, as IOMMU_HWPT_INVALIDATE. */
    InvalidateOutcome invalidateTable(int domain, long[] cmds) {
        if (nesting == null || !has(negotiated, VirtioIommuFeatures.NESTING_SMMUV3)) {
            return new InvalidateOutcome(Status.UNSUPP, 0);
        }
        if (!domainInRange(domain)) {
            return new InvalidateOutcome(Status.RANGE, 0);
        }
        Domain d = domains.get(domain);
        if (d == null) {
            return new InvalidateOutcome(Status.NOENT, 0);
        }
        if (!d.table()) {
            return new InvalidateOutcome(Status.INVAL, 0);
        }
        Iommufd.InvalidateResult r = nesting.invalidate(cmds);
        if (r.handled() > 0) {
            // The VMM may cache what the guest just invalidated: drop the table domains' entries.
            for (Domain t : domains.values()) {
                if (t.table()) {
                    for (int ep : t.endpoints) {
                        invalidate(new IotlbInvalidation(ep, 0, -1L));
                    }
                }
            }
        }
        return new InvalidateOutcome(r.error() == null ? Status.OK : status(r.error()), r.handled());
    }

    /** PAGE_RESP: the answer to a RECOVERABLE fault record of endpoint {@code ep} with {@code grpid}. */
    int pageResp(int ep, int flags, int pasid, int grpid, int code, int reserved) {
        if (nesting == null || !has(negotiated, VirtioIommuFeatures.NESTING_SMMUV3)) {
            return Status.UNSUPP;
        }
        if (reserved != 0 || (flags & ~Structs.PageResp.F_PASID_VALID) != 0) {
            return Status.INVAL;
        }
        if (!exists(ep)) {
            return Status.NOENT;
        }
        if (code != Structs.PageResp.SUCCESS && code != Structs.PageResp.INVALID && code != Structs.PageResp.FAILURE) {
            return Status.INVAL;
        }
        Errno e = nesting.pageResponse(ep, grpid, code);
        return e == null ? Status.OK : status(e);
    }

    /** The errno of the host model as a request status (docs/nesting.md §6). */
    static int status(Errno e) {
        return switch (e) {
            case EIO, EINVAL -> Status.INVAL;
            case EOPNOTSUPP -> Status.UNSUPP;
            case ENOMEM, ENOSPC -> Status.NOMEM;
            case ENOENT, ENODEV -> Status.NOENT;
            default -> Status.DEVERR;
        };
    }

    // ---- translation ----

    Translation translate(int ep, long iova, DmaAccess access) {
        return translate(ep, -1, iova, access);
    }

    /** {@code pasid} (-1: none) is used only by table domains, whose stage 1 knows PASIDs. */
    Translation translate(int ep, int pasid, long iova, DmaAccess access) {
        if (!exists(ep)) {
            // No valid endpoint ID to report ("Fault reporting": the device SHOULD write a valid one).
            counters.translateUnknownEndpoint++;
            return new Translation(new DmaResult.Aborted("no such endpoint"), false, null);
        }
        Domain d = attached.get(ep);
        if (d == null ? unattachedBypass() : d.bypass) {
            return identity(); // "All accesses from an endpoint in bypass mode are allowed" (identity)
        }
        for (ResvRegion r : cfg.resvRegions(ep)) {
            if (r.contains(iova)) {
                if (r.subtype() == Structs.ResvMem.T_MSI) {
                    // An MSI doorbell window is not translated ("Property RESV_MEM": the driver
                    // cannot map it); it reaches the interrupt controller whatever the domain state.
                    int perm = Perm.UR | Perm.PR | Perm.UW | Perm.PW;
                    return new Translation(new DmaResult.Translated(block(iova, r.start(), r.end(), r.start(), perm)), true, null);
                }
                if (d != null) {
                    return fault(Fault.R_MAPPING, ep, iova, access);
                }
            }
        }
        if (d == null) {
            // "The device SHOULD NOT let unattached endpoints that are not in bypass mode access ..."
            return fault(Fault.R_DOMAIN, ep, iova, access);
        }
        if (d.table()) {
            // docs/nesting.md §6: through the physical SMMU; its faults come from the host queues.
            return new Translation(nesting.dma(ep, pasid, iova, access), false, null);
        }
        Mapping m = d.mappings.find(iova);
        if (m == null) {
            return fault(Fault.R_MAPPING, ep, iova, access);
        }
        int perm = perm(m.attrs());
        if (!Perm.allows(perm, access)) {
            return fault(Fault.R_MAPPING, ep, iova, access);
        }
        return new Translation(new DmaResult.Translated(block(iova, m.first(), m.last(), m.target(), perm)),
                (m.attrs() & Map.F_MMIO) != 0, null);
    }

    /**
     * A translation for the VMM's cache ahead of any access (IommuModel#speculate): what
     * {@link #translate} gives for {@code iova} when that is a translation of an existing endpoint
     * with no fault, or {@code null}. MMIO mappings are not offered ("MAP request": accesses to
     * them are not speculated or cached), nor table domains (their walk is the host SMMU's).
     */
    IotlbEntry speculate(int ep, int pasid, long iova, DmaAccess access) {
        if (!exists(ep)) {
            return null;
        }
        Domain d = attached.get(ep);
        if (d != null && d.table()) {
            return null;
        }
        Translation t = translate(ep, pasid, iova, access);
        return t.fault() == null && !t.mmio() && t.result() instanceof DmaResult.Translated tr ? tr.entry() : null;
    }

    /**
     * Permission bits of MAP flags. virtio-iommu has no execute permission: an instruction fetch
     * is a read. WRITE without READ is honoured as write-only ("MAP request": the device MUST NOT
     * allow writes without WRITE; it MAY, but does not, allow reads of a write-only range).
     */
    static int perm(int mapFlags) {
        int p = 0;
        if ((mapFlags & Map.F_READ) != 0) {
            p |= Perm.UR | Perm.PR | Perm.UX | Perm.PX;
        }
        if ((mapFlags & Map.F_WRITE) != 0) {
            p |= Perm.UW | Perm.PW;
        }
        return p;
    }

    private static Translation identity() {
        return new Translation(new DmaResult.Translated(new IotlbEntry(0, 0, -1L, Perm.ALL)), false, null);
    }

    private static Translation fault(int reason, int ep, long iova, DmaAccess access) {
        String name = switch (reason) {
            case Fault.R_DOMAIN -> "VIRTIO_IOMMU_FAULT_R_DOMAIN";
            case Fault.R_MAPPING -> "VIRTIO_IOMMU_FAULT_R_MAPPING";
            default -> "VIRTIO_IOMMU_FAULT_R_UNKNOWN";
        };
        return new Translation(new DmaResult.Aborted(name), false, FaultEvent.of(reason, ep, iova, access));
    }

    /**
     * The largest naturally aligned power-of-two block around {@code iova} that lies inside
     * {@code [first, last]} and whose output is equally aligned (so one IotlbEntry describes it).
     */
    static IotlbEntry block(long iova, long first, long last, long target, int perm) {
        long delta = first - target;
        int k = delta == 0 ? 64 : Long.numberOfTrailingZeros(delta);
        long span = last - first; // size - 1
        int fit = span == -1L ? 64 : 63 - Long.numberOfLeadingZeros(span + 1);
        k = Math.min(k, fit);
        long mask;
        while (true) {
            mask = k == 64 ? -1L : (1L << k) - 1;
            long base = iova & ~mask;
            if (Long.compareUnsigned(base, first) >= 0 && Long.compareUnsigned(base | mask, last) <= 0) {
                break;
            }
            k--;
        }
        long out = target + (iova - first);
        return new IotlbEntry(iova & ~mask, out & ~mask, mask, perm);
    }

    private void invalidate(IotlbInvalidation inv) {
        counters.invalidations++;
        host.invalidate(inv);
    }

    // ---- saved state (docs/device-state-virtio.md) ----

    /** The endpoints the VMM said are on its bus, sorted, or {@code null} when it never said. */
    List<Integer> savedTopology() {
        return topology == null ? null : topology.stream().sorted().toList();
    }

    /** Every live domain, by unsigned id, with its endpoints in attach order and its mappings in address order. */
    List<VirtioIommuState.DomainState> savedDomains() {
        List<VirtioIommuState.DomainState> out = new java.util.ArrayList<>();
        domains.values().stream().sorted((a, b) -> Integer.compareUnsigned(a.id, b.id)).forEach(d -> out.add(
                new VirtioIommuState.DomainState(d.id, d.bypass, List.copyOf(d.endpoints),
                        d.mappings == null ? List.of() : d.mappings.overlapping(0, -1L), d.hwpt, d.ste)));
        return out;
    }

    /**
     * Why {@code s} could not have been produced by this device's requests, as a sentence, or
     * {@code null}. Checked: every domain ID in domain_range and unique; every domain with at least
     * one endpoint (DETACH request: a domain ceases to exist with its last endpoint); every
     * endpoint existing and in at most one domain; shared domains only where allowed; bypass and
     * table domains without mappings; each mapping as MAP would have taken it (flags known,
     * virt_end >= virt_start, inside input_range, granule-aligned where required, phys_end below
     * 2^64, disjoint from the domain's other mappings); table domains only with NESTING_SMMUV3
     * negotiated, from valid STE words, over a hwpt {@code nestedHwpts} has, with endpoints behind
     * the nesting host; and the configured bounds. RESV_MEM overlaps are not refused: an endpoint
     * may be attached after the MAP that its region overlaps.
     *
     * @param nested the nesting host the state will be loaded with ({@code null}: none)
     */
    String refusal(VirtioIommuState s, PvNesting nested) {
        Set<Integer> topo = s.topology() == null ? null : Set.copyOf(s.topology());
        long features = s.driverFeatures();
        if (s.domains().size() > cfg.maxDomains()) {
            return s.domains().size() + " domains exceed this device's bound of " + cfg.maxDomains();
        }
        java.util.Map<Integer, Integer> domainOfEp = new HashMap<>();
        Set<Integer> ids = new java.util.HashSet<>();
        long total = 0;
        for (VirtioIommuState.DomainState d : s.domains()) {
            String name = "domain " + Integer.toUnsignedString(d.id());
            if (!domainInRange(d.id())) {
                return name + " is outside domain_range [" + Integer.toUnsignedString(cfg.domainStart()) + ", "
                        + Integer.toUnsignedString(cfg.domainEnd()) + "]";
            }
            if (!ids.add(d.id())) {
                return name + " appears twice";
            }
            if (d.endpoints().isEmpty()) {
                return name + " has no endpoint, but a domain ceases to exist when its last endpoint is detached";
            }
            if (d.endpoints().size() > 1 && !cfg.sharedDomains()) {
                return name + " has " + d.endpoints().size() + " endpoints, but this device does not share domains";
            }
            for (int ep : d.endpoints()) {
                boolean present = cfg.endpointExists(ep) && (topo == null || topo.contains(ep));
                if (!present) {
                    return "endpoint " + Integer.toUnsignedString(ep) + " is attached to " + name + " but does not exist on this device";
                }
                Integer other = domainOfEp.put(ep, d.id());
                if (other != null) {
                    return "endpoint " + Integer.toUnsignedString(ep) + " is attached to both domain "
                            + Integer.toUnsignedString(other) + " and " + name;
                }
            }
            if (d.bypass() && !has(features, VirtioIommuFeatures.BYPASS_CONFIG)) {
                // virtio spec, IOMMU device, "ATTACH request": ATTACH_F_BYPASS is defined only with BYPASS_CONFIG
                // negotiated (otherwise an unknown flag, S_INVAL), and only ATTACH makes a bypass domain
                return name + " is a bypass domain, but VIRTIO_IOMMU_F_BYPASS_CONFIG, without which ATTACH refuses"
                        + " VIRTIO_IOMMU_ATTACH_F_BYPASS, is not negotiated";
            }
            if ((d.bypass() || d.table()) && !d.mappings().isEmpty()) {
                return name + " is a " + (d.bypass() ? "bypass" : "table") + " domain and cannot have mappings";
            }
            if (d.table()) {
                String t = tableRefusal(d, name, features, nested);
                if (t != null) {
                    return t;
                }
            } else if (d.hwpt() != -1) {
                return name + " names hwpt " + d.hwpt() + " without the STE words of a table domain";
            }
            if (!d.mappings().isEmpty() && !has(features, VirtioIommuFeatures.MAP_UNMAP)) {
                return name + " has mappings, but VIRTIO_IOMMU_F_MAP_UNMAP is not negotiated";
            }
            if (d.mappings().size() > cfg.maxMappingsPerDomain()) {
                return name + " has " + d.mappings().size() + " mappings, beyond this device's bound of " + cfg.maxMappingsPerDomain();
            }
            String m = mappingsRefusal(d.mappings(), name, features);
            if (m != null) {
                return m;
            }
            total += d.mappings().size();
        }
        if (total > cfg.maxMappings()) {
            return total + " mappings exceed this device's bound of " + cfg.maxMappings();
        }
        if (domainOfEp.size() > cfg.maxEndpoints()) {
            return domainOfEp.size() + " attached endpoints exceed this device's bound of " + cfg.maxEndpoints();
        }
        return nested == null ? null : hostAttachRefusal(s, nested);
    }

    /**
     * The nesting host must agree with the domains (docs/nesting.md §6): an endpoint in a table
     * domain is attached to that domain's nested hwpt, every other endpoint behind the host is
     * blocked (ATTACH_TABLE attaches, leaving a table domain detaches).
     */
    private static String hostAttachRefusal(VirtioIommuState s, PvNesting nested) {
        java.util.Map<Integer, Integer> want = new HashMap<>();
        for (VirtioIommuState.DomainState d : s.domains()) {
            if (d.table()) {
                d.endpoints().forEach(ep -> want.put(ep, d.hwpt()));
            }
        }
        for (int ep : nested.endpoints()) {
            int expected = want.getOrDefault(ep, 0);
            int at = nested.attachedHwpt(ep);
            if (at != expected) {
                return "endpoint " + Integer.toUnsignedString(ep) + " is attached to hwpt " + at + " at the nesting host, but its domain "
                        + (expected == 0 ? "is no table domain (the host would have it blocked)" : "is nested hwpt " + expected);
            }
        }
        return null;
    }

    private String tableRefusal(VirtioIommuState.DomainState d, String name, long features, PvNesting nested) {
        if (nested == null || !has(features, VirtioIommuFeatures.NESTING_SMMUV3)) {
            return name + " is a table domain, which needs VIRTIO_IOMMU_F_NESTING_SMMUV3 negotiated on a nesting device";
        }
        if (d.bypass()) {
            return name + " cannot be both a bypass and a table domain";
        }
        Result<long[]> words = ArmSmmuv3Ste.validate(d.ste(), 0);
        if (!words.isOk() || !Arrays.equals(words.get(), d.ste())) {
            return name + " has STE words that ATTACH_TABLE would have refused";
        }
        if (!nested.hasHwpt(d.hwpt(), d.ste())) {
            return name + " names nested hwpt " + d.hwpt() + ", which the nesting host does not have for its STE words";
        }
        for (int ep : d.endpoints()) {
            if (!nested.has(ep)) {
                return "endpoint " + Integer.toUnsignedString(ep) + " of table " + name + " is not behind the nesting host";
            }
        }
        return null;
    }

    private String mappingsRefusal(List<Mapping> ms, String name, long features) {
        int known = Map.F_READ | Map.F_WRITE | (has(features, VirtioIommuFeatures.MMIO) ? Map.F_MMIO : 0);
        long g = cfg.granule() - 1;
        Mapping prev = null;
        for (Mapping m : ms) {
            String what = "mapping [0x" + Long.toHexString(m.first()) + ", 0x" + Long.toHexString(m.last()) + "] of " + name;
            if ((m.attrs() & ~known) != 0) {
                return what + " has flags 0x" + Integer.toHexString(m.attrs()) + " that MAP would have refused";
            }
            if (Long.compareUnsigned(m.last(), m.first()) < 0 || !inInputRange(m.first(), m.last())) {
                return what + " is empty or outside input_range";
            }
            if (cfg.granuleAlignedMaps() && ((m.first() & g) != 0 || (m.target() & g) != 0 || ((m.last() + 1) & g) != 0)) {
                return what + " is not aligned on the " + (g + 1) + "-byte granule";
            }
            if (Long.compareUnsigned(m.target() + (m.last() - m.first()), m.target()) < 0) {
                return what + " maps beyond physical address 2^64";
            }
            if (prev != null && Long.compareUnsigned(prev.last(), m.first()) >= 0) {
                return what + " overlaps or precedes mapping [0x" + Long.toHexString(prev.first()) + ", 0x"
                        + Long.toHexString(prev.last()) + "]";
            }
            prev = m;
        }
        return null;
    }

    /**
     * Replaces the whole table with {@code s} (checked by {@link #refusal}; nothing here fails),
     * and tells the VMM to drop everything it cached: the mappings are the state (virtio 1.x
     * §5.13.6), and whatever the VMM cached before the load described another device.
     */
    void restore(VirtioIommuState s) {
        domains.clear();
        attached.clear();
        totalMappings = 0;
        for (VirtioIommuState.DomainState ds : s.domains()) {
            Domain d = new Domain(ds.id(), ds.bypass(), ds.hwpt(), ds.ste());
            for (Mapping m : ds.mappings()) {
                d.mappings.insert(m.first(), m.last(), m.target(), m.attrs());
            }
            totalMappings += ds.mappings().size();
            for (int ep : ds.endpoints()) {
                d.endpoints.add(ep);
                attached.put(ep, d);
            }
            domains.put(ds.id(), d);
        }
        negotiated = s.driverFeatures();
        bypassField = s.bypass();
        topology = s.topology() == null ? null : Set.copyOf(s.topology());
        allChanged = true;
        invalidate(IotlbInvalidation.all());
    }

    // ---- the mirror of the VMM's request hand-off (docs/protocol.md §4.13) ----

    /** The domains changed since the last call ({@code all}: every domain, after a reset or a load), then forgets them. */
    ChangedDomains takeChanged() {
        ChangedDomains c = new ChangedDomains(allChanged, Set.copyOf(changed));
        changed.clear();
        allChanged = false;
        return c;
    }

    /** Marks domain {@code id} changed: a request the VMM served names it (§4.13), so its slot is rewritten from here. */
    void markChanged(int id) {
        changed.add(id);
    }

    /**
     * Domain {@code id} as §4.13 mirrors it, or {@code null} when it has no mirror: a MAP/UNMAP
     * domain (not bypass, not a table domain, docs/nesting.md §6) with at most
     * {@link MirroredDomain#MAX_ENDPOINTS} endpoints, at most {@link MirroredDomain#MAX_RESV}
     * distinct RESV_MEM regions over them ("Property RESV_MEM") and at most {@code maxMappings}
     * mappings, those in ascending order.
     */
    MirroredDomain mirrored(int id, int maxMappings) {
        Domain d = domains.get(id);
        if (d == null || d.bypass || d.table() || d.endpoints.size() > MirroredDomain.MAX_ENDPOINTS
                || d.mappingCount() > maxMappings) {
            return null;
        }
        LinkedHashSet<ResvRegion> resv = new LinkedHashSet<>();
        for (int ep : d.endpoints) {
            resv.addAll(cfg.resvRegions(ep));
        }
        if (resv.size() > MirroredDomain.MAX_RESV) {
            return null;
        }
        return new MirroredDomain(id, List.copyOf(d.endpoints), List.copyOf(resv), d.mappings.overlapping(0, -1L));
    }

    /** The ids of every domain now. */
    List<Integer> domainIds() {
        return List.copyOf(domains.keySet());
    }

    // ---- introspection (control API, tests) ----

    int domainCount() {
        return domains.size();
    }

    int attachedCount() {
        return attached.size();
    }

    long totalMappings() {
        return totalMappings;
    }

    /** The domain endpoint {@code ep} is attached to, or {@code null}. */
    Domain domainOf(int ep) {
        return attached.get(ep);
    }

    Domain domain(int id) {
        return domains.get(id);
    }

    List<Mapping> mappings(int domain) {
        Domain d = domains.get(domain);
        return d == null || d.mappings == null ? List.of() : d.mappings.overlapping(0, -1L);
    }
}
