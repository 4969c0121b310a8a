package dev.iommuemu.smmuv3.translate;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.FaultClass;
import dev.iommuemu.pagetable.FaultType;
import dev.iommuemu.pagetable.MemoryAttributes;
import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.pagetable.Walker;
import dev.iommuemu.smmuv3.cache.CoherencyViolation;
import dev.iommuemu.smmuv3.cache.ConfigCache;
import dev.iommuemu.smmuv3.cache.Remedies;
import dev.iommuemu.smmuv3.cache.ReportedEntries;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cd.CdStage1;
import dev.iommuemu.smmuv3.cd.CdTable;
import dev.iommuemu.smmuv3.cd.CdValidator;
import dev.iommuemu.smmuv3.conflict.BreakBeforeMake;
import dev.iommuemu.smmuv3.conflict.CfgConflict;
import dev.iommuemu.smmuv3.conflict.TlbConflict;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.smmuv3.streamtable.SteStage2;
import dev.iommuemu.smmuv3.streamtable.SteValidator;
import dev.iommuemu.smmuv3.streamtable.StreamTable;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.tlb.Regime;
import dev.iommuemu.tlb.Tlb;
import dev.iommuemu.tlb.TlbEntry;
import dev.iommuemu.tlb.TlbTag;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * The configuration and translation flow of one transaction with SMMUEN == 1 (IHI 0070 §3.2
 * Figure 3-3 and §3.3): STE lookup and checks, the STE.Config and substream rules, CD lookup and
 * checks, then the table walk. It decides; the device records events, stalls and caches.
 */
public final class TranslationPath {
    private final GuestMemory mem;
    private final Smmuv3Profile profile;
    private final Walker walker;
    private final ConfigCache<StreamConfig, ContextConfig> cache;
    private final Consumer<CoherencyViolation> strict; // null when strict mode is off
    /**
     * Stale entries already reported: one finding per missed invalidation, not one per hit of the
     * entry it left stale (see {@link ReportedEntries}).
     */
    private final ReportedEntries reported = new ReportedEntries();
    private final BooleanSupplier e2h;
    private final Tlb tlb;

    /** {@code e2h} reads SMMU_CR2.E2H (§6.3 SMMU_CR2), which selects NS-EL2-E2H for STRW == EL2 streams. */
    public TranslationPath(GuestMemory mem, Smmuv3Profile profile, ConfigCache<StreamConfig, ContextConfig> cache,
            Tlb tlb, Consumer<CoherencyViolation> strict, BooleanSupplier e2h) {
        this.mem = mem;
        this.tlb = tlb;
        this.e2h = e2h;
        this.profile = profile;
        this.walker = new Walker(mem, profile.oasBits());
        this.cache = cache;
        this.strict = strict;
    }


    public Walker walker() {
        return walker;
    }

    /** The STE of {@code sid}, from the cache or the stream table. */
    public sealed interface SteResult permits SteOk, SteBad {}

    public record SteOk(StreamConfig config) implements SteResult {}

    public record SteBad(EventRecord event) implements SteResult {}

    /** Step 1 (§3.3.1): locate, check and decode the STE, through the configuration cache. */
    /** The output address size this path bypasses up to (SMMU_IDR5.OAS, §3.4). */
    public int oasBits() {
        return profile.oasBits();
    }

    public SteResult stream(long strtabBase, long strtabBaseCfg, int sid, int ssid) {
        return stream(strtabBase, strtabBaseCfg, sid, ssid, null);
    }

