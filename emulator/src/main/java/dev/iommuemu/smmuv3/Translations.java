package dev.iommuemu.smmuv3;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.smmuv3.ats.AtsResponse;
import dev.iommuemu.smmuv3.evtq.EventQueue;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.smmuv3.translate.Outcome;
import dev.iommuemu.smmuv3.translate.TranslationPath;
import dev.iommuemu.tlb.Tlb;
import dev.iommuemu.tlb.TlbEntry;

/**
 * The translation side of the device: the path (§3.2), the TLB it fills, and the ATS form of a
 * translation (§3.9.1). Turns path outcomes into what the device returns.
 */
final class Translations {
    sealed interface Result permits Hit, BypassResult, Miss {}

    record Hit(IotlbEntry entry) implements Result {}

    record BypassResult() implements Result {}

    /** Terminated or faulted; {@code event} is recorded when {@code record}, held when {@code stall}. */
    record Miss(String reason, EventRecord event, boolean record, boolean stall) implements Result {}

    private final TranslationPath path;
    private final Tlb tlb;

    Translations(TranslationPath path, Tlb tlb) {
        this.path = path;
        this.tlb = tlb;
    }

    Tlb tlb() {
        return tlb;
    }

    int tlbSize() {
        return tlb.size();
    }

    void invalidateAll() {
        tlb.clear();
    }

    Result translate(long strtabBase, long strtabBaseCfg, int sid, int ssid, long iova, DmaAccess access) {
        Outcome o = path.translate(strtabBase, strtabBaseCfg, sid, ssid, iova, access);
        if (o instanceof Outcome.Walked w) {
            return new Hit(entry(w.entry(), w.input(), iova));
        }
        if (o instanceof Outcome.Bypass) {
            return new BypassResult();
        }
        if (o instanceof Outcome.Terminate t) {
            return new Miss(t.reason(), t.event(), t.event() != null, false);
        }
        Outcome.Fault f = (Outcome.Fault) o;
        return new Miss(f.event().type().name(), f.event(), f.record(), f.stall());
    }

    /** A prefetch (§4.2.2): the entry, or {@code null} for anything but a table translation. */
    IotlbEntry prefetch(long strtabBase, long strtabBaseCfg, int sid, int ssid, long iova, DmaAccess access) {
        Outcome o = path.prefetch(strtabBase, strtabBaseCfg, sid, ssid, iova, access);
        return o instanceof Outcome.Walked w ? entry(w.entry(), w.input(), iova) : null;
    }

    /**
     * The VMM-cacheable entry of a TLB entry, for the span holding {@code iova} ({@code input} is
     * iova after top-byte-ignore, the address the TLB entry covers).
     */
    static IotlbEntry entry(TlbEntry e, long input, long iova) {
        long mask = e.size() - 1;
        return new IotlbEntry(iova & ~mask, e.translate(input) & ~mask, mask, e.perm());
    }

    /** The STE a Translated transaction's ATSCHK test uses, or {@code null} when it is unusable. */
    Ste steFor(long strtabBase, long strtabBaseCfg, int sid) {
        TranslationPath.SteResult r = path.stream(strtabBase, strtabBaseCfg, sid, -1);
        return r instanceof TranslationPath.SteOk ok ? ok.config().ste() : null;
    }

