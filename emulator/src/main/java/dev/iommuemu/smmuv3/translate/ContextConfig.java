package dev.iommuemu.smmuv3.translate;

import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.smmuv3.cd.Cd;

/** A valid, legal CD as the configuration cache holds it, with its decoded stage 1. */
public record ContextConfig(Cd cd, long address, Stage1Config s1) {}