    /** {@link #stream}; with a {@code trace} (an explained transaction) the cache is only looked at, never filled. */
    private SteResult stream(long strtabBase, long strtabBaseCfg, int sid, int ssid, PathTrace trace) {
        StreamConfig cached = trace != null ? cache.peekSte(sid) : cache.ste(sid);
        if (cached != null) {
            if (trace != null) {
                trace.steCached = true;
                trace.steAddress = cached.address();
                trace.steWords = cached.ste().words();
            } else if (strict != null) {
                StreamTable.Lookup now = StreamTable.lookup(mem, profile, strtabBase, strtabBaseCfg, sid, ssid);
                if ((!(now instanceof StreamTable.Found f) || !f.ste().equals(cached.ste())) && reported.firstReport(cached)) {
                    strict.accept(new CoherencyViolation(CoherencyViolation.Kind.STE, sid, -1, cached.address(),
                            cached.ste().toString(),
                            now instanceof StreamTable.Found f2 ? f2.ste().toString() : "no readable STE",
                            Remedies.ste(sid)));
                }
                CfgConflict conflict = cfgConflict(sid, cached); // §3.20.2: detected in strict mode
                if (conflict != null) {
                    strict.accept(conflict.violation());
                    return new SteBad(conflict.event(ssid));
                }
            }
            return new SteOk(cached);
        }
        StreamTable.Lookup l = StreamTable.lookup(mem, profile, strtabBase, strtabBaseCfg, sid, ssid);
        if (l instanceof StreamTable.Fault f) {
            return new SteBad(f.event());
        }
        StreamTable.Found found = (StreamTable.Found) l;
        Ste ste = found.ste();
        if (trace != null) {
            trace.steAddress = found.address();
            trace.steWords = ste.words();
        }
        String bad = SteValidator.check(ste, profile);
        Stage2Config s2 = null;
        if (bad == null && ste.stage2()) {
            s2 = SteStage2.of(ste, profile);
            bad = SteStage2.check(s2, profile);
        }
        if (bad != null) {
            return new SteBad(EventRecord.config(EventType.C_BAD_STE, sid, ssid));
        }
        StreamConfig sc = new StreamConfig(ste, found.address(), s2);
        if (trace == null) {
            cache.putSte(sid, sc, (int) ste.get(Ste.CONT));
        }
        return new SteOk(sc);
    }

    /**
     * A configuration cache conflict for a lookup of {@code sid} (§3.20.2, §7.3.18): another cached
     * STE whose STE.CONT span covers {@code sid} and is not identical to {@code sid}'s own.
     */
    private CfgConflict cfgConflict(int sid, StreamConfig own) {
        for (int other : cache.spansCovering(sid)) {
            StreamConfig span = cache.peekSte(other);
            if (span != null && !span.ste().equals(own.ste())) {
                return new CfgConflict(sid, other, cache.cont(other), own.ste(), span.ste(), own.address());
            }
        }
        return null;
    }

    /** The CD result: a decoded context, or the event that stops the transaction. */
    public sealed interface CdResult permits CdOk, CdBad {}

    public record CdOk(ContextConfig config) implements CdResult {}

    public record CdBad(EventRecord event, boolean stage2Fault, boolean stall) implements CdResult {}

    /** Step 2 (§3.3.2): fetch CD {@code index}, through the cache; CD addresses are IPAs with stage 2. */
    public CdResult context(StreamConfig sc, int sid, int index, int eventSsid, long iova, DmaAccess access) {
        return context(sc, sid, index, eventSsid, iova, access, null);
    }

