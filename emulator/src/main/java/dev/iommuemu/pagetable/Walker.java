package dev.iommuemu.pagetable;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.memory.GuestMemory;

/**
 * The VMSAv8-64 translation table walker (Arm ARM D8, the AArch64 translation system) as an
 * SMMUv3 performs it (IHI 0070 §3.4 address sizes, §5.2 STE stage 2 fields, §5.4 CD stage 1
 * fields): stage 1, stage 2, and nested stage 1 + stage 2 in which every stage 1 table address
 * and the final stage 1 output address are translated by stage 2.
 *
 * <p>Stateless apart from the memory it reads (thread-safe): caching belongs to
 * {@code dev.iommuemu.tlb}. Guest-controlled tables can only produce faults: a loop in the tables
 * is impossible because every table descriptor moves one level down, hardware update retries
 * after a failed compare-and-swap are bounded, and a successful update is final (the walk goes
 * on with the value written, so a guest racing to undo it cannot hold the walker).
 */
public final class Walker {
    /** Bound on atomic-update retries when the guest changes a descriptor under us. */
    static final int MAX_UPDATE_RETRIES = 16;

    private final GuestMemory mem;
    private final int oasBits;
    private final boolean lpa;

    /**
     * @param mem     guest physical memory
     * @param oasBits the implementation's output address size (SMMU_IDR5.OAS), which caps IPS and
     *                S2PS; 52 enables the 64K 52-bit descriptor format (FEAT_LPA)
     */
    public Walker(GuestMemory mem, int oasBits) {
        this.mem = mem;
        this.oasBits = oasBits;
        this.lpa = oasBits >= 52;
    }

    public GuestMemory memory() {
        return mem;
    }

    public int oasBits() {
        return oasBits;
    }

    /** Stage 1 only: {@code va} to a physical address. */
    public WalkResult stage1(Stage1Config s1, long va, DmaAccess access) {
        return translate(s1, null, va, access, null);
    }

    /**
     * Stage 2 only: {@code ipa} (the transaction's input) to a physical address. An input beyond
     * the IAS ({@code oasBits}) is a stage 1 Address Size fault (IHI 0070 §3.4).
     */
    public WalkResult stage2(Stage2Config s2, long ipa, DmaAccess access) {
        return translate(null, s2, ipa, access, null);
    }

    /** Nested: {@code va} through stage 1 (tables in IPA space) then stage 2. */
    public WalkResult nested(Stage1Config s1, Stage2Config s2, long va, DmaAccess access) {
        return translate(s1, s2, va, access, null);
    }

    /**
     * Stage 2 translation of an address that is not a transaction's input, e.g. a CD fetch in a
     * nested configuration (IHI 0070 §3.3.2: CD addresses are IPAs when stage 2 translates): a
     * fault reports {@code cls} and the address as both input and IPA. The result's perm bits are
     * stage 2's.
     */
    public WalkResult stage2For(Stage2Config s2, long ipa, DmaAccess access, FaultClass cls, long inputAddress) {
        return stage2For(new Ctx(access, null, inputAddress), s2, ipa, access, cls);
    }

    private WalkResult stage2For(Ctx ctx, Stage2Config s2, long ipa, DmaAccess access, FaultClass cls) {
        if (!s2Walk(s2, ipa, access, cls, ctx)) {
            return ctx.fault;
        }
        return new Translation(ipa, ctx.s2Out, ctx.s2Shift, ctx.s2Contig, ctx.s2Perm, ctx.s2Dirty, true,
                Translation.NO_LEVEL, ctx.s2Level, ipa, ctx.s2Shift, null, s2.granule(), 0, ctx.s2Desc);
    }

    /**
     * The general form: either stage may be {@code null} (bypassed) but not both.
     *
     * @param observer sees each descriptor read, or {@code null}
     */
    public WalkResult translate(Stage1Config s1, Stage2Config s2, long input, DmaAccess access, WalkObserver observer) {
        return translate(new Ctx(access, observer, input), s1, s2, input, access);
    }

