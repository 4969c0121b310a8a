package dev.iommuemu.bridge.session;

import dev.iommuemu.bridge.device.Finding;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A session's findings about the guest's driver (SMMUv3 strict mode, {@link Finding}), reported
 * as they are made: each is logged as one line (at most {@link #LINES_PER_SECOND} a second, then
 * one line saying how many were not logged), published on the control API's event stream (kind
 * {@link BridgeEvent#COHERENCY_VIOLATION}), and kept (the last {@link #KEPT}) for the control
 * API's Violations; at the session's end a summary line counts them by kind. Thread-safe: the
 * model reports under the session lock, the control API reads from its own threads.
 */
public final class SessionFindings {
    private static final Logger LOG = Logger.getLogger(SessionFindings.class.getName());
    /** Log lines per second per session; the rest are counted and said in one line. */
    public static final int LINES_PER_SECOND = 10;
    /** Findings kept for the control API. */
    public static final int KEPT = 256;

    private final long session;
    private final Consumer<BridgeEvent> publish;
    private final LongSupplier nanos;
    private final Deque<Finding> recent = new ArrayDeque<>();
    private final Map<String, Long> byKind = new LinkedHashMap<>();
    private boolean enabled;
    private long total;
    private Finding first;
    private long windowStart;
    private int linesInWindow;
    private long suppressed;
    private long suppressedTotal;

    public SessionFindings(long session, Consumer<BridgeEvent> publish) {
        this(session, publish, System::nanoTime);
    }

    /** With a clock for the rate limit (tests). */
    SessionFindings(long session, Consumer<BridgeEvent> publish, LongSupplier nanos) {
        this.session = session;
        this.publish = publish;
        this.nanos = nanos;
        this.windowStart = nanos.getAsLong();
    }

    /** The device makes findings (its strict mode is on): the session's end is summarised. */
    synchronized void enable(boolean on) {
        enabled = on;
    }

    /** Whether the session's device makes findings. */
    public synchronized boolean enabled() {
        return enabled;
    }

    /** A new finding: counted, kept, logged (rate-limited) and published. */
    public void found(Finding f) {
        String line = null;
        String suppressedLine = null;
        synchronized (this) {
            total++;
            byKind.merge(f.kind(), 1L, Long::sum);
            if (first == null) {
                first = f;
            }
            if (recent.size() == KEPT) {
                recent.removeFirst();
            }
            recent.addLast(f);
            long now = nanos.getAsLong();
            if (now - windowStart >= 1_000_000_000L) {
                windowStart = now;
                linesInWindow = 0;
                if (suppressed > 0) {
                    suppressedLine = suppressedLine();
                }
            }
            if (linesInWindow < LINES_PER_SECOND) {
                linesInWindow++;
                line = "session " + session + ": strict mode finding: " + f.detail();
            } else {
                suppressed++;
                suppressedTotal++;
            }
        }
        // Each a whole log record: the daemon's handler writes one record per line (LogFormat).
        if (suppressedLine != null) {
            LOG.warning(suppressedLine);
        }
        if (line != null) {
            LOG.warning(line);
        }
        publish.accept(new BridgeEvent(System.currentTimeMillis(), session, BridgeEvent.COHERENCY_VIOLATION, f.detail(), f));
    }

    private String suppressedLine() {
        String s = "session " + session + ": " + suppressed + " more strict mode finding" + (suppressed == 1 ? "" : "s")
                + " not logged (more than " + LINES_PER_SECOND + " a second; iommu-emu-ctl violations lists the last "
                + KEPT + ")";
        suppressed = 0;
        return s;
    }

    /** The findings kept, oldest first. */
    public synchronized List<Finding> recent() {
        return new ArrayList<>(recent);
    }

    /** Findings made in the session. */
    public synchronized long total() {
        return total;
    }

    /** Findings by kind, in the order each kind was first found. */
    public synchronized Map<String, Long> byKind() {
        return new LinkedHashMap<>(byKind);
    }

    /**
     * The session's end: one summary line, e.g. "session 3: strict mode found 3 findings: 1 TLB,
     * 1 CD, 1 STE; first: TLB at SID 0x5 ...". Nothing when the device makes no findings.
     */
    void summarise() {
        String s;
        String pending = null;
        synchronized (this) {
            if (!enabled && total == 0) {
                return;
            }
            if (suppressed > 0) {
                pending = suppressedLine();
            }
            s = summary();
        }
        if (pending != null) {
            LOG.warning(pending);
        }
        LOG.log(total == 0 ? Level.INFO : Level.WARNING, s);
    }

    /** The summary line. */
    synchronized String summary() {
        if (total == 0) {
            return "session " + session + ": strict mode found no findings";
        }
        StringBuilder sb = new StringBuilder("session ").append(session).append(": strict mode found ").append(total)
                .append(total == 1 ? " finding: " : " findings: ");
        String sep = "";
        for (Map.Entry<String, Long> e : byKind.entrySet()) {
            sb.append(sep).append(e.getValue()).append(' ').append(e.getKey());
            sep = ", ";
        }
        if (suppressedTotal > 0) {
            sb.append(" (").append(suppressedTotal).append(" not logged: rate limit)");
        }
        return sb.append("; first: ").append(first.detail()).toString();
    }
}
