package dev.iommuemu.iommufd;

import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.HostSmmu;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.priq.PageRequest;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * IOMMU_FAULT_QUEUE_ALLOC: recoverable faults of the hwpts allocated with it, and their page
 * responses (struct iommu_hwpt_page_response {cookie, code}). A response to a stall resolves the
 * transaction with CMD_RESUME (IHI 0070 §4.7.1): SUCCESS retries it, INVALID and FAILURE terminate
 * it. A PRI page request group (§8; PCIe PRI) shares one cookie across its requests; its response,
 * once the group's last request has arrived, is CMD_PRI_RESP (§4.5.2) with Success, Invalid
 * request or Response failure. An unknown, incomplete or answered cookie, or another code, is
 * {@link Errno#EINVAL}.
 */
public final class FaultQueue {
    /** enum iommufd_page_response_code IOMMUFD_PAGE_RESP_SUCCESS / INVALID; FAILURE as the core's. */
    public static final int RESP_SUCCESS = 0;
    public static final int RESP_INVALID = 1;
    public static final int RESP_FAILURE = 2;

    /**
     * A cookie owed a response: a held stall ({@code stag >= 0}) or a complete PRI group
     * ({@code prgIndex >= 0}).
     */
    public record Pending(int cookie, int streamId, int stag, int ssid, int prgIndex) {}

    /** A PRI group whose last request has not arrived, and the cookie its requests carry. */
    public record Group(int streamId, int ssid, int prgIndex) {}

    /** An open PRI group and its cookie (saved state). */
    public record OpenGroup(Group group, int cookie) {}

    /** What a fault queue holds (saved state, docs/device-state-virtio.md). */
    public record State(List<PageFault> queued, List<Pending> pending, List<OpenGroup> openGroups, int nextCookie) {
        public State {
            queued = List.copyOf(queued);
            pending = List.copyOf(pending);
            openGroups = List.copyOf(openGroups);
        }
    }

    /** Faults delivered or waiting, and open PRI groups, are each bounded by this. */
    public static final int CAPACITY = 1024;

    private final int id;
    private final HostSmmu host;
    private final Deque<PageFault> q = new ArrayDeque<>();
    private final Map<Integer, Pending> pending = new HashMap<>();
    private final Map<Group, Integer> openGroups = new HashMap<>();
    private int nextCookie = 1;

    FaultQueue(int id, HostSmmu host) {
        this.id = id;
        this.host = host;
    }

    /** The object id (IOMMU_FAULT_QUEUE_ALLOC out_fault_id). */
    public int id() {
        return id;
    }

    /** A stall; {@code false} when the queue is full (the caller terminates it). */
    boolean add(int devId, int streamId, boolean ssv, int ssid, int stag, int perm, long addr) {
        if (q.size() >= CAPACITY || pending.size() >= CAPACITY) {
            return false;
        }
        int cookie = nextCookie++;
        pending.put(cookie, new Pending(cookie, streamId, stag, -1, -1));
        q.addLast(new PageFault(PageFault.LAST_PAGE | (ssv ? PageFault.PASID_VALID : 0), devId, ssv ? ssid : 0, stag,
                perm, addr & ~0xfffL, 0, cookie));
        return true;
    }

    /**
     * One PRI page request; the group's cookie becomes answerable with its last request. {@code
     * false} when the queue is full (the host then answers the group's last request with Failure).
     */
    boolean addPageRequest(int devId, PageRequest r) {
        Group g = new Group(r.streamId(), r.ssid(), r.prgIndex());
        Integer cookie = openGroups.get(g);
        if (q.size() >= CAPACITY || pending.size() >= CAPACITY || (cookie == null && openGroups.size() >= CAPACITY)) {
            if (cookie != null && r.last()) {
                openGroups.remove(g);
            }
            return false;
        }
        if (cookie == null) {
            cookie = nextCookie++;
            openGroups.put(g, cookie);
        }
        if (r.last()) {
            openGroups.remove(g);
            pending.put(cookie, new Pending(cookie, r.streamId(), -1, r.ssid(), r.prgIndex()));
        }
        boolean ssv = r.ssid() >= 0;
        int perm = (r.read() ? PageFault.PERM_READ : 0) | (r.write() ? PageFault.PERM_WRITE : 0)
                | (r.exec() ? PageFault.PERM_EXEC : 0) | (r.priv() ? PageFault.PERM_PRIV : 0);
        q.addLast(new PageFault((r.last() ? PageFault.LAST_PAGE : 0) | (ssv ? PageFault.PASID_VALID : 0), devId,
                ssv ? r.ssid() : 0, r.prgIndex(), perm, r.address() & ~0xfffL, 0, cookie));
        return true;
    }

    /** The queue's state: faults not yet read, cookies owed a response and open PRI groups, by cookie. */
    public State state() {
        List<Pending> p = new ArrayList<>(pending.values());
        p.sort((a, b) -> Integer.compareUnsigned(a.cookie(), b.cookie()));
        List<OpenGroup> g = new ArrayList<>();
        openGroups.forEach((k, v) -> g.add(new OpenGroup(k, v)));
        g.sort((a, b) -> Integer.compareUnsigned(a.cookie(), b.cookie()));
        return new State(List.copyOf(q), p, g, nextCookie);
    }

    /**
     * Why {@code s} cannot be this queue's state, as a sentence, or {@code null}. {@code boundSids}
     * are the StreamIDs of the context's bound devices and {@code sidOfDev} gives a device object's
     * StreamID (-1: no device): every entry names a device that was bound when it was queued, and a
     * page response resumes or answers exactly that StreamID, so one the context does not hold is
     * refused rather than resumed later.
     */
    String refusal(State s, java.util.Set<Integer> boundSids, java.util.function.IntUnaryOperator sidOfDev) {
        String why = refusal(s);
        if (why != null) {
            return why;
        }
        Map<Integer, Pending> byCookie = new HashMap<>();
        for (Pending p : s.pending()) {
            String what = "fault queue " + id + " owes a response to cookie " + Integer.toUnsignedString(p.cookie());
            String bad = entryRefusal(p.streamId(), p.ssid(), boundSids);
            if (bad != null) {
                return what + " " + bad;
            }
            // A stall's STAG (IHI 0070 §7.3.13-16 event record STAG[15:0]) or a PRI group's index
            // (§8.1 PRI queue entry PRGIndex[8:0]); a Pending is one or the other, never both.
            boolean stall = p.stag() >= 0 && p.prgIndex() == -1 && p.ssid() == -1 && fits(EventRecord.STAG, p.stag());
            boolean pri = p.stag() == -1 && p.prgIndex() >= 0 && fits(PageRequest.PRGINDEX, p.prgIndex());
            if (!stall && !pri) {
                return what + " with STAG " + p.stag() + ", PRG index " + p.prgIndex() + " and SubstreamID " + p.ssid()
                        + ", which is neither a stall (a " + EventRecord.STAG.width() + "-bit STAG) nor a PRI group (a "
                        + PageRequest.PRGINDEX.width() + "-bit PRG index)";
            }
            byCookie.put(p.cookie(), p);
        }
        for (OpenGroup g : s.openGroups()) {
            byCookie.put(g.cookie(), new Pending(g.cookie(), g.group().streamId(), -1, g.group().ssid(), g.group().prgIndex()));
        }
        java.util.Set<Group> groups = new java.util.HashSet<>();
        for (OpenGroup g : s.openGroups()) {
            String what = "fault queue " + id + " has an open PRI group with cookie " + Integer.toUnsignedString(g.cookie());
            String bad = entryRefusal(g.group().streamId(), g.group().ssid(), boundSids);
            if (bad != null) {
                return what + " " + bad;
            }
            if (g.group().prgIndex() < 0 || !fits(PageRequest.PRGINDEX, g.group().prgIndex()) || !groups.add(g.group())) {
                return what + " and PRG index " + g.group().prgIndex() + ", which is not a " + PageRequest.PRGINDEX.width()
                        + "-bit PRG index or is open twice (IHI 0070 §8.1)";
            }
        }
        for (PageFault f : s.queued()) {
            String what = "fault queue " + id + " holds a fault with cookie " + Integer.toUnsignedString(f.cookie());
            int sid = sidOfDev.applyAsInt(f.devId());
            if (sid < 0) {
                return "fault queue " + id + " holds a fault of object " + f.devId() + ", which is not a device";
            }
            // struct iommu_hwpt_pgfault: flags PASID_VALID, LAST_PAGE; perm READ, WRITE, EXEC, PRIV;
            // grpid a STAG or PRG index, pasid a SubstreamID with PASID_VALID; the page's address
            if ((f.flags() & ~(PageFault.PASID_VALID | PageFault.LAST_PAGE)) != 0
                    || (f.perm() & ~(PageFault.PERM_READ | PageFault.PERM_WRITE | PageFault.PERM_EXEC | PageFault.PERM_PRIV)) != 0
                    || !fits(EventRecord.STAG, f.grpid()) || ((f.flags() & PageFault.PASID_VALID) == 0 ? f.pasid() != 0
                            : !fits(PageRequest.SUBSTREAMID, f.pasid())) || (f.addr() & 0xfffL) != 0 || f.length() != 0) {
                return what + " whose flags, permissions, group ID, PASID or address this queue never writes";
            }
            Pending p = byCookie.get(f.cookie());
            if (p != null && (p.streamId() != sid || f.grpid() != (p.stag() >= 0 ? p.stag() : p.prgIndex()))) {
                return what + " of StreamID " + Integer.toUnsignedString(sid) + " with group ID " + f.grpid()
                        + ", but its cookie is owed or open for another StreamID or group";
            }
        }
        return null;
    }

    /** An entry's StreamID must be a bound device's, its SubstreamID none (-1) or one of the SubstreamID field. */
    private static String entryRefusal(int streamId, int ssid, java.util.Set<Integer> boundSids) {
        if (!boundSids.contains(streamId)) {
            return "for StreamID " + Integer.toUnsignedString(streamId) + ", which is no device bound to this context";
        }
        if (ssid < -1 || (ssid >= 0 && !fits(PageRequest.SUBSTREAMID, ssid))) {
            return "with SubstreamID " + ssid + ", beyond the " + PageRequest.SUBSTREAMID.width() + "-bit SubstreamID";
        }
        return null;
    }

    private static boolean fits(dev.iommuemu.field.Field f, int v) {
        return v >= 0 && (v & ~f.valueMask()) == 0;
    }

    /** The checks of {@code s} alone: its bounds and cookies. */
    private String refusal(State s) {
        if (s.queued().size() > CAPACITY || s.pending().size() > CAPACITY || s.openGroups().size() > CAPACITY) {
            return "fault queue " + id + " holds more than its " + CAPACITY + " entries";
        }
        java.util.Set<Integer> cookies = new java.util.HashSet<>();
        for (Pending p : s.pending()) {
            if (!cookies.add(p.cookie()) || Integer.compareUnsigned(p.cookie(), s.nextCookie()) >= 0 || p.cookie() == 0) {
                return "fault queue " + id + " owes a response to cookie " + Integer.toUnsignedString(p.cookie())
                        + ", which it could not have issued";
            }
        }
        for (OpenGroup g : s.openGroups()) {
            if (!cookies.add(g.cookie()) || Integer.compareUnsigned(g.cookie(), s.nextCookie()) >= 0 || g.cookie() == 0) {
                return "fault queue " + id + " has an open PRI group with cookie " + Integer.toUnsignedString(g.cookie())
                        + ", which it could not have issued";
            }
        }
        for (PageFault f : s.queued()) {
            if (f.cookie() == 0 || Integer.compareUnsigned(f.cookie(), s.nextCookie()) >= 0) {
                return "fault queue " + id + " holds a fault with cookie " + Integer.toUnsignedString(f.cookie())
                        + ", which it could not have issued";
            }
        }
        return null;
    }

    /** Takes {@code s} (checked by {@link #refusal}). */
    void restore(State s) {
        q.clear();
        q.addAll(s.queued());
        pending.clear();
        s.pending().forEach(p -> pending.put(p.cookie(), p));
        openGroups.clear();
        s.openGroups().forEach(g -> openGroups.put(g.group(), g.cookie()));
        nextCookie = s.nextCookie();
    }

    /** Up to {@code max} faults, oldest first. */
    public List<PageFault> read(int max) {
        List<PageFault> out = new ArrayList<>();
        while (!q.isEmpty() && out.size() < max) {
            out.add(q.removeFirst());
        }
        return out;
    }

    /** Faults delivered but not yet answered. */
    public int outstanding() {
        return pending.size();
    }

    /** The response to the fault with {@code cookie}. */
    public Errno respond(int cookie, int code) {
        if (code != RESP_SUCCESS && code != RESP_INVALID && code != RESP_FAILURE) {
            return Errno.EINVAL;
        }
        Pending p = pending.remove(cookie);
        if (p == null) {
            return Errno.EINVAL;
        }
        if (p.stag() >= 0) {
            host.resume(p.streamId(), p.stag(), code == RESP_SUCCESS);
        } else {
            host.priResponse(p.streamId(), p.ssid(), p.prgIndex(), code == RESP_SUCCESS ? Command.PRI_RESP_SUCCESS
                    : code == RESP_INVALID ? Command.PRI_RESP_INVALID : Command.PRI_RESP_FAILURE);
        }
        return null;
    }
}
