package dev.iommuemu.pagetable.testing;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.FaultClass;
import dev.iommuemu.pagetable.FaultType;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;

/**
 * A deliberately simple VMSAv8-64 walk, written from the Arm ARM (D8 the AArch64 virtual memory
 * system, the AArch64.S1Translate/S2Translate pseudocode) and IHI 0070 (§3.4 address sizes, §3.13
 * HTTU, §5.2 STE, §5.4 CD) independently of {@code Walker}, so that tests can compare the two
 * on arbitrary tables. It favours obviousness over speed: the walk recurses one level per call,
 * descriptor bits are read with literal bit positions from the Arm ARM figures, permissions come
 * from truth tables, and a fault is thrown to the top.
 *
 * <p>Choices where the architecture leaves room (shared with {@code Walker}, documented there):
 * no Access flag update when the access faults on permissions (IHI 0070 §3.13.2 makes it
 * UNKNOWN); a failed hardware-update compare-and-swap restarts the translation, at most
 * {@link #MAX_RETRIES} times, then reports the fault the unchanged descriptor gives; a stage 1
 * fault's {@code access} is the transaction's, a stage 2 fault's the access stage 2 translated
 * for (a descriptor read or update write for CLASS TT).
 */
public final class ReferenceWalker {
    /** How many failed hardware-update compare-and-swaps a translation tolerates. */
    public static final int MAX_RETRIES = 16;

    private final GuestMemory mem;
    private final int oas;

    public ReferenceWalker(GuestMemory mem, int oasBits) {
        this.mem = mem;
        this.oas = oasBits;
    }

    /** A stop of the walk with its fault. */
    private static final class Stop extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final TranslationFault fault;

