package dev.iommuemu.smmuv3.evtq;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Layout;

/**
 * One 32-byte event record (IHI 0070 §7.3), as decoded values; {@link #encode()} produces the
 * little-endian words the SMMU writes to the Event queue. Which fields a type carries follows the
 * record formats of §7.3.2-§7.3.21; fields a type does not carry are written as zero (RES0).
 *
 * @param type the event number
 * @param streamId StreamID
 * @param ssv whether {@code substreamId} is valid (SSV); C_BAD_SUBSTREAMID has no SSV and always
 *     records the SubstreamID
 * @param substreamId SubstreamID
 * @param stag the stall tag (STAG) of a stalled transaction
 * @param stall Stall: the transaction is held until CMD_RESUME / CMD_STALL_TERM
 * @param rnw RnW: 1 = read (§7.3)
 * @param ind InD: instruction access
 * @param pnu PnU: privileged
 * @param s2 S2: the fault arose at stage 2
 * @param faultClass CLASS: 0 CD, 1 TT, 2 IN
 * @param inputAddr InputAddr
 * @param ipa IPA (stage 2 faults), or the fetch address for F_*_FETCH and F_WALK_EABT
 * @param reason the IMPLEMENTATION DEFINED Reason / Span field
 */
public record EventRecord(
        EventType type,
        int streamId,
        boolean ssv,
        int substreamId,
        int stag,
        boolean stall,
        boolean rnw,
        boolean ind,
        boolean pnu,
        boolean s2,
        int faultClass,
        long inputAddr,
        long ipa,
        int reason) {

    public static final int CLASS_CD = 0;
    public static final int CLASS_TT = 1;
    public static final int CLASS_IN = 2;

    // ---- IHI 0070 §7.3 common fields
    public static final Field TYPE = Field.bits("EventNumber", 7, 0);
    public static final Field SSV = Field.bit("SSV", 11);
    public static final Field SUBSTREAMID = Field.bits("SubstreamID", 31, 12);
    public static final Field STREAMID = Field.bits("StreamID", 63, 32);
    /** STAG in the translation-fault records (§7.3.13-16). */
    public static final Field STAG = Field.bits("STAG", 79, 64);
    /** Reason (F_UUT, F_STE_FETCH, F_CD_FETCH, F_WALK_EABT, F_*_CONFLICT) or Span (§7.3.6, §7.3.19). */
    public static final Field REASON = Field.bits("Reason", 79, 64);
    /** Reason of F_CFG_CONFLICT: bits [95:64] (§7.3.18). */
    public static final Field CFG_REASON = Field.bits("Reason", 95, 64);
    public static final Field STALL = Field.bit("Stall", 95);
    public static final Field PNU = Field.bit("PnU", 97);
    public static final Field IND = Field.bit("InD", 98);
    public static final Field RNW = Field.bit("RnW", 99);
    public static final Field NSIPA = Field.bit("NSIPA", 100);
    public static final Field S2 = Field.bit("S2", 103);
    public static final Field CLASS = Field.bits("CLASS", 105, 104);
    /** TTRnW (§7.3.16): with CLASS == TT, 1 if a descriptor read, 0 if a descriptor write faulted. */
    public static final Field TTRNW = Field.bit("TTRnW", 108);
    public static final Field INPUTADDR = Field.bits("InputAddr", 191, 128);
    /** IPA[55:12] of the stage-2 translation faults (§7.3.13). */
    public static final Field IPA = Field.bits("IPA", 247, 204);
    /** E_PAGE_REQUEST (§7.3.19): Span (in 4KB pages), the anticipated accesses, InputAddr[63:12]. */
    public static final Field PR_SPAN = Field.bits("Span", 115, 108);
    public static final Field PR_PR = Field.bit("pR", 103);
    public static final Field PR_PW = Field.bit("pW", 102);
    public static final Field PR_PX = Field.bit("pX", 101);
    public static final Field PR_UR = Field.bit("uR", 100);
    public static final Field PR_UW = Field.bit("uW", 99);
    public static final Field PR_UX = Field.bit("uX", 98);
    public static final Field PR_INPUTADDR = Field.bits("InputAddr[63:12]", 191, 140);

    // The packed {@link #reason} of an E_PAGE_REQUEST as the model carries it to the record: Span in
    // [15:8] and the permission bits pR pW pX uR uW uX in [5:0] (the order of §7.3.19's bits [103:98]).
    public static final Field HINT_SPAN = Field.bits("Span", 15, 8);
    public static final Field HINT_PR = Field.bit("pR", 5);
    public static final Field HINT_PW = Field.bit("pW", 4);
    public static final Field HINT_PX = Field.bit("pX", 3);
    public static final Field HINT_UR = Field.bit("uR", 2);
    public static final Field HINT_UW = Field.bit("uW", 1);
    public static final Field HINT_UX = Field.bit("uX", 0);
    /** The six permission bits of the packed hint together. */
    public static final Field HINT_PERMS = Field.bits("perms", 5, 0);

    /** {@link #reason} of an E_PAGE_REQUEST, packed through the HINT_* fields. */
    public static int pageRequestHint(int spanPages, boolean pR, boolean pW, boolean pX, boolean uR, boolean uW,
            boolean uX) {
        long h = HINT_SPAN.insert(0, spanPages);
        h = HINT_PR.insert(h, pR ? 1 : 0);
        h = HINT_PW.insert(h, pW ? 1 : 0);
        h = HINT_PX.insert(h, pX ? 1 : 0);
        h = HINT_UR.insert(h, uR ? 1 : 0);
        h = HINT_UW.insert(h, uW ? 1 : 0);
        h = HINT_UX.insert(h, uX ? 1 : 0);
        return (int) h;
    }

    /** The packed hint from a span and the six permission bits in HINT_PERMS order. */
    public static int pageRequestHint(int spanPages, int perms) {
        return (int) HINT_PERMS.insert(HINT_SPAN.insert(0, spanPages), perms);
    }

    /** FetchAddr[55:3] of F_STE_FETCH, F_CD_FETCH, F_WALK_EABT, F_VMS_FETCH (§7.3.4). */
    public static final Field FETCHADDR = Field.bits("FetchAddr", 247, 195);

    public static final Layout TRANSLATION_LAYOUT = new Layout("F_TRANSLATION", 4, TYPE, SSV, SUBSTREAMID,
            STREAMID, STAG, STALL, PNU, IND, RNW, NSIPA, S2, CLASS, TTRNW, INPUTADDR, IPA);

    /**
     * Flag carried in {@link #reason} of a translation fault record with CLASS == TT: the
     * descriptor access that faulted at stage 2 was a read (TTRnW = 1, §7.3.16). Not encoded as
     * Reason: these records have no Reason field.
     */
    public static final int TT_READ = 1;

    /** The size of a record in bytes. */
    public static final int SIZE = 32;

    /** A record that carries only the common fields. */
    public static EventRecord config(EventType type, int streamId, int substreamId) {
        boolean ssv = substreamId >= 0;
        return new EventRecord(type, streamId, ssv, ssv ? substreamId : 0, 0, false, false, false, false, false, 0,
                0, 0, 0);
    }

    /** A fetch-abort record (F_STE_FETCH, F_CD_FETCH) with its FetchAddr. */
    public static EventRecord fetch(EventType type, int streamId, int substreamId, long fetchAddr) {
        boolean ssv = substreamId >= 0;
        return new EventRecord(type, streamId, ssv, ssv ? substreamId : 0, 0, false, false, false, false, false, 0,
                0, fetchAddr, 0);
    }

    /** The four little-endian words of the record (§7.3: RES0 where the type defines nothing). */
    public long[] encode() {
        long[] w = new long[4];
        TYPE.set(w, type.code);
        STREAMID.set(w, streamId & 0xffff_ffffL);
        switch (type) {
            case C_BAD_SUBSTREAMID -> SUBSTREAMID.set(w, substreamId); // §7.3.9: no SSV qualifier
            case F_STREAM_DISABLED -> { } // §7.3.7: StreamID only
            case C_BAD_STREAMID, C_BAD_STE, C_BAD_CD -> common(w);
            case F_CFG_CONFLICT -> { // §7.3.18
                common(w);
                CFG_REASON.set(w, reason & 0xffff_ffffL);
            }
            case F_UUT -> { // §7.3.2
                common(w);
                REASON.set(w, reason);
                access(w);
                INPUTADDR.set(w, inputAddr);
            }
            case F_STE_FETCH, F_CD_FETCH, F_VMS_FETCH -> { // §7.3.4, §7.3.10
                common(w);
                REASON.set(w, reason);
                FETCHADDR.set(w, (ipa >>> 3) & FETCHADDR.valueMask());
            }
            case F_BAD_ATS_TREQ -> { // §7.3.6
                common(w);
                REASON.set(w, reason);
                access(w);
                INPUTADDR.set(w, inputAddr);
            }
            case E_PAGE_REQUEST -> { // §7.3.19
                common(w);
                PR_SPAN.set(w, HINT_SPAN.get(reason));
                PR_PR.set(w, HINT_PR.get(reason));
                PR_PW.set(w, HINT_PW.get(reason));
                PR_PX.set(w, HINT_PX.get(reason));
                PR_UR.set(w, HINT_UR.get(reason));
                PR_UW.set(w, HINT_UW.get(reason));
                PR_UX.set(w, HINT_UX.get(reason));
                PR_INPUTADDR.set(w, inputAddr >>> 12);
            }
            case F_TRANSL_FORBIDDEN -> { // §7.3.8
                RNW.set(w, rnw);
                INPUTADDR.set(w, inputAddr);
            }
            case F_WALK_EABT -> { // §7.3.12
                common(w);
                REASON.set(w, reason);
                access(w);
                S2.set(w, s2);
                CLASS.set(w, faultClass);
                INPUTADDR.set(w, inputAddr);
                FETCHADDR.set(w, (ipa >>> 3) & FETCHADDR.valueMask());
            }
            case F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION -> { // §7.3.13-16
                common(w);
                STAG.set(w, stag);
                STALL.set(w, stall);
                access(w);
                S2.set(w, s2);
                CLASS.set(w, faultClass);
                if (s2 && faultClass == CLASS_TT) {
                    TTRNW.set(w, (reason & TT_READ) != 0);
                }
                INPUTADDR.set(w, inputAddr);
                if (s2) {
                    IPA.set(w, (ipa >>> 12) & IPA.valueMask());
                }
            }
            case F_TLB_CONFLICT -> { // §7.3.17
                common(w);
                REASON.set(w, reason);
                access(w);
                S2.set(w, s2);
                INPUTADDR.set(w, inputAddr);
                IPA.set(w, (ipa >>> 12) & IPA.valueMask());
            }
            default -> throw new AssertionError(type);
        }
        return w;
    }

    private void common(long[] w) {
        SSV.set(w, ssv);
        if (ssv) {
            SUBSTREAMID.set(w, substreamId);
        }
    }

    private void access(long[] w) {
        RNW.set(w, rnw);
        IND.set(w, ind && rnw); // §7.3.13: InD == 0 when RnW == 0
        PNU.set(w, pnu);
    }

    /** Decodes the common fields and the translation-fault fields from four words (for tests and logs). */
    public static EventRecord decode(long[] w) {
        EventType t = EventType.of(TYPE.getInt(w));
        return new EventRecord(t, (int) STREAMID.get(w), SSV.isSet(w), SUBSTREAMID.getInt(w), STAG.getInt(w),
                STALL.isSet(w), RNW.isSet(w), IND.isSet(w), PNU.isSet(w), S2.isSet(w), CLASS.getInt(w),
                INPUTADDR.get(w), t == EventType.F_STE_FETCH || t == EventType.F_CD_FETCH || t == EventType.F_WALK_EABT
                        ? FETCHADDR.get(w) << 3 : IPA.get(w) << 12, REASON.getInt(w));
    }

    /** The record's 32 bytes, little-endian. */
    public byte[] bytes() {
        long[] w = encode();
        byte[] b = new byte[SIZE];
        for (int i = 0; i < SIZE; i++) {
            b[i] = (byte) (w[i / 8] >>> (8 * (i % 8)));
        }
        return b;
    }
}
