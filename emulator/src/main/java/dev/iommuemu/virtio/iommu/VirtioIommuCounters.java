package dev.iommuemu.virtio.iommu;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What the device counts, for logs, the control API and tests (see docs/virtio-iommu.md). Counts
 * are cumulative over the device's life (not cleared by reset). Updated under the device's lock.
 */
public final class VirtioIommuCounters {
    final long[] statuses = new long[Status.count()];
    /** Requests of each type 1..5 that reached their handler. */
    final long[] requests = new long[9]; // by type; 6-8 are paravirtual nesting (docs/nesting.md §6)
    /** Requests whose type is unknown: returned unwritten, used length 0 ("Device operations"). */
    long unknownType;
    /** PROBE without VIRTIO_IOMMU_F_PROBE negotiated: returned unwritten, used length 0 ("PROBE request"). */
    long probeNotNegotiated;
    /** Malformed descriptor chains (see the request queue's per-kind counters). */
    long malformedChains;
    /** Requests answered with DEVERR because their chain or payload was unusable. */
    long deverrReplies;
    /** Requests returned with used length 0 because no tail could be found or written. */
    long noReply;
    /** Chains whose head index was out of range: not returned at all. */
    long skippedHeads;
    /** Config writes ignored (read-only fields, bypass without BYPASS_CONFIG, values other than 0/1). */
    long configWritesIgnored;
    long invalidations;
    long translateUnknownEndpoint;
    /** Fault reports produced by translation. */
    long faultsReported;
    /** Fault reports written to an event buffer. */
    long faultsDelivered;
    /** Fault reports that had to wait for an event buffer (held in the pending queue). */
    long faultsDeferred;
    /** Fault reports dropped because the pending queue was full ("Fault reporting": the device may drop). */
    long faultsDropped;
    /** Event buffers returned unused: too small for a report, or malformed. */
    long eventBuffersRejected;
    /** Ring positions of the VMM's served requests (§4.13) the request queue refused (SplitVirtqueue#handOver). */
    long handOversRefused;

    public long status(int status) {
        return status >= 0 && status < statuses.length ? statuses[status] : 0;
    }

    public long requests(int type) {
        return type >= 1 && type < requests.length ? requests[type] : 0;
    }

    public long unknownType() {
        return unknownType;
    }

    public long probeNotNegotiated() {
        return probeNotNegotiated;
    }

    public long malformedChains() {
        return malformedChains;
    }

    public long deverrReplies() {
        return deverrReplies;
    }

    public long noReply() {
        return noReply;
    }

    public long skippedHeads() {
        return skippedHeads;
    }

    public long configWritesIgnored() {
        return configWritesIgnored;
    }

    public long invalidations() {
        return invalidations;
    }

    public long translateUnknownEndpoint() {
        return translateUnknownEndpoint;
    }

    public long faultsReported() {
        return faultsReported;
    }

    public long faultsDelivered() {
        return faultsDelivered;
    }

    public long faultsDeferred() {
        return faultsDeferred;
    }

    public long faultsDropped() {
        return faultsDropped;
    }

    public long eventBuffersRejected() {
        return eventBuffersRejected;
    }

    /** Every counter by name. */
    public Map<String, Long> asMap() {
        Map<String, Long> m = new LinkedHashMap<>();
        String[] types = {"", "attach", "detach", "map", "unmap", "probe", "attach_table", "invalidate", "page_resp"};
        for (int t = 1; t < requests.length; t++) {
            m.put("requests." + types[t], requests[t]);
        }
        for (int s = 0; s < statuses.length; s++) {
            m.put("status." + Status.name(s).toLowerCase(java.util.Locale.ROOT), statuses[s]);
        }
        m.put("unknown_type", unknownType);
        m.put("probe_not_negotiated", probeNotNegotiated);
        m.put("malformed_chains", malformedChains);
        m.put("deverr_replies", deverrReplies);
        m.put("no_reply", noReply);
        m.put("skipped_heads", skippedHeads);
        m.put("config_writes_ignored", configWritesIgnored);
        m.put("invalidations", invalidations);
        m.put("translate_unknown_endpoint", translateUnknownEndpoint);
        m.put("faults_reported", faultsReported);
        m.put("faults_delivered", faultsDelivered);
        m.put("faults_deferred", faultsDeferred);
        m.put("faults_dropped", faultsDropped);
        m.put("event_buffers_rejected", eventBuffersRejected);
        m.put("vmm_positions_refused", handOversRefused);
        return m;
    }
}
