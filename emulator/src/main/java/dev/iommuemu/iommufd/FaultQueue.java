package dev.iommuemu.iommufd;

import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.HostSmmu;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * IOMMU_FAULT_QUEUE_ALLOC: recoverable faults of the hwpts allocated with it, and their page
 * responses (struct iommu_hwpt_page_response {cookie, code}). A response resolves the stalled
 * transaction with CMD_RESUME (IHI 0070 §4.7.1): SUCCESS retries it, INVALID and FAILURE
 * terminate it. An unknown cookie or code is {@link Errno#EINVAL}.
 */
public final class FaultQueue {
    /** enum iommufd_page_response_code IOMMUFD_PAGE_RESP_SUCCESS / INVALID; FAILURE as the core's. */
    public static final int RESP_SUCCESS = 0;
    public static final int RESP_INVALID = 1;
    public static final int RESP_FAILURE = 2;

    private record Pending(int streamId, int stag) {}

    private final HostSmmu host;
    private final Deque<PageFault> q = new ArrayDeque<>();
    private final Map<Integer, Pending> pending = new HashMap<>();
    private int nextCookie = 1;

    FaultQueue(HostSmmu host) {
        this.host = host;
    }

    void add(int devId, int streamId, boolean ssv, int ssid, int stag, int perm, long addr) {
        int cookie = nextCookie++;
        pending.put(cookie, new Pending(streamId, stag));
        q.addLast(new PageFault(PageFault.LAST_PAGE | (ssv ? PageFault.PASID_VALID : 0), devId, ssv ? ssid : 0, stag,
                perm, addr & ~0xfffL, 0, cookie));
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
        host.resume(p.streamId(), p.stag(), code == RESP_SUCCESS);
        return null;
    }
}
