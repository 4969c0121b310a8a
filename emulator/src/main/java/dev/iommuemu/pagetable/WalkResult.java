package dev.iommuemu.pagetable;

/** The outcome of a translation table walk: a {@link Translation} or a {@link TranslationFault}. */
public sealed interface WalkResult permits Translation, TranslationFault {
    default boolean isFault() {
        return this instanceof TranslationFault;
    }
}