    private CdResult context(StreamConfig sc, int sid, int index, int eventSsid, long iova, DmaAccess access,
            PathTrace trace) {
        ContextConfig cached = trace != null ? cache.peekCd(sid, index) : cache.cd(sid, index);
        Ste ste = sc.ste();
        if (cached != null) {
            if (trace != null) {
                trace.cdCached = true;
                trace.cdAddress = cached.address();
            } else if (strict != null) {
                CdTable.Lookup now = CdTable.lookup(mem, ste, profile.ssidBits(), index, resolver(sc, sid, eventSsid, iova, access, null), sid,
                        eventSsid);
                if ((!(now instanceof CdTable.Found f) || !f.cd().equals(cached.cd())) && reported.firstReport(cached)) {
                    strict.accept(new CoherencyViolation(CoherencyViolation.Kind.CD, sid, index, cached.address(),
                            cached.cd().toString(),
                            now instanceof CdTable.Found f2 ? f2.cd().toString() : "no readable CD",
                            Remedies.cd(sid, index)));
                }
            }
            return new CdOk(cached);
        }
        CdTable.Lookup l = CdTable.lookup(mem, ste, profile.ssidBits(), index, resolver(sc, sid, eventSsid, iova, access, trace), sid,
                eventSsid);
        if (l instanceof CdTable.Fault f) {
            boolean s2 = f.event().s2();
            return new CdBad(f.event(), s2, s2 && ste.s2s());
        }
        CdTable.Found found = (CdTable.Found) l;
        Cd cd = found.cd();
        if (trace != null) {
            trace.cdAddress = found.address();
        }
        String bad = CdValidator.check(cd, profile);
        if (bad == null && cd.stall() && ste.s1stalld()) {
            bad = "S == 1 through an STE with S1STALLD == 1"; // §5.5
        }
        Stage1Config s1 = null;
        if (bad == null) {
            s1 = CdStage1.of(cd, profile, el2(ste) && !e2h.getAsBoolean());
            bad = CdStage1.check(s1);
        }
        if (bad != null) {
            return new CdBad(EventRecord.config(EventType.C_BAD_CD, sid, eventSsid), false, false);
        }
        ContextConfig cc = new ContextConfig(cd, found.address(), s1);
        if (trace == null) {
            cache.putCd(sid, index, cc);
        }
        return new CdOk(cc);
    }

    private CdTable.FetchResolver resolver(StreamConfig sc, int sid, int ssid, long iova, DmaAccess access,
            PathTrace trace) {
        if (sc.s2() == null) {
            return CdTable.FetchResolver.IDENTITY;
        }
        // §3.3.2: with stage 2, CD and L1CD addresses are IPAs translated by stage 2 (CLASS == CD).
        return ipa -> {
            WalkResult r = trace != null
                    ? walker.explainStage2For(sc.s2(), ipa, DmaAccess.READ, FaultClass.CD, iova, trace.observer())
                    : walker.stage2For(sc.s2(), ipa, DmaAccess.READ, FaultClass.CD, iova);
            if (r instanceof Translation t) {
                return new CdTable.Pa(t.outputAddress());
            }
            if (trace != null) {
                trace.cdFetchFault = (TranslationFault) r;
            }
            return new CdTable.Faulted(faultEvent((TranslationFault) r, sid, ssid, iova, access, 0, false));
        };
    }

    /** The whole flow for a transaction with SMMUEN == 1. */
    public Outcome translate(long strtabBase, long strtabBaseCfg, int sid, int ssid, long iova, DmaAccess access) {
        return translate(strtabBase, strtabBaseCfg, sid, ssid, iova, access, false, null);
    }

    /**
     * The same flow explained, for diagnostics: the outcome a transaction would have now, with
     * nothing changed that the guest or a later transaction could observe. The configuration
     * cache and the TLB are looked at but neither filled nor counted, the walk writes no
     * descriptor ({@link Walker#explain}), strict mode is not consulted, and the caller records
     * nothing. {@code trace} receives what the flow met.
     */
    public Outcome explain(long strtabBase, long strtabBaseCfg, int sid, int ssid, long iova, DmaAccess access,
            PathTrace trace) {
        return translate(strtabBase, strtabBaseCfg, sid, ssid, iova, access, false, trace);
    }

    /**
     * The same flow for a TLB prefetch (IHI 0070 §4.2.2 CMD_PREFETCH_ADDR: "as though accessed by
     * transactions"): the walk is speculative (no descriptor written, {@link Walker#speculate}) and
     * the caller records nothing of a fault (§4.2).
     */
    public Outcome prefetch(long strtabBase, long strtabBaseCfg, int sid, int ssid, long iova, DmaAccess access) {
        return translate(strtabBase, strtabBaseCfg, sid, ssid, iova, access, true, null);
    }

