package dev.iommuemu.smmuv3.cmdq;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import java.util.ArrayList;
import java.util.List;

/**
 * The VMM-side invalidations that CFGI_* and TLBI_* commands call for, held until the next
 * CMD_SYNC (or the end of the batch of commands the guest published) and then sent together.
 * IHI 0070 §4.7.3: an invalidation command is only guaranteed complete once a subsequent CMD_SYNC
 * completes, so the VMM's cached translations may be dropped at that point rather than one round
 * trip per command. Adjacent ranges of the same endpoint merge (Linux unmaps a range with one
 * TLBI_NH_VA per page); a whole-space invalidation absorbs everything; more than {@link #LIMIT}
 * distinct ranges collapse into one invalidation of everything, so the list stays bounded whatever
 * the guest queues.
 */
public final class PendingInvalidations {
    static final int LIMIT = 64;

    private final DmaHost host;
    private final List<IotlbInvalidation> pending = new ArrayList<>();
    private boolean all;
    private long flushes;

    public PendingInvalidations(DmaHost host) {
        this.host = host;
    }

    /** Records an invalidation to send at the next {@link #flush()}. */
    public void add(IotlbInvalidation inv) {
        if (all) {
            return;
        }
        if (inv.endpoint() == IotlbInvalidation.ALL_ENDPOINTS && inv.everything()) {
            all = true;
            pending.clear();
            return;
        }
        if (!pending.isEmpty()) {
            IotlbInvalidation last = pending.get(pending.size() - 1);
            if (last.equals(inv) || last.endpoint() == inv.endpoint() && last.everything()) {
                return;
            }
            if (last.endpoint() == inv.endpoint() && !inv.everything() && last.iova() + last.size() == inv.iova()
                    && Long.compareUnsigned(last.size() + inv.size(), last.size()) > 0) {
                pending.set(pending.size() - 1, new IotlbInvalidation(last.endpoint(), last.iova(), last.size() + inv.size()));
                return;
            }
        }
        if (pending.size() == LIMIT) {
            all = true;
            pending.clear();
            return;
        }
        pending.add(inv);
    }

    /** Sends what is pending to the VMM; returns once it has dropped those translations. */
    public void flush() {
        if (all) {
            all = false;
            flushes++;
            host.invalidate(IotlbInvalidation.all());
            return;
        }
        if (pending.isEmpty()) {
            return;
        }
        flushes++;
        for (IotlbInvalidation inv : pending) {
            host.invalidate(inv);
        }
        pending.clear();
    }

    /** Whether nothing waits to be sent. */
    public boolean isEmpty() {
        return !all && pending.isEmpty();
    }

    /** How many flushes sent something (for counters and tests). */
    public long flushes() {
        return flushes;
    }
}
