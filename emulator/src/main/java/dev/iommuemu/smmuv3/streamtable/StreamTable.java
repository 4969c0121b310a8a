package dev.iommuemu.smmuv3.streamtable;

import dev.iommuemu.field.Field;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import java.util.OptionalLong;

/**
 * Locating a StreamID's STE (IHI 0070 §3.3.2 linear and §3.3.3 2-level Stream tables) from
 * SMMU_STRTAB_BASE and SMMU_STRTAB_BASE_CFG. The result is the STE or the event the lookup raises:
 * C_BAD_STREAMID for an out-of-range StreamID or an unusable L1STD (§7.3.3), F_STE_FETCH for an
 * external abort fetching the L1STD or the STE (§7.3.4).
 */
public final class StreamTable {
    /** L1STD.Span (§5.1 Level-1 Stream Table Descriptor). */
    public static final Field L1STD_SPAN = Field.bits("Span", 4, 0);
    /** L1STD.L2Ptr[55:6]. */
    public static final Field L1STD_L2PTR = Field.bits("L2Ptr", 55, 6);

    public static final int FMT_LINEAR = 0b00;
    public static final int FMT_2LEVEL = 0b01;

    private StreamTable() {}

    /** The outcome of a lookup. */
    public sealed interface Lookup permits Found, Fault {}

    /** The STE and the address it was fetched from. */
    public record Found(Ste ste, long address) implements Lookup {}

    /** The lookup failed with {@code event}. */
    public record Fault(EventRecord event) implements Lookup {}

    /**
     * Finds the STE of {@code sid}. {@code ssid} (or {@link dev.iommuemu.dma.IommuModel#NO_SUBSTREAM})
     * only fills the event records.
     */
    public static Lookup lookup(GuestMemory mem, Smmuv3Profile profile, long strtabBase, long strtabBaseCfg,
            int sid, int ssid) {
        long base = Smmuv3Regs.STRTAB_BASE_ADDR.inPlace(strtabBase);
        // §6.3 SMMU_STRTAB_BASE_CFG: LOG2SIZE is capped at IDR1.SIDSIZE.
        int log2size = Math.min(Smmuv3Regs.STRTAB_BASE_CFG_LOG2SIZE.getInt(strtabBaseCfg), profile.sidBits());
        int fmt = Smmuv3Regs.STRTAB_BASE_CFG_FMT.getInt(strtabBaseCfg);
        long usid = sid & 0xffff_ffffL;
        if (usid >= (1L << log2size)) {
            return new Fault(EventRecord.config(EventType.C_BAD_STREAMID, sid, ssid));
        }
        long steAddr;
        if (fmt == FMT_2LEVEL && profile.twoLevelStreamTable()) {
            int split = split(Smmuv3Regs.STRTAB_BASE_CFG_SPLIT.getInt(strtabBaseCfg));
            if (split > log2size) {
                split = log2size; // §6.3 SMMU_STRTAB_BASE_CFG: SPLIT > LOG2SIZE makes the whole table one level-2 span
            }
            long l1Addr = base + (usid >>> split) * 8;
            OptionalLong l1 = mem.load(l1Addr, 8);
            if (l1.isEmpty()) {
                return new Fault(EventRecord.fetch(EventType.F_STE_FETCH, sid, ssid, l1Addr));
            }
            int span = L1STD_SPAN.getInt(l1.getAsLong());
            long index = usid & ((1L << split) - 1);
            // §7.3.3 C_BAD_STREAMID 2(a)-(d): Span 0 (invalid), reserved (> 12), > SPLIT + 1, index beyond span.
            if (span == 0 || span > 12 || span > split + 1 || index >= (1L << (span - 1))) {
                return new Fault(EventRecord.config(EventType.C_BAD_STREAMID, sid, ssid));
            }
            steAddr = L1STD_L2PTR.inPlace(l1.getAsLong()) + index * Ste.SIZE;
        } else {
            // §6.3 SMMU_STRTAB_BASE_CFG FMT: 2-level without IDR0.ST_LEVEL support is reserved; this model uses linear.
            steAddr = base + usid * Ste.SIZE;
        }
        long[] w = new long[Ste.WORDS];
        for (int i = 0; i < Ste.WORDS; i++) {
            OptionalLong v = mem.load(steAddr + 8L * i, 8);
            if (v.isEmpty()) {
                return new Fault(EventRecord.fetch(EventType.F_STE_FETCH, sid, ssid, steAddr));
            }
            w[i] = v.getAsLong();
        }
        return new Found(Ste.of(w), steAddr);
    }

    /**
     * STRTAB_BASE_CFG.SPLIT (§6.3 SMMU_STRTAB_BASE_CFG): 6, 8 and 10 are architected; other values are reserved and
     * this model rounds them down to the nearest architected one (at least 6).
     */
    public static int split(int raw) {
        if (raw >= 10) {
            return 10;
        }
        return raw >= 8 ? 8 : 6;
    }
}
