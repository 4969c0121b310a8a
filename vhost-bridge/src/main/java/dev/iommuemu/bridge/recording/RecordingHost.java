package dev.iommuemu.bridge.recording;

import dev.iommuemu.bridge.device.EndpointHost;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.proto.v1.AtcInvalidateEffect;
import dev.iommuemu.proto.v1.Effect;
import dev.iommuemu.proto.v1.InvalidateEffect;
import dev.iommuemu.proto.v1.MsiEffect;
import dev.iommuemu.proto.v1.PageResponseEffect;
import dev.iommuemu.proto.v1.StallResolvedEffect;

/**
 * The host callbacks of a model with every call also told to an {@link OperationRecorder} as an
 * effect of the operation running (docs/recording.md): interrupts, MSIs, IOTLB and ATC
 * invalidations, PRI responses and stall resolutions, before they go on to the real host.
 */
public final class RecordingHost implements DmaHost, EndpointHost {
    private final DmaHost host;
    private final EndpointHost endpoints;
    private final OperationRecorder recorder;

    public RecordingHost(DmaHost host, EndpointHost endpoints, OperationRecorder recorder) {
        this.host = host;
        this.endpoints = endpoints;
        this.recorder = recorder;
    }

    /** A hint for the VMM's cache, not a model output: passed on, not recorded (docs/recording.md). */
    @Override
    public void prefill(int endpoint, dev.iommuemu.dma.IotlbEntry entry) {
        host.prefill(endpoint, entry);
    }

    /** The host's restart journal saves the state (DmaHost.checkpoint): not a model output; passed on, not recorded. */
    @Override
    public void checkpoint() {
        host.checkpoint();
    }

    /** Walk recipes are the host's (DmaHost.configurationChanged): not a model output; passed on, not recorded. */
    @Override
    public void configurationChanged() {
        host.configurationChanged();
    }

    @Override
    public void raiseIrq(String line) {
        recorder.effect(Effect.newBuilder().setIrq(line).build());
        host.raiseIrq(line);
    }

    @Override
    public void msi(long address, int data) {
        msi(address, data, dev.iommuemu.dma.MsiSource.OTHER);
    }

    @Override
    public void msi(long address, int data, dev.iommuemu.dma.MsiSource source) {
        recorder.effect(Effect.newBuilder().setMsi(MsiEffect.newBuilder().setAddress(address).setData(data)
                .setSource(source.code())).build());
        host.msi(address, data, source);
    }

    @Override
    public void invalidate(IotlbInvalidation inv) {
        recorder.effect(Effect.newBuilder().setInvalidate(InvalidateEffect.newBuilder().setEndpoint(inv.endpoint()).setIova(inv.iova())
                .setSize(inv.size())).build());
        host.invalidate(inv);
    }

    @Override
    public void atcInvalidate(int streamId, int substreamId, long address, long size) {
        atcInvalidate(streamId, substreamId, address, size, false);
    }

    @Override
    public void atcInvalidate(int streamId, int substreamId, long address, long size, boolean global) {
        recorder.effect(Effect.newBuilder().setAtcInvalidate(AtcInvalidateEffect.newBuilder().setStreamId(streamId)
                .setSubstreamId(substreamId).setAddress(address).setSize(size).setGlobal(global)).build());
        endpoints.atcInvalidate(streamId, substreamId, address, size, global);
    }

    @Override
    public void pageResponse(int streamId, int substreamId, int groupIndex, int code) {
        recorder.effect(Effect.newBuilder().setPageResponse(PageResponseEffect.newBuilder().setStreamId(streamId)
                .setSubstreamId(substreamId).setGroupIndex(groupIndex).setCode(code)).build());
        endpoints.pageResponse(streamId, substreamId, groupIndex, code);
    }

    @Override
    public void stallResolved(int streamId, int stag, boolean retry) {
        recorder.effect(Effect.newBuilder().setStallResolved(StallResolvedEffect.newBuilder().setStreamId(streamId).setStag(stag)
                .setRetry(retry)).build());
        endpoints.stallResolved(streamId, stag, retry);
    }
}
