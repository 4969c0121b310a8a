package dev.iommuemu.field;

/**
 * One declared bit field: a name, the index of the 64-bit word that holds it, its least
 * significant bit within that word, its width, its reset value and its access. Every register,
 * descriptor, command and record field is declared once as a {@code Field} and read or written
 * only through it, in the way of QEMU's {@code registerfields.h} or the kernel's
 * {@code FIELD_GET}/{@code FIELD_PREP}.
 *
 * <p>Words are 64 bits wide and numbered from the structure's lowest address; a field at spec bit
 * position {@code p} of a structure (e.g. STE[71:64]) lives in word {@code p / 64} at
 * {@code p % 64}. Fields never straddle a word boundary.
 */
public final class Field {
    private final String name;
    private final int word;
    private final int lsb;
    private final int width;
    private final long reset;
    private final Access access;
    private final long mask; // in-place mask within the word

    private Field(String name, int word, int lsb, int width, long reset, Access access) {
        if (word < 0 || lsb < 0 || width < 1 || lsb + width > 64) {
            throw new IllegalArgumentException(name + ": bad geometry word=" + word + " lsb=" + lsb + " width=" + width);
        }
        this.name = name;
        this.word = word;
        this.lsb = lsb;
        this.width = width;
        this.access = access;
        this.mask = (width == 64 ? -1L : ((1L << width) - 1)) << lsb;
        if ((reset & ~valueMask()) != 0) {
            throw new IllegalArgumentException(name + ": reset value does not fit");
        }
        this.reset = reset;
    }

    /** A read/write field of word 0 with reset value 0. */
    public static Field of(String name, int lsb, int width) {
        return new Field(name, 0, lsb, width, 0, Access.RW);
    }

    /** A field of word {@code word}, read/write, reset 0. */
    public static Field of(String name, int word, int lsb, int width) {
        return new Field(name, word, lsb, width, 0, Access.RW);
    }

    /** A field of word 0 with an access kind and reset value (for registers). */
    public static Field of(String name, int lsb, int width, Access access, long reset) {
        return new Field(name, 0, lsb, width, reset, access);
    }

    /** The full form. */
    public static Field of(String name, int word, int lsb, int width, Access access, long reset) {
        return new Field(name, word, lsb, width, reset, access);
    }

    /** A field given by its bit positions in the whole structure, {@code [msb:lsb]} as the spec prints them. */
    public static Field bits(String name, int msb, int lsbInStructure) {
        int w = lsbInStructure / 64;
        if (msb / 64 != w) {
            throw new IllegalArgumentException(name + " straddles a 64-bit word");
        }
        return new Field(name, w, lsbInStructure % 64, msb - lsbInStructure + 1, 0, Access.RW);
    }

    /** A single bit given by its position in the whole structure. */
    public static Field bit(String name, int positionInStructure) {
        return bits(name, positionInStructure, positionInStructure);
    }

    public String name() {
        return name;
    }

    public int word() {
        return word;
    }

    public int lsb() {
        return lsb;
    }

    public int width() {
        return width;
    }

    public long reset() {
        return reset;
    }

    public Access access() {
        return access;
    }

    /** The mask of this field in its word, in place. */
    public long mask() {
        return mask;
    }

    /** The largest value the field holds, right-aligned. */
    public long valueMask() {
        return width == 64 ? -1L : (1L << width) - 1;
    }

    /** FIELD_GET: the field's value from its word. */
    public long get(long w) {
        return (w & mask) >>> lsb;
    }

    /** The field's value from a structure's words. */
    public long get(long[] words) {
        return get(words[word]);
    }

    /** The field as an int (for fields of at most 31 bits). */
    public int getInt(long w) {
        return (int) get(w);
    }

    public int getInt(long[] words) {
        return (int) get(words[word]);
    }

    /** A one-bit field as a boolean. */
    public boolean isSet(long w) {
        return (w & mask) != 0;
    }

    public boolean isSet(long[] words) {
        return (words[word] & mask) != 0;
    }

    /** The field's bits left in place (for address fields such as TTB[51:4]). */
    public long inPlace(long w) {
        return w & mask;
    }

    public long inPlace(long[] words) {
        return words[word] & mask;
    }

    /** FIELD_PREP: the value shifted into place; bits that do not fit are an error in the caller. */
    public long prep(long value) {
        if ((value & ~valueMask()) != 0) {
            throw new IllegalArgumentException(name + ": value 0x" + Long.toHexString(value) + " does not fit in " + width + " bits");
        }
        return value << lsb;
    }

    /** The word with this field replaced by {@code value} (truncated to the field's width). */
    public long insert(long w, long value) {
        return (w & ~mask) | ((value << lsb) & mask);
    }

    /** Sets the field in a structure's words (value truncated to the field's width). */
    public void set(long[] words, long value) {
        words[word] = insert(words[word], value);
    }

    /** Sets a one-bit field. */
    public void set(long[] words, boolean value) {
        set(words, value ? 1 : 0);
    }

    @Override
    public String toString() {
        int base = word * 64;
        return name + "[" + (base + lsb + width - 1) + ":" + (base + lsb) + "]";
    }
}
