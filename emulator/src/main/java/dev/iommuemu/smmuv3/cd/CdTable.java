package dev.iommuemu.smmuv3.cd;

import dev.iommuemu.field.Field;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.OptionalLong;

/**
 * Locating the CD of a substream (IHI 0070 §3.3.3 CD tables: linear, or 2-level with 4KB or 64KB
 * leaf tables, selected by STE.S1Fmt). The addresses are IPAs when stage 2 is enabled (§3.3.4):
 * each fetch address goes through a {@link FetchResolver} (stage 2 with CLASS == CD, or identity).
 */
public final class CdTable {
    /** L1CD.V (§5.3 Level 1 Context Descriptor). */
    public static final Field L1CD_V = Field.bit("V", 0);
    /** L1CD.L2Ptr[55:12]. */
    public static final Field L1CD_L2PTR = Field.bits("L2Ptr", 55, 12);

    private CdTable() {}

    /** Turns a fetch address into a PA, or the event a stage-2 fault on it raises. */
    @FunctionalInterface
    public interface FetchResolver {
        Resolved resolve(long ipa);

        FetchResolver IDENTITY = Pa::new;
    }

    public sealed interface Resolved permits Pa, Faulted {}

    public record Pa(long pa) implements Resolved {}

    public record Faulted(EventRecord event) implements Resolved {}

    public sealed interface Lookup permits Found, Fault {}

    public record Found(Cd cd, long address) implements Lookup {}

    public record Fault(EventRecord event) implements Lookup {}

    /**
     * Fetches CD {@code index} of the table {@code ste} points to. {@code sid} and {@code eventSsid}
     * fill the event records (the SubstreamID as the transaction gave it, or
     * {@link dev.iommuemu.dma.IommuModel#NO_SUBSTREAM}). {@code ssidSize} is SMMU_IDR1.SSIDSIZE:
     * with 0, S1CDMax and S1Fmt are IGNORED (§5.2) and the table is one CD.
     */
    public static Lookup lookup(GuestMemory mem, Ste ste, int ssidSize, int index, FetchResolver resolver, int sid,
            int eventSsid) {
        long base = ste.s1ContextPtr();
        long cdIpa;
        int fmt = ste.s1cdMax(ssidSize) == 0 ? Ste.S1FMT_LINEAR : ste.s1fmt();
        if (fmt == Ste.S1FMT_LINEAR) {
            cdIpa = base + (long) index * Cd.SIZE;
        } else {
            // §5.2 S1Fmt: 0b01 = 2-level, 4KB leaf tables (SSID[5:0] in the leaf), 0b10 = 64KB (SSID[9:0]).
            int leafBits = fmt == Ste.S1FMT_2LVL_4K ? 6 : 10;
            long l1Ipa = base + (long) (index >>> leafBits) * 8;
            Resolved r = resolver.resolve(l1Ipa);
            if (r instanceof Faulted f) {
                return new Fault(f.event());
            }
            long l1Pa = ((Pa) r).pa();
            OptionalLong l1 = mem.load(l1Pa, 8);
            if (l1.isEmpty()) {
                return new Fault(EventRecord.fetch(EventType.F_CD_FETCH, sid, eventSsid, l1Pa));
            }
            if (!L1CD_V.isSet(l1.getAsLong())) {
                // §7.3.9: an L1CD with V == 0 is C_BAD_SUBSTREAMID, recording the CD index.
                return new Fault(badSubstream(sid, index));
            }
            cdIpa = L1CD_L2PTR.inPlace(l1.getAsLong()) + (long) (index & ((1 << leafBits) - 1)) * Cd.SIZE;
        }
        Resolved r = resolver.resolve(cdIpa);
        if (r instanceof Faulted f) {
            return new Fault(f.event());
        }
        long cdPa = ((Pa) r).pa();
        long[] w = new long[Cd.WORDS];
        for (int i = 0; i < Cd.WORDS; i++) {
            OptionalLong v = mem.load(cdPa + 8L * i, 8);
            if (v.isEmpty()) {
                return new Fault(EventRecord.fetch(EventType.F_CD_FETCH, sid, eventSsid, cdPa));
            }
            w[i] = v.getAsLong();
        }
        return new Found(Cd.of(w), cdPa);
    }

    /** C_BAD_SUBSTREAMID (§7.3.9): SubstreamID always recorded, no SSV. */
    public static EventRecord badSubstream(int sid, int ssid) {
        return new EventRecord(EventType.C_BAD_SUBSTREAMID, sid, false, Math.max(ssid, 0), 0, false, false, false,
                false, false, 0, 0, 0, 0);
    }
}
