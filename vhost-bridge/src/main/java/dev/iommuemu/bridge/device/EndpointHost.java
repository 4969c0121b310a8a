package dev.iommuemu.bridge.device;

/**
 * What a model asks of the endpoints behind the VMM (PCIe ATS and PRI), beyond
 * {@link dev.iommuemu.dma.DmaHost}. The daemon sends these on the back-end channel
 * (docs/protocol.md §5). Calls are synchronous like DmaHost's.
 */
public interface EndpointHost {
    /**
     * Endpoints must drop ATC entries of {@code streamId}/{@code substreamId} in
     * {@code [address, address + size)} (SMMUv3 CMD_ATC_INV, IHI 0070 §4.5.1; size ~0 = all);
     * returns once the VMM has acknowledged, so the model may complete the following CMD_SYNC.
     */
    void atcInvalidate(int streamId, int substreamId, long address, long size);

    /**
     * As {@link #atcInvalidate(int, int, long, long)}, with CMD_ATC_INV.G (IHI 0070 §4.5.1): when
     * {@code global}, the invalidation applies to every PASID (PCIe Global Invalidate). A host that
     * cannot say "global" widens it to the stream's entries of every substream.
     */
    default void atcInvalidate(int streamId, int substreamId, long address, long size, boolean global) {
        atcInvalidate(streamId, global ? dev.iommuemu.dma.IommuModel.NO_SUBSTREAM : substreamId, address, size);
    }

    /**
     * A Page Request Group Response to an endpoint (SMMUv3 CMD_PRI_RESP, IHI 0070 §4.7.1): code 0
     * Success, 1 Invalid Request, 0xf Response Failure (PCIe PRG Response Message).
     */
    void pageResponse(int streamId, int substreamId, int groupIndex, int code);

    /**
     * A stalled transaction of {@code streamId} with tag {@code stag} is resolved: retried
     * ({@code retry}, SMMUv3 CMD_RESUME with Action Retry, IHI 0070 §4.7.1) or aborted (CMD_RESUME
     * Abort, CMD_STALL_TERM §4.7.2). Posted: the VMM releases the access it holds (docs/protocol.md §4.3).
     */
    default void stallResolved(int streamId, int stag, boolean retry) {}

    EndpointHost NONE = new EndpointHost() {
        @Override
        public void atcInvalidate(int streamId, int substreamId, long address, long size) {}

        @Override
        public void pageResponse(int streamId, int substreamId, int groupIndex, int code) {}
    };
}
