package dev.iommuemu.field;

/**
 * An immutable in-memory structure of 64-bit words (an STE, a CD, ...) read through its declared
 * {@link Field}s. Subclasses add the typed accessors the specification names.
 */
public abstract class Structure {
    /** The words, owned by this object (never handed out). */
    protected final long[] words;

    /**
     * Copies {@code words}, which must hold exactly {@code count} words.
     *
     * @throws IllegalArgumentException for the wrong length (a caller bug, not guest input: guests
     *                                  cannot choose the number of words read)
     */
    protected Structure(long[] words, int count, String what) {
        if (words.length != count) {
            throw new IllegalArgumentException("a " + what + " is " + count + " doublewords");
        }
        this.words = words.clone();
    }

    /** The raw doublewords (a copy). */
    public long[] words() {
        return words.clone();
    }

    /** FIELD_GET of a declared field. */
    public long get(Field f) {
        return f.get(words);
    }

    /** Whether a declared one-bit field is set. */
    public boolean is(Field f) {
        return f.isSet(words);
    }
}
