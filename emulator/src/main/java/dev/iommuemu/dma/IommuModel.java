package dev.iommuemu.dma;

/**
 * What every device model (SMMUv3, virtio-iommu) offers the shell: DMA translation for an
 * endpoint. Register and queue access are model-specific and live on the models themselves.
 */
public interface IommuModel {
    /** Substream (PASID) value meaning "the access carries no substream". */
    int NO_SUBSTREAM = -1;

    /**
     * Translates one access of endpoint {@code endpoint} (SMMUv3 StreamID, virtio-iommu endpoint
     * ID), optionally with a substream ID, at input address {@code iova}. Never throws for guest
     * state: bad configuration is reported as the architected fault.
     */
    DmaResult translate(int endpoint, int substream, long iova, DmaAccess access);
}
