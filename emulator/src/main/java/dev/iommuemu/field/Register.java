package dev.iommuemu.field;

import java.util.List;

/**
 * One declared MMIO register: name, byte offset in its register file, size (4 or 8 bytes), access,
 * and its fields (declared in word 0, bit positions as the spec prints them). The reset value is
 * assembled from the fields' reset values.
 *
 * <p>Register files (e.g. the SMMUv3 pages, IHI 0070 §6.2) are lists of these; a read or write at
 * an offset no register covers is RAZ/WI.
 */
public final class Register {
    private final String name;
    private final int offset;
    private final int size;
    private final Access access;
    private final Layout layout;
    private final long writableMask;
    private final long reset;

    public Register(String name, int offset, int size, Access access, Field... fields) {
        if (size != 4 && size != 8) {
            throw new IllegalArgumentException(name + ": size " + size);
        }
        this.name = name;
        this.offset = offset;
        this.size = size;
        this.access = access;
        this.layout = new Layout(name, 1, fields);
        long wm = 0;
        for (Field f : fields) {
            if (f.lsb() + f.width() > size * 8) {
                throw new IllegalArgumentException(name + ": " + f + " beyond " + size * 8 + " bits");
            }
            Access a = f.access();
            if (a == Access.RW || a == Access.WO) {
                wm |= f.mask();
            }
        }
        this.writableMask = (access == Access.RO || access == Access.RAZ_WI) ? 0 : wm;
        this.reset = layout.resetValue()[0];
    }

    public String name() {
        return name;
    }

    public int offset() {
        return offset;
    }

    public int size() {
        return size;
    }

    public Access access() {
        return access;
    }

    public List<Field> fields() {
        return layout.fields();
    }

    public Layout layout() {
        return layout;
    }

    /** Bits that software writes take effect on; others keep their value (RO) or stay zero (RES0). */
    public long writableMask() {
        return writableMask;
    }

    public long reset() {
        return reset;
    }

    /** Whether {@code [off, off+len)} overlaps this register. */
    public boolean overlaps(int off, int len) {
        return off < offset + size && offset < off + len;
    }

    @Override
    public String toString() {
        return name + "@0x" + Integer.toHexString(offset);
    }
}
