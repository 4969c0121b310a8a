package dev.iommuemu.smmuv3.translate;

import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.smmuv3.streamtable.Ste;

/**
 * A valid, legal STE as the configuration cache holds it, with its decoded stage 2 ({@code null}
 * when stage 2 does not translate).
 */
public record StreamConfig(Ste ste, long address, Stage2Config s2) {}
