package dev.iommuemu.bridge.session;

/** What the daemon counts per session (and in total); the control API reports them by name. */
public enum Counter {
    MESSAGES("messages"),
    PROTOCOL_ERRORS("protocol_errors"),
    TRANSLATIONS("translations"),
    TRANSLATION_FAULTS("faults"),
    TRANSLATION_STALLS("stalls"),
    MMIO_READS("mmio_reads"),
    MMIO_WRITES("mmio_writes"),
    IRQS("irqs"),
    MSIS("msis"),
    INVALIDATIONS("invalidations"),
    QUEUE_KICKS("queue_kicks"),
    ATS_TRANSLATIONS("ats_translations"),
    PAGE_REQUESTS("page_requests"),
    ATC_INVALIDATIONS("atc_invalidations");

    private final String key;

    Counter(String key) {
        this.key = key;
    }

    /** The name the control API and logs use. */
    public String key() {
        return key;
    }
}
