package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.CR0_SMMUEN;
import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.GBPA_ABORT;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.pagetable.FaultClass;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.inspect.WalkExplanation;
import dev.iommuemu.smmuv3.inspect.WalkExplanation.DecidedBy;
import dev.iommuemu.smmuv3.inspect.WalkExplanation.Fault;
import dev.iommuemu.smmuv3.inspect.WalkExplanation.Result;
import dev.iommuemu.smmuv3.translate.Outcome;
import dev.iommuemu.smmuv3.translate.PathTrace;
import dev.iommuemu.smmuv3.translate.TranslationPath;

/**
 * Explains one transaction ({@link Smmuv3#explain}) with the device's own decisions: SMMUEN and
 * GBPA (§3.2, §6.3.14), then {@link TranslationPath#explain}, whose outcome becomes the result a
 * transaction would get and the event record it would write, none of it recorded.
 */
final class Explainer {
    private Explainer() {}

    static WalkExplanation explain(TranslationPath path, long cr0ack, long gbpa, long strtabBase, long strtabBaseCfg,
            int sid, int ssid, long iova, DmaAccess access) {
        if (!CR0_SMMUEN.isSet(cr0ack)) {
            // §3.2, §6.3.14 SMMU_GBPA: with SMMUEN == 0 no structure is read; GBPA.ABORT decides.
            Result r = GBPA_ABORT.isSet(gbpa)
                    ? new Result(null, false, new Fault("GBPA.ABORT", 0, 0, null, 0, -1, null, false, false), null)
                    : new Result(entryOf(Smmuv3.gbpaBypass()), true, null, null);
            return new WalkExplanation(false, gbpa, DecidedBy.GBPA, -1, new long[0], false, -1, false,
                    java.util.List.of(), r, null);
        }
        WalkExplanation.StepSink sink = new WalkExplanation.StepSink();
        PathTrace trace = new PathTrace(sink);
        Outcome o = path.explain(strtabBase, strtabBaseCfg, sid, ssid, iova, access, trace);
        DecidedBy by;
        Result result;
        Result tables = null;
        if (o instanceof Outcome.Walked w) {
            by = trace.tlbHit() != null ? DecidedBy.TLB : DecidedBy.TRANSLATION_TABLES;
            // the attributes the translation was made with (a TLB entry keeps those of its walk)
            result = new Result(Translations.entry(w.entry(), w.input(), iova), false, null,
                    w.entry().translation().attributes());
            if (trace.tlbHit() != null) {
                tables = tablesNow(trace.walked(), sid, ssid, iova, access);
            }
        } else if (o instanceof Outcome.Bypass) {
            by = DecidedBy.STREAM_TABLE_ENTRY;
            result = new Result(entryOf(Smmuv3.steBypass(path.oasBits())), true, null, null);
        } else if (o instanceof Outcome.Terminate t) {
            EventRecord ev = t.event();
            by = ev == null || ev.type() == EventType.C_BAD_STE || ev.type() == EventType.F_STE_FETCH
                    || ev.type() == EventType.C_BAD_STREAMID ? DecidedBy.STREAM_TABLE_ENTRY
                            : DecidedBy.CONTEXT_DESCRIPTOR;
            result = new Result(null, false, new Fault(ev != null ? ev.type().name() : t.reason(), 0, 0, null, 0, -1,
                    ev, ev != null, false), null);
        } else {
            Outcome.Fault f = (Outcome.Fault) o;
            boolean stall = f.stall(); // §7.2.1: whether or not the Event queue is writable
            EventRecord ev = stall ? Smmuv3.withStall(f.event(), 0) : f.event();
            TranslationFault tf = trace.cdFetchFault() != null ? trace.cdFetchFault()
                    : trace.walked() instanceof TranslationFault w ? w : null;
            by = trace.cdFetchFault() != null ? DecidedBy.CONTEXT_DESCRIPTOR : DecidedBy.TRANSLATION_TABLES;
            result = new Result(null, false, fault(ev, tf, f.record() || stall, stall), null);
        }
        long[] ste = trace.steWords() == null ? new long[0] : trace.steWords();
        return new WalkExplanation(true, gbpa, by, trace.steAddress(), ste, trace.steCached(), trace.cdAddress(),
                trace.cdCached(), sink.steps(), result, tables);
    }

    /** A walk fault's stage, level, CLASS and IPA from the walker; the event from the path. */
    private static Fault fault(EventRecord ev, TranslationFault tf, boolean recorded, boolean stall) {
        if (tf == null) {
            // no walk (a stage 1 bypass beyond the OAS, §7.3.14): the record says all there is
            return new Fault(ev.type().name(), ev.s2() ? 2 : 1, 0, classOf(ev.faultClass()), ev.s2() ? ev.ipa() : 0, -1,
                    ev, recorded, stall);
        }
        return new Fault(ev.type().name(), tf.stage(), tf.level(), tf.faultClass(), tf.stage() == 2 ? tf.ipa() : 0,
                tf.descriptorAddress(), ev, recorded, stall);
    }

    /** What the tables give now, beside a TLB hit (the event is the one a walk would raise). */
    private static Result tablesNow(WalkResult r, int sid, int ssid, long iova, DmaAccess access) {
        if (r instanceof Translation t) {
            long mask = (1L << t.pageShift()) - 1;
            return new Result(new IotlbEntry(iova & ~mask, t.outputAddress() & ~mask, mask, t.perm()), false, null,
                    t.attributes());
        }
        TranslationFault tf = (TranslationFault) r;
        EventRecord ev = TranslationPath.faultEvent(tf, sid, ssid, iova, access, 0, false);
        return new Result(null, false, fault(ev, tf, false, false), null);
    }

    private static FaultClass classOf(int encoding) {
        for (FaultClass c : FaultClass.values()) {
            if (c.encoding() == encoding) {
                return c;
            }
        }
        return null;
    }

    private static IotlbEntry entryOf(DmaResult r) {
        return ((DmaResult.Translated) r).entry();
    }
}
