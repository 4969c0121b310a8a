package dev.iommuemu.smmuv3.translate;

import dev.iommuemu.dma.DmaAccess;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Transactions held by the stall fault model (IHI 0070 §3.12.2) until CMD_RESUME or
 * CMD_STALL_TERM. Each is identified by its StreamID and STAG (§4.7.1: STAG is unique among the
 * stream's outstanding stalls). At most SMMU_IDR5.STALL_MAX are held; beyond that a stall-enabled
 * fault terminates instead (§3.12.2).
 */
public final class StallTable {
    /** One held transaction. */
    public record Stalled(int streamId, int ssid, int stag, long iova, DmaAccess access) {}

    private final int max;
    private final Map<Long, Stalled> held = new LinkedHashMap<>();
    private int nextStag;

    public StallTable(int max) {
        this.max = max;
    }

    private static long key(int sid, int stag) {
        return ((long) sid << 16) | (stag & 0xffff);
    }

    /** A free STAG for {@code sid}, or -1 when STALL_MAX transactions are already held. */
    public int allocate(int sid) {
        if (held.size() >= max) {
            return -1;
        }
        for (int i = 0; i < 0x10000; i++) {
            int stag = (nextStag + i) & 0xffff;
            if (!held.containsKey(key(sid, stag))) {
                nextStag = stag + 1;
                return stag;
            }
        }
        return -1;
    }

    /** Whether {@code (sid, stag)} is still held. */
    public boolean held(int sid, int stag) {
        return held.containsKey(key(sid, stag));
    }

    public void hold(Stalled s) {
        held.put(key(s.streamId(), s.stag()), s);
    }

    /** CMD_RESUME (§4.7.1): removes and returns the transaction, or {@code null} when none is held. */
    public Stalled resume(int sid, int stag) {
        return held.remove(key(sid, stag));
    }

    /** CMD_STALL_TERM (§4.7.2): removes and returns every transaction of {@code sid}. */
    public List<Stalled> terminate(int sid) {
        List<Stalled> out = new ArrayList<>();
        held.values().removeIf(s -> {
            if (s.streamId() == sid) {
                out.add(s);
                return true;
            }
            return false;
        });
        return out;
    }

    /** Every held transaction, removed (an SMMU disable terminates them). */
    public List<Stalled> drain() {
        List<Stalled> out = new ArrayList<>(held.values());
        held.clear();
        return out;
    }

    public int size() {
        return held.size();
    }

    /** The held transactions, oldest first (device state, docs/device-state.md). */
    public List<Stalled> held() {
        return List.copyOf(held.values());
    }

    /** Where {@link #allocate} starts looking for a free STAG (device state: it decides the next STAG). */
    public int stagCursor() {
        return nextStag;
    }

    /** The capacity: STALL_MAX transactions. */
    public int capacity() {
        return max;
    }

    /**
     * Replaces the held transactions and the STAG cursor (a device-state restore, already validated:
     * at most {@link #capacity()} transactions, each (StreamID, STAG) once).
     */
    public void restore(List<Stalled> transactions, int stagCursor) {
        held.clear();
        for (Stalled s : transactions) {
            hold(s);
        }
        nextStag = stagCursor;
    }
}
