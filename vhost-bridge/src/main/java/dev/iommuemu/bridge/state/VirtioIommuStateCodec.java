package dev.iommuemu.bridge.state;

import dev.iommuemu.interval.Mapping;
import dev.iommuemu.proto.devstate.v1.VirtioIommuDomain;
import dev.iommuemu.proto.devstate.v1.VirtioIommuFault;
import dev.iommuemu.proto.devstate.v1.VirtioIommuIdentity;
import dev.iommuemu.proto.devstate.v1.VirtioIommuMapping;
import dev.iommuemu.proto.devstate.v1.VirtioIommuNesting;
import dev.iommuemu.proto.devstate.v1.VirtioIommuNestingEndpoint;
import dev.iommuemu.proto.devstate.v1.VirtioIommuOutstandingFault;
import dev.iommuemu.proto.devstate.v1.VirtioIommuResvRegion;
import dev.iommuemu.proto.devstate.v1.VirtioIommuTableHwpt;
import dev.iommuemu.proto.devstate.v1.VirtioIommuTopology;
import dev.iommuemu.proto.devstate.v1.VirtioSplitQueueState;
import dev.iommuemu.proto.devstate.v1.VirtioUsedElem;
import dev.iommuemu.virtio.iommu.FaultEvent;
import dev.iommuemu.virtio.iommu.PvNesting;
import dev.iommuemu.virtio.iommu.VirtioIommuState;
import dev.iommuemu.virtqueue.SplitVirtqueue;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@link VirtioIommuState} as virtio_iommu_state.proto's message and back
 * (docs/device-state-virtio.md). The mapping is one to one; decoding refuses, with a sentence, only
 * what the message can say and the record cannot (STE words other than none or two); whether the
 * state could have been produced is the device's check on load.
 */
public final class VirtioIommuStateCodec {
    private VirtioIommuStateCodec() {}

    public static dev.iommuemu.proto.devstate.v1.VirtioIommuState encode(VirtioIommuState s) {
        VirtioIommuState.Identity id = s.identity();
        var b = dev.iommuemu.proto.devstate.v1.VirtioIommuState.newBuilder()
                .setIdentity(encode(id))
                .setDriverFeatures(s.driverFeatures())
                .setBypass(s.bypass());
        if (s.topology() != null) {
            b.setTopology(VirtioIommuTopology.newBuilder().addAllEndpoints(s.topology()));
        }
        for (VirtioIommuState.DomainState d : s.domains()) {
            var db = VirtioIommuDomain.newBuilder().setId(d.id()).setBypass(d.bypass()).addAllEndpoints(d.endpoints());
            for (Mapping m : d.mappings()) {
                db.addMappings(VirtioIommuMapping.newBuilder().setVirtStart(m.first()).setVirtEnd(m.last()).setPhysStart(m.target())
                        .setFlags(m.attrs()));
            }
            if (d.table()) {
                db.setHwpt(d.hwpt());
                for (long w : d.ste()) {
                    db.addSte(w);
                }
            } else if (d.hwpt() != -1) {
                db.setHwpt(d.hwpt());
            }
            b.addDomains(db);
        }
        for (FaultEvent e : s.pendingFaults()) {
            b.addPendingFaults(VirtioIommuFault.newBuilder().setReason(e.reason()).setFlags(e.flags()).setEndpoint(e.endpoint())
                    .setAddress(e.address()).setPasid(e.pasid()).setGrpid(e.grpid()));
        }
        for (SplitVirtqueue.State q : s.queues()) {
            var qb = VirtioSplitQueueState.newBuilder().setSize(q.size()).setDescAddr(q.descAddr()).setAvailAddr(q.availAddr())
                    .setUsedAddr(q.usedAddr()).setEnabled(q.enabled()).setBroken(q.broken()).setNextAvail(q.nextAvail())
                    .setUsedIdx(q.usedIdx()).setSignalledUsed(q.signalledUsed());
            for (SplitVirtqueue.UsedElem u : q.pendingUsed()) {
                qb.addPendingUsed(VirtioUsedElem.newBuilder().setId(u.id()).setLen(u.len()));
            }
            b.addQueues(qb);
        }
        if (s.nesting() != null) {
            b.setNesting(encode(s.nesting()));
        }
        return b.build();
    }

    private static VirtioIommuIdentity encode(VirtioIommuState.Identity id) {
        var b = VirtioIommuIdentity.newBuilder().setDeviceFeatures(id.deviceFeatures()).setPageSizeMask(id.pageSizeMask())
                .setInputStart(id.inputStart()).setInputEnd(id.inputEnd()).setDomainStart(id.domainStart())
                .setDomainEnd(id.domainEnd()).setProbeSize(id.probeSize()).setBootBypass(id.bootBypass())
                .setGranuleAlignedMaps(id.granuleAlignedMaps()).setSharedDomains(id.sharedDomains()).setMaxQueueSize(id.maxQueueSize())
                .setMaxPendingFaults(id.maxPendingFaults()).setMaxDomains(id.maxDomains()).setMaxEndpoints(id.maxEndpoints())
                .setMaxMappingsPerDomain(id.maxMappingsPerDomain()).setMaxMappings(id.maxMappings())
                .addAllEndpointRanges(id.endpointRanges());
        for (VirtioIommuState.Identity.Resv r : id.resvRegions()) {
            b.addResvRegions(VirtioIommuResvRegion.newBuilder().setEndpoint(r.endpoint()).setSubtype(r.subtype()).setStart(r.start())
                    .setEnd(r.end()));
        }
        return b.build();
    }

