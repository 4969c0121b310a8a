package dev.iommuemu.field;

/** How software may access a register or field (IHI 0070 §6.2 register access conventions). */
public enum Access {
    /** Read/write. */
    RW,
    /** Read-only; writes are ignored. */
    RO,
    /** Write-only; reads as zero. */
    WO,
    /** Reserved: reads as zero, writes ignored. */
    RAZ_WI,
    /** Reserved, should be zero: a set bit in a structure is ILLEGAL where the spec says so. */
    RES0,
    /** Reserved, should be one. */
    RES1
}
