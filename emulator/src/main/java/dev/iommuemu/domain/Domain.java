package dev.iommuemu.domain;

/**
 * An iommu domain (include/linux/iommu.h struct iommu_domain): what a device's DMA goes through.
 * Each belongs to one {@link IommuCore} (one physical SMMU instance); attaching it to a device of
 * another instance is {@link Errno#EINVAL}.
 */
public sealed interface Domain permits Domain.Blocking, Domain.Identity, PagingDomain, NestedDomain {

    /** include/linux/iommu.h IOMMU_DOMAIN_BLOCKED / IDENTITY / PAGING (UNMANAGED) / NESTED. */
    enum Type {
        BLOCKED,
        IDENTITY,
        PAGING,
        NESTED
    }

    Type type();

    IommuCore owner();

    /** All DMA is blocked (an STE with Config abort, IHI 0070 §5.2). Always exists; attaching it never fails. */
    record Blocking(IommuCore owner) implements Domain {
        @Override
        public Type type() {
            return Type.BLOCKED;
        }
    }

    /** DMA is untranslated (an STE with Config bypass). Always exists; attaching it never fails. */
    record Identity(IommuCore owner) implements Domain {
        @Override
        public Type type() {
            return Type.IDENTITY;
        }
    }
}