        Stop(TranslationFault fault) {
            super(null, null, false, false);
            this.fault = fault;
        }
    }

    /** One transaction's facts, fixed for the whole translation. */
    private record Txn(long input, DmaAccess access) {}

    /** A stage's leaf: output address of the byte, size, permissions and the descriptor. */
    private record Leaf(long out, int shift, int contigShift, int perm, int dirty, int level, long desc, boolean global) {}

    /** The same translation as {@code Walker.translate}. */
    public WalkResult translate(Stage1Config s1, Stage2Config s2, long input, DmaAccess access) {
        Txn t = new Txn(input, access);
        for (int attempt = 0; ; attempt++) {
            try {
                if (s1 == null) {
                    // IHI 0070 §3.4: stage 1 bypassed, the input must fit the IAS (= OAS for
                    // VMSAv8-64), else a stage 1 Address Size fault.
                    if (oas < 64 && (input >>> oas) != 0) {
                        throw s1Fault(FaultType.ADDRESS_SIZE, 0, -1, t);
                    }
                    Leaf l2 = stage2(s2, input, access, FaultClass.IN, t, attempt >= MAX_RETRIES);
                    return new Translation(input, l2.out, l2.shift, l2.contigShift, l2.perm, l2.dirty, true,
                            Translation.NO_LEVEL, l2.level, input, l2.shift, null, s2.granule(), 0, l2.desc);
                }
                Leaf l1 = stage1(s1, s2, input, t, attempt >= MAX_RETRIES);
                if (s2 == null) {
                    return new Translation(input, l1.out, l1.shift, l1.contigShift, l1.perm, l1.dirty, l1.global,
                            l1.level, Translation.NO_LEVEL, l1.out, 0, granuleOf(s1, input), null, l1.desc, 0);
                }
                Leaf l2 = stage2(s2, l1.out, access, FaultClass.IN, t, attempt >= MAX_RETRIES);
                int perm = l1.perm & l2.perm;
                int writesAfterDirty = (l1.perm | l1.dirty) & (l2.perm | l2.dirty) & (Perm.PW | Perm.UW);
                return new Translation(input, l2.out, Math.min(l1.shift, l2.shift),
                        Math.min(l1.contigShift, l2.contigShift), perm, writesAfterDirty & ~perm, l1.global,
                        l1.level, l2.level, l1.out, l2.shift, granuleOf(s1, input), s2.granule(), l1.desc, l2.desc);
            } catch (Stop s) {
                return s.fault;
            } catch (Retry r) {
                // Arm ARM AArch64.S1Translate / S2Translate: the descriptor changed under the update,
                // so the translation starts again.
            }
        }
    }

    /** The same as {@code Walker.stage2For}: stage 2 translating an address on behalf of {@code cls}. */
    public WalkResult stage2For(Stage2Config s2, long ipa, DmaAccess access, FaultClass cls, long inputAddress) {
        Txn t = new Txn(inputAddress, access);
        for (int attempt = 0; ; attempt++) {
            try {
                Leaf l2 = stage2(s2, ipa, access, cls, t, attempt >= MAX_RETRIES);
                return new Translation(ipa, l2.out, l2.shift, l2.contigShift, l2.perm, l2.dirty, true,
                        Translation.NO_LEVEL, l2.level, ipa, l2.shift, null, s2.granule(), 0, l2.desc);
            } catch (Stop s) {
                return s.fault;
            } catch (Retry r) {
                // as above
            }
        }
    }

    private static final class Retry extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Retry() {
            super(null, null, false, false);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Stage 1 (Arm ARM D8.2 VA ranges, D8.3 descriptors, D8.4 permissions; IHI 0070 §5.4)

    private static boolean upperRange(Stage1Config c, long va) {
        return !c.el2() && bit(va, 55);
    }

    private static Granule granuleOf(Stage1Config c, long va) {
        return (upperRange(c, va) ? c.tt1() : c.tt0()).granule();
    }

    private Leaf stage1(Stage1Config c, Stage2Config s2, long va, Txn t, boolean lastTry) {
        boolean upper = upperRange(c, va);
        Stage1Config.Region r = upper ? c.tt1() : c.tt0();
        boolean tbi = upper ? c.tbi1() : c.tbi0();
        boolean had = upper ? c.had1() : c.had0();
        // IHI 0070 §5.4 CD.EPD0: EPDx is IGNORED (effective 0) for StreamWorld any-EL2.
        if (r == null || (r.disabled() && !c.el2()) || r.granule() == null) {
            throw s1Fault(FaultType.TRANSLATION, 0, -1, t);
        }
        Granule g = r.granule();
        int inBits = 64 - r.tsz();
        if (inBits <= g.pageShift() || inBits > 56) {
            throw s1Fault(FaultType.TRANSLATION, 0, -1, t);
        }
        // IHI 0070 §3.4.1: VA[AddrTop:N] must all equal VA[55]; AddrTop is 55 with TBI, else 63. In
        // the single range of EL2 they must all be zero.
        int addrTop = tbi ? 55 : 63;
        for (int b = inBits; b <= addrTop; b++) {
            if (bit(va, b) != upper) {
                throw s1Fault(FaultType.TRANSLATION, 0, -1, t);
            }
        }
        boolean ds = c.ds() && g != Granule.G64K;
        int start = 3 - (inBits - g.pageShift() - 1) / g.stride();
        if (start < 0 && !(start == -1 && ds)) {
            throw s1Fault(FaultType.TRANSLATION, 0, -1, t);
        }
        int outBits = Math.min(c.ipsBits(), oas);
        if (outBits < 64 && (r.ttb() >>> outBits) != 0) {
            throw s1Fault(FaultType.ADDRESS_SIZE, 0, -1, t);
        }
        int startBits = inBits - shiftOf(g, start);
        long tableBytes = 8L << startBits;
        if (outBits >= 52 && tableBytes < 64) {
            tableBytes = 64; // IHI 0070 §5.4 CD.TTB0: bits [5:0] treated as zero with 52-bit IPS
        }
        long base = r.ttb() & ~(tableBytes - 1);
        S1Walk w = new S1Walk(c, s2, va, t, g, ds, had, outBits, lastTry);
        return w.level(start, base, startBits, false, false, false, false);
    }

    /** The state of one stage 1 walk. */
    private final class S1Walk {
        final Stage1Config c;
        final Stage2Config s2;
        final long va;
        final Txn t;
        final Granule g;
        final boolean ds;
        final boolean had;
        final int outBits;
        final boolean lastTry;

        S1Walk(Stage1Config c, Stage2Config s2, long va, Txn t, Granule g, boolean ds, boolean had, int outBits,
                boolean lastTry) {
            this.c = c;
            this.s2 = s2;
            this.va = va;
            this.t = t;
            this.g = g;
            this.ds = ds;
            this.had = had;
            this.outBits = outBits;
            this.lastTry = lastTry;
        }

        /**
         * Looks up {@code level} in the table at {@code table} (an IPA when nested) and goes on
         * down; the four flags are the hierarchical controls collected so far (D8.4.2).
         */
        Leaf level(int level, long table, int indexBits, boolean apTableNoWrite, boolean apTableNoUser,
                boolean pxnTable, boolean xnTable) {
            int shift = shiftOf(g, level);
            long index = (va >>> shift) & ((1L << indexBits) - 1);
            long descIpa = table + index * 8;
            long descPa = descIpa;
            if (s2 != null) {
                // Arm ARM D8.2 / IHI 0070 §3.4.3: nested stage 1 table addresses are IPAs, translated
                // by stage 2 for a read; a fault there is a stage 2 fault of CLASS TT.
                descPa = stage2(s2, descIpa, DmaAccess.READ, FaultClass.TT, t, lastTry).out;
            }
            Long raw = read(descPa);
            if (raw == null) {
                throw s1Fault(FaultType.WALK_EABT, level, descPa, t);
            }
            long d = c.bigEndian() ? Long.reverseBytes(raw) : raw;
            boolean valid = bit(d, 0);
            boolean type1 = bit(d, 1);
            if (!valid || (level == 3 && !type1)) {
                throw s1Fault(FaultType.TRANSLATION, level, descPa, t);
            }
            if (level < 3 && type1) {
                long next = addressIn(d, g, ds, g.pageShift());
                if (outBits < 64 && (next >>> outBits) != 0) {
                    throw s1Fault(FaultType.ADDRESS_SIZE, level, descPa, t);
                }
                boolean useTable = !had;
                return level(level + 1, next, g.stride(),
                        apTableNoWrite || (useTable && bit(d, 62)),
                        apTableNoUser || (useTable && bit(d, 61)),
                        pxnTable || (useTable && bit(d, 59)),
                        xnTable || (useTable && bit(d, 60)));
            }
            if (level < 3 && !blockLegal(g, level, ds)) {
                throw s1Fault(FaultType.TRANSLATION, level, descPa, t);
            }
            long oa = addressIn(d, g, ds, shift);
            if (outBits < 64 && (oa >>> outBits) != 0) {
                throw s1Fault(FaultType.ADDRESS_SIZE, level, descPa, t);
            }
            int perm = s1Perms(c, d, apTableNoWrite, apTableNoUser, pxnTable, xnTable);
            int dirty = s1Dirty(c, d, perm, apTableNoWrite, apTableNoUser, pxnTable, xnTable);
            boolean af = bit(d, 10);
            // Arm ARM D8.16 priority: Access flag fault before Permission fault (IHI 0070 §3.13.1).
            if (!af && !c.ha() && !c.affd()) {
                throw s1Fault(FaultType.ACCESS_FLAG, level, descPa, t);
            }
            long updated = d;
            if (!Perm.allows(perm, t.access)) {
                if (t.access.write() && Perm.allows(perm | dirty, t.access)) {
                    updated = (d & ~(1L << 7)) | (1L << 10); // §3.13.3: clear AP[2]; §3.13.2: and AF
                } else {
                    throw s1Fault(FaultType.PERMISSION, level, descPa, t);
                }
            } else if (!af && c.ha()) {
                updated = d | (1L << 10);
            }
            if (updated != d) {
                long pa = descPa;
                if (s2 != null) {
                    // IHI 0070 §3.13.5: the stage 1 update is a write through stage 2.
                    pa = stage2(s2, descIpa, DmaAccess.WRITE, FaultClass.TT, t, lastTry).out;
                }
                Boolean swapped = swap(pa, d, updated, c.bigEndian());
                if (swapped == null) {
                    throw s1Fault(FaultType.WALK_EABT, level, pa, t);
                }
                if (!swapped) {
                    if (lastTry) {
                        FaultType ft = Perm.allows(perm, t.access) ? FaultType.ACCESS_FLAG : FaultType.PERMISSION;
                        throw s1Fault(ft, level, descPa, t);
                    }
                    throw new Retry();
                }
                // The result describes the descriptor as it now stands (writable-dirty, accessed).
                d = updated;
                perm = s1Perms(c, d, apTableNoWrite, apTableNoUser, pxnTable, xnTable);
                dirty = s1Dirty(c, d, perm, apTableNoWrite, apTableNoUser, pxnTable, xnTable);
            }
            long out = oa | (va & ((1L << shift) - 1));
            int contig = bit(d, 52) ? shift + contiguousLog2(g, level) : shift;
            boolean global = c.el2() || !bit(d, 11);
            return new Leaf(out, shift, contig, perm, dirty, level, d, global);
        }
    }

    /** The write permissions a hardware dirty update would add (IHI 0070 §3.13.3). */
    private static int s1Dirty(Stage1Config c, long d, int perm, boolean tNoWrite, boolean tNoUser, boolean tPxn,
            boolean tXn) {
        boolean hd = c.ha() && c.hd(); // IHI 0070 §5.4 CD.HA: {HD,HA} = 0b10 behaves as 0b00
        if (!hd || !bit(d, 51) || !bit(d, 7)) {
            return 0;
        }
        // A DBM page is writable-clean: a write would clear AP[2].
        int permIfDirty = s1Perms(c, d & ~(1L << 7), tNoWrite, tNoUser, tPxn, tXn);
        return permIfDirty & ~perm & (Perm.PW | Perm.UW);
    }

    /**
     * Stage 1 permissions of a leaf as {@link Perm} bits, from the Arm ARM tables: D8.4.1 data
     * access permissions (AP[2:1]), D8.4.2 hierarchical APTable/PXNTable/UXNTable, the
     * execute-never rules (PXN, UXN, EL0-writable implies PXN, WXN implies XN for a writable
     * access level), and IHI 0070 §5.4 CD.PAN. EL2 (single privilege): AP[1], APTable[0], PXN and
     * PXNTable are not used and every access is privileged.
     */
    private static int s1Perms(Stage1Config c, long d, boolean tNoWrite, boolean tNoUser, boolean tPxn, boolean tXn) {
        boolean ap2 = bit(d, 7);
        boolean ap1 = bit(d, 6);
        if (c.el2()) {
            boolean w = !ap2 && !tNoWrite;
            boolean x = !(bit(d, 54) || tXn || (c.wxn() && w));
            int p = Perm.PR | (w ? Perm.PW : 0) | (x ? Perm.PX : 0);
            return p | (p >> 3); // unprivileged requests are treated as privileged
        }
        //                 AP[2:1]:  00     01     10     11
        boolean[] privRead = {true, true, true, true};
        boolean[] privWrite = {true, true, false, false};
        boolean[] userRead = {false, true, false, true};
        boolean[] userWrite = {false, true, false, false};
        int ap = (ap2 ? 2 : 0) | (ap1 ? 1 : 0);
        boolean pr = privRead[ap];
        boolean pw = privWrite[ap] && !tNoWrite;
        boolean ur = userRead[ap] && !tNoUser;
        boolean uw = userWrite[ap] && !tNoWrite && !tNoUser;
        boolean px = !(bit(d, 53) || tPxn || uw || (c.wxn() && pw));
        boolean ux = !(bit(d, 54) || tXn || (c.wxn() && uw));
        if (c.pan() && (ur || uw)) {
            pr = false;
            pw = false;
        }
        return (pr ? Perm.PR : 0) | (pw ? Perm.PW : 0) | (px ? Perm.PX : 0)
                | (ur ? Perm.UR : 0) | (uw ? Perm.UW : 0) | (ux ? Perm.UX : 0);
    }

    // ---------------------------------------------------------------------------------------
    // Stage 2 (Arm ARM D8 VTCR_EL2 semantics; IHI 0070 §5.2 STE.S2*)

    private Leaf stage2(Stage2Config c, long ipa, DmaAccess access, FaultClass cls, Txn t, boolean lastTry) {
        int inBits = 64 - c.t0sz();
        // IHI 0070 §3.4 stage 2 check 1: an IPA outside S2T0SZ's range is a Translation fault.
        if (inBits < 64 && inBits > 0 && (ipa >>> inBits) != 0) {
            throw s2Fault(FaultType.TRANSLATION, 0, cls, ipa, -1, t, access);
        }
        Granule g = c.granule();
        int start = c.startLevel();
        if (g == null || start < -1 || start > 3) {
            throw s2Fault(FaultType.TRANSLATION, 0, cls, ipa, -1, t, access);
        }
        int startBits = inBits - shiftOf(g, start);
        if (startBits < 1 || startBits > g.stride() + 4) {
            throw s2Fault(FaultType.TRANSLATION, 0, cls, ipa, -1, t, access);
        }
        int outBits = Math.min(c.psBits(), oas);
        if (outBits < 64 && (c.ttb() >>> outBits) != 0) {
            throw s2Fault(FaultType.ADDRESS_SIZE, 0, cls, ipa, -1, t, access);
        }
        long tableBytes = Math.max(8L << startBits, outBits >= 52 ? 64 : 8);
        boolean ds = c.ds() && g != Granule.G64K;
        return s2Level(c, ipa, access, cls, t, lastTry, g, ds, outBits, start, c.ttb() & ~(tableBytes - 1), startBits);
    }

    private Leaf s2Level(Stage2Config c, long ipa, DmaAccess access, FaultClass cls, Txn t, boolean lastTry,
            Granule g, boolean ds, int outBits, int level, long table, int indexBits) {
        int shift = shiftOf(g, level);
        long descPa = table + ((ipa >>> shift) & ((1L << indexBits) - 1)) * 8;
        Long raw = read(descPa);
        if (raw == null) {
            throw s2Fault(FaultType.WALK_EABT, level, cls, ipa, descPa, t, access);
        }
        long d = c.bigEndian() ? Long.reverseBytes(raw) : raw;
        if (!bit(d, 0) || (level == 3 && !bit(d, 1))) {
            throw s2Fault(FaultType.TRANSLATION, level, cls, ipa, descPa, t, access);
        }
        if (level < 3 && bit(d, 1)) {
            long next = addressIn(d, g, ds, g.pageShift());
            if (outBits < 64 && (next >>> outBits) != 0) {
                throw s2Fault(FaultType.ADDRESS_SIZE, level, cls, ipa, descPa, t, access);
            }
            return s2Level(c, ipa, access, cls, t, lastTry, g, ds, outBits, level + 1, next, g.stride());
        }
        if (level < 3 && !blockLegal(g, level, ds)) {
            throw s2Fault(FaultType.TRANSLATION, level, cls, ipa, descPa, t, access);
        }
        long oa = addressIn(d, g, ds, shift);
        if (outBits < 64 && (oa >>> outBits) != 0) {
            throw s2Fault(FaultType.ADDRESS_SIZE, level, cls, ipa, descPa, t, access);
        }
        int perm = s2Perms(c, d);
        // IHI 0070 §3.13.3: never made writable for the fetch of a CD.
        int dirty = cls == FaultClass.CD ? 0 : s2Dirty(c, d, perm);
        boolean af = bit(d, 10);
        if (!af && !c.ha() && !c.affd()) {
            throw s2Fault(FaultType.ACCESS_FLAG, level, cls, ipa, descPa, t, access); // §5.2 STE.S2AFFD
        }
        long updated = d;
        if (!Perm.allows(perm, access)) {
            if (access.write() && Perm.allows(perm | dirty, access)) {
                updated = d | (1L << 7) | (1L << 10);
            } else {
                throw s2Fault(FaultType.PERMISSION, level, cls, ipa, descPa, t, access);
            }
        } else if (!af && c.ha()) {
            updated = d | (1L << 10);
        }
        if (updated != d) {
            Boolean swapped = swap(descPa, d, updated, c.bigEndian());
            if (swapped == null) {
                throw s2Fault(FaultType.WALK_EABT, level, cls, ipa, descPa, t, access);
            }
            if (!swapped) {
                if (lastTry) {
                    FaultType ft = Perm.allows(perm, access) ? FaultType.ACCESS_FLAG : FaultType.PERMISSION;
                    throw s2Fault(ft, level, cls, ipa, descPa, t, access);
                }
                throw new Retry();
            }
            d = updated;
            perm = s2Perms(c, d);
            dirty = cls == FaultClass.CD ? 0 : s2Dirty(c, d, perm);
        }
        // IHI 0070 §5.2 STE.S2PTW: a CD fetch or stage 1 table walk to stage 2 Device memory
        // (MemAttr[3:2] == 0b00) is a stage 2 Permission fault; Arm ARM AArch64.SecondStageWalk
        // makes this check on the completed stage 2 translation.
        if (c.ptw() && cls != FaultClass.IN && ((d >>> 4) & 3) == 0) {
            throw s2Fault(FaultType.PERMISSION, level, cls, ipa, descPa, t, access);
        }
        long out = oa | (ipa & ((1L << shift) - 1));
        int contig = bit(d, 52) ? shift + contiguousLog2(g, level) : shift;
        return new Leaf(out, shift, contig, perm, dirty, level, d, true);
    }

    /** IHI 0070 §3.13.3: with S2HA and S2HD a write to a DBM page would set S2AP[1]. */
    private static int s2Dirty(Stage2Config c, long d, int perm) {
        if (!(c.ha() && c.hd() && bit(d, 51) && !bit(d, 7))) {
            return 0;
        }
        return s2Perms(c, d | (1L << 7)) & ~perm;
    }

    /**
     * Stage 2 permissions (Arm ARM D8.4.3): S2AP[0] read, S2AP[1] write for both privileges;
     * XN[1:0] with FEAT_XNX (IHI 0070 SMMU_IDR3.XNX), else XN[1] alone.
     */
    private static int s2Perms(Stage2Config c, long d) {
        int p = 0;
        if (bit(d, 6)) {
            p |= Perm.PR | Perm.UR;
        }
        if (bit(d, 7)) {
            p |= Perm.PW | Perm.UW;
        }
        int xn = (int) ((d >>> 53) & 3);
        if (!c.xnx()) {
            xn &= 2;
        }
        //                      XN: 00    01     10     11
        boolean[] privExec = {true, false, false, true};
        boolean[] userExec = {true, true, false, false};
        if (privExec[xn]) {
            p |= Perm.PX;
        }
        if (userExec[xn]) {
            p |= Perm.UX;
        }
        return p;
    }

    // ---------------------------------------------------------------------------------------
    // Shared descriptor rules

    /** The shift of the region a descriptor at {@code level} maps. */
    private static int shiftOf(Granule g, int level) {
        int bitsPerLevel = g.pageShift() - 3;
        return g.pageShift() + (3 - level) * bitsPerLevel;
    }

    /**
     * Arm ARM D8.3.1 (AArch64.BlockDescSupported): blocks at 4K levels 1-2 (0 with DS), 16K level
     * 2 (1 with DS), 64K level 2 (1 with a 52-bit PA, FEAT_LPA).
     */
    private boolean blockLegal(Granule g, int level, boolean ds) {
        switch (g) {
            case G4K:
                return level == 1 || level == 2 || (ds && level == 0);
            case G16K:
                return level == 2 || (ds && level == 1);
            default:
                return level == 2 || (oas >= 52 && level == 1);
        }
    }

    /**
     * The address field (Arm ARM D8.3, AArch64.NextTableBase / LeafBase): bits [47:n]; with DS
     * (4K/16K) bits [49:n] and OA[51:50] from bits [9:8]; with 64K and a 52-bit PA, OA[51:48]
     * from bits [15:12]. Aligned down to {@code alignShift}.
     */
    private long addressIn(long d, Granule g, boolean ds, int alignShift) {
        long a;
        if (ds) {
            a = (d & bitsMask(49, 12)) | (((d >>> 8) & 3) << 50);
        } else {
            a = d & bitsMask(47, 12);
            if (g == Granule.G64K && oas >= 52) {
                a |= ((d >>> 12) & 0xf) << 48;
            }
        }
        return a & bitsMask(63, alignShift);
    }

    /** log2 of the Contiguous run (Arm ARM D8.6.1 table of contiguous entries). */
    private static int contiguousLog2(Granule g, int level) {
        if (g == Granule.G4K && level >= 1) {
            return 4; // 16 entries
        }
        if (g == Granule.G16K && level == 3) {
            return 7; // 128 entries
        }
        if (g == Granule.G16K && level == 2) {
            return 5; // 32 entries
        }
        if (g == Granule.G64K && level >= 2) {
            return 5; // 32 entries
        }
        return 0;
    }

    private static long bitsMask(int msb, int lsb) {
        long hi = msb == 63 ? -1L : (1L << (msb + 1)) - 1;
        return hi & ~((1L << lsb) - 1);
    }

    private static boolean bit(long v, int n) {
        return ((v >>> n) & 1) != 0;
    }

    private Long read(long pa) {
        GuestMemory.Region r = mem.find(pa, 8);
        return r == null ? null : r.read64(pa);
    }

    /** Atomic swap: {@code null} on an abort, else whether memory held {@code expect}. */
    private Boolean swap(long pa, long expect, long update, boolean bigEndian) {
        GuestMemory.Region r = mem.find(pa, 8);
        if (r == null) {
            return null;
        }
        return bigEndian ? r.compareAndSet64(pa, Long.reverseBytes(expect), Long.reverseBytes(update))
                : r.compareAndSet64(pa, expect, update);
    }

    private static Stop s1Fault(FaultType type, int level, long descPa, Txn t) {
        return new Stop(new TranslationFault(type, 1, level, FaultClass.IN, t.input, 0, descPa, t.access));
    }

    /**
     * A stage 2 fault carries the access stage 2 was asked for: the transaction's (CLASS IN), a
     * descriptor read or a hardware-update write (CLASS TT: IHI 0070 §7.3.16 TTRnW), a CD read.
     */
    private static Stop s2Fault(FaultType type, int level, FaultClass cls, long ipa, long descPa, Txn t, DmaAccess access) {
        return new Stop(new TranslationFault(type, 2, level, cls, t.input, ipa, descPa, access));
    }
}
