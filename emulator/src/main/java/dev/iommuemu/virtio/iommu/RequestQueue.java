package dev.iommuemu.virtio.iommu;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.virtio.iommu.Structs.Attach;
import dev.iommuemu.virtio.iommu.Structs.AttachTable;
import dev.iommuemu.virtio.iommu.Structs.Invalidate;
import dev.iommuemu.virtio.iommu.Structs.PageResp;
import dev.iommuemu.virtio.iommu.Structs.Detach;
import dev.iommuemu.virtio.iommu.Structs.Map;
import dev.iommuemu.virtio.iommu.Structs.Probe;
import dev.iommuemu.virtio.iommu.Structs.Unmap;
import dev.iommuemu.virtqueue.DescriptorChain;

/**
 * Decodes one request chain of the request virtqueue, runs it against the {@link DomainTable} and
 * writes the reply (virtio spec, IOMMU device, "Device operations": every request is a
 * device-readable part starting with {@code virtio_iommu_req_head} and a device-writable part
 * holding the {@code virtio_iommu_req_tail}; a message may be split over descriptors in any way,
 * §2.7.4).
 *
 * <p>Where the tail goes: the tail is the first 4 bytes of the device-writable part, except for
 * PROBE, whose writable part is {@code properties[probe_size]} then the tail. The used length
 * is the number of bytes written from the start of the writable part.
 *
 * <p>What a bad request gets:
 * <ul>
 *   <li>a malformed chain or a device-readable part too short for its type: DEVERR, when a tail
 *       can be placed; otherwise the chain is returned unwritten (used length 0), as "Device
 *       operations" prescribes when the device cannot find the tail;</li>
 *   <li>an unknown type, or PROBE without VIRTIO_IOMMU_F_PROBE: returned unwritten with used
 *       length 0 (device requirements of "Device operations" and "PROBE request");</li>
 *   <li>a request whose device-writable part cannot hold the tail is not executed and is returned
 *       unwritten.</li>
 * </ul>
 */
final class RequestQueue {
    private final GuestMemory mem;
    private final DomainTable table;
    private final VirtioIommuCounters counters;
    private final int probeSize;
    /** Whether the device offers NESTING_SMMUV3 (then types 6-8 are known; else they stay unknown types). */
    private final boolean nestingOffered;
    private long negotiated;

    RequestQueue(GuestMemory mem, DomainTable table, VirtioIommuCounters counters, int probeSize) {
        this(mem, table, counters, probeSize, false);
    }

    RequestQueue(GuestMemory mem, DomainTable table, VirtioIommuCounters counters, int probeSize, boolean nestingOffered) {
        this.mem = mem;
        this.table = table;
        this.counters = counters;
        this.probeSize = probeSize;
        this.nestingOffered = nestingOffered;
    }

    void setNegotiated(long features) {
        negotiated = features;
    }