    /**
     * A speculative walk, as for a TLB prefetch (IHI 0070 §4.2.2 CMD_PREFETCH_ADDR: TLB entries
     * fetched "as though accessed by transactions", with HTTU only as for a speculative read,
     * §3.14): the same result as {@link #translate} when the walk needs no descriptor write, and a
     * fault where it would need a hardware Access flag or dirty state update (Arm ARM D8.4): such
     * a page is left for an access that happens. The tables are never written.
     */
    public WalkResult speculate(Stage1Config s1, Stage2Config s2, long input, DmaAccess access) {
        Ctx ctx = new Ctx(access, null, input);
        ctx.speculative = true;
        return translate(ctx, s1, s2, input, access);
    }

    /**
     * An explained walk, for diagnostics ("why did this IOVA fault"): the result {@link #translate}
     * gives, with every descriptor read reported to {@code observer}, but the tables are never
     * written: a hardware Access flag or dirty state update (Arm ARM D8.4) is reported through
     * {@link WalkObserver#update} and the walk goes on with the value it would write.
     */
    public WalkResult explain(Stage1Config s1, Stage2Config s2, long input, DmaAccess access, WalkObserver observer) {
        Ctx ctx = new Ctx(access, observer, input);
        ctx.dry = true;
        return translate(ctx, s1, s2, input, access);
    }

    /** {@link #stage2For} explained: reads reported to {@code observer}, nothing written (see {@link #explain}). */
    public WalkResult explainStage2For(Stage2Config s2, long ipa, DmaAccess access, FaultClass cls, long inputAddress,
            WalkObserver observer) {
        Ctx ctx = new Ctx(access, observer, inputAddress);
        ctx.dry = true;
        return stage2For(ctx, s2, ipa, access, cls);
    }

    private WalkResult translate(Ctx ctx, Stage1Config s1, Stage2Config s2, long input, DmaAccess access) {
        if (s1 == null) {
            if (s2 == null) {
                throw new IllegalArgumentException("no stage translates");
            }
            if (!fits(input, oasBits)) {
                // IHI 0070 §3.4: with stage 1 bypassed the input is the IPA; one beyond the IAS (the
                // OAS, for VMSAv8-64 tables) is a stage 1 Address Size fault, before stage 2 sees it.
                fault(ctx, FaultType.ADDRESS_SIZE, 1, 0, FaultClass.IN, 0, -1);
                return ctx.fault;
            }
            if (!s2Walk(s2, input, access, FaultClass.IN, ctx)) {
                return ctx.fault;
            }
            return new Translation(input, ctx.s2Out, ctx.s2Shift, ctx.s2Contig, ctx.s2Perm, ctx.s2Dirty, true,
                    Translation.NO_LEVEL, ctx.s2Level, input, ctx.s2Shift, null, s2.granule(), 0, ctx.s2Desc);
        }
        if (!s1Walk(s1, s2, input, ctx)) {
            return ctx.fault;
        }
        if (s2 == null) {
            return new Translation(input, ctx.s1Out, ctx.s1Shift, ctx.s1Contig, ctx.s1Perm, ctx.s1Dirty, ctx.s1Global,
                    ctx.s1Level, Translation.NO_LEVEL, ctx.s1Out, 0, ctx.s1Granule, null, ctx.s1Desc, 0);
        }
        // IHI 0070 §3.3.2 / Arm ARM D8.2: the stage 1 output address is an IPA, translated by stage 2
        // with the transaction's own access (CLASS = IN).
        long ipa = ctx.s1Out;
        if (!s2Walk(s2, ipa, access, FaultClass.IN, ctx)) {
            return ctx.fault;
        }
        int shift = Math.min(ctx.s1Shift, ctx.s2Shift);
        int contig = Math.min(ctx.s1Contig, ctx.s2Contig);
        int perm = ctx.s1Perm & ctx.s2Perm;
        int reachable = (ctx.s1Perm | ctx.s1Dirty) & (ctx.s2Perm | ctx.s2Dirty);
        int dirty = reachable & ~perm & (Perm.PW | Perm.UW);
        return new Translation(input, ctx.s2Out, shift, contig, perm, dirty, ctx.s1Global, ctx.s1Level, ctx.s2Level,
                ipa, ctx.s2Shift, ctx.s1Granule, s2.granule(), ctx.s1Desc, ctx.s2Desc);
    }

