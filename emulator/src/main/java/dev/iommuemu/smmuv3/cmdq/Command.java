package dev.iommuemu.smmuv3.cmdq;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Layout;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.function.Predicate;

/**
 * One 16-byte command (IHI 0070 §4, Table 4-1 command opcodes): its opcode and two doublewords,
 * read through the fields declared here. {@link Op} lists every non-secure command with the
 * feature it needs; a command the profile does not have is ILLEGAL (§4.1.1: CERROR_ILL).
 */
public record Command(Op op, long w0, long w1) {

    public static final int SIZE = 16;

    // ---- fields shared by many commands (§4.1 common fields)
    public static final Field OPCODE = Field.bits("Opcode", 7, 0);
    public static final Field SSV = Field.bit("SSV", 11);
    public static final Field SSID = Field.bits("SubstreamID", 31, 12);
    public static final Field SID = Field.bits("StreamID", 63, 32);

    // ---- §4.2 prefetch
    public static final Field PREFETCH_SIZE = Field.bits("Size", 68, 64);
    public static final Field PREFETCH_ADDR = Field.bits("Addr", 127, 76);

    // ---- §4.3 configuration invalidation
    public static final Field CFGI_LEAF = Field.bit("Leaf", 64);
    public static final Field CFGI_RANGE = Field.bits("Range", 68, 64);

    // ---- §4.4 TLB invalidation
    public static final Field TLBI_NUM = Field.bits("NUM", 16, 12);
    public static final Field TLBI_SCALE = Field.bits("SCALE", 24, 20);
    public static final Field TLBI_VMID = Field.bits("VMID", 47, 32);
    public static final Field TLBI_ASID = Field.bits("ASID", 63, 48);
    public static final Field TLBI_LEAF = Field.bit("Leaf", 64);
    public static final Field TLBI_TTL = Field.bits("TTL", 73, 72);
    public static final Field TLBI_TG = Field.bits("TG", 75, 74);
    /** Address[63:12] of the VA forms. */
    public static final Field TLBI_ADDR = Field.bits("Address", 127, 76);
    /** IPA[55:12] of CMD_TLBI_S2_IPA. */
    public static final Field TLBI_IPA = Field.bits("IPA", 119, 76);

    // ---- §4.5 ATS and PRI
    public static final Field ATC_GLOBAL = Field.bit("G", 9);
    public static final Field ATC_SIZE = Field.bits("Size", 69, 64);
    public static final Field ATC_ADDR = Field.bits("Address", 127, 76);
    public static final Field PRI_PRGINDEX = Field.bits("PRGIndex", 72, 64);
    public static final Field PRI_RESP = Field.bits("Resp", 77, 76);

    // ---- §4.7.1 CMD_RESUME: Ac (1 Retry, 0 Terminate), Ab (terminate with abort rather than RAZ/WI)
    public static final Field RESUME_AC = Field.bit("Ac", 12);
    public static final Field RESUME_AB = Field.bit("Ab", 13);
    public static final Field RESUME_STAG = Field.bits("STAG", 79, 64);

    // ---- §4.7.3 CMD_SYNC
    public static final Field SYNC_CS = Field.bits("CS", 13, 12);
    public static final Field SYNC_MSH = Field.bits("MSH", 23, 22);
    public static final Field SYNC_MSIATTR = Field.bits("MSIAttr", 27, 24);
    public static final Field SYNC_MSIDATA = Field.bits("MSIData", 63, 32);
    /** MSIAddress[55:2]. */
    public static final Field SYNC_MSIADDR = Field.bits("MSIAddress", 119, 66);

    public static final int CS_NONE = 0;
    public static final int CS_IRQ = 1;
    public static final int CS_SEV = 2;

    public static final int RESUME_TERMINATE = 0;
    public static final int RESUME_RETRY = 1;

    /** CMD_PRI_RESP.Resp (§4.5.2). */
    public static final int PRI_RESP_FAILURE = 0b00;
    public static final int PRI_RESP_INVALID = 0b01;
    public static final int PRI_RESP_SUCCESS = 0b10;