    /** Handles one chain; returns the used length to report. */
    int handle(DescriptorChain c) {
        int type = -1;
        byte[] head = new byte[Structs.Head.SIZE];
        if (c.readableLength() >= Structs.Head.SIZE && c.read(mem, 0, head, 0, head.length)) {
            type = head[0] & 0xff;
        }
        if (!c.ok()) {
            counters.malformedChains++;
            return reply(c, type, Status.DEVERR, null);
        }
        int readable;
        switch (type) {
            case Structs.T_ATTACH -> readable = Attach.READABLE;
            case Structs.T_DETACH -> readable = Detach.READABLE;
            case Structs.T_MAP -> readable = Map.READABLE;
            case Structs.T_UNMAP -> readable = Unmap.READABLE;
            case Structs.T_PROBE -> {
                if (!VirtioIommuFeatures.has(negotiated, VirtioIommuFeatures.PROBE)) {
                    counters.probeNotNegotiated++;
                    return 0;
                }
                readable = Probe.READABLE;
            }
            case Structs.T_ATTACH_TABLE, Structs.T_INVALIDATE, Structs.T_PAGE_RESP -> {
                if (!nestingOffered) {
                    counters.unknownType++;
                    return 0; // a device without paravirtual nesting does not know these types
                }
                // docs/nesting.md §6: known types; without the feature negotiated they answer UNSUPP.
                readable = type == Structs.T_ATTACH_TABLE ? AttachTable.READABLE
                        : type == Structs.T_INVALIDATE ? Invalidate.HEADER : PageResp.READABLE;
            }
            case -1 -> {
                return reply(c, -1, Status.DEVERR, null); // not even a head
            }
            default -> {
                counters.unknownType++;
                return 0;
            }
        }
        if (tailOffset(type, c.writableLength()) < 0) {
            counters.noReply++;
            return 0;
        }
        byte[] req = new byte[readable];
        if (c.readableLength() < readable || !c.read(mem, 0, req, 0, readable)) {
            return reply(c, type, Status.DEVERR, null); // too short for its type
        }
        if (type < counters.requests.length) {
            counters.requests[type]++;
        }
        long[] w = Structs.toWords(req, (readable + 7) / 8);
        return switch (type) {
            case Structs.T_ATTACH -> reply(c, type, table.attach(Attach.DOMAIN.getInt(w), Attach.ENDPOINT.getInt(w),
                    Attach.FLAGS.getInt(w), Attach.RESERVED.getInt(w)), null);
            case Structs.T_DETACH -> reply(c, type, table.detach(Detach.DOMAIN.getInt(w), Detach.ENDPOINT.getInt(w)), null);
            case Structs.T_MAP -> reply(c, type, table.map(Map.DOMAIN.getInt(w), Map.VIRT_START.get(w), Map.VIRT_END.get(w),
                    Map.PHYS_START.get(w), Map.FLAGS.getInt(w)), null);
            case Structs.T_UNMAP -> reply(c, type, table.unmap(Unmap.DOMAIN.getInt(w), Unmap.VIRT_START.get(w),
                    Unmap.VIRT_END.get(w), Unmap.RESERVED.getInt(w)), null);
            case Structs.T_ATTACH_TABLE -> reply(c, type, table.attachTable(AttachTable.DOMAIN.getInt(w),
                    AttachTable.ENDPOINT.getInt(w), AttachTable.FORMAT.getInt(w), AttachTable.RESERVED.getInt(w),
                    AttachTable.FLAGS.getInt(w), AttachTable.RESERVED1.getInt(w),
                    new long[] {AttachTable.STE0.get(w), AttachTable.STE1.get(w)}), null);
            case Structs.T_INVALIDATE -> invalidate(c, w);
            case Structs.T_PAGE_RESP -> reply(c, type, table.pageResp(PageResp.ENDPOINT.getInt(w), PageResp.FLAGS.getInt(w),
                    PageResp.PASID.getInt(w), PageResp.GRPID.getInt(w), PageResp.CODE.getInt(w), PageResp.RESERVED.getInt(w)), null);
            default -> probe(c, Probe.ENDPOINT.getInt(w));
        };
    }

    /**
     * A MAP or UNMAP the VMM served itself (docs/protocol.md §4.13), applied through the same
     * {@link DomainTable#map} / {@link DomainTable#unmap} as a chain of this queue and counted as one
     * (its type among the requests, its status among the statuses), with no reply to write: the VMM
     * wrote it. Another type is no request the hand-off serves: {@link Status#INVAL}, counted as an
     * unknown type.
     */
    int applyLogged(VmmRequest r) {
        if (r.type() != Structs.T_MAP && r.type() != Structs.T_UNMAP) {
            counters.unknownType++;
            return Status.INVAL;
        }
        counters.requests[r.type()]++;
        int status = r.type() == Structs.T_MAP
                ? table.map(r.domain(), r.virtStart(), r.virtEnd(), r.physStart(), r.flags(), false)
                : table.unmap(r.domain(), r.virtStart(), r.virtEnd(), r.flags());
        counters.statuses[status]++;
        return status;
    }

