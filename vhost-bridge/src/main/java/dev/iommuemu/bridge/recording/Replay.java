package dev.iommuemu.bridge.recording;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.EndpointHost;
import dev.iommuemu.bridge.device.VmmProperties;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.memory.RecordingGuestMemory;
import dev.iommuemu.proto.v1.Effect;
import dev.iommuemu.proto.v1.MemoryBytes;
import dev.iommuemu.proto.v1.RecordedEndpoints;
import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.RecordingHeader;
import dev.iommuemu.proto.v1.TranslateOp;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Runs a recording (docs/recording.md) against a fresh model built as the daemon builds one
 * ({@link DeviceRegistry}, {@link DeviceFactory#create}) and compares, operation by operation,
 * everything the model did and answered with the recording. Before each operation the model's
 * memory holds only the bytes the recording says it read during that operation
 * ({@link ReplayMemory}); the model's host callbacks go nowhere but into the comparison.
 *
 * <p>The first difference ends the replay: the model read bytes the recording does not have, did
 * something else (a memory write, an interrupt, an invalidation...), or answered otherwise.
 */
public final class Replay {

    /**
     * The outcome: {@code operations} replayed (after {@code skipped} before a mid-session
     * recording's first system reset), whether all were identical, and the sentence to print.
     */
    public record Outcome(long operations, long skipped, boolean identical, boolean truncated, String sentence) {}

    private final DeviceRegistry registry;
    private final ReplayMemory memory = new ReplayMemory();
    private final RecordingGuestMemory tapped = new RecordingGuestMemory(memory);
    private final OperationRecorder recorder = new OperationRecorder();
    private final RecordingHost host = new RecordingHost(DmaHost.NONE, EndpointHost.NONE, recorder);
    private RecordedOperation.Builder captured;
    private BridgedDevice device;

    private Replay(DeviceRegistry registry) {
        this.registry = registry;
        tapped.tap(recorder);
        recorder.sink(op -> captured = op);
    }

    /**
     * Replays {@code file}. A file that cannot be replayed at all (missing, not a recording, another
     * format version, a model this build lacks) is an {@link IOException} with a sentence.
     */
    public static Outcome run(Path file, DeviceRegistry registry) throws IOException {
        try (RecordingFile f = RecordingFile.open(file)) {
            return new Replay(registry).run(f);
        }
    }

    private Outcome run(RecordingFile f) throws IOException {
        RecordingHeader h = f.header();
        String model = h.getModel();
        String profile = h.getProfile();
        VmmProperties props = RecordingCodec.properties(h.getProperties());
        Set<Integer> endpoints = h.hasEndpoints() ? RecordingCodec.endpoints(h.getEndpoints()) : null;
        memory.layout(h.getRamList());
        boolean skipping = h.getMidSession();
        if (!skipping) {
            build(f.path(), model, profile, props, endpoints);
        }
        long replayed = 0;
        long skipped = 0;
        try {
            for (RecordedOperation op = f.next(); op != null; op = f.next()) {
                switch (op.getOpCase()) {
                    case LAYOUT -> {
                        memory.layout(op.getLayout().getRamList());
                        continue;
                    }
                    case CREATE -> {
                        model = op.getCreate().getModel();
                        profile = op.getCreate().getProfile();
                        props = RecordingCodec.properties(op.getCreate().getProperties());
                        endpoints = op.getCreate().hasEndpoints() ? RecordingCodec.endpoints(op.getCreate().getEndpoints()) : null;
                        if (!skipping) {
                            build(f.path(), model, profile, props, endpoints);
                        }
                        continue;
                    }
                    default -> { }
                }
                if (skipping) {
                    skipped++;
                    if (op.hasSetEndpoints()) {
                        endpoints = RecordingCodec.endpoints(op.getSetEndpoints());
                    }
                    if (op.hasReset() && op.getReset().getSystem()) {
                        // the power-on state: what a fresh model is (BridgedDevice#systemReset)
                        skipping = false;
                        build(f.path(), model, profile, props, endpoints);
                    }
                    continue;
                }
                memory.seed(op);
                captured = null;
                invoke(op);
                String why = compare(op, captured);
                replayed++;
                if (why != null) {
                    String versions = h.getDaemonVersion().equals(dev.iommuemu.bridge.control.ControlService.VERSION) ? ""
                            : " (recorded by iommu-emu " + h.getDaemonVersion() + ", replayed by " + dev.iommuemu.bridge.control.ControlService.VERSION + ")";
                    return new Outcome(replayed, skipped, false, f.truncated(), "replay: operation " + op.getIndex() + " ("
                            + Describe.operation(op) + ") diverges: " + why + versions);
                }
            }
        } finally {
            if (device != null) {
                device.close();
            }
        }
        if (skipping) {
            return new Outcome(0, skipped, false, f.truncated(), "replay: " + f.path() + " began after the session's model was in use "
                    + "(a recording started through the control API) and has no system reset to start from: nothing to replay");
        }
        StringBuilder s = new StringBuilder("replay: " + replayed + " operations, identical");
        if (skipped > 0) {
            s.append(" (after the first system reset; ").append(skipped).append(" operations before it were skipped)");
        }
        if (f.truncated()) {
            s.append("; the file was cut short after them (the daemon did not close the recording)");
        }
        return new Outcome(replayed, skipped, true, f.truncated(), s.toString());
    }

    private void build(Path file, String model, String profile, VmmProperties props, Set<Integer> endpoints) throws IOException {
        DeviceFactory factory = registry.get(model);
        if (factory == null) {
            throw new IOException(file + " records model '" + model + "', which this build does not have (it has " + registry.models() + ")");
        }
        if (device != null) {
            device.close();
        }
        BridgedDevice raw;
        try {
            raw = factory.create(profile, props, new DeviceContext(tapped, host, host));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + " records model " + model + " profile '" + profile + "', which this build cannot make: " + e.getMessage());
        }
        if (endpoints != null) {
            try {
                raw.setEndpoints(endpoints);
            } catch (UnsupportedOperationException e) {
                // a model without endpoint topology, as in the daemon
            }
        }
        device = new RecordingDevice(raw, recorder, why -> { });
    }

    private static int substream(boolean has, int value) {
        return has ? value : IommuModel.NO_SUBSTREAM;
    }

    /** Makes the recorded call; a refusal is part of what {@link RecordingDevice} captures. */
    private void invoke(RecordedOperation op) {
        BridgedDevice d = device;
        try {
            switch (op.getOpCase()) {
                case MMIO_READ -> d.mmioRead(op.getMmioRead().getOffset(), op.getMmioRead().getSize());
                case MMIO_WRITE -> d.mmioWrite(op.getMmioWrite().getOffset(), op.getMmioWrite().getSize(), op.getMmioWrite().getValue());
                case TRANSLATE -> {
                    TranslateOp t = op.getTranslate();
                    d.iommu().translate(t.getEndpoint(), substream(t.hasSubstream(), t.getSubstream()), t.getIova(),
                            RecordingCodec.access(t.getAccess()));
                }
                case SPECULATE -> {
                    TranslateOp t = op.getSpeculate();
                    d.iommu().speculate(t.getEndpoint(), substream(t.hasSubstream(), t.getSubstream()), t.getIova(),
                            RecordingCodec.access(t.getAccess()));
                }
                case ATS_TRANSLATE -> {
                    TranslateOp t = op.getAtsTranslate();
                    d.atsTranslate(t.getEndpoint(), substream(t.hasSubstream(), t.getSubstream()), t.getIova(), RecordingCodec.access(t.getAccess()));
                }
                case PREFETCH -> {
                    var p = op.getPrefetch();
                    d.iommu().prefetch(p.getEndpoint(), substream(p.hasSubstream(), p.getSubstream()), p.getFrom(),
                            RecordingCodec.access(p.getAccess()), p.getMaxPages());
                }
                case PAGE_REQUEST -> {
                    var p = op.getPageRequest();
                    d.pageRequest(new BridgedDevice.PageRequest(p.getStreamId(), substream(p.hasSubstreamId(), p.getSubstreamId()),
                            p.getAddress(), p.getGroupIndex(), p.getRead(), p.getWrite(), p.getExec(), p.getPriv(), p.getLast(), p.getStop()));
                }
                case CONFIG_READ -> d.readConfig(op.getConfigRead().getOffset(), op.getConfigRead().getLength());
                case CONFIG_WRITE -> d.writeConfig(op.getConfigWrite().getOffset(), op.getConfigWrite().getData().toByteArray());
                case QUEUE_START -> {
                    var q = op.getQueueStart();
                    d.queueStart(q.getIndex(), new BridgedDevice.Vring(q.getSize(), q.getDescTable(), q.getAvailRing(), q.getUsedRing(),
                            q.getNextAvail()));
                }
                case QUEUE_STOP -> d.queueStop(op.getQueueStop().getIndex());
                case QUEUE_NOTIFY -> d.queueNotified(op.getQueueNotify().getIndex());
                case SET_FEATURES -> d.setVirtioFeatures(op.getSetFeatures().getFeatures());
                case SET_ENDPOINTS -> d.setEndpoints(RecordingCodec.endpoints(op.getSetEndpoints()));
                case MSI_ABORTED -> {
                    var m = op.getMsiAborted();
                    dev.iommuemu.dma.MsiSource src = dev.iommuemu.dma.MsiSource.of(m.getSource());
                    d.msiAborted(m.getAddress(), m.getData(), src == null ? dev.iommuemu.dma.MsiSource.OTHER : src);
                }
                case INJECT -> d.injectServiceFailure();
                case RESET -> {
                    if (op.getReset().getSystem()) {
                        d.systemReset();
                    } else {
                        d.reset();
                    }
                }
                default -> throw new IllegalStateException("operation " + op.getIndex() + " has no call this build knows ("
                        + op.getOpCase() + "): the recording is of a newer format");
            }
        } catch (RuntimeException | InternalError e) {
            // recorded as the operation's refusal by RecordingDevice (or, for an unknown kind, found missing below)
        }
    }

    /** Why {@code got} differs from {@code want}, or null. */
    static String compare(RecordedOperation want, RecordedOperation.Builder got) {
        if (got == null) {
            return "this build could not make the call (" + want.getOpCase() + ")";
        }
        Known known = new Known();
        List<Effect> wantOut = new ArrayList<>();
        for (Effect e : want.getEffectsList()) {
            if (e.hasRead()) {
                known.add(e.getRead(), true);
            } else {
                wantOut.add(e);
            }
        }
        Iterator<Effect> expected = wantOut.iterator();
        for (Effect e : got.getEffectsList()) {
            if (e.hasRead()) {
                String missing = known.missing(e.getRead());
                if (missing != null) {
                    return "the model read " + e.getRead().getData().size() + " bytes at " + hex(e.getRead().getAddress())
                            + ", and the recording does not have " + missing + " (the recording's reads in this operation: "
                            + known.describe() + ")";
                }
                continue;
            }
            if (e.hasWrite()) {
                known.add(e.getWrite(), false); // the model may read back what it wrote
            }
            Effect w = expected.hasNext() ? expected.next() : null;
            if (w == null) {
                return "the model did " + Describe.effect(e) + ", which the recording does not have (it has nothing more in this operation)";
            }
            if (!w.equals(e)) {
                return "the recording has " + Describe.effect(w) + " where the model did " + Describe.effect(e) + Describe.byteDifference(w, e);
            }
        }
        if (expected.hasNext()) {
            return "the recording has " + Describe.effect(expected.next()) + ", which the model did not do (it did nothing more in this operation)";
        }
        RecordedOperation a = want.toBuilder().clearEffects().clearIndex().build();
        RecordedOperation b = got.clone().clearEffects().clearIndex().build();
        if (!a.equals(b)) {
            return "the recording answered " + Describe.answer(a) + "; the model answered " + Describe.answer(b);
        }
        return null;
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /** The byte ranges the recording has for one operation (plus the model's writes so far). */
    private static final class Known {
        private final TreeMap<Long, Long> ranges = new TreeMap<>(Long::compareUnsigned); // start -> end (exclusive)
        private final List<String> reads = new ArrayList<>();

        void add(MemoryBytes m, boolean read) {
            long start = m.getAddress();
            long end = start + m.getData().size();
            if (!read) {
                // not a read of the recording: not listed
            } else if (reads.size() < 8) {
                reads.add(m.getData().size() + " bytes at " + hex(start));
            } else if (reads.size() == 8) {
                reads.add("...");
            }
            Map.Entry<Long, Long> before = ranges.floorEntry(start);
            if (before != null && Long.compareUnsigned(before.getValue(), start) >= 0) {
                start = before.getKey();
                end = Long.compareUnsigned(before.getValue(), end) > 0 ? before.getValue() : end;
                ranges.remove(before.getKey());
            }
            Map.Entry<Long, Long> next = ranges.ceilingEntry(start);
            while (next != null && Long.compareUnsigned(next.getKey(), end) <= 0) {
                end = Long.compareUnsigned(next.getValue(), end) > 0 ? next.getValue() : end;
                ranges.remove(next.getKey());
                next = ranges.ceilingEntry(start);
            }
            ranges.put(start, end);
        }

        /** The first missing byte range of {@code m}, as words, or null if all are known. */
        String missing(MemoryBytes m) {
            long a = m.getAddress();
            long end = a + m.getData().size();
            while (Long.compareUnsigned(a, end) < 0) {
                Map.Entry<Long, Long> r = ranges.floorEntry(a);
                if (r == null || Long.compareUnsigned(r.getValue(), a) <= 0) {
                    Map.Entry<Long, Long> next = ranges.higherEntry(a);
                    long stop = next == null || Long.compareUnsigned(next.getKey(), end) > 0 ? end : next.getKey();
                    return "[" + hex(a) + ", " + hex(stop) + ")";
                }
                a = r.getValue();
            }
            return null;
        }

        String describe() {
            return reads.isEmpty() ? "none" : String.join(", ", reads);
        }
    }
}
