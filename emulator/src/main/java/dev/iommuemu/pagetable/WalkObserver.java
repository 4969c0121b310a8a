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

    /** One descriptor read with everything the walker knew when it made it; the default reports {@link #descriptor}. */
    default void read(Read r) {
        descriptor(r.stage(), r.level(), r.address(), r.physical(), r.descriptor());
    }

    /**
     * A hardware Access flag or dirty state update of the descriptor last read at {@code stage}
     * and {@code level} (Arm ARM D8.4 hardware updates): {@code oldValue} becomes {@code newValue}.
     * In an explained walk ({@link Walker#explain}) it is what the walk would write; nothing is written.
     */
    default void update(int stage, int level, long physical, long oldValue, long newValue) {}

    /** What a descriptor is, decoded from its bits [1:0] at its level (Arm ARM D8.3 descriptor formats). */
    enum Kind {
        /** bits[1:0] == 0b11 above level 3: the next level's table. */
        TABLE,
        /** bits[1:0] == 0b01 at a level where blocks exist for the granule. */
        BLOCK,
        /** bits[1:0] == 0b11 at level 3. */
        PAGE,
        /** bit[0] == 0. */
        INVALID,
        /** bits[1:0] == 0b01 at level 3, or a block at a level without blocks: treated as invalid. */
        RESERVED,
        /** The read hit no memory (an external abort, F_WALK_EABT): no value. */
        ABORTED
    }

    /**
     * One descriptor read.
     *
     * @param stage     1 or 2
     * @param level     lookup level
     * @param input     the address this stage is translating: the VA for stage 1, the IPA for stage 2
     * @param purpose   what the read serves: for stage 2, CD (a CD fetch), TT (a stage 1 table
     *                  descriptor's IPA) or IN (the input's or stage 1 output's IPA); IN for stage 1
     * @param tableBase the table's base address in the stage's input space (an IPA for nested stage 1)
     * @param index     the entry's index in that table
     * @param address   tableBase + 8 * index
     * @param physical  the physical address read
     * @param descriptor the value read (after any byte swap), 0 if aborted
     * @param aborted   the read hit no memory
     * @param granule   the translation granule
     * @param ds        52-bit 4K/16K descriptor format (DS)
     * @param lpa       52-bit 64K descriptor format (FEAT_LPA)
     */
    record Read(int stage, int level, long input, FaultClass purpose, long tableBase, int index, long address, long physical,
            long descriptor, boolean aborted, Granule granule, boolean ds, boolean lpa) {

        public Kind kind() {
            if (aborted) {
                return Kind.ABORTED;
            }
            if (!Descriptor.VALID.isSet(descriptor)) {
                return Kind.INVALID;
            }
            boolean tableOrPage = Descriptor.TABLE_OR_PAGE.isSet(descriptor);
            if (level == 3) {
                return tableOrPage ? Kind.PAGE : Kind.RESERVED;
            }
            if (tableOrPage) {
                return Kind.TABLE;
            }
            return Descriptor.blockAllowed(granule, level, ds, lpa) ? Kind.BLOCK : Kind.RESERVED;
        }

        /** The next table (TABLE) or the output base (BLOCK, PAGE) the descriptor holds; -1 otherwise. */
        public long next() {
            return switch (kind()) {
                case TABLE -> Descriptor.address(descriptor, granule, ds, lpa, granule.pageShift());
                case BLOCK, PAGE -> Descriptor.address(descriptor, granule, ds, lpa, granule.levelShift(level));
                default -> -1;
            };
        }
    }
}
