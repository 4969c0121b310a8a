package dev.iommuemu.pagetable;

/**
 * Sees every descriptor a walk reads, in order, for the control API's "walk explained level by
 * level" and for tests. Stage 2 reads made to translate a stage 1 table address appear before
 * the stage 1 read they serve.
 */
@FunctionalInterface
public interface WalkObserver {
    /**
     * @param stage        1 or 2
     * @param level        lookup level
     * @param address      the descriptor's address in its stage's input space (an IPA for nested
     *                     stage 1 tables)
     * @param physical     the physical address actually read
     * @param descriptor   the value read (after any byte swap), or 0 when the read aborted
     */
    void descriptor(int stage, int level, long address, long physical, long descriptor);
}
