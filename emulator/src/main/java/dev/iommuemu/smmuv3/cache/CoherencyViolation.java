package dev.iommuemu.smmuv3.cache;

/**
 * A missing invalidation that strict mode caught: the guest changed a structure in memory that
 * the SMMU had cached and did not issue the invalidation the architecture requires before relying
 * on the change (IHI 0070 §3.21 structure and queue ownership, §4.3 CFGI, §4.4 TLBI). The model
 * keeps using the stale cached copy, as hardware would; the violation is reported beside it.
 *
 * @param kind      what was stale
 * @param streamId  the StreamID whose lookup found it
 * @param ssid      the substream (CD index), or -1
 * @param address   the input address (TLB) or the structure's address (STE, CD)
 * @param detail    what changed
 */
public record CoherencyViolation(Kind kind, int streamId, int ssid, long address, String detail) {
    public enum Kind {
        /** An STE changed without CMD_CFGI_STE / STE_RANGE / ALL. */
        STE,
        /** A CD changed without CMD_CFGI_CD / CD_ALL (or an STE invalidation). */
        CD,
        /** A translation changed without a covering CMD_TLBI_*. */
        TLB
    }
}
