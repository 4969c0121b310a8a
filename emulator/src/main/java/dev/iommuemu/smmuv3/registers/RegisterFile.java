package dev.iommuemu.smmuv3.registers;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Register;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The values of the declared registers and the access rules of IHI 0070 §6.2: aligned 32-bit
 * accesses to 32-bit registers and to either half of a 64-bit register, aligned 64-bit accesses to
 * 64-bit registers; anything else (other sizes, unaligned, a 64-bit access spanning two 32-bit
 * registers, offsets no register covers) is RAZ/WI, one of the CONSTRAINED UNPREDICTABLE choices
 * the section allows. Writes touch only the writable bits; the device applies side effects.
 */
public final class RegisterFile {
    private final Register[] bySlot = new Register[Smmuv3Regs.WINDOW_SIZE / 4];
    private final Map<Register, Integer> index = new IdentityHashMap<>();
    /** Value index by register offset / 4 (the fast path of {@link #get}). */
    private final int[] indexBySlot = new int[Smmuv3Regs.WINDOW_SIZE / 4];
    private final long[] values;
    private final List<Register> registers;

    public RegisterFile(List<Register> registers) {
        this.registers = registers;
        this.values = new long[registers.size()];
        for (int i = 0; i < registers.size(); i++) {
            Register r = registers.get(i);
            index.put(r, i);
            indexBySlot[r.offset() / 4] = i;
            for (int o = r.offset(); o < r.offset() + r.size(); o += 4) {
                bySlot[o / 4] = r;
            }
        }
        reset();
    }

    /** Every register to its reset value (IHI 0070 §6.3: each register's reset column). */
    public void reset() {
        for (int i = 0; i < values.length; i++) {
            values[i] = registers.get(i).reset();
        }
    }

    /** The register an access at {@code offset} reaches, with the page-0 queue-pointer aliases (§6.2.1). */
    public Register at(long offset) {
        if (offset < 0 || offset >= Smmuv3Regs.WINDOW_SIZE) {
            return null;
        }
        int o = (int) offset;
        if (o == 0xa8 || o == 0xac || o == 0xc8 || o == 0xcc) {
            o += Smmuv3Regs.PAGE1;
        }
        return bySlot[o / 4];
    }

    public long get(Register r) {
        int i = indexBySlot[r.offset() / 4];
        if (registers.get(i) != r) {
            throw new IllegalArgumentException(r + " is not in this register file");
        }
        return values[i];
    }

    public long get(Register r, Field f) {
        return f.get(get(r));
    }

    /** Sets a register's value from the model side (no access checks). */
    public void set(Register r, long v) {
        get(r); // checks membership
        values[indexBySlot[r.offset() / 4]] = r.size() == 4 ? v & 0xffff_ffffL : v;
    }

    public void set(Register r, Field f, long v) {
        set(r, f.insert(get(r), v));
    }

    /** A software read; RAZ for an offset or size §6.2 does not make a legal access. */
    public long read(long offset, int size) {
        Register r = legal(offset, size);
        if (r == null) {
            return 0;
        }
        long v = get(r);
        if (r.size() == 8 && size == 4) {
            int half = (int) (offset - canonicalBase(offset, r)) / 4;
            v = half == 0 ? v & 0xffff_ffffL : v >>> 32;
        }
        return v;
    }

    /**
     * What a software write would make the register's value, or {@code null} when the write is
     * ignored (illegal access, read-only register, no register). Does not store it.
     */
    public Register target(long offset, int size) {
        Register r = legal(offset, size);
        if (r == null || r.writableMask() == 0) {
            return null;
        }
        return r;
    }

    /** The new value of {@code r} after a software write of {@code value} at {@code offset}. */
    public long merged(Register r, long offset, int size, long value) {
        long old = get(r);
        long wm = r.writableMask();
        long v;
        if (r.size() == 8 && size == 4) {
            int shift = (int) (offset - canonicalBase(offset, r)) * 8;
            long laneMask = 0xffff_ffffL << shift;
            wm &= laneMask;
            v = (value & 0xffff_ffffL) << shift;
        } else {
            v = value;
        }
        return (old & ~wm) | (v & wm);
    }

    private static long canonicalBase(long offset, Register r) {
        return offset >= Smmuv3Regs.PAGE1 || r.offset() < Smmuv3Regs.PAGE1 ? r.offset() : r.offset() - Smmuv3Regs.PAGE1;
    }

    private Register legal(long offset, int size) {
        if ((size != 4 && size != 8) || (offset & (size - 1)) != 0) {
            return null;
        }
        Register r = at(offset);
        if (r == null) {
            return null;
        }
        if (size == 8 && (r.size() != 8 || canonicalBase(offset, r) != offset)) {
            return null;
        }
        return r;
    }
}
