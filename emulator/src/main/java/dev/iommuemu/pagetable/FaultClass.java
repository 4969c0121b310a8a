package dev.iommuemu.pagetable;

/**
 * What a stage 2 translation was for when it faulted (IHI 0070 §7.3 event record CLASS field):
 * fetching a CD, fetching a stage 1 translation table descriptor, or translating the input's
 * stage 1 output address.
 */
public enum FaultClass {
    /** CD fetch (CLASS = 0b00). */
    CD(0),
    /** Stage 1 translation table fetch (CLASS = 0b01). */
    TT(1),
    /** Input address translation (CLASS = 0b10). */
    IN(2);

    private final int encoding;

    FaultClass(int encoding) {
        this.encoding = encoding;
    }

    /** The event record CLASS encoding. */
    public int encoding() {
        return encoding;
    }
}