    /**
     * An ATS Translation Request (§3.9.1; §5.2 STE.V, STE.Config, STE.EATS, STE.S1DSS; §7.3.6):
     * SMMUEN == 0 or an effective EATS of 0b00 (bypass included) is F_BAD_ATS_TREQ and UR; an
     * invalid STE, a terminated substream or a bad CD is CA and Config abort is UR, without events;
     * a translation-related fault is a successful completion granting nothing (§13.7). Otherwise
     * the completion grants what the final translation gives the request's privilege, as §13.7.1's
     * pseudocode computes it (no STE.INSTCFG/PRIVCFG overrides: IDR1.ATTR_PERMS_OVR == 0): R if
     * readable, W if writable, Exe only if requested, readable and executable; Priv as requested. A
     * request without a PASID has Priv = Exe = 0 (Data, Unprivileged). {@code write} is NW == 0:
     * with HTTU it may mark a writable-clean page dirty; NW == 1 never does (§13.7). Never stalls,
     * records no translation fault.
     */
    AtsResponse ats(long cr0ack, long strtabBase, long strtabBaseCfg, int sid, int ssid, long addr, boolean write,
            boolean exe, boolean priv, EventQueue evtq) {
        boolean enabled = Smmuv3Regs.CR0_SMMUEN.isSet(cr0ack);
        Ste ste = null;
        if (enabled) {
            TranslationPath.SteResult r = path.stream(strtabBase, strtabBaseCfg, sid, ssid);
            if (!(r instanceof TranslationPath.SteOk ok)) {
                return AtsResponse.completerAbort(); // §5.2 V: CA, no event
            }
            ste = ok.config().ste();
            if (ste.abort()) {
                return AtsResponse.unsupported(); // §5.2 EATS: Config 0b000 is silently UR
            }
        }
        boolean pasid = ssid >= 0;
        // §13.7.1: without a PASID TLP prefix the request's Priv and Exe are 0.
        boolean p = pasid && priv;
        boolean x = pasid && exe;
        // EATS 0b10 is ILLEGAL here (IDR0.NS1ATS) and 0b11 behaves as 0b00 without DPT.
        if (!enabled || ste.eats() != 0b01 || ste.config() == Ste.CONFIG_BYPASS) {
            evtq.record(new EventRecord(EventType.F_BAD_ATS_TREQ, sid, pasid, pasid ? ssid : 0, 0, false, !write,
                    x, p, false, 0, addr, 0, 1));
            return AtsResponse.unsupported();
        }
        // Every Translation Request implies read (§13.7): the walk is a data access, a write when
        // NW == 0 (so that HTTU marks a writable-clean page dirty). A write the page refuses is
        // walked again as a read, to learn the read permission.
        Outcome o = path.translate(strtabBase, strtabBaseCfg, sid, ssid, addr, new DmaAccess(write, false, p));
        if (write && permissionFault(o)) {
            o = path.translate(strtabBase, strtabBaseCfg, sid, ssid, addr, new DmaAccess(false, false, p));
        }
        if (permissionFault(o)) {
            // Not readable at this privilege: only W can be granted (a stage 2 write-only page), if
            // the page is writable without a dirty-state update (a speculative walk changes nothing).
            Outcome w = path.prefetch(strtabBase, strtabBaseCfg, sid, ssid, addr, new DmaAccess(true, false, p));
            if (w instanceof Outcome.Walked ww) {
                IotlbEntry e = entry(ww.entry(), ww.input(), addr);
                return new AtsResponse(AtsResponse.Status.SUCCESS, e.translatedAddr(), e.addrMask() + 1, false, true,
                        false, p);
            }
            return AtsResponse.noAccess(p);
        }
        if (o instanceof Outcome.Walked w) {
            int perm = w.entry().perm();
            boolean r = (perm & (p ? Perm.PR : Perm.UR)) != 0;
            boolean wr = (perm & (p ? Perm.PW : Perm.UW)) != 0;
            boolean xg = x && r && (perm & (p ? Perm.PX : Perm.UX)) != 0; // Exe implies R (§13.7.1)
            IotlbEntry e = entry(w.entry(), w.input(), addr);
            return new AtsResponse(AtsResponse.Status.SUCCESS, e.translatedAddr(), e.addrMask() + 1, r, wr, xg, p);
        }
        if (o instanceof Outcome.Bypass) { // S1DSS bypass with no stage 2
            return new AtsResponse(AtsResponse.Status.SUCCESS, addr & ~0xfffL, 4096, true, true, x, p);
        }
        if (o instanceof Outcome.Fault) {
            return AtsResponse.noAccess(p); // §13.7: a translation-related fault grants nothing
        }
        return AtsResponse.completerAbort(); // §5.2 S1DSS: terminated TRs complete with CA, no event
    }

    private static boolean permissionFault(Outcome o) {
        return o instanceof Outcome.Fault f && f.event().type() == EventType.F_PERMISSION;
    }
}
