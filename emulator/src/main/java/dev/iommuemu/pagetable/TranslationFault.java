package dev.iommuemu.pagetable;

import dev.iommuemu.dma.DmaAccess;

/**
 * A failed walk, carrying what the SMMUv3 event records need (IHI 0070 §7.3.13-§7.3.17: InputAddr,
 * IPA, S2, CLASS, level-independent records; Arm ARM fault status codes carry the level).
 *
 * @param type              the fault
 * @param stage             1 or 2
 * @param level             the lookup level at which it arose (0 for an out-of-range input or a
 *                          bad table base; may be -1 with 52-bit 4K tables)
 * @param faultClass        for stage 2 faults, what stage 2 was translating (CD, TT, IN); for
 *                          stage 1 faults {@link FaultClass#IN}
 * @param inputAddress      the transaction's input address (VA, or IPA for stage 2 only)
 * @param ipa               for stage 2 faults, the IPA stage 2 was translating; else 0
 * @param descriptorAddress for {@link FaultType#WALK_EABT}, the physical address of the descriptor
 *                          fetch or update that aborted; else the address of the descriptor that
 *                          caused the fault where there is one, or -1
 * @param access            the access that faulted (for a stage 2 fault on a table fetch, the
 *                          fetch's own access: a read, or a write for a hardware update)
 */
public record TranslationFault(
        FaultType type,
        int stage,
        int level,
        FaultClass faultClass,
        long inputAddress,
        long ipa,
        long descriptorAddress,
        DmaAccess access) implements WalkResult {

    @Override
    public String toString() {
        return String.format("TranslationFault[%s stage %d level %d class %s input 0x%x ipa 0x%x desc 0x%x %s]",
                type, stage, level, faultClass, inputAddress, ipa, descriptorAddress, access);
    }
}
