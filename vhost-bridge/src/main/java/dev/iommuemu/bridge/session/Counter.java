package dev.iommuemu.bridge.session;

/** What the daemon counts per session (and in total); the control API reports them by name. */
public enum Counter {
    MESSAGES("messages"),
    PROTOCOL_ERRORS("protocol_errors"),
    TRANSLATIONS("translations"),
    /**
     * 4 KiB pages covered by the entries translations returned (each counted up to 1 GiB), run
     * entries included: what the VMM may reach without asking again.
     */
    TRANSLATED_PAGES("translated_pages"),
    /** 4 KiB pages covered by IOMMU_TRANSLATE_RUN entries beyond the requested one (a prefetch). */
    PREFETCHED_PAGES("prefetched_pages"),
    TRANSLATION_FAULTS("faults"),
    TRANSLATION_STALLS("stalls"),
    MMIO_READS("mmio_reads"),
    MMIO_WRITES("mmio_writes"),
    IRQS("irqs"),
    MSIS("msis"),
    /** IOMMU_MSI_ABORTED reports: MSIs the VMM could not deliver (docs/protocol.md §4). */
    MSI_ABORTS("msi_aborts"),
    INVALIDATIONS("invalidations"),
    /** Invalidations done in the VMM's shared cache without a message (docs/protocol.md §4.8). */
    SHARED_INVALIDATIONS("shared_invalidations"),
    /** Translations put in the VMM's shared cache before any access asked (virtio-iommu MAP, §4.8). */
    PREFILLS("prefills"),
    /** 4 KiB pages the prefilled entries cover (each counted up to 1 GiB, as translated_pages). */
    PREFILLED_PAGES("prefilled_pages"),
    /** Walk recipes written into the VMM's shared memory (docs/protocol.md §4.8, version 12). */
    RECIPES_PUBLISHED("recipes_published"),
    /** 4 KiB pages the VMM translated by walking recipes, as it counts them in the shared memory's header (§4.8). */
    WALKED_PAGES("walked_pages"),
    /** States written into the restart journal (docs/protocol.md §4.10). */
    JOURNAL_SAVES("journal_saves"),
    /** Bits the daemon newly set in the VMM's dirty log: guest pages it wrote during a migration (docs/protocol.md §4.11). */
    DIRTY_LOG_PAGES("dirty_log_pages"),
    /** Guest page writes beyond the dirty log's bitmap, which it cannot record (§4.11). */
    DIRTY_LOG_OVERFLOWS("dirty_log_overflows"),
    /** SMMU_CMDQ_PROD writes the VMM consumed itself and the daemon drained from its log (docs/protocol.md §4.12). */
    VMM_CMDQ_BATCHES("vmm_cmdq_batches"),
    /** Commands of those batches the daemon executed from the log (§4.12). */
    VMM_CMDQ_COMMANDS("vmm_cmdq_commands"),
    /** virtio-iommu MAP / UNMAP requests the VMM served itself and the daemon drained from its log (§4.13). */
    VMM_REQUESTS("vmm_requests"),
    /** Of those, the ones the model did not complete with S_OK: a VMM fault (§4.13). */
    VMM_REQUESTS_REJECTED("vmm_requests_rejected"),
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