    private Outcome translate(long strtabBase, long strtabBaseCfg, int sid, int ssid, long iova, DmaAccess access,
            boolean speculative, PathTrace trace) {
        SteResult sr = stream(strtabBase, strtabBaseCfg, sid, ssid, trace);
        if (sr instanceof SteBad b) {
            return new Outcome.Terminate(b.event().type().name(), b.event());
        }
        StreamConfig sc = ((SteOk) sr).config();
        Ste ste = sc.ste();
        int cfg = ste.config();
        boolean hasSsid = ssid != IommuModel.NO_SUBSTREAM;
        if (ste.abort()) {
            return new Outcome.Terminate("STE.Config abort", null); // §5.2: 0b0xx, no event
        }
        if (!ste.stage1()) {
            if (hasSsid) {
                // §7.3.9: a SubstreamID with stage 1 disabled (Config 0b1x0).
                return new Outcome.Terminate("C_BAD_SUBSTREAMID", CdTable.badSubstream(sid, ssid));
            }
            if (cfg == Ste.CONFIG_BYPASS) {
                return bypass(sid, ssid, iova, access);
            }
            return walk(null, sc, null, sid, ssid, iova, access, speculative, trace);
        }
        int index;
        // §5.2 S1CDMax, S1DSS: IGNORED with SMMU_IDR1.SSIDSIZE == 0 (one CD, no substream rules).
        int cdMax = ste.s1cdMax(profile.ssidBits());
        if (hasSsid) {
            // §7.3.9: substreams disabled, unsupported, or the SubstreamID beyond 2^S1CDMax.
            if (cdMax == 0 || profile.ssidBits() == 0 || (ssid >>> cdMax) != 0) {
                return new Outcome.Terminate("C_BAD_SUBSTREAMID", CdTable.badSubstream(sid, ssid));
            }
            if (ssid == 0 && ste.s1dss() == Ste.S1DSS_SUBSTREAM0) {
                // §7.3.7: CD 0 is reserved for non-substream traffic.
                return new Outcome.Terminate("F_STREAM_DISABLED",
                        EventRecord.config(EventType.F_STREAM_DISABLED, sid, ssid));
            }
            index = ssid;
        } else if (cdMax == 0) {
            index = 0;
        } else {
            switch (ste.s1dss()) {
                case Ste.S1DSS_TERMINATE -> {
                    return new Outcome.Terminate("F_STREAM_DISABLED",
                            EventRecord.config(EventType.F_STREAM_DISABLED, sid, ssid));
                }
                case Ste.S1DSS_BYPASS -> {
                    // §5.2 S1DSS 0b01: non-substream traffic bypasses stage 1.
                    return sc.s2() == null ? bypass(sid, ssid, iova, access) : walk(null, sc, null, sid, ssid, iova, access, speculative, trace);
                }
                default -> index = 0;
            }
        }
        CdResult cr = context(sc, sid, index, ssid, iova, access, trace);
        if (cr instanceof CdBad b) {
            if (b.stage2Fault()) {
                return new Outcome.Fault(b.event(), ste.s2r() || b.stall(), b.stall() && b.event().type() != EventType.F_WALK_EABT);
            }
            return new Outcome.Terminate(b.event().type().name(), b.event());
        }
        return walk(((CdOk) cr).config(), sc, ((CdOk) cr).config().s1(), sid, ssid, iova, access, speculative, trace);
    }

