/**
 * The SMMUv3's architectural state as an immutable value (docs/device-state.md): what
 * {@link dev.iommuemu.smmuv3.Smmuv3#saveState()} takes and {@link dev.iommuemu.smmuv3.Smmuv3#restoreState}
 * puts back, for live migration and daemon restart. {@link StateCheck} refuses, with a sentence,
 * a state this model could not have produced, before anything is changed.
 */
package dev.iommuemu.smmuv3.state;
