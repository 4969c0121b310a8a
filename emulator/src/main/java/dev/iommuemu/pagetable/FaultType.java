package dev.iommuemu.pagetable;

/**
 * The translation faults a walk can produce, in the architecture's priority order (Arm ARM D8.16
 * MMU fault prioritization) and named after the SMMUv3 event each becomes (IHI 0070 §7.3).
 */
public enum FaultType {
    /** External abort on a translation table fetch or hardware update (F_WALK_EABT, §7.3.13). */
    WALK_EABT,
    /** Invalid descriptor, input address out of range, or EPDx walk disabled (F_TRANSLATION, §7.3.14). */
    TRANSLATION,
    /** Output or table address beyond the configured size (F_ADDR_SIZE, §7.3.15). */
    ADDRESS_SIZE,
    /** Access flag 0 with no hardware update and no AFFD (F_ACCESS, §7.3.16). */
    ACCESS_FLAG,
    /** The access is not permitted (F_PERMISSION, §7.3.17). */
    PERMISSION
}
