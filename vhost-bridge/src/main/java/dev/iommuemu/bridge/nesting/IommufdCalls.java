package dev.iommuemu.bridge.nesting;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.domain.PagingDomain;
import dev.iommuemu.domain.Result;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.iommufd.Iommufd;
import dev.iommuemu.iommufd.PageFault;
import dev.iommuemu.iommufd.Vevent;
import java.util.List;

/**
 * Runs an {@link IommufdCall} against a session's device: each is one call of the {@link Iommufd}
 * model, a refusal carried as a positive Linux errno in the {@link Outcome} (not an exception), so
 * both transports report exact codes. The caller holds the session lock ({@code withDevice}).
 */
public final class IommufdCalls {
    /** The most records one read returns. */
    public static final int MAX_READ = 1024;

    private IommufdCalls() {}

    /**
     * What a call produced: errno (0 = done), the new object's id, the commands handled by an
     * invalidation, the bytes an unmap removed, and the records read (null where not read).
     */
    public record Outcome(int errno, int id, int handled, long length, HwInfo hwInfo, List<Vevent> vevents, List<PageFault> faults) {
        static Outcome errno(int e) {
            return new Outcome(e, 0, 0, 0, null, null, null);
        }

        static Outcome of(Errno e) {
            return errno(e == null ? 0 : e.code);
        }

        static Outcome id(Result<Integer> r) {
            return r.isOk() ? new Outcome(0, r.get(), 0, 0, null, null, null) : errno(r.error().code);
        }
    }

    public static Outcome handle(BridgedDevice d, IommufdCall call) {
        if (call instanceof IommufdCall.OpenHost o) {
            d.openIommufd(o.carveBase(), o.carveSize(), o.streamTableLog2() == 0 ? 8 : o.streamTableLog2());
            return Outcome.errno(0);
        }
        Iommufd fd = d.iommufd();
        if (fd == null) {
            return Outcome.errno(Errno.ENODEV.code); // no host opened on this session
        }
        if (call instanceof IommufdCall.Probe p) {
            var pr = fd.core().probe(p.streamId(), p.group() == null || p.group().isEmpty() ? null : p.group());
            return Outcome.errno(pr.isOk() ? 0 : pr.error().code);
        } else if (call instanceof IommufdCall.Bind b) {
            return Outcome.id(fd.bind(b.streamId()));
        } else if (call instanceof IommufdCall.HwInfo h) {
            Result<HwInfo> r = fd.hwInfo(h.devId());
            return r.isOk() ? new Outcome(0, 0, 0, 0, r.get(), null, null) : Outcome.errno(r.error().code);
        } else if (call instanceof IommufdCall.AllocHwpt a) {
            return Outcome.id(a.vste() == null ? fd.allocHwptPaging(a.devId(), a.flags())
                    : fd.allocHwptNested(a.ptId(), a.flags(), a.vste(), a.faultId()));
        } else if (call instanceof IommufdCall.Attach a) {
            return Outcome.of(fd.attach(a.devId(), a.hwptId()));
        } else if (call instanceof IommufdCall.Detach a) {
            return Outcome.of(fd.detach(a.devId()));
        } else if (call instanceof IommufdCall.Map m) {
            PagingDomain p = fd.paging(m.hwptId());
            if (p == null) {
                return Outcome.errno(Errno.ENOENT.code);
            }
            if (m.unmap()) {
                return new Outcome(0, 0, 0, p.unmap(m.iova(), m.length()), null, null, null);
            }
            int prot = (m.read() ? HostPageTable.IOMMU_READ : 0) | (m.write() ? HostPageTable.IOMMU_WRITE : 0);
            return Outcome.of(p.map(m.iova(), m.phys(), m.length(), prot));
        } else if (call instanceof IommufdCall.AllocViommu v) {
            return Outcome.id(fd.allocViommu(v.devId(), v.hwptId()));
        } else if (call instanceof IommufdCall.AllocVdevice v) {
            return Outcome.id(fd.allocVdevice(v.viommuId(), v.devId(), v.virtId()));
        } else if (call instanceof IommufdCall.Invalidate i) {
            Iommufd.InvalidateResult ir = fd.invalidate(i.viommuId(), i.cmds());
            return new Outcome(ir.error() == null ? 0 : ir.error().code, 0, ir.handled(), 0, null, null, null);
        } else if (call instanceof IommufdCall.AllocVeventq v) {
            return Outcome.id(fd.allocVeventq(v.viommuId(), v.depth()));
        } else if (call instanceof IommufdCall.ReadVevents r) {
            Result<List<Vevent>> l = fd.readVevents(r.veventqId(), max(r.max()));
            return l.isOk() ? new Outcome(0, 0, 0, 0, null, l.get(), null) : Outcome.errno(l.error().code);
        } else if (call instanceof IommufdCall.AllocFaultQueue) {
            return new Outcome(0, fd.allocFaultQueue(), 0, 0, null, null, null);
        } else if (call instanceof IommufdCall.ReadFaults r) {
            Result<List<PageFault>> l = fd.readFaults(r.faultId(), max(r.max()));
            return l.isOk() ? new Outcome(0, 0, 0, 0, null, null, l.get()) : Outcome.errno(l.error().code);
        } else if (call instanceof IommufdCall.PageResponse p) {
            return Outcome.of(fd.pageResponse(p.faultId(), p.cookie(), p.code()));
        }
        throw new AssertionError(call);
    }

    private static int max(int m) {
        return m == 0 || m > MAX_READ ? MAX_READ : m;
    }
}
