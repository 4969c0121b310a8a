package dev.iommuemu.iommufd;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * IOMMU_VEVENTQ_ALLOC (type ARM_SMMUV3): a bounded queue of {@link Vevent}s for one vIOMMU.
 * Every event takes the next sequence number (wrapping from INT_MAX to 0), delivered or not; when
 * the queue is full the event is dropped and one LOST_EVENTS header is queued in its place until
 * the reader catches up.
 */
public final class VeventQueue {
    private final int depth;
    private final Deque<Vevent> q = new ArrayDeque<>();
    private int sequence;
    private boolean lostQueued;

    public VeventQueue(int depth) {
        this.depth = depth;
    }

    public int depth() {
        return depth;
    }

    void add(long[] evt) {
        int seq = sequence;
        sequence = sequence == Integer.MAX_VALUE ? 0 : sequence + 1;
        if (q.size() >= depth) {
            if (!lostQueued) {
                q.addLast(new Vevent(Vevent.LOST_EVENTS, seq, null));
                lostQueued = true;
            }
            return;
        }
        q.addLast(new Vevent(0, seq, evt.clone()));
    }

    /** Up to {@code max} entries, oldest first (read(2) on the queue's fd). */
    public List<Vevent> read(int max) {
        List<Vevent> out = new ArrayList<>();
        while (!q.isEmpty() && out.size() < max) {
            Vevent v = q.removeFirst();
            if (v.lost()) {
                lostQueued = false;
            }
            out.add(v);
        }
        return out;
    }
}
