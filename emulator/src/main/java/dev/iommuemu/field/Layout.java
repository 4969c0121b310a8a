package dev.iommuemu.field;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The declared fields of one structure (an STE, a CD, a command, an event record, a translation
 * table descriptor) or of one register: its size in 64-bit words and its fields in declaration
 * order. Used to decode for diagnostics and to find set bits that no declared field covers.
 */
public final class Layout {
    private final String name;
    private final int words;
    private final List<Field> fields;
    private final long[] declared;

    public Layout(String name, int words, Field... fields) {
        this.name = name;
        this.words = words;
        List<Field> list = new ArrayList<>();
        long[] d = new long[words];
        for (Field f : fields) {
            if (f.word() >= words) {
                throw new IllegalArgumentException(name + ": " + f + " outside " + words + " words");
            }
            if ((d[f.word()] & f.mask()) != 0) {
                throw new IllegalArgumentException(name + ": " + f + " overlaps another field");
            }
            d[f.word()] |= f.mask();
            list.add(f);
        }
        this.fields = Collections.unmodifiableList(list);
        this.declared = d;
    }

    public String name() {
        return name;
    }

    public int words() {
        return words;
    }

    public List<Field> fields() {
        return fields;
    }

    /** Mask of the bits of word {@code w} covered by a declared field. */
    public long declaredMask(int w) {
        return declared[w];
    }

    /** Bits of word {@code w} that are set but covered by no declared field (RES0 violations). */
    public long undeclaredBits(long[] value, int w) {
        return value[w] & ~declared[w];
    }

    /** Whether any set bit is covered by no declared field. */
    public boolean hasUndeclaredBits(long[] value) {
        for (int w = 0; w < words; w++) {
            if ((value[w] & ~declared[w]) != 0) {
                return true;
            }
        }
        return false;
    }

    /** The reset value of every word, assembled from the fields' reset values. */
    public long[] resetValue() {
        long[] v = new long[words];
        for (Field f : fields) {
            f.set(v, f.reset());
        }
        return v;
    }

    /** Name to value of every field, for logs, the control API and test failure messages. */
    public Map<String, Long> decode(long[] value) {
        Map<String, Long> m = new LinkedHashMap<>();
        for (Field f : fields) {
            m.put(f.name(), f.get(value));
        }
        return m;
    }

    /** A one-line rendering of the nonzero fields. */
    public String format(long[] value) {
        StringBuilder sb = new StringBuilder(name).append('{');
        boolean first = true;
        for (Field f : fields) {
            long v = f.get(value);
            if (v == 0) {
                continue;
            }
            if (!first) {
                sb.append(", ");
            }
            first = false;
            sb.append(f.name()).append("=0x").append(Long.toHexString(v));
        }
        return sb.append('}').toString();
    }
}