    /**
     * INVALIDATE (docs/nesting.md §6): {@code count} commands follow the 16-byte header. More than
     * {@link Invalidate#MAX_COMMANDS} is INVAL (nothing read or run); a readable part shorter than
     * the commands it announces is DEVERR. The reply holds {@code handled} before the tail.
     */
    private int invalidate(DescriptorChain c, long[] header) {
        long count = Invalidate.COUNT.get(header);
        int status;
        int handled = 0;
        if (Invalidate.RESERVED.get(header) != 0 || count > Invalidate.MAX_COMMANDS) {
            status = Status.INVAL;
        } else if (c.writableLength() < Invalidate.WRITABLE) {
            status = Status.DEVERR; // no room for handled
        } else {
            int n = (int) count;
            byte[] body = new byte[n * Invalidate.CMD_SIZE];
            if (c.readableLength() < Invalidate.HEADER + (long) body.length
                    || !c.read(mem, Invalidate.HEADER, body, 0, body.length)) {
                return reply(c, Structs.T_INVALIDATE, Status.DEVERR, null);
            }
            DomainTable.InvalidateOutcome r = table.invalidateTable(Invalidate.DOMAIN.getInt(header), Structs.toWords(body, 2 * n));
            status = r.status();
            handled = r.handled();
        }
        long[] h = new long[1];
        Invalidate.HANDLED.set(h, handled);
        return reply(c, Structs.T_INVALIDATE, status, Structs.toBytes(h, 4));
    }

    private int probe(DescriptorChain c, int endpoint) {
        if (c.writableLength() < (long) probeSize + Structs.Tail.SIZE) {
            // "PROBE request": a properties buffer smaller than probe_size gets no property and INVAL.
            return reply(c, Structs.T_PROBE, Status.INVAL, null);
        }
        byte[] props = new byte[probeSize];
        int status = table.probe(endpoint, props);
        return reply(c, Structs.T_PROBE, status, status == Status.OK ? props : null);
    }

    /**
     * Where the tail lies in the writable part of a request of {@code type} (-1: unknown), or -1
     * when the part cannot hold one.
     */
    private int tailOffset(int type, long writable) {
        if (type == Structs.T_PROBE && VirtioIommuFeatures.has(negotiated, VirtioIommuFeatures.PROBE)) {
            if (writable >= (long) probeSize + Structs.Tail.SIZE) {
                return probeSize;
            }
            return writable >= Structs.Tail.SIZE ? (int) writable - Structs.Tail.SIZE : -1;
        }
        if (type == Structs.T_INVALIDATE && nestingOffered) {
            // {le32 handled; tail}; a part too short for handled still gets the tail at its end.
            if (writable >= Invalidate.WRITABLE) {
                return Invalidate.WRITABLE - Structs.Tail.SIZE;
            }
            return writable >= Structs.Tail.SIZE ? (int) writable - Structs.Tail.SIZE : -1;
        }
        return writable >= Structs.Tail.SIZE ? 0 : -1;
    }

    /** Writes {@code properties} (or zeros before the tail) and the tail; returns the used length. */
    private int reply(DescriptorChain c, int type, int status, byte[] properties) {
        int tail = tailOffset(type, c.writableLength());
        if (tail < 0) {
            counters.noReply++;
            return 0;
        }
        byte[] buf = new byte[tail + Structs.Tail.SIZE];
        if (properties != null) {
            System.arraycopy(properties, 0, buf, 0, Math.min(properties.length, tail));
        }
        long[] t = new long[1];
        Structs.Tail.STATUS.set(t, status); // reserved bytes of the tail are zero (device requirement)
        System.arraycopy(Structs.toBytes(t, Structs.Tail.SIZE), 0, buf, tail, Structs.Tail.SIZE);
        if (!c.write(mem, 0, buf, 0, buf.length)) {
            counters.noReply++;
            return 0;
        }
        counters.statuses[status]++;
        if (status == Status.DEVERR) {
            counters.deverrReplies++;
        }
        return buf.length;
    }
}
