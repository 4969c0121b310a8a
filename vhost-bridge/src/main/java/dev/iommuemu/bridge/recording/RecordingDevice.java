package dev.iommuemu.bridge.recording;

import com.google.protobuf.ByteString;
import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.Diagnostics;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.proto.v1.ConfigReadOp;
import dev.iommuemu.proto.v1.ConfigWriteOp;
import dev.iommuemu.proto.v1.FeaturesOp;
import dev.iommuemu.proto.v1.MmioReadOp;
import dev.iommuemu.proto.v1.MmioWriteOp;
import dev.iommuemu.proto.v1.PageRequestOp;
import dev.iommuemu.proto.v1.PrefetchOp;
import dev.iommuemu.proto.v1.QueueNotifyOp;
import dev.iommuemu.proto.v1.QueueStartOp;
import dev.iommuemu.proto.v1.QueueStopOp;
import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.ResetOp;
import dev.iommuemu.proto.v1.TranslateOp;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BiConsumer;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * A {@link BridgedDevice} whose every call that can change the model or that the guest can observe
 * is an operation of an {@link OperationRecorder} (docs/recording.md): its arguments, what it
 * returned (or that it was refused), and what the model did meanwhile. Queries of fixed facts
 * (model, profile, sizes, lines, counters) and diagnostics, which change nothing, pass through.
 * Translation goes through {@link #iommu()}, whose translate, prefetch and speculate are recorded
 * the same way.
 *
 * <p>An iommufd nesting host (docs/nesting.md) runs model code outside these calls; opening one
 * ends the recording through {@code unrecordable}, with the reason.
 */
public final class RecordingDevice implements BridgedDevice {
    private final BridgedDevice d;
    private final OperationRecorder rec;
    private final Consumer<String> unrecordable;
    private IommuModel inner;
    private IommuModel wrapped;

    public RecordingDevice(BridgedDevice device, OperationRecorder recorder, Consumer<String> unrecordable) {
        this.d = device;
        this.rec = recorder;
        this.unrecordable = unrecordable;
    }

    /** The device this one records. */
    public BridgedDevice device() {
        return d;
    }

    /** Runs {@code call} as an operation: arguments, then the call, then its result or refusal. */
    private <T> T op(Consumer<RecordedOperation.Builder> args, Supplier<T> call, BiConsumer<RecordedOperation.Builder, T> result) {
        RecordedOperation.Builder b = rec.begin();
        if (b == null) {
            return call.get();
        }
        try {
            args.accept(b);
            T v = call.get();
            result.accept(b, v);
            return v;
        } catch (RuntimeException | InternalError e) {
            b.setRefused(e.getClass().getSimpleName() + ": " + e.getMessage());
            throw e;
        } finally {
            rec.end(b);
        }
    }

    private void op(Consumer<RecordedOperation.Builder> args, Runnable call) {
        op(args, () -> {
            call.run();
            return null;
        }, (b, v) -> {});
    }

    @Override
    public String model() {
        return d.model();
    }

    @Override
    public String profile() {
        return d.profile();
    }

    @Override
    public IommuModel iommu() {
        IommuModel m = d.iommu();
        if (m != inner) {
            inner = m;
            wrapped = m == null ? null : new Recorded(m);
        }
        return wrapped;
    }

    @Override
    public long mmioSize() {
        return d.mmioSize();
    }

    @Override
    public long mmioRead(long offset, int size) {
        if (!rec.active()) {
            return d.mmioRead(offset, size); // the common case: no lambdas on the hot path
        }
        return op(b -> b.setMmioRead(MmioReadOp.newBuilder().setOffset(offset).setSize(size)), () -> d.mmioRead(offset, size),
                (b, v) -> b.getMmioReadBuilder().setValue(v));
    }

    @Override
    public java.util.List<dev.iommuemu.bridge.device.MirroredRegister> mirroredRegisters() {
        return d.mirroredRegisters();
    }

    /** Not recorded: a mirror refresh changes nothing in the model (docs/recording.md). */
    @Override
    public long peekRegister(long offset, int size) {
        return d.peekRegister(offset, size);
    }

    /** Looks at the model's configuration cache only: nothing to record. */
    @Override
    public java.util.Optional<dev.iommuemu.pagetable.WalkRecipe> walkRecipe(int endpoint) {
        return d.walkRecipe(endpoint);
    }

    /** Reads the command queue's registers only: nothing to record. */
    @Override
    public java.util.Optional<CommandQueueState> commandQueueState() {
        return d.commandQueueState();
    }

    /**
     * The VMM's consumed commands (docs/protocol.md §4.12) are no operation a recording holds: the
     * session stops a recording before it applies them (DeviceSession), so this only passes them on.
     */
    @Override
    public int applyVmmCommands(long[] words, int count, int prod, int cons) {
        return d.applyVmmCommands(words, count, prod, cons);
    }

    /** Reads the request queue's state only: nothing to record. */
    @Override
    public java.util.Optional<dev.iommuemu.virtio.iommu.RequestQueueHandOff> requestQueueHandOff() {
        return d.requestQueueHandOff();
    }

    /** Reads the domain table only: nothing to record. */
    @Override
    public java.util.Optional<dev.iommuemu.virtio.iommu.MirroredDomain> mirroredDomain(int id) {
        return d.mirroredDomain(id);
    }

    /** Reads the domain table only: nothing to record. */
    @Override
    public java.util.List<dev.iommuemu.virtio.iommu.MirroredDomain> mirroredDomains() {
        return d.mirroredDomains();
    }

    /** Bookkeeping of the §4.13 mirror, no operation of the model: nothing to record. */
    @Override
    public dev.iommuemu.virtio.iommu.ChangedDomains takeChangedDomains() {
        return d.takeChangedDomains();
    }

    /**
     * The VMM's served requests (docs/protocol.md §4.13) are no operation a recording holds: the
     * session stops a recording before it applies them (DeviceSession), so this only passes them on.
     */
    @Override
    public int applyVmmRequests(java.util.List<dev.iommuemu.virtio.iommu.VmmRequest> log, int nextAvail, int usedIdx) {
        return d.applyVmmRequests(log, nextAvail, usedIdx);
    }

    @Override
    public void mmioWrite(long offset, int size, long value) {
        if (!rec.active()) {
            d.mmioWrite(offset, size, value);
            return;
        }
        op(b -> b.setMmioWrite(MmioWriteOp.newBuilder().setOffset(offset).setSize(size).setValue(value)),
                () -> d.mmioWrite(offset, size, value));
    }

    @Override
    public List<String> irqLines() {
        return d.irqLines();
    }

    @Override
    public long virtioFeatures() {
        return d.virtioFeatures();
    }

    @Override
    public void setVirtioFeatures(long features) {
        op(b -> b.setSetFeatures(FeaturesOp.newBuilder().setFeatures(features)), () -> d.setVirtioFeatures(features));
    }

    static TranslateOp.Builder translation(int endpoint, int substream, long iova, DmaAccess access) {
        TranslateOp.Builder t = TranslateOp.newBuilder().setEndpoint(endpoint).setIova(iova).setAccess(RecordingCodec.access(access));
        if (RecordingCodec.hasSubstream(substream)) {
            t.setSubstream(substream);
        }
        return t;
    }

    @Override
    public DmaResult atsTranslate(int streamId, int substreamId, long iova, DmaAccess access) {
        return op(b -> b.setAtsTranslate(translation(streamId, substreamId, iova, access)),
                () -> d.atsTranslate(streamId, substreamId, iova, access),
                (b, r) -> b.getAtsTranslateBuilder().setResult(RecordingCodec.result(r)));
    }

    @Override
    public DmaResult atsTranslate(int streamId, int substreamId, long iova, boolean write, boolean exe, boolean priv) {
        // recorded as the DmaAccess form, which replays through the same PCIe fields
        return op(b -> b.setAtsTranslate(translation(streamId, substreamId, iova, new DmaAccess(write, exe, priv))),
                () -> d.atsTranslate(streamId, substreamId, iova, write, exe, priv),
                (b, r) -> b.getAtsTranslateBuilder().setResult(RecordingCodec.result(r)));
    }

    @Override
    public String msiAborted(long address, int data, dev.iommuemu.dma.MsiSource source) {
        return op(b -> b.setMsiAborted(dev.iommuemu.proto.v1.MsiAbortedOp.newBuilder().setAddress(address).setData(data)
                        .setSource(source.code())),
                () -> d.msiAborted(address, data, source),
                (b, v) -> b.getMsiAbortedBuilder().setActivated(v == null ? "" : v));
    }

    @Override
    public boolean injectServiceFailure() {
        return op(b -> b.setInject(dev.iommuemu.proto.v1.InjectOp.newBuilder().setServiceFailure(true)), d::injectServiceFailure,
                (b, v) -> b.getInjectBuilder().setEntered(v));
    }

    @Override
    public boolean translationsCheckpoint() {
        return d.translationsCheckpoint();
    }

    @Override
    public boolean reportFindings(Consumer<dev.iommuemu.bridge.device.Finding> sink) {
        return d.reportFindings(sink); // findings are no model input or output: not recorded
    }

    @Override
    public void pageRequest(PageRequest r) {
        op(b -> {
            PageRequestOp.Builder p = PageRequestOp.newBuilder().setStreamId(r.streamId()).setAddress(r.address())
                    .setGroupIndex(r.groupIndex()).setRead(r.read()).setWrite(r.write()).setExec(r.exec()).setPriv(r.priv())
                    .setLast(r.last()).setStop(r.stop());
            if (RecordingCodec.hasSubstream(r.substreamId())) {
                p.setSubstreamId(r.substreamId());
            }
            b.setPageRequest(p);
        }, () -> d.pageRequest(r));
    }

    @Override
    public byte[] readConfig(int offset, int length) {
        return op(b -> b.setConfigRead(ConfigReadOp.newBuilder().setOffset(offset).setLength(length)), () -> d.readConfig(offset, length),
                (b, v) -> b.getConfigReadBuilder().setData(ByteString.copyFrom(v)));
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        op(b -> b.setConfigWrite(ConfigWriteOp.newBuilder().setOffset(offset).setData(ByteString.copyFrom(data))),
                () -> d.writeConfig(offset, data));
    }

    @Override
    public int numQueues() {
        return d.numQueues();
    }

    @Override
    public void queueStart(int index, Vring ring) {
        op(b -> b.setQueueStart(QueueStartOp.newBuilder().setIndex(index).setSize(ring.size()).setDescTable(ring.descTable())
                .setAvailRing(ring.availRing()).setUsedRing(ring.usedRing()).setNextAvail(ring.nextAvail())),
                () -> d.queueStart(index, ring));
    }

    @Override
    public int queueStop(int index) {
        return op(b -> b.setQueueStop(QueueStopOp.newBuilder().setIndex(index)), () -> d.queueStop(index),
                (b, v) -> b.getQueueStopBuilder().setNextAvail(v));
    }

    @Override
    public void queueNotified(int index) {
        if (!rec.active()) {
            d.queueNotified(index);
            return;
        }
        op(b -> b.setQueueNotify(QueueNotifyOp.newBuilder().setIndex(index)), () -> d.queueNotified(index));
    }

    @Override
    public void setEndpoints(Set<Integer> present) {
        op(b -> b.setSetEndpoints(RecordingCodec.endpoints(present)), () -> d.setEndpoints(present));
    }

    @Override
    public void reset() {
        op(b -> b.setReset(ResetOp.newBuilder().setSystem(false)), d::reset);
    }

    @Override
    public void systemReset() {
        op(b -> b.setReset(ResetOp.newBuilder().setSystem(true)), d::systemReset);
    }

    @Override
    public Map<String, Long> counters() {
        return d.counters();
    }

    @Override
    public Diagnostics diagnostics() {
        return d.diagnostics();
    }

    @Override
    public dev.iommuemu.iommufd.Iommufd openIommufd(long carveBase, long carveSize, int streamTableLog2) {
        if (rec.active()) {
            unrecordable.accept("the session opened an iommufd nesting host (docs/nesting.md), whose calls recordings do not cover");
        }
        return d.openIommufd(carveBase, carveSize, streamTableLog2);
    }

    @Override
    public byte[] saveState() {
        return d.saveState();
    }

    /** A loaded state changes the model outside the recorded operations: the recording ends, with the reason. */
    @Override
    public void loadState(byte[] state) {
        d.loadState(state);
        if (rec.active()) {
            unrecordable.accept("the session loaded a device state (docs/device-state.md), which recordings do not carry");
        }
    }

    @Override
    public dev.iommuemu.iommufd.Iommufd iommufd() {
        return d.iommufd();
    }

    @Override
    public void close() {
        d.close();
    }

    /** The device's translation, recorded. */
    private final class Recorded implements IommuModel {
        private final IommuModel m;

        Recorded(IommuModel m) {
            this.m = m;
        }

        @Override
        public DmaResult translate(int endpoint, int substream, long iova, DmaAccess access) {
            if (!rec.active()) {
                return m.translate(endpoint, substream, iova, access);
            }
            return op(b -> b.setTranslate(translation(endpoint, substream, iova, access)), () -> m.translate(endpoint, substream, iova, access),
                    (b, r) -> b.getTranslateBuilder().setResult(RecordingCodec.result(r)));
        }

        @Override
        public IotlbEntry speculate(int endpoint, int substream, long iova, DmaAccess access) {
            if (!rec.active()) {
                return m.speculate(endpoint, substream, iova, access);
            }
            return op(b -> b.setSpeculate(translation(endpoint, substream, iova, access)), () -> m.speculate(endpoint, substream, iova, access),
                    (b, e) -> {
                        if (e != null) {
                            b.getSpeculateBuilder().setResult(dev.iommuemu.proto.v1.RecordedResult.newBuilder().setTranslated(RecordingCodec.entry(e)));
                        }
                    });
        }

        @Override
        public List<IotlbEntry> prefetch(int endpoint, int substream, long from, DmaAccess access, int maxPages) {
            if (!rec.active()) {
                return m.prefetch(endpoint, substream, from, access, maxPages);
            }
            return op(b -> {
                PrefetchOp.Builder p = PrefetchOp.newBuilder().setEndpoint(endpoint).setFrom(from).setAccess(RecordingCodec.access(access))
                        .setMaxPages(maxPages);
                if (RecordingCodec.hasSubstream(substream)) {
                    p.setSubstream(substream);
                }
                b.setPrefetch(p);
            }, () -> m.prefetch(endpoint, substream, from, access, maxPages), (b, es) -> {
                for (IotlbEntry e : es) {
                    b.getPrefetchBuilder().addEntries(RecordingCodec.entry(e));
                }
            });
        }
    }
}
