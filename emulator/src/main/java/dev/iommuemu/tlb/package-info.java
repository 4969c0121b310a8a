/**
 * The TLB of the translation engine: complete walks ({@link dev.iommuemu.pagetable.Translation})
 * cached under the tags of IHI 0070 §3.17 and removed exactly as the TLB invalidation commands of
 * §4.4 require.
 *
 * <ul>
 *   <li>{@link dev.iommuemu.tlb.TlbTag}: regime ({@link dev.iommuemu.tlb.Regime} NH, EL2, S2,
 *       NESTED), VMID, ASID and ASET.</li>
 *   <li>{@link dev.iommuemu.tlb.Tlb}: bounded, CLOCK replacement, lookup in a handful of
 *       nanoseconds with no allocation; {@link dev.iommuemu.tlb.Tlb#invalidate} returns how many
 *       entries a command removed.</li>
 *   <li>{@link dev.iommuemu.tlb.TlbInvalidation}: one factory per CMD_TLBI_* command, and the
 *       matching rule ({@link dev.iommuemu.tlb.TlbInvalidation#matches}) that is the command's
 *       exact scope; {@link dev.iommuemu.tlb.TlbRange}: TG/NUM/SCALE/TTL.</li>
 * </ul>
 *
 * <p>Choices where the specification leaves room, each documented where it is made:
 * <ul>
 *   <li>Only leaf translations are cached (no walk cache), so Leaf = 0 and Leaf = 1 remove the
 *       same entries ({@link dev.iommuemu.tlb.TlbInvalidation}).</li>
 *   <li>Invalidation is exact (no over-invalidation, §4.4 "not recommended"), with one
 *       deliberate exception: CMD_TLBI_S2_IPA also removes NESTED entries built on the stage 2
 *       leaf it hits ({@link dev.iommuemu.tlb.TlbInvalidation#s2Ipa}).</li>
 *   <li>A NESTED entry spans the smaller of its two leaves, and is removed by a VA invalidation
 *       that hits anywhere in its stage 1 leaf, and by an IPA invalidation anywhere in its stage 2
 *       leaf ({@link dev.iommuemu.tlb.TlbEntry}).</li>
 *   <li>A range invalidation (TG != 0) only removes entries of TG's granule, and with TTL != 0
 *       only leaves of that level (for NESTED: the stage 1 level for NH_*, the stage 2 level for
 *       S2_IPA); a range whose address is not aligned to TG starts at the aligned-down address
 *       (§4.4.1.1 calls that UNPREDICTABLE).</li>
 *   <li>CMD_TLBI_* decoding checks (CERROR_ILL for reserved encodings, 8-bit ASID/VMID, E2H) are
 *       the command queue's: see {@link dev.iommuemu.tlb.TlbRange#reserved()} and
 *       {@link dev.iommuemu.tlb.TlbTag#NO_ASID}.</li>
 * </ul>
 */
package dev.iommuemu.tlb;