    /** Every non-secure command (Table 4-1), its layout, and what the profile must have. */
    public enum Op {
        CMD_PREFETCH_CONFIG(0x01, p -> true, SSV, SSID, SID),
        CMD_PREFETCH_ADDR(0x02, p -> true, SSV, SSID, SID, PREFETCH_SIZE, PREFETCH_ADDR),
        CMD_CFGI_STE(0x03, p -> true, SID, CFGI_LEAF),
        /** CMD_CFGI_ALL is CMD_CFGI_STE_RANGE with Range 31 (§4.3.6). */
        CMD_CFGI_STE_RANGE(0x04, p -> true, SID, CFGI_RANGE),
        CMD_CFGI_CD(0x05, Smmuv3Profile::s1, SSID, SID, CFGI_LEAF),
        CMD_CFGI_CD_ALL(0x06, Smmuv3Profile::s1, SID),
        CMD_TLBI_NH_ALL(0x10, Smmuv3Profile::s1, TLBI_VMID),
        CMD_TLBI_NH_ASID(0x11, Smmuv3Profile::s1, TLBI_VMID, TLBI_ASID),
        CMD_TLBI_NH_VA(0x12, Smmuv3Profile::s1, TLBI_NUM, TLBI_SCALE, TLBI_VMID, TLBI_ASID, TLBI_LEAF, TLBI_TTL,
                TLBI_TG, TLBI_ADDR),
        CMD_TLBI_NH_VAA(0x13, Smmuv3Profile::s1, TLBI_NUM, TLBI_SCALE, TLBI_VMID, TLBI_LEAF, TLBI_TTL, TLBI_TG,
                TLBI_ADDR),
        CMD_TLBI_EL2_ALL(0x20, Smmuv3Profile::hyp),
        CMD_TLBI_EL2_ASID(0x21, Smmuv3Profile::hyp, TLBI_ASID),
        CMD_TLBI_EL2_VA(0x22, Smmuv3Profile::hyp, TLBI_NUM, TLBI_SCALE, TLBI_ASID, TLBI_LEAF, TLBI_TTL, TLBI_TG,
                TLBI_ADDR),
        CMD_TLBI_EL2_VAA(0x23, Smmuv3Profile::hyp, TLBI_NUM, TLBI_SCALE, TLBI_LEAF, TLBI_TTL, TLBI_TG, TLBI_ADDR),
        CMD_TLBI_S12_VMALL(0x28, Smmuv3Profile::s2, TLBI_VMID),
        CMD_TLBI_S2_IPA(0x2a, Smmuv3Profile::s2, TLBI_NUM, TLBI_SCALE, TLBI_VMID, TLBI_LEAF, TLBI_TTL, TLBI_TG,
                TLBI_IPA),
        CMD_TLBI_NSNH_ALL(0x30, p -> true),
        CMD_ATC_INV(0x40, Smmuv3Profile::ats, SSV, ATC_GLOBAL, SSID, SID, ATC_SIZE, ATC_ADDR),
        CMD_PRI_RESP(0x41, Smmuv3Profile::pri, SSV, SSID, SID, PRI_PRGINDEX, PRI_RESP),
        CMD_RESUME(0x44, Smmuv3Profile::stall, RESUME_AC, RESUME_AB, SID, RESUME_STAG),
        CMD_STALL_TERM(0x45, Smmuv3Profile::stall, SID),
        CMD_SYNC(0x46, p -> true, SYNC_CS, SYNC_MSH, SYNC_MSIATTR, SYNC_MSIDATA, SYNC_MSIADDR);

        public final int code;
        public final Layout layout;
        private final Predicate<Smmuv3Profile> present;

        Op(int code, Predicate<Smmuv3Profile> present, Field... fields) {
            this.code = code;
            this.present = present;
            Field[] all = new Field[fields.length + 1];
            all[0] = OPCODE;
            System.arraycopy(fields, 0, all, 1, fields.length);
            this.layout = new Layout(name(), 2, all);
        }

        /** Whether the profile implements this command. */
        public boolean presentIn(Smmuv3Profile p) {
            return present.test(p);
        }

        private static final Op[] BY_CODE = new Op[256];

        static {
            for (Op o : values()) {
                BY_CODE[o.code] = o;
            }
        }

        /** The command with opcode {@code code}, or {@code null}. */
        public static Op of(int code) {
            return BY_CODE[code & 0xff];
        }
    }

    public long get(Field f) {
        return f.word() == 0 ? f.get(w0) : f.get(w1);
    }

    public int getInt(Field f) {
        return (int) get(f);
    }

    public boolean is(Field f) {
        return get(f) != 0;
    }

    /** The address field of a VA/IPA command, in place (bits [n:12]). */
    public long address(Field f) {
        return get(f) << 12;
    }

    /** Starts encoding a command (for guest drivers, tests and benchmarks). */
    public static Builder build(Op op) {
        return new Builder(op);
    }

    /** Assembles a command's two doublewords through the declared fields. */
    public static final class Builder {
        private final long[] w = new long[2];
        private final Op op;

        private Builder(Op op) {
            this.op = op;
            OPCODE.set(w, op.code);
        }

        public Builder set(Field f, long value) {
            f.set(w, value);
            return this;
        }

        public Builder set(Field f, boolean value) {
            f.set(w, value);
            return this;
        }

        public long[] words() {
            return w.clone();
        }

        public Command command() {
            return new Command(op, w[0], w[1]);
        }
    }

    @Override
    public String toString() {
        return op.layout.format(new long[] {w0, w1});
    }
}