    private Outcome walk(ContextConfig cc, StreamConfig sc, Stage1Config s1, int sid, int ssid, long iova,
            DmaAccess access, boolean speculative, PathTrace trace) {
        Ste ste = sc.ste();
        // §3.17 TLB tagging: the StreamWorld's regime, the VMID (S2VMID also tags stage-1-only
        // streams when stage 2 is implemented, §5.2 S2VMID), the ASID (none for NS-EL2 without E2H).
        Regime regime = s1 == null ? Regime.S2 : el2(ste) ? Regime.EL2 : sc.s2() != null ? Regime.NESTED : Regime.NH;
        int vmid = profile.s2() ? ste.s2vmid() : 0;
        int asid = cc == null ? 0 : regime == Regime.EL2 && !e2h.getAsBoolean() ? TlbTag.NO_ASID : cc.cd().asid();
        TlbTag tag = new TlbTag(regime, vmid, asid, cc != null && cc.cd().is(Cd.ASET));
        long input = s1 == null ? iova : topByteIgnored(s1, iova);
        TlbEntry hit = trace != null ? tlb.peek(tag, input) : tlb.lookup(tag, input);
        if (hit != null && strict != null && trace == null && !speculative) {
            // §3.20.1: strict mode detects TLB conflicts, aborts the transaction and records F_TLB_CONFLICT.
            TlbConflict conflict = TlbConflict.find(tlb.matching(tag, input), input, profile.bbml());
            if (conflict != null) {
                strict.accept(conflict.violation(sid, ssid, input));
                return new Outcome.Terminate("F_TLB_CONFLICT", conflict.event(sid, ssid, iova, input, access));
            }
        }
        // An entry that does not grant the access is walked again: a permission fault, or a
        // hardware dirty-state update (§3.13).
        if (hit != null && Perm.allows(hit.perm(), access)) {
            if (trace != null) {
                // explained: the TLB answers; the tables are shown as they are now (they may differ)
                trace.tlbHit = hit;
                WalkResult now = walker.explain(s1, sc.s2(), input, access, trace.observer());
                trace.walked = now instanceof Translation t
                        ? t.withAttributes(attributes(t, cc == null ? null : cc.cd(), sc.s2())) : now;
            } else if (strict != null && !speculative) {
                checkTlbHit(hit, s1, sc, sid, ssid, input, access);
            }
            return new Outcome.Walked(hit, input);
        }
        WalkResult r;
        if (trace != null) {
            r = walker.explain(s1, sc.s2(), input, access, trace.observer());
            trace.walked = r;
        } else {
            r = speculative ? walker.speculate(s1, sc.s2(), input, access)
                    : walker.translate(s1, sc.s2(), input, access, null);
        }
        if (r instanceof Translation t) {
            // The output's memory attributes travel with the translation (Arm ARM D8.6; STE.S2FWB,
            // §5.2): in the TLB entry a transaction uses, and in an explained one's result.
            Translation ta = t.withAttributes(attributes(t, cc == null ? null : cc.cd(), sc.s2()));
            if (trace != null) {
                trace.walked = ta;
                return new Outcome.Walked(new TlbEntry(tag, ta), input);
            }
            // §3.21.1.2: at BBML Level 1 a Block with nT == 1 is not cached (BreakBeforeMake.cacheable).
            return new Outcome.Walked(BreakBeforeMake.cacheable(ta, profile.bbml()) ? tlb.insert(tag, ta)
                    : new TlbEntry(tag, ta), input);
        }
        TranslationFault f = (TranslationFault) r;
        boolean stage2 = f.stage() == 2;
        boolean eabt = f.type() == FaultType.WALK_EABT;
        boolean stall;
        boolean record;
        if (stage2) {
            stall = ste.s2s();
            record = ste.s2r();
        } else if (cc == null) {
            // A stage 1 fault with stage 1 bypassed (§5.2 S1DSS 0b01: an input beyond the IAS is a
            // stage 1 Address Size fault): no CD to configure it, so recorded and not stalled.
            stall = false;
            record = true;
        } else {
            stall = cc.cd().stall(); // S1STALLD with CD.S is C_BAD_CD (§5.5)
            record = cc.cd().recordFaults();
        }
        stall = stall && !eabt && profile.stall();
        // §7.3.12: F_WALK_EABT is always recorded; a stalled fault is always recorded (§3.12.2).
        return new Outcome.Fault(faultEvent(f, sid, ssid, iova, access, 0, false), record || eabt || stall, stall);
    }

    /**
     * The memory attributes of a walk's result (Arm ARM D8.6, {@link Translation#attributes}):
     * stage 1's from CD.MAIR (§5.4) and the leaf's AttrIndx/SH, or the transaction's own when
     * stage 1 does not translate ({@link MemoryAttributes#INCOMING}: this model's DMA carries no
     * attributes, and STE.MTCFG/MemAttr/SHCFG overrides of §13 are not modelled); combined with
     * stage 2's MemAttr read as STE.S2FWB says (§5.2).
     */
    public static MemoryAttributes attributes(Translation t, Cd cd, Stage2Config s2) {
        return t.attributes(cd == null ? 0 : cd.get(Cd.MAIR), s2 != null && s2.fwb(), MemoryAttributes.INCOMING);
    }

