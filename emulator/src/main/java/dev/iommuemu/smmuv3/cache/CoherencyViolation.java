package dev.iommuemu.smmuv3.cache;

/**
 * A finding of strict mode: a missing invalidation, or a conflict the architecture allows an SMMU
 * to report. A missing invalidation is a structure in memory that the SMMU had cached and that the
 * guest changed without the invalidation the architecture requires before relying on the change
 * (IHI 0070 §3.21 structure and queue ownership, §4.3 CFGI, §4.4 TLBI); the model keeps using the
 * stale cached copy, as hardware would, and the violation is reported beside it. A conflict is two
 * cached translations or configurations that overlap where break-before-make (or the BBML level of
 * SMMU_IDR3) forbids it (§3.20, §3.21.1.1-3; F_TLB_CONFLICT §7.3.17, F_CFG_CONFLICT §7.3.18).
 *
 * @param kind       what was stale or conflicting
 * @param streamId   the StreamID whose lookup found it
 * @param ssid       the substream (CD index), or -1
 * @param address    the input address (TLB) or the structure's address (STE, CD)
 * @param stale      what the SMMU holds (the cached value, or the first of the conflicting entries)
 * @param inMemory   what memory holds now (or the second conflicting entry)
 * @param remedy     the command that would have prevented it (e.g. "CMD_CFGI_STE SID 0x8 then CMD_SYNC")
 */
public record CoherencyViolation(Kind kind, int streamId, int ssid, long address, String stale, String inMemory,
        String remedy) {
    public enum Kind {
        /** An STE changed without CMD_CFGI_STE / STE_RANGE / ALL. */
        STE,
        /** A CD changed without CMD_CFGI_CD / CD_ALL (or an STE invalidation). */
        CD,
        /** A translation changed without a covering CMD_TLBI_*. */
        TLB,
        /** Two TLB entries overlap for one address (break-before-make broken; IHI 0070 F_TLB_CONFLICT). */
        TLB_CONFLICT,
        /** Two cached configurations conflict for one stream (IHI 0070 F_CFG_CONFLICT). */
        CFG_CONFLICT
    }

    /** One sentence: what was found, where, and what would have removed it. */
    public String detail() {
        return kind + " at SID 0x" + Integer.toHexString(streamId) + (ssid >= 0 ? " SSID 0x" + Integer.toHexString(ssid) : "")
                + " address 0x" + Long.toHexString(address) + ": the SMMU holds " + stale + ", memory holds " + inMemory
                + "; " + remedy;
    }
}
