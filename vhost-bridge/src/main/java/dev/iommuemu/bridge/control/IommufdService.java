package dev.iommuemu.bridge.control;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.nesting.IommufdCall;
import dev.iommuemu.bridge.nesting.IommufdCalls;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import dev.iommuemu.proto.v1.FieldValue;
import dev.iommuemu.proto.v1.IommufdRequest;
import dev.iommuemu.proto.v1.IommufdResponse;

/**
 * The control API's iommufd requests (control.proto IommufdRequest): the protobuf form of an
 * {@link IommufdCall}, run by {@link IommufdCalls} (shared with the VMM protocol's messages
 * 1040-1055), its outcome turned back into an IommufdResponse. Runs with the session lock held
 * (the caller's {@code withDevice}).
 */
final class IommufdService {
    private IommufdService() {}

    static IommufdResponse handle(BridgedDevice d, IommufdRequest q) {
        IommufdCall call = call(q);
        if (call == null) {
            return IommufdResponse.newBuilder().setErrno(Errno.EINVAL.code).build();
        }
        return response(IommufdCalls.handle(d, call));
    }

    /** The call a request names, or null when it names none. */
    static IommufdCall call(IommufdRequest q) {
        return switch (q.getOpCase()) {
            case OPEN_HOST -> {
                var o = q.getOpenHost();
                yield new IommufdCall.OpenHost(o.getCarveBase(), o.getCarveSize(), o.getStreamTableLog2());
            }
            case PROBE -> new IommufdCall.Probe(q.getProbe().getStreamId(), q.getProbe().getGroup());
            case BIND -> new IommufdCall.Bind(q.getBind().getStreamId());
            case HW_INFO -> new IommufdCall.HwInfo(q.getHwInfo().getDevId());
            case ALLOC_HWPT -> {
                var a = q.getAllocHwpt();
                long[] w = a.getVsteCount() == 0 ? null : a.getVsteList().stream().mapToLong(Long::longValue).toArray();
                yield new IommufdCall.AllocHwpt(a.getDevId(), a.getPtId(), a.getFlags(), w, a.getFaultId());
            }
            case ATTACH -> new IommufdCall.Attach(q.getAttach().getDevId(), q.getAttach().getHwptId());
            case DETACH -> new IommufdCall.Detach(q.getDetach().getDevId());
            case MAP -> {
                var m = q.getMap();
                yield new IommufdCall.Map(m.getHwptId(), m.getIova(), m.getPhys(), m.getLength(), m.getRead(), m.getWrite(), m.getUnmap());
            }
            case ALLOC_VIOMMU -> new IommufdCall.AllocViommu(q.getAllocViommu().getDevId(), q.getAllocViommu().getHwptId());
            case ALLOC_VDEVICE -> {
                var v = q.getAllocVdevice();
                yield new IommufdCall.AllocVdevice(v.getViommuId(), v.getDevId(), v.getVirtId());
            }
            case INVALIDATE -> new IommufdCall.Invalidate(q.getInvalidate().getViommuId(),
                    q.getInvalidate().getCmdList().stream().mapToLong(Long::longValue).toArray());
            case ALLOC_VEVENTQ -> new IommufdCall.AllocVeventq(q.getAllocVeventq().getViommuId(), q.getAllocVeventq().getDepth());
            case READ_VEVENTS -> new IommufdCall.ReadVevents(q.getReadVevents().getVeventqId(), q.getReadVevents().getMax());
            case ALLOC_FAULT_QUEUE -> new IommufdCall.AllocFaultQueue();
            case READ_FAULTS -> new IommufdCall.ReadFaults(q.getReadFaults().getFaultId(), q.getReadFaults().getMax());
            case PAGE_RESPONSE -> {
                var p = q.getPageResponse();
                yield new IommufdCall.PageResponse(p.getFaultId(), p.getCookie(), p.getCode());
            }
            case OP_NOT_SET -> null;
        };
    }

    static IommufdResponse response(IommufdCalls.Outcome o) {
        IommufdResponse.Builder r = IommufdResponse.newBuilder();
        if (o.errno() != 0) {
            r.setErrno(o.errno());
        }
        if (o.id() != 0) {
            r.setId(o.id());
        }
        if (o.handled() != 0) {
            r.setHandled(o.handled());
        }
        if (o.length() != 0) {
            r.setLength(o.length());
        }
        HwInfo h = o.hwInfo();
        if (h != null) {
            var b = dev.iommuemu.proto.v1.HwInfo.newBuilder().setFlags(h.flags()).setIidr(h.iidr()).setAidr(h.aidr());
            for (int v : h.idr()) {
                b.addIdr(v);
            }
            for (HwInfo.Entry e : h.entries()) {
                b.addFields(FieldValue.newBuilder().setName(e.name()).setBits(e.bits()).setValue(e.value()));
            }
            r.setHwInfo(b);
        }
        if (o.vevents() != null) {
            for (Vevent v : o.vevents()) {
                var b = dev.iommuemu.proto.v1.Vevent.newBuilder().setFlags(v.flags()).setSequence(v.sequence());
                if (v.evt() != null) {
                    for (long x : v.evt()) {
                        b.addEvt(x);
                    }
                }
                r.addVevents(b);
            }
        }
        if (o.faults() != null) {
            for (PageFault f : o.faults()) {
                r.addFaults(dev.iommuemu.proto.v1.PageFault.newBuilder().setFlags(f.flags()).setDevId(f.devId())
                        .setPasid(f.pasid()).setGrpid(f.grpid()).setPerm(f.perm()).setAddr(f.addr())
                        .setLength(f.length()).setCookie(f.cookie()));
            }
        }
        return r.build();
    }
}