    private static VirtioIommuState.Identity decode(VirtioIommuIdentity i) {
        List<VirtioIommuState.Identity.Resv> resv = new ArrayList<>();
        for (VirtioIommuResvRegion r : i.getResvRegionsList()) {
            resv.add(new VirtioIommuState.Identity.Resv(r.getEndpoint(), r.getSubtype(), r.getStart(), r.getEnd()));
        }
        return new VirtioIommuState.Identity(i.getDeviceFeatures(), i.getPageSizeMask(), i.getInputStart(), i.getInputEnd(),
                i.getDomainStart(), i.getDomainEnd(), i.getProbeSize(), i.getBootBypass(), i.getGranuleAlignedMaps(),
                i.getSharedDomains(), i.getMaxQueueSize(), i.getMaxPendingFaults(), i.getMaxDomains(), i.getMaxEndpoints(),
                i.getMaxMappingsPerDomain(), i.getMaxMappings(), i.getEndpointRangesList(), resv);
    }

    private static VirtioIommuNesting encode(PvNesting.State n) {
        var b = VirtioIommuNesting.newBuilder().setViommuId(n.viommuId()).setVeventqId(n.veventqId()).setFaultId(n.faultId());
        new TreeMap<>(n.devIdOf()).forEach((ep, dev) -> b.addEndpoints(VirtioIommuNestingEndpoint.newBuilder().setEndpoint(ep).setDevId(dev)));
        for (PvNesting.TableHwpt h : n.hwpts()) {
            b.addTableHwpts(VirtioIommuTableHwpt.newBuilder().setSte0(h.ste0()).setSte1(h.ste1()).setHwpt(h.hwpt()));
        }
        for (PvNesting.Outstanding o : n.outstanding()) {
            b.addOutstanding(VirtioIommuOutstandingFault.newBuilder().setEndpoint(o.endpoint()).setGrpid(o.grpid()).setCookie(o.cookie()));
        }
        return b.build();
    }

    /**
     * The record of {@code m}.
     *
     * @throws IllegalArgumentException with a sentence for a domain whose STE words are neither none nor two
     */
    public static VirtioIommuState decode(dev.iommuemu.proto.devstate.v1.VirtioIommuState m) {
        VirtioIommuState.Identity id = decode(m.getIdentity());
        List<VirtioIommuState.DomainState> domains = new ArrayList<>();
        for (VirtioIommuDomain d : m.getDomainsList()) {
            List<Mapping> ms = new ArrayList<>();
            for (VirtioIommuMapping x : d.getMappingsList()) {
                ms.add(new Mapping(x.getVirtStart(), x.getVirtEnd(), x.getPhysStart(), x.getFlags()));
            }
            if (d.getSteCount() != 0 && d.getSteCount() != 2) {
                throw new IllegalArgumentException("virtio-iommu state refused: domain " + Integer.toUnsignedString(d.getId())
                        + " has " + d.getSteCount() + " STE words, and a table domain has 2.");
            }
            long[] ste = d.getSteCount() == 0 ? null : new long[] {d.getSte(0), d.getSte(1)};
            domains.add(new VirtioIommuState.DomainState(d.getId(), d.getBypass(), d.getEndpointsList(), ms,
                    d.hasHwpt() ? d.getHwpt() : -1, ste));
        }
        List<FaultEvent> faults = new ArrayList<>();
        for (VirtioIommuFault f : m.getPendingFaultsList()) {
            faults.add(new FaultEvent(f.getReason(), f.getFlags(), f.getEndpoint(), f.getAddress(), f.getPasid(), f.getGrpid()));
        }
        List<SplitVirtqueue.State> queues = new ArrayList<>();
        for (VirtioSplitQueueState q : m.getQueuesList()) {
            List<SplitVirtqueue.UsedElem> pending = new ArrayList<>();
            for (VirtioUsedElem u : q.getPendingUsedList()) {
                pending.add(new SplitVirtqueue.UsedElem(u.getId(), u.getLen()));
            }
            queues.add(new SplitVirtqueue.State(q.getSize(), q.getDescAddr(), q.getAvailAddr(), q.getUsedAddr(), q.getEnabled(),
                    q.getBroken(), q.getNextAvail(), q.getUsedIdx(), q.getSignalledUsed(), pending));
        }
        return new VirtioIommuState(id, m.getDriverFeatures(), m.getBypass(), m.hasTopology() ? m.getTopology().getEndpointsList() : null,
                domains, faults, queues, m.hasNesting() ? decode(m.getNesting()) : null);
    }

    private static PvNesting.State decode(VirtioIommuNesting n) {
        Map<Integer, Integer> devs = new LinkedHashMap<>();
        for (VirtioIommuNestingEndpoint e : n.getEndpointsList()) {
            if (devs.put(e.getEndpoint(), e.getDevId()) != null) {
                throw new IllegalArgumentException("virtio-iommu state refused: nesting endpoint " + Integer.toUnsignedString(e.getEndpoint())
                        + " appears twice.");
            }
        }
        List<PvNesting.TableHwpt> hs = new ArrayList<>();
        for (VirtioIommuTableHwpt h : n.getTableHwptsList()) {
            hs.add(new PvNesting.TableHwpt(h.getSte0(), h.getSte1(), h.getHwpt()));
        }
        List<PvNesting.Outstanding> os = new ArrayList<>();
        for (VirtioIommuOutstandingFault o : n.getOutstandingList()) {
            os.add(new PvNesting.Outstanding(o.getEndpoint(), o.getGrpid(), o.getCookie()));
        }
        return new PvNesting.State(n.getViommuId(), n.getVeventqId(), n.getFaultId(), devs, hs, os);
    }
}
