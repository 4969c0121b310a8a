package dev.iommuemu.bridge.device;

import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.Perm;
import java.util.List;

/**
 * The "identity" model: an IOMMU in bypass, translating every access to itself with every
 * permission, in 4 KiB pages (what SMMUv3 does with SMMUEN=0 and GBPA.ABORT=0, IHI 0070 §6.3.9.6,
 * or virtio-iommu with bypass, virtio 1.x §5.13.6). It has no registers and no queues. It exists so
 * the daemon can be run and its protocol exercised without a full model.
 */
public final class IdentityDevice implements BridgedDevice {
    private static final long PAGE_MASK = 0xfff;
    private final String profile;

    public IdentityDevice(String profile) {
        this.profile = profile;
    }

    @Override
    public String model() {
        return Factory.NAME;
    }

    @Override
    public String profile() {
        return profile;
    }

    @Override
    public IommuModel iommu() {
        return new IommuModel() {
            @Override
            public DmaResult translate(int endpoint, int substream, long iova, DmaAccess access) {
                return new DmaResult.Translated(speculate(endpoint, substream, iova, access));
            }

            /** Every page maps to itself, so every page may be prefetched (IOMMU_TRANSLATE_RUN). */
            @Override
            public IotlbEntry speculate(int endpoint, int substream, long iova, DmaAccess access) {
                return new IotlbEntry(iova & ~PAGE_MASK, iova & ~PAGE_MASK, PAGE_MASK, Perm.ALL);
            }
        };
    }

    /** Its factory. */
    public static final class Factory implements DeviceFactory {
        public static final String NAME = "identity";

        @Override
        public String model() {
            return NAME;
        }

        @Override
        public int modelNumber() {
            return 0;
        }

        @Override
        public List<String> profiles() {
            return List.of("default");
        }

        @Override
        public BridgedDevice create(String profile, DeviceContext context) {
            return new IdentityDevice(profile);
        }
    }
}
