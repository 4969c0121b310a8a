package dev.iommuemu.smmuv3.translate;

import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.tlb.TlbEntry;

/** What the translation path (IHI 0070 §3.2 / Figure 3-3) decided for one transaction. */
public sealed interface Outcome permits Outcome.Bypass, Outcome.Walked, Outcome.Terminate, Outcome.Fault {

    /** No stage translates: the output is the input (STE bypass, S1DSS bypass with no stage 2, GBPA). */
    record Bypass() implements Outcome {}

    /**
     * A translation, as the TLB holds it (a hit, or the entry a fresh walk inserted).
     * {@code input} is the address the TLB entry covers: the transaction's input with any
     * top-byte-ignore applied.
     */
    record Walked(TlbEntry entry, long input) implements Outcome {}

    /**
     * The transaction is terminated. {@code event} is recorded if non-null (configuration errors are
     * always recorded, §7.3); STE.Config == abort records nothing (§5.2).
     */
    record Terminate(String reason, EventRecord event) implements Outcome {}

    /**
     * A translation fault (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT).
     * {@code record} is CD.R or STE.S2R for the faulting stage (§5.4 CD.R, §5.2 STE.S2R);
     * {@code stall} is whether the configuration stalls it (§3.12.2: CD.S unless STE.S1STALLD for
     * stage 1, STE.S2S for stage 2; never for F_WALK_EABT).
     */
    record Fault(EventRecord event, boolean record, boolean stall) implements Outcome {}
}
