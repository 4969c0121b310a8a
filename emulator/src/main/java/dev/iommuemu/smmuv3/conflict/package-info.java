/**
 * TLB and configuration cache conflicts (IHI 0070 §3.20) and the break-before-make levels of
 * SMMU_IDR3.BBML (§3.21.1.1-3).
 *
 * <ul>
 *   <li>{@link dev.iommuemu.smmuv3.conflict.BreakBeforeMake}: which walks may be cached (a Block
 *       with nT == 1 is not, at Level 1) and which multi-matches are conflicts at each level.</li>
 *   <li>{@link dev.iommuemu.smmuv3.conflict.TlbConflict}: a detected TLB conflict, its
 *       F_TLB_CONFLICT record (§7.3.17) and its strict-mode finding.</li>
 *   <li>{@link dev.iommuemu.smmuv3.conflict.CfgConflict}: an STE.CONT span overlapping a cached
 *       STE that is not identical, its F_CFG_CONFLICT record (§7.3.18) and its finding.</li>
 * </ul>
 *
 * <p>Detection is optional in the architecture ("an implementation is not required to detect any
 * or all ... conflict conditions, but Arm recommends that an implementation detects [them]
 * wherever possible", §3.20.1, §3.20.2); this model detects them in strict mode.
 */
package dev.iommuemu.smmuv3.conflict;
