package dev.iommuemu.smmuv3.conflict;

import dev.iommuemu.field.Field;
import dev.iommuemu.smmuv3.cache.CoherencyViolation;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.streamtable.Ste;

/**
 * A configuration cache conflict (IHI 0070 §3.20.2): "an STE cached with a span that covers an
 * existing cached STE", so that an STE lookup matches more than one STE. STE.CONT (§5.2) is the
 * only span a configuration structure has, and F_CFG_CONFLICT arises when "the STE.CONT property of
 * an STE cache entry causes an overlap of another STE that is not identical ... and this has caused
 * a multiple-match on lookup" (§7.3.18); "it is not possible to cause this error by any CD
 * misconfiguration". The transaction is aborted and F_CFG_CONFLICT recorded ({@link #event}); this
 * model also reports it to strict mode ({@link #violation}).
 *
 * @param sid      the StreamID looked up
 * @param spanSid  the StreamID whose cached STE's CONT span covers {@code sid}
 * @param cont     that STE's CONT: it stands for the 2^CONT StreamIDs aligned to 2^CONT
 * @param own      the STE cached for {@code sid}
 * @param span     the STE cached for {@code spanSid}, which differs from {@code own}
 * @param address  the address of {@code own} in the stream table
 */
public record CfgConflict(int sid, int spanSid, int cont, Ste own, Ste span, long address) {

    /** Reason[3:0] kind of an F_CFG_CONFLICT record in this model: an STE.CONT span overlap. */
    public static final int KIND_STE_CONT = 1;

    // F_CFG_CONFLICT's Reason is IMPLEMENTATION DEFINED (§7.3.18); this model's encoding:
    /** Reason[3:0]: {@link #KIND_STE_CONT}. */
    public static final Field REASON_KIND = Field.bits("kind", 3, 0);
    /** Reason[7:4]: the STE.CONT of the spanning entry. */
    public static final Field REASON_CONT = Field.bits("CONT", 7, 4);

    public int reason() {
        return (int) REASON_CONT.insert(REASON_KIND.prep(KIND_STE_CONT), cont);
    }

    /** The F_CFG_CONFLICT record (§7.3.18): StreamID, SSV and SubstreamID, Reason. */
    public EventRecord event(int ssid) {
        boolean ssv = ssid >= 0;
        return new EventRecord(EventType.F_CFG_CONFLICT, sid, ssv, ssv ? ssid : 0, 0, false, false, false, false,
                false, 0, 0, 0, reason());
    }

    /** The strict-mode finding: both STEs, and the maintenance that would have prevented it. */
    public CoherencyViolation violation() {
        int first = spanSid & -(1 << cont);
        int last = first + (1 << cont) - 1;
        return new CoherencyViolation(CoherencyViolation.Kind.CFG_CONFLICT, sid, -1, address,
                "the STE of SID 0x" + Integer.toHexString(spanSid) + " with CONT " + cont + " (SIDs 0x"
                        + Integer.toHexString(first) + "-0x" + Integer.toHexString(last) + "): " + span,
                "the STE of SID 0x" + Integer.toHexString(sid) + ": " + own,
                "the 2^CONT STEs of a CONT span must be identical (IHI 0070 §5.2 STE.CONT); after changing them,"
                        + " CMD_CFGI_STE_RANGE covering SIDs 0x" + Integer.toHexString(first) + "-0x"
                        + Integer.toHexString(last) + " then CMD_SYNC, or CONT 0, would have prevented it");
    }
}