    // ------------------------------------------------------------------------------------------
    // Stage 1

    private boolean s1Walk(Stage1Config c, Stage2Config s2, long va, Ctx ctx) {
        final DmaAccess acc = ctx.access;
        // Arm ARM D8.2.x: VA[55] selects the TTB0 or TTB1 range (both EL1&0 and EL2&0); the bits
        // above the range size up to bit 63 (bit 55 with TBI) must all equal VA[55].
        boolean upper = ((va >>> 55) & 1) != 0;
        Stage1Config.Region r;
        boolean tbi;
        boolean had;
        if (c.el2()) {
            r = c.tt0();
            tbi = c.tbi0();
            had = c.had0();
        } else {
            r = upper ? c.tt1() : c.tt0();
            tbi = upper ? c.tbi1() : c.tbi0();
            had = upper ? c.had1() : c.had0();
        }
        // IHI 0070 §5.4 CD.EPDx: a miss in a disabled range is a Translation fault, no walk. EPD0
        // is IGNORED (effective 0) for StreamWorld any-EL2, whose single range always walks.
        if (r == null || (r.disabled() && !c.el2())) {
            return fault(ctx, FaultType.TRANSLATION, 1, 0, FaultClass.IN, 0, -1);
        }
        int ia = r.inputBits();
        Granule g = r.granule();
        if (g == null || ia <= g.pageShift() || ia > 64) {
            return fault(ctx, FaultType.TRANSLATION, 1, 0, FaultClass.IN, 0, -1);
        }
        int top = tbi ? 55 : 63;
        if (ia <= top) {
            // Bits [top:ia] must all equal VA[55]: ones for the TTB1 range, zeros for TTB0 (and for
            // the single range of EL2, where VA[55] == 1 is therefore out of range).
            long mask = (top == 63 ? -1L : (1L << (top + 1)) - 1) & ~((1L << ia) - 1);
            long required = (upper && !c.el2()) ? mask : 0;
            if ((va & mask) != required) {
                return fault(ctx, FaultType.TRANSLATION, 1, 0, FaultClass.IN, 0, -1);
            }
        }
        int startLevel = startLevel(g, ia);
        int startBits = ia - g.levelShift(startLevel);
        if (startLevel < (c.ds() ? -1 : 0)) {
            return fault(ctx, FaultType.TRANSLATION, 1, 0, FaultClass.IN, 0, -1);
        }
        int outBits = Math.min(c.ipsBits(), oasBits);
        boolean ds = c.ds() && g != Granule.G64K;
        // IHI 0070 §5.4 CD.TTB0: out-of-range table bases; Arm ARM: Address size fault at level 0.
        if (!fits(r.ttb(), outBits)) {
            return fault(ctx, FaultType.ADDRESS_SIZE, 1, 0, FaultClass.IN, 0, -1);
        }
        long table = alignTable(r.ttb(), startBits, outBits >= 52);

        // Hierarchical permissions accumulated from table descriptors (Arm ARM D8.4.2).
        boolean noWrite = false;
        boolean noUser = false;
        boolean pxnTable = false;
        boolean uxnTable = false;
        int level = startLevel;
        int retries = 0;
        long descPa = 0;
        boolean held = false; // the descriptor a successful hardware update just wrote
        long heldDesc = 0;
        while (true) {
            int shift = g.levelShift(level);
            int nbits = level == startLevel ? startBits : g.stride();
            int index = (int) ((va >>> shift) & ((1L << nbits) - 1));
            long descAddr = table + ((long) index << 3);
            long desc;
            if (held) {
                // Arm ARM hardware updates: the compare-and-swap established this value atomically;
                // the walk goes on with it rather than re-reading (a guest racing to undo the update
                // must not be able to hold the walker in a loop).
                desc = heldDesc;
                held = false;
            } else {
                descPa = descAddr;
                if (s2 != null) {
                    // Nested: the stage 1 table address is an IPA (CLASS = TT).
                    if (!s2Walk(s2, descAddr, DmaAccess.READ, FaultClass.TT, ctx)) {
                        return false;
                    }
                    descPa = ctx.s2Out;
                }
                GuestMemory.Region reg = mem.find(descPa, 8);
                if (reg == null) {
                    observe(ctx, new WalkObserver.Read(1, level, va, FaultClass.IN, table, index, descAddr, descPa, 0, true, g, ds, lpa));
                    return fault(ctx, FaultType.WALK_EABT, 1, level, FaultClass.IN, 0, descPa);
                }
                long raw = reg.read64(descPa);
                desc = c.bigEndian() ? Long.reverseBytes(raw) : raw;
                observe(ctx, new WalkObserver.Read(1, level, va, FaultClass.IN, table, index, descAddr, descPa, desc, false, g, ds, lpa));
            }
            if (!Descriptor.VALID.isSet(desc)) {
                return fault(ctx, FaultType.TRANSLATION, 1, level, FaultClass.IN, 0, descPa);
            }
            boolean tableOrPage = Descriptor.TABLE_OR_PAGE.isSet(desc);
            if (level < 3 && tableOrPage) {
                long next = Descriptor.address(desc, g, ds, lpa, g.pageShift());
                if (!fits(next, outBits)) {
                    return fault(ctx, FaultType.ADDRESS_SIZE, 1, level, FaultClass.IN, 0, descPa);
                }
                if (!had) {
                    noWrite |= Descriptor.AP_TABLE_RO.isSet(desc);
                    noUser |= Descriptor.AP_TABLE_NO_USER.isSet(desc);
                    pxnTable |= Descriptor.PXN_TABLE.isSet(desc);
                    uxnTable |= Descriptor.UXN_TABLE.isSet(desc);
                }
                table = next;
                level++;
                continue;
            }
            if (level == 3 && !tableOrPage) {
                // Arm ARM D8.3: bits[1:0] == 0b01 at level 3 is reserved, treated as invalid.
                return fault(ctx, FaultType.TRANSLATION, 1, level, FaultClass.IN, 0, descPa);
            }
            if (level < 3 && !Descriptor.blockAllowed(g, level, ds, lpa)) {
                return fault(ctx, FaultType.TRANSLATION, 1, level, FaultClass.IN, 0, descPa);
            }
            long oa = Descriptor.address(desc, g, ds, lpa, shift);
            if (!fits(oa, outBits)) {
                return fault(ctx, FaultType.ADDRESS_SIZE, 1, level, FaultClass.IN, 0, descPa);
            }

            // Permissions (Arm ARM D8.4: stage 1 data access permissions, execute-never controls).
            boolean ro = Descriptor.AP_RO.isSet(desc) || noWrite;
            int perm;
            int dirty = 0;
            boolean dbmWritable = c.ha() && c.hd() && Descriptor.DBM.isSet(desc) && Descriptor.AP_RO.isSet(desc) && !noWrite;
            if (c.el2()) {
                // Single-privilege regime: AP[1], APTable[0], PXN and PXNTable are not used; every
                // access is privileged, so the unprivileged bits mirror the privileged ones.
                boolean xn = Descriptor.UXN.isSet(desc) || uxnTable;
                perm = Perm.PR | (ro ? 0 : Perm.PW) | (xn || (c.wxn() && !ro) ? 0 : Perm.PX);
                perm |= perm >>> 3;
                if (dbmWritable) {
                    dirty = Perm.PW | Perm.UW;
                }
            } else {
                boolean user = Descriptor.AP_USER.isSet(desc) && !noUser;
                boolean userWritable = user && !ro;
                perm = Perm.PR | (ro ? 0 : Perm.PW);
                if (user) {
                    perm |= Perm.UR | (ro ? 0 : Perm.UW);
                }
                boolean pxn = Descriptor.PXN.isSet(desc) || pxnTable
                        || userWritable // AArch64: EL0-writable memory is never privileged-executable
                        || (c.wxn() && !ro); // WXN: writable implies execute-never
                boolean uxn = Descriptor.UXN.isSet(desc) || uxnTable || (c.wxn() && userWritable);
                if (!pxn) {
                    perm |= Perm.PX;
                }
                if (!uxn) {
                    perm |= Perm.UX;
                }
                if (c.pan() && user) {
                    // IHI 0070 §5.4 CD.PAN: no privileged data access where unprivileged access is permitted.
                    perm &= ~(Perm.PR | Perm.PW);
                }
                if (dbmWritable) {
                    dirty = Perm.PW | (user ? Perm.UW : 0);
                    if (c.pan() && user) {
                        dirty &= ~Perm.PW;
                    }
                }
            }

            boolean af = Descriptor.AF.isSet(desc);
            if (!af && !c.ha() && !c.affd()) {
                // IHI 0070 §5.4 CD.AFFD: with HA == 0 and AFFD == 0, AF == 0 is an Access flag fault.
                return fault(ctx, FaultType.ACCESS_FLAG, 1, level, FaultClass.IN, 0, descPa);
            }
            long update = desc;
            if (!Perm.allows(perm, acc)) {
                if (acc.write() && Perm.allows(perm | dirty, acc)) {
                    // Arm ARM D8.4.x hardware dirty state: clear AP[2] (and set AF) atomically.
                    update = Descriptor.AP_RO.insert(desc, 0);
                    if (c.ha()) {
                        update = Descriptor.AF.insert(update, 1);
                    }
                } else {
                    return fault(ctx, FaultType.PERMISSION, 1, level, FaultClass.IN, 0, descPa);
                }
            } else if (!af && c.ha()) {
                // Arm ARM D8.4.x hardware Access flag update.
                update = Descriptor.AF.insert(desc, 1);
            }
            if (update != desc) {
                int st = hwUpdate(s2, descAddr, descPa, desc, update, c.bigEndian(), level, ctx);
                if (st == UPDATE_FAULT) {
                    return false;
                }
                if (st == UPDATE_RETRY) {
                    if (++retries > MAX_UPDATE_RETRIES) {
                        // The guest keeps rewriting the descriptor: report the fault the unchanged
                        // descriptor gives, rather than spinning.
                        FaultType t = Perm.allows(perm, acc) ? FaultType.ACCESS_FLAG : FaultType.PERMISSION;
                        return fault(ctx, t, 1, level, FaultClass.IN, 0, descPa);
                    }
                    continue; // re-fetch and re-evaluate this level
                }
                // Updated: re-evaluate with the value written, so the result reflects it.
                held = true;
                heldDesc = update;
                continue;
            }
            ctx.s1Out = oa | (va & ((1L << shift) - 1));
            ctx.s1Shift = shift;
            ctx.s1Contig = Descriptor.CONTIGUOUS.isSet(desc) ? shift + log2(g.contiguousEntries(level)) : shift;
            ctx.s1Perm = perm;
            ctx.s1Dirty = dirty;
            ctx.s1Global = c.el2() || !Descriptor.NG.isSet(desc);
            ctx.s1Level = level;
            ctx.s1Granule = g;
            ctx.s1Desc = desc;
            return true;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Stage 2

    private boolean s2Walk(Stage2Config c, long ipa, DmaAccess acc, FaultClass cls, Ctx ctx) {
        Granule g = c.granule();
        int ia = c.inputBits();
        // Arm ARM: an IPA above the range VTCR.T0SZ (STE.S2T0SZ) gives is a stage 2 Translation fault.
        if (ia < 64 && (ipa >>> ia) != 0) {
            return s2Fault(ctx, acc, FaultType.TRANSLATION, 0, cls, ipa, -1);
        }
        int startLevel = c.startLevel();
        if (g == null || startLevel == Stage2Config.INVALID_LEVEL || startLevel < -1 || startLevel > 3) {
            return s2Fault(ctx, acc, FaultType.TRANSLATION, 0, cls, ipa, -1);
        }
        int startBits = ia - g.levelShift(startLevel);
        if (startBits < 1 || startBits > g.stride() + 4) {
            return s2Fault(ctx, acc, FaultType.TRANSLATION, 0, cls, ipa, -1);
        }
        int outBits = Math.min(c.psBits(), oasBits);
        boolean ds = c.ds() && g != Granule.G64K;
        if (!fits(c.ttb(), outBits)) {
            return s2Fault(ctx, acc, FaultType.ADDRESS_SIZE, 0, cls, ipa, -1);
        }
        long table = alignTable(c.ttb(), startBits, outBits >= 52);
        int level = startLevel;
        int retries = 0;
        boolean held = false; // the descriptor a successful hardware update just wrote
        long heldDesc = 0;
        while (true) {
            int shift = g.levelShift(level);
            int nbits = level == startLevel ? startBits : g.stride();
            int index = (int) ((ipa >>> shift) & ((1L << nbits) - 1));
            long descPa = table + ((long) index << 3);
            long desc;
            if (held) {
                desc = heldDesc; // as in stage 1: continue with the value the update wrote
                held = false;
            } else {
                GuestMemory.Region reg = mem.find(descPa, 8);
                if (reg == null) {
                    observe(ctx, new WalkObserver.Read(2, level, ipa, cls, table, index, descPa, descPa, 0, true, g, ds, lpa));
                    return s2Fault(ctx, acc, FaultType.WALK_EABT, level, cls, ipa, descPa);
                }
                long raw = reg.read64(descPa);
                desc = c.bigEndian() ? Long.reverseBytes(raw) : raw;
                observe(ctx, new WalkObserver.Read(2, level, ipa, cls, table, index, descPa, descPa, desc, false, g, ds, lpa));
            }
            if (!Descriptor.VALID.isSet(desc)) {
                return s2Fault(ctx, acc, FaultType.TRANSLATION, level, cls, ipa, descPa);
            }
            boolean tableOrPage = Descriptor.TABLE_OR_PAGE.isSet(desc);
            if (level < 3 && tableOrPage) {
                long next = Descriptor.address(desc, g, ds, lpa, g.pageShift());
                if (!fits(next, outBits)) {
                    return s2Fault(ctx, acc, FaultType.ADDRESS_SIZE, level, cls, ipa, descPa);
                }
                table = next;
                level++;
                continue;
            }
            if (level == 3 && !tableOrPage) {
                return s2Fault(ctx, acc, FaultType.TRANSLATION, level, cls, ipa, descPa);
            }
            if (level < 3 && !Descriptor.blockAllowed(g, level, ds, lpa)) {
                return s2Fault(ctx, acc, FaultType.TRANSLATION, level, cls, ipa, descPa);
            }
            long oa = Descriptor.address(desc, g, ds, lpa, shift);
            if (!fits(oa, outBits)) {
                return s2Fault(ctx, acc, FaultType.ADDRESS_SIZE, level, cls, ipa, descPa);
            }
            // Stage 2 permissions (Arm ARM D8.4.3): S2AP[0] read, S2AP[1] write; XN[1:0] with FEAT_XNX.
            int perm = 0;
            if (Descriptor.S2AP_R.isSet(desc)) {
                perm |= Perm.UR | Perm.PR;
            }
            if (Descriptor.S2AP_W.isSet(desc)) {
                perm |= Perm.UW | Perm.PW;
            }
            int xn = (int) Descriptor.S2_XN.get(desc);
            boolean pxn;
            boolean uxn;
            if (c.xnx()) {
                // 0b00 executable at EL1 and EL0; 0b01 not at EL1; 0b10 at neither; 0b11 not at EL0.
                pxn = xn == 1 || xn == 2;
                uxn = xn == 2 || xn == 3;
            } else {
                pxn = uxn = (xn & 2) != 0;
            }
            if (!pxn) {
                perm |= Perm.PX;
            }
            if (!uxn) {
                perm |= Perm.UX;
            }
            // IHI 0070 §3.13.3: the SMMU never sets S2AP[1] for the stage 2 translation of a CD fetch.
            int dirty = (c.ha() && c.hd() && Descriptor.DBM.isSet(desc) && !Descriptor.S2AP_W.isSet(desc)
                    && cls != FaultClass.CD) ? (Perm.UW | Perm.PW) : 0;
            boolean af = Descriptor.AF.isSet(desc);
            if (!af && !c.ha() && !c.affd()) {
                // IHI 0070 §5.2 STE.S2AFFD.
                return s2Fault(ctx, acc, FaultType.ACCESS_FLAG, level, cls, ipa, descPa);
            }
            long update = desc;
            if (!Perm.allows(perm, acc)) {
                if (acc.write() && Perm.allows(perm | dirty, acc)) {
                    // Stage 2 dirty state: set S2AP[1] (and AF).
                    update = Descriptor.AF.insert(Descriptor.S2AP_W.insert(desc, 1), 1);
                } else {
                    return s2Fault(ctx, acc, FaultType.PERMISSION, level, cls, ipa, descPa);
                }
            } else if (!af && c.ha()) {
                update = Descriptor.AF.insert(desc, 1);
            }
            if (update != desc) {
                if (ctx.speculative) {
                    return s2Fault(ctx, acc, FaultType.ACCESS_FLAG, level, cls, ipa, descPa); // speculate(): no writes
                }
                int st = ctx.dry ? dryUpdate(ctx, 2, level, descPa, desc, update)
                        : casDescriptor(descPa, desc, update, c.bigEndian());
                if (st == UPDATE_FAULT) {
                    return s2Fault(ctx, acc, FaultType.WALK_EABT, level, cls, ipa, descPa);
                }
                if (st == UPDATE_RETRY) {
                    if (++retries > MAX_UPDATE_RETRIES) {
                        FaultType t = Perm.allows(perm, acc) ? FaultType.ACCESS_FLAG : FaultType.PERMISSION;
                        return s2Fault(ctx, acc, t, level, cls, ipa, descPa);
                    }
                    continue; // re-fetch and re-evaluate this level
                }
                held = true; // re-evaluate with the value written, so the result reflects it
                heldDesc = update;
                continue;
            }
            if (c.ptw() && cls != FaultClass.IN
                    && MemoryAttributes.stage2Device((int) Descriptor.S2_MEMATTR.get(desc), c.fwb())) {
                // IHI 0070 §5.2 STE.S2PTW: a CD fetch or stage 1 table walk to stage 2 Device memory
                // (MemAttr decoded as STE.S2FWB says, Arm ARM D8.6.5/D8.6.6) is terminated as a stage 2
                // Permission fault. Arm ARM AArch64.SecondStageWalk makes
                // this check on the completed stage 2 translation: an Access flag or S2AP Permission
                // fault of that translation takes priority, and its Access flag update is made.
                return s2Fault(ctx, acc, FaultType.PERMISSION, level, cls, ipa, descPa);
            }
            ctx.s2Out = oa | (ipa & ((1L << shift) - 1));
            ctx.s2Shift = shift;
            ctx.s2Contig = Descriptor.CONTIGUOUS.isSet(desc) ? shift + log2(g.contiguousEntries(level)) : shift;
            ctx.s2Perm = perm;
            ctx.s2Dirty = dirty;
            ctx.s2Level = level;
            ctx.s2Desc = desc;
            return true;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Helpers

    private static final int UPDATED = 0;
    private static final int UPDATE_RETRY = 1;
    private static final int UPDATE_FAULT = 2;

    /**
     * A stage 1 hardware update. In a nested configuration the write to the descriptor is itself
     * translated by stage 2 as a write (CLASS = TT), which may fault or update stage 2's own
     * dirty state.
     */
    private int hwUpdate(Stage2Config s2, long descAddr, long descPa, long expect, long update, boolean bigEndian,
            int level, Ctx ctx) {
        long pa = descPa;
        if (ctx.speculative) {
            fault(ctx, FaultType.ACCESS_FLAG, 1, level, FaultClass.IN, 0, descPa); // speculate(): no writes
            return UPDATE_FAULT;
        }
        if (s2 != null) {
            if (!s2Walk(s2, descAddr, DmaAccess.WRITE, FaultClass.TT, ctx)) {
                return UPDATE_FAULT;
            }
            pa = ctx.s2Out;
        }
        int st = ctx.dry ? dryUpdate(ctx, 1, level, pa, expect, update) : casDescriptor(pa, expect, update, bigEndian);
        if (st == UPDATE_FAULT) {
            fault(ctx, FaultType.WALK_EABT, 1, level, FaultClass.IN, 0, pa);
        }
        return st;
    }

    /**
     * An explained walk's hardware update ({@link #explain}): reported to the observer, not
     * written; the walk goes on as if the compare-and-swap succeeded (a descriptor outside memory
     * still aborts, as the write would).
     */
    private int dryUpdate(Ctx ctx, int stage, int level, long pa, long expect, long update) {
        if (mem.find(pa, 8) == null) {
            return UPDATE_FAULT;
        }
        if (ctx.observer != null) {
            ctx.observer.update(stage, level, pa, expect, update);
        }
        return UPDATED;
    }

    private int casDescriptor(long pa, long expect, long update, boolean bigEndian) {
        GuestMemory.Region reg = mem.find(pa, 8);
        if (reg == null) {
            return UPDATE_FAULT;
        }
        long e = bigEndian ? Long.reverseBytes(expect) : expect;
        long u = bigEndian ? Long.reverseBytes(update) : update;
        return reg.compareAndSet64(pa, e, u) ? UPDATED : UPDATE_RETRY;
    }

    /**
     * A stage 2 fault. Its access is the one stage 2 was translating for (TranslationFault's
     * contract): the transaction's for CLASS IN, the fetch's own for CLASS TT and CD, i.e. a read
     * of a descriptor or the write of a hardware update, which IHI 0070 §7.3.16 F_PERMISSION
     * reports as TTRnW (the event's RnW/InD/PnU stay the transaction's, which the caller has).
     */
    private static boolean s2Fault(Ctx ctx, DmaAccess acc, FaultType type, int level, FaultClass cls, long ipa,
            long descPa) {
        ctx.fault = new TranslationFault(type, 2, level, cls, ctx.input, ipa, descPa, acc);
        return false;
    }

    private static boolean fault(Ctx ctx, FaultType type, int stage, int level, FaultClass cls, long ipa, long descPa) {
        ctx.fault = new TranslationFault(type, stage, level, stage == 1 ? FaultClass.IN : cls, ctx.input,
                stage == 2 ? ipa : 0, descPa, ctx.access);
        return false;
    }

    private static void observe(Ctx ctx, WalkObserver.Read r) {
        if (ctx.observer != null) {
            ctx.observer.read(r);
        }
    }

    private static boolean fits(long addr, int bits) {
        return bits >= 64 || (addr >>> bits) == 0;
    }

    /**
     * The start table's base: aligned to the table's size (Arm ARM: TTBR bits below the table
     * size are treated as zero), at least 64 bytes with 52-bit output (IHI 0070 §5.4 CD.TTB0).
     */
    static long alignTable(long ttb, int startBits, boolean fiftyTwo) {
        int log2 = startBits + 3;
        if (fiftyTwo && log2 < 6) {
            log2 = 6;
        }
        return ttb & ~((1L << log2) - 1);
    }

    /**
     * The level a stage 1 walk of an {@code ia}-bit input starts at with granule {@code g} (Arm ARM
     * D8.2: each level resolves {@code g.stride()} bits above the page offset, the last is level 3).
     */
    static int startLevel(Granule g, int ia) {
        return 4 - ceilDiv(ia - g.pageShift(), g.stride());
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static int log2(int v) {
        return 31 - Integer.numberOfLeadingZeros(v);
    }

    /** Per-walk scratch state (one per call, so the walker itself stays stateless). */
    private static final class Ctx {
        final DmaAccess access;
        final WalkObserver observer;
        final long input;
        boolean speculative; // speculate(): a descriptor write ends the walk instead
        boolean dry; // explain(): a descriptor write is reported, not made
        TranslationFault fault;
        long s1Out;
        int s1Shift;
        int s1Contig;
        int s1Perm;
        int s1Dirty;
        boolean s1Global;
        int s1Level;
        Granule s1Granule;
        long s1Desc;
        long s2Out;
        int s2Shift;
        int s2Contig;
        int s2Perm;
        int s2Dirty;
        int s2Level;
        long s2Desc;

        Ctx(DmaAccess access, WalkObserver observer, long input) {
            this.access = access;
            this.observer = observer;
            this.input = input;
        }
    }
}
