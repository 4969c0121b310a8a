package dev.iommuemu.smmuv3.inspect;

import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.pagetable.FaultClass;
import dev.iommuemu.pagetable.MemoryAttributes;
import dev.iommuemu.pagetable.WalkObserver;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import java.util.ArrayList;
import java.util.List;

/**
 * "Why did this IOVA fault": one transaction explained as the SMMU would handle it now (IHI 0070
 * §3.2 Figure 3-3), computed without changing anything the guest or a later transaction can
 * observe (no event recorded, no stall held, no cache filled, no descriptor written).
 *
 * @param smmuEnabled SMMU_CR0ACK.SMMUEN (§6.3.9); when 0, SMMU_GBPA decides alone
 * @param gbpa        SMMU_GBPA (§6.3.14)
 * @param decidedBy   what decided the result
 * @param steAddress  the STE's address, or -1 (SMMU disabled, or the STE could not be fetched)
 * @param steWords    the STE's words as used (the cached copy when cached), or an empty array
 * @param steCached   the STE came from the configuration cache (§3.3.1; it may differ from memory)
 * @param cdAddress   the CD's address, or -1
 * @param cdCached    the CD came from the configuration cache
 * @param steps       the descriptor reads of the walk of the tables as they are in memory now, in
 *                    order; a nested stage 1 step carries the stage 2 walk of its descriptor's IPA
 * @param result      what a transaction gets
 * @param tables      on a TLB hit, what the tables in memory give now (may differ from
 *                    {@code result} until the guest invalidates); otherwise {@code null}
 */
public record WalkExplanation(boolean smmuEnabled, long gbpa, DecidedBy decidedBy, long steAddress, long[] steWords,
        boolean steCached, long cdAddress, boolean cdCached, List<Step> steps, Result result, Result tables) {

    /** STE.Config (§5.2) of the STE used, or -1 when there is none. */
    public int steConfig() {
        return steWords.length == 0 ? -1 : dev.iommuemu.smmuv3.streamtable.Ste.CONFIG.getInt(steWords);
    }

    /** What decided the result. */
    public enum DecidedBy {
        /** SMMUEN == 0: SMMU_GBPA.ABORT aborts or bypasses every transaction (§6.3.14). */
        GBPA,
        /** The STE: Config abort or bypass, or an STE that cannot be used (C_BAD_STE, F_STE_FETCH, ...). */
        STREAM_TABLE_ENTRY,
        /** The CD, or a substream rule (C_BAD_CD, C_BAD_SUBSTREAMID, F_STREAM_DISABLED, a CD fetch fault). */
        CONTEXT_DESCRIPTOR,
        /** A TLB entry (§3.17): no walk; the tables may have changed since it was filled. */
        TLB,
        /** A walk of the translation tables. */
        TRANSLATION_TABLES
    }

    /**
     * The memory attributes of the output (Arm ARM D8.6; stage 1 from CD.MAIR, stage 2 MemAttr read
     * as STE.S2FWB says, combined for nested): the result's, or {@code null} when no table walk
     * translates the transaction (SMMUEN == 0, abort, bypass, a fault).
     */
    public MemoryAttributes attributes() {
        return result.attributes();
    }

    /**
     * The outcome: a translation ({@code entry}, a bypass being identity), or a fault.
     *
     * @param attributes the memory attributes of a translation by the tables (a TLB hit: those
     *                   its entry was filled with), or {@code null} (bypass, fault)
     */
    public record Result(IotlbEntry entry, boolean bypass, Fault fault, MemoryAttributes attributes) {}

    /**
     * A transaction that does not translate.
     *
     * @param type              the event type the SMMU would record (F_TRANSLATION, C_BAD_STE, ...),
     *                          or why it aborts without one ("GBPA.ABORT", "STE.Config abort")
     * @param stage             1 or 2 for a walk fault, 0 for a configuration one
     * @param level             the lookup level of a walk fault
     * @param faultClass        CLASS (§7.3): what stage 2 was translating, IN for stage 1; null without a walk
     * @param ipa               for a stage 2 fault, the IPA stage 2 was translating; else 0
     * @param descriptorAddress the physical address of the descriptor that faulted (or whose fetch
     *                          aborted), or -1 where none was read
     * @param event             the record the SMMU would write (Stall set, STAG 0 for a stall), or null
     * @param recorded          whether the configuration records it (CD.R, STE.S2R; always for
     *                          configuration errors, F_WALK_EABT and stalls, §7.3)
     * @param stall             whether the transaction would be held (§3.12.2)
     */
    public record Fault(String type, int stage, int level, FaultClass faultClass, long ipa, long descriptorAddress,
            EventRecord event, boolean recorded, boolean stall) {}

    /**
     * One descriptor read.
     *
     * @param read    what the walker read (stage, level, table base, index, addresses, value)
     * @param update  the value a hardware Access flag / dirty state update would write, when {@code updated}
     * @param stage2  for a nested stage 1 read, the stage 2 walk that translated its descriptor's IPA
     */
    public record Step(WalkObserver.Read read, boolean updated, long update, List<Step> stage2) {
        public WalkObserver.Kind kind() {
            return read.kind();
        }

        /** The next table or the output base the descriptor holds, or -1. */
        public long next() {
            return read.next();
        }
    }

    /** Collects an explained walk's reads into steps, grouping each stage 1 read with the stage 2 walk before it. */
    public static final class StepSink implements WalkObserver {
        private static final class Open {
            final Read read;
            boolean updated;
            long update;
            List<Open> stage2 = List.of();

            Open(Read read) {
                this.read = read;
            }

            Step close() {
                List<Step> s2 = new ArrayList<>();
                stage2.forEach(o -> s2.add(o.close()));
                return new Step(read, updated, update, List.copyOf(s2));
            }
        }

        private final List<Open> top = new ArrayList<>();
        private final List<Open> pendingTt = new ArrayList<>();
        private Open last;

        @Override
        public void descriptor(int stage, int level, long address, long physical, long descriptor) {
            // read() is overridden: the full record is used
        }

        @Override
        public void read(Read r) {
            Open o = new Open(r);
            last = o;
            if (r.stage() == 2 && r.purpose() == FaultClass.TT) {
                pendingTt.add(o); // IHI 0070 §3.3.2 nesting: the IPA of the stage 1 read that follows
            } else if (r.stage() == 1) {
                o.stage2 = new ArrayList<>(pendingTt);
                pendingTt.clear();
                top.add(o);
            } else {
                top.add(o);
            }
        }

        @Override
        public void update(int stage, int level, long physical, long oldValue, long newValue) {
            for (int i = top.size() - 1; i >= 0; i--) {
                Open o = top.get(i);
                if (o.read.stage() == stage && o.read.level() == level && o.read.physical() == physical) {
                    o.updated = true;
                    o.update = newValue;
                    return;
                }
            }
            if (last != null) {
                last.updated = true;
                last.update = newValue;
            }
        }

        public List<Step> steps() {
            List<Step> out = new ArrayList<>();
            top.forEach(o -> out.add(o.close()));
            pendingTt.forEach(o -> out.add(o.close())); // stage 2 walks of a stage 1 update's write
            return List.copyOf(out);
        }
    }
}
