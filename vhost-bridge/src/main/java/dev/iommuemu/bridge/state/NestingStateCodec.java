package dev.iommuemu.bridge.state;

import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.iommufd.FaultQueue;
import dev.iommuemu.iommufd.Iommufd;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import dev.iommuemu.proto.devstate.v1.IommufdDeviceObject;
import dev.iommuemu.proto.devstate.v1.IommufdFaultQueueObject;
import dev.iommuemu.proto.devstate.v1.IommufdMappingRun;
import dev.iommuemu.proto.devstate.v1.IommufdNestedHwptObject;
import dev.iommuemu.proto.devstate.v1.IommufdObject;
import dev.iommuemu.proto.devstate.v1.IommufdOpenPriGroup;
import dev.iommuemu.proto.devstate.v1.IommufdPagingHwptObject;
import dev.iommuemu.proto.devstate.v1.IommufdPendingResponse;
import dev.iommuemu.proto.devstate.v1.IommufdState;
import dev.iommuemu.proto.devstate.v1.IommufdVdeviceObject;
import dev.iommuemu.proto.devstate.v1.IommufdVeventqObject;
import dev.iommuemu.proto.devstate.v1.IommufdViommuObject;
import dev.iommuemu.proto.devstate.v1.NestParentRegion;
import dev.iommuemu.proto.devstate.v1.NestingState;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The iommufd nesting objects ({@link Iommufd.State}) and a nesting host's nest parent regions as
 * nesting_state.proto's message and back (docs/device-state-virtio.md). Decoding refuses, with a
 * sentence, what the message can say and the records cannot (an object of no kind, STE words other
 * than two); whether the objects could have been produced is {@link Iommufd#restore}'s check.
 */
public final class NestingStateCodec {
    private NestingStateCodec() {}

    /** The decoded message: the iommufd objects and the nest parent regions (base -> size, in order). */
    public record Decoded(Iommufd.State iommufd, Map<Long, Long> nestParentRegions) {}

    public static NestingState encode(Iommufd.State s, Map<Long, Long> nestParentRegions) {
        NestingState.Builder b = NestingState.newBuilder().setIommufd(encode(s));
        nestParentRegions.forEach((base, size) -> b.addNestParentRegions(NestParentRegion.newBuilder().setBase(base).setSize(size)));
        return b.build();
    }

    static IommufdState encode(Iommufd.State s) {
        IommufdState.Builder b = IommufdState.newBuilder().setNextId(s.nextId());
        for (Iommufd.ObjectState o : s.objects()) {
            IommufdObject.Builder ob = IommufdObject.newBuilder().setId(o.id());
            if (o instanceof Iommufd.DeviceObject d) {
                ob.setDevice(IommufdDeviceObject.newBuilder().setStreamId(d.streamId()).setHwpt(d.hwpt()));
            } else if (o instanceof Iommufd.PagingHwptObject p) {
                IommufdPagingHwptObject.Builder pb = IommufdPagingHwptObject.newBuilder().setNestParent(p.nestParent());
                for (HostPageTable.Run r : p.mappings()) {
                    pb.addMappings(IommufdMappingRun.newBuilder().setIova(r.iova()).setPa(r.pa()).setSize(r.size()).setProt(r.prot()));
                }
                ob.setPagingHwpt(pb);
            } else if (o instanceof Iommufd.NestedHwptObject n) {
                IommufdNestedHwptObject.Builder nb = IommufdNestedHwptObject.newBuilder().setViommu(n.viommu()).setFaultQueue(n.faultQueue());
                for (long w : n.ste()) {
                    nb.addSte(w);
                }
                ob.setNestedHwpt(nb);
            } else if (o instanceof Iommufd.ViommuObject v) {
                ob.setViommu(IommufdViommuObject.newBuilder().setParentHwpt(v.parentHwpt()));
            } else if (o instanceof Iommufd.VdeviceObject v) {
                ob.setVdevice(IommufdVdeviceObject.newBuilder().setViommu(v.viommu()).setDevice(v.device()).setVirtId(v.virtId()));
            } else if (o instanceof Iommufd.VeventqObject q) {
                IommufdVeventqObject.Builder qb = IommufdVeventqObject.newBuilder().setViommu(q.viommu()).setDepth(q.depth())
                        .setNextSequence(q.nextSequence());
                for (Vevent v : q.queued()) {
                    dev.iommuemu.proto.v1.Vevent.Builder vb = dev.iommuemu.proto.v1.Vevent.newBuilder().setFlags(v.flags())
                            .setSequence(v.sequence());
                    if (v.evt() != null) {
                        for (long w : v.evt()) {
                            vb.addEvt(w);
                        }
                    }
                    qb.addQueued(vb);
                }
                ob.setVeventq(qb);
            } else if (o instanceof Iommufd.FaultQueueObject f) {
                ob.setFaultQueue(encode(f.state()));
            }
            b.addObjects(ob);
        }
        return b.build();
    }

    private static IommufdFaultQueueObject encode(FaultQueue.State s) {
        IommufdFaultQueueObject.Builder b = IommufdFaultQueueObject.newBuilder().setNextCookie(s.nextCookie());
        for (PageFault f : s.queued()) {
            b.addQueued(dev.iommuemu.proto.v1.PageFault.newBuilder().setFlags(f.flags()).setDevId(f.devId()).setPasid(f.pasid())
                    .setGrpid(f.grpid()).setPerm(f.perm()).setAddr(f.addr()).setLength(f.length()).setCookie(f.cookie()));
        }
        for (FaultQueue.Pending p : s.pending()) {
            b.addPending(IommufdPendingResponse.newBuilder().setCookie(p.cookie()).setStreamId(p.streamId()).setStag(p.stag())
                    .setSsid(p.ssid()).setPrgIndex(p.prgIndex()));
        }
        for (FaultQueue.OpenGroup g : s.openGroups()) {
            b.addOpenGroups(IommufdOpenPriGroup.newBuilder().setCookie(g.cookie()).setStreamId(g.group().streamId())
                    .setSsid(g.group().ssid()).setPrgIndex(g.group().prgIndex()));
        }
        return b.build();
    }

    /**
     * The records of {@code m}.
     *
     * @throws IllegalArgumentException with a sentence for an object of no kind or STE words other than two
     */
    public static Decoded decode(NestingState m) {
        Map<Long, Long> regions = new LinkedHashMap<>();
        for (NestParentRegion r : m.getNestParentRegionsList()) {
            regions.put(r.getBase(), r.getSize());
        }
        return new Decoded(decode(m.getIommufd()), regions);
    }

    static Iommufd.State decode(IommufdState m) {
        List<Iommufd.ObjectState> out = new ArrayList<>();
        for (IommufdObject o : m.getObjectsList()) {
            int id = o.getId();
            out.add(switch (o.getObjectCase()) {
                case DEVICE -> new Iommufd.DeviceObject(id, o.getDevice().getStreamId(), o.getDevice().getHwpt());
                case PAGING_HWPT -> {
                    List<HostPageTable.Run> runs = new ArrayList<>();
                    for (IommufdMappingRun r : o.getPagingHwpt().getMappingsList()) {
                        runs.add(new HostPageTable.Run(r.getIova(), r.getPa(), r.getSize(), r.getProt()));
                    }
                    yield new Iommufd.PagingHwptObject(id, o.getPagingHwpt().getNestParent(), runs);
                }
                case NESTED_HWPT -> {
                    IommufdNestedHwptObject n = o.getNestedHwpt();
                    if (n.getSteCount() != 2) {
                        throw refused("nested hwpt " + id + " has " + n.getSteCount() + " STE words, and struct iommu_hwpt_arm_smmuv3 has 2");
                    }
                    yield new Iommufd.NestedHwptObject(id, n.getViommu(), new long[] {n.getSte(0), n.getSte(1)}, n.getFaultQueue());
                }
                case VIOMMU -> new Iommufd.ViommuObject(id, o.getViommu().getParentHwpt());
                case VDEVICE -> new Iommufd.VdeviceObject(id, o.getVdevice().getViommu(), o.getVdevice().getDevice(),
                        o.getVdevice().getVirtId());
                case VEVENTQ -> {
                    IommufdVeventqObject q = o.getVeventq();
                    List<Vevent> vs = new ArrayList<>();
                    for (dev.iommuemu.proto.v1.Vevent v : q.getQueuedList()) {
                        vs.add(new Vevent(v.getFlags(), v.getSequence(),
                                v.getEvtCount() == 0 ? null : v.getEvtList().stream().mapToLong(Long::longValue).toArray()));
                    }
                    yield new Iommufd.VeventqObject(id, q.getViommu(), q.getDepth(), vs, q.getNextSequence());
                }
                case FAULT_QUEUE -> new Iommufd.FaultQueueObject(id, decode(o.getFaultQueue()));
                case OBJECT_NOT_SET -> throw refused("object " + id + " is of no kind");
            });
        }
        return new Iommufd.State(out, m.getNextId());
    }

    private static FaultQueue.State decode(IommufdFaultQueueObject m) {
        List<PageFault> q = new ArrayList<>();
        for (dev.iommuemu.proto.v1.PageFault f : m.getQueuedList()) {
            q.add(new PageFault(f.getFlags(), f.getDevId(), f.getPasid(), f.getGrpid(), f.getPerm(), f.getAddr(), f.getLength(),
                    f.getCookie()));
        }
        List<FaultQueue.Pending> p = new ArrayList<>();
        for (IommufdPendingResponse r : m.getPendingList()) {
            p.add(new FaultQueue.Pending(r.getCookie(), r.getStreamId(), r.getStag(), r.getSsid(), r.getPrgIndex()));
        }
        List<FaultQueue.OpenGroup> g = new ArrayList<>();
        for (IommufdOpenPriGroup o : m.getOpenGroupsList()) {
            g.add(new FaultQueue.OpenGroup(new FaultQueue.Group(o.getStreamId(), o.getSsid(), o.getPrgIndex()), o.getCookie()));
        }
        return new FaultQueue.State(q, p, g, m.getNextCookie());
    }

    private static IllegalArgumentException refused(String why) {
        return new IllegalArgumentException("iommufd state refused: " + why + ".");
    }
}
