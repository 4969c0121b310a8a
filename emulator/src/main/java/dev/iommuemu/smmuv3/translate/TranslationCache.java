package dev.iommuemu.smmuv3.translate;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.pagetable.Translation;

/**
 * Where the translation path keeps walked translations: the SMMU's TLB (IHI 0070 §3.17), tagged by
 * regime, VMID and ASID. Coherent only through the guest's TLBI commands.
 */
public interface TranslationCache {
    /** A cached translation of {@code iova} that grants {@code access}, or {@code null}. */
    Translation lookup(Outcome.Regime regime, int vmid, int asid, long iova, DmaAccess access);

    /** Caches a walked translation. */
    void insert(Outcome.Regime regime, int vmid, int asid, Translation t);

    /** A cache that holds nothing. */
    TranslationCache NONE = new TranslationCache() {
        @Override
        public Translation lookup(Outcome.Regime regime, int vmid, int asid, long iova, DmaAccess access) {
            return null;
        }

        @Override
        public void insert(Outcome.Regime regime, int vmid, int asid, Translation t) {}
    };
}
