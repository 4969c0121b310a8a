package dev.iommuemu.bridge.control;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.domain.PagingDomain;
import dev.iommuemu.domain.Result;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.iommufd.Iommufd;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import dev.iommuemu.proto.v1.FieldValue;
import dev.iommuemu.proto.v1.IommufdRequest;
import dev.iommuemu.proto.v1.IommufdResponse;
import java.util.List;

/**
 * The control API's iommufd requests (control.proto IommufdRequest) against a session's device:
 * each is one call of the {@link Iommufd} model, its errno carried as a value in the response.
 * Runs with the session lock held (the caller's {@code withDevice}).
 */
final class IommufdService {
    private static final int MAX_READ = 1024;

    private IommufdService() {}

    static IommufdResponse handle(BridgedDevice d, IommufdRequest q) {
        IommufdResponse.Builder r = IommufdResponse.newBuilder();
        if (q.getOpCase() == IommufdRequest.OpCase.OPEN_HOST) {
            var o = q.getOpenHost();
            d.openIommufd(o.getCarveBase(), o.getCarveSize(), o.getStreamTableLog2() == 0 ? 8 : o.getStreamTableLog2());
            return r.build();
        }
        Iommufd fd = d.iommufd();
        if (fd == null) {
            return r.setErrno(Errno.ENODEV.code).build(); // no host opened on this session
        }
        switch (q.getOpCase()) {
            case PROBE -> {
                var p = q.getProbe();
                var pr = fd.core().probe(p.getStreamId(), p.getGroup().isEmpty() ? null : p.getGroup());
                if (!pr.isOk()) {
                    r.setErrno(pr.error().code);
                }
            }
            case BIND -> id(r, fd.bind(q.getBind().getStreamId()));
            case HW_INFO -> {
                Result<HwInfo> h = fd.hwInfo(q.getHwInfo().getDevId());
                if (!h.isOk()) {
                    r.setErrno(h.error().code);
                } else {
                    var b = dev.iommuemu.proto.v1.HwInfo.newBuilder().setFlags(h.get().flags())
                            .setIidr(h.get().iidr()).setAidr(h.get().aidr());
                    for (int v : h.get().idr()) {
                        b.addIdr(v);
                    }
                    for (HwInfo.Entry e : h.get().entries()) {
                        b.addFields(FieldValue.newBuilder().setName(e.name()).setBits(e.bits()).setValue(e.value()));
                    }
                    r.setHwInfo(b);
                }
            }
            case ALLOC_HWPT -> {
                var a = q.getAllocHwpt();
                if (a.getVsteCount() == 0) {
                    id(r, fd.allocHwptPaging(a.getDevId(), a.getFlags()));
                } else {
                    long[] w = a.getVsteList().stream().mapToLong(Long::longValue).toArray();
                    id(r, fd.allocHwptNested(a.getPtId(), a.getFlags(), w, a.getFaultId()));
                }
            }
            case ATTACH -> errno(r, fd.attach(q.getAttach().getDevId(), q.getAttach().getHwptId()));
            case DETACH -> errno(r, fd.detach(q.getDetach().getDevId()));
            case MAP -> {
                var m = q.getMap();
                PagingDomain p = fd.paging(m.getHwptId());
                if (p == null) {
                    r.setErrno(Errno.ENOENT.code);
                } else if (m.getUnmap()) {
                    r.setLength(p.unmap(m.getIova(), m.getLength()));
                } else {
                    int prot = (m.getRead() ? HostPageTable.IOMMU_READ : 0) | (m.getWrite() ? HostPageTable.IOMMU_WRITE : 0);
                    errno(r, p.map(m.getIova(), m.getPhys(), m.getLength(), prot));
                }
            }
            case ALLOC_VIOMMU -> id(r, fd.allocViommu(q.getAllocViommu().getDevId(), q.getAllocViommu().getHwptId()));
            case ALLOC_VDEVICE -> {
                var v = q.getAllocVdevice();
                id(r, fd.allocVdevice(v.getViommuId(), v.getDevId(), v.getVirtId()));
            }
            case INVALIDATE -> {
                long[] w = q.getInvalidate().getCmdList().stream().mapToLong(Long::longValue).toArray();
                Iommufd.InvalidateResult ir = fd.invalidate(q.getInvalidate().getViommuId(), w);
                errno(r, ir.error());
                r.setHandled(ir.handled());
            }
            case ALLOC_VEVENTQ -> id(r, fd.allocVeventq(q.getAllocVeventq().getViommuId(), q.getAllocVeventq().getDepth()));
            case READ_VEVENTS -> {
                Result<List<Vevent>> l = fd.readVevents(q.getReadVevents().getVeventqId(), max(q.getReadVevents().getMax()));
                if (!l.isOk()) {
                    r.setErrno(l.error().code);
                } else {
                    for (Vevent v : l.get()) {
                        var b = dev.iommuemu.proto.v1.Vevent.newBuilder().setFlags(v.flags()).setSequence(v.sequence());
                        if (v.evt() != null) {
                            for (long x : v.evt()) {
                                b.addEvt(x);
                            }
                        }
                        r.addVevents(b);
                    }
                }
            }
            case ALLOC_FAULT_QUEUE -> r.setId(fd.allocFaultQueue());
            case READ_FAULTS -> {
                Result<List<PageFault>> l = fd.readFaults(q.getReadFaults().getFaultId(), max(q.getReadFaults().getMax()));
                if (!l.isOk()) {
                    r.setErrno(l.error().code);
                } else {
                    for (PageFault f : l.get()) {
                        r.addFaults(dev.iommuemu.proto.v1.PageFault.newBuilder().setFlags(f.flags()).setDevId(f.devId())
                                .setPasid(f.pasid()).setGrpid(f.grpid()).setPerm(f.perm()).setAddr(f.addr())
                                .setLength(f.length()).setCookie(f.cookie()));
                    }
                }
            }
            case PAGE_RESPONSE -> {
                var p = q.getPageResponse();
                errno(r, fd.pageResponse(p.getFaultId(), p.getCookie(), p.getCode()));
            }
            default -> r.setErrno(Errno.EINVAL.code);
        }
        return r.build();
    }

    private static int max(int m) {
        return m == 0 || m > MAX_READ ? MAX_READ : m;
    }

    private static void id(IommufdResponse.Builder r, Result<Integer> res) {
        if (res.isOk()) {
            r.setId(res.get());
        } else {
            r.setErrno(res.error().code);
        }
    }

    private static void errno(IommufdResponse.Builder r, Errno e) {
        if (e != null) {
            r.setErrno(e.code);
        }
    }
}