    /**
     * The address the walk and the TLB use: with TBI for the VA's half (VA[55] selects TTB0/TTB1),
     * bits [63:56] are ignored, i.e. replaced by the sign extension of bit 55 (§5.4 CD.TBI0/TBI1).
     */
    static long topByteIgnored(Stage1Config s1, long va) {
        return s1.topByteIgnored(va);
    }

    /** Strict mode: a TLB hit must match what the tables say now (§3.17: else a TLBI was missed). */
    private void checkTlbHit(TlbEntry hit, Stage1Config s1, StreamConfig sc, int sid, int ssid, long iova,
            DmaAccess access) {
        WalkResult now = walker.translate(s1, sc.s2(), iova, access, null);
        long cachedOut = hit.translate(iova);
        if ((!(now instanceof Translation t) || t.outputAddress() != cachedOut || t.perm() != hit.perm())
                && reported.firstReport(hit)) {
            strict.accept(new CoherencyViolation(CoherencyViolation.Kind.TLB, sid, ssid, iova,
                    "0x" + Long.toHexString(cachedOut) + " " + dev.iommuemu.dma.Perm.toString(hit.perm()),
                    now.toString(), Remedies.tlb(hit, iova, now)));
        }
    }

    /**
     * Both stages bypassed: the output is the input, which must lie within the OAS; beyond it the
     * stage 1 bypass raises F_ADDR_SIZE with CLASS == IN, S2 == 0 (§7.3.14, §3.4).
     */
    private Outcome bypass(int sid, int ssid, long iova, DmaAccess access) {
        if ((iova >>> profile.oasBits()) == 0) {
            return new Outcome.Bypass();
        }
        boolean ssv = ssid != IommuModel.NO_SUBSTREAM;
        return new Outcome.Fault(new EventRecord(EventType.F_ADDR_SIZE, sid, ssv, ssv ? ssid : 0, 0, false,
                !access.write(), access.instruction(), access.privileged(), false, EventRecord.CLASS_IN, iova, 0, 0),
                true, false);
    }

    /** StreamWorld NS-EL2(-E2H) (§5.2 STRW): STRW 0b10 with IDR0.Hyp and no stage 2. */
    private boolean el2(Ste ste) {
        return profile.hyp() && !ste.stage2() && ste.strw() == Ste.STRW_EL2;
    }

    /** The F_* record of a walk fault (§7.3.12-16). */
    public static EventRecord faultEvent(TranslationFault f, int sid, int ssid, long iova, DmaAccess access, int stag,
            boolean stall) {
        EventType type = switch (f.type()) {
            case WALK_EABT -> EventType.F_WALK_EABT;
            case TRANSLATION -> EventType.F_TRANSLATION;
            case ADDRESS_SIZE -> EventType.F_ADDR_SIZE;
            case ACCESS_FLAG -> EventType.F_ACCESS;
            case PERMISSION -> EventType.F_PERMISSION;
        };
        boolean s2 = f.stage() == 2;
        int cls;
        if (s2) {
            cls = f.faultClass().encoding();
        } else {
            // §7.3.12: a stage 1 walk abort reports CLASS == TT; other stage 1 faults CLASS == IN.
            cls = type == EventType.F_WALK_EABT ? EventRecord.CLASS_TT : EventRecord.CLASS_IN;
        }
        long ipaOrFetch = type == EventType.F_WALK_EABT ? f.descriptorAddress() : f.ipa();
        boolean ssv = ssid != IommuModel.NO_SUBSTREAM;
        // §7.3.16 TTRnW: for a stage 2 fault on a stage 1 descriptor access (CLASS == TT), whether
        // that access was a read (a walk) or a write (a hardware update).
        int ttRead = s2 && cls == EventRecord.CLASS_TT && f.access() != null && !f.access().write()
                ? EventRecord.TT_READ : 0;
        return new EventRecord(type, sid, ssv, ssv ? ssid : 0, stag, stall, !access.write(), access.instruction(),
                access.privileged(), s2, cls, iova, ipaOrFetch, type == EventType.F_WALK_EABT ? 0 : ttRead);
    }
}
