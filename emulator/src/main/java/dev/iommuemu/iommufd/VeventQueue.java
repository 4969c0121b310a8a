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
    private final int id;
    private final int depth;
    private final Deque<Vevent> q = new ArrayDeque<>();
    private int sequence;
    private boolean lostQueued;

    public VeventQueue(int id, int depth) {
        this.id = id;
        this.depth = depth;
    }

    /** The object id (IOMMU_VEVENTQ_ALLOC out_veventq_id). */
    public int id() {
        return id;
    }

    public int depth() {
        return depth;
    }

    /** Queues one event; whether an entry became readable (the event, or the one LOST_EVENTS header). */
    boolean add(long[] evt) {
        int seq = sequence;
        sequence = sequence == Integer.MAX_VALUE ? 0 : sequence + 1;
        if (q.size() >= depth) {
            if (!lostQueued) {
                q.addLast(new Vevent(Vevent.LOST_EVENTS, seq, null));
                lostQueued = true;
                return true;
            }
            return false;
        }
        q.addLast(new Vevent(0, seq, evt.clone()));
        return true;
    }

    /** The entries not yet read, oldest first (saved state). */
    public List<Vevent> queued() {
        return List.copyOf(q);
    }

    /** The sequence number the next event takes. */
    public int nextSequence() {
        return sequence;
    }

    /**
     * Takes saved contents (checked by the caller: at most {@code depth} events plus one
     * LOST_EVENTS header, which is then the last entry); whether a LOST_EVENTS header is queued
     * follows from them.
     */
    void restore(List<Vevent> entries, int nextSequence) {
        q.clear();
        q.addAll(entries);
        sequence = nextSequence;
        lostQueued = !entries.isEmpty() && entries.get(entries.size() - 1).lost();
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
