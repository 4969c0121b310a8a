package dev.iommuemu.bridge.recording;

import com.google.protobuf.ByteString;
import dev.iommuemu.memory.RecordingGuestMemory;
import dev.iommuemu.proto.v1.Effect;
import dev.iommuemu.proto.v1.MemoryBytes;
import dev.iommuemu.proto.v1.MemoryRange;
import dev.iommuemu.proto.v1.RecordedOperation;

/**
 * Gathers one model operation at a time (docs/recording.md): {@link RecordingDevice} opens it with
 * its call, {@link RecordingGuestMemory} and {@link RecordingHost} add what the model did during it,
 * and the finished operation goes to the {@link Sink}. Without a sink nothing is gathered. Accesses
 * outside an operation (diagnostics, which change nothing) are not part of any and are dropped.
 *
 * <p>Called only with the model serialized (the daemon's session lock; a replay's single thread),
 * which makes the order of operations and of their effects the model's own order.
 */
public final class OperationRecorder implements RecordingGuestMemory.Tap {

    /** Where finished operations go. */
    public interface Sink {
        /** Called before the first operation's call runs; may open a file, write a header. */
        default void beginOperation() {}

        /** A finished operation (its index is the sink's business). */
        void operation(RecordedOperation.Builder op);
    }

    private volatile Sink sink;
    private RecordedOperation.Builder current;

    /** Starts (or with {@code null}, stops) gathering operations for {@code s}. */
    public void sink(Sink s) {
        sink = s;
    }

    public Sink sink() {
        return sink;
    }

    /** Whether operations are being gathered. */
    public boolean active() {
        return sink != null;
    }

    /** Opens an operation; null when not recording (or when one is already open). */
    RecordedOperation.Builder begin() {
        Sink s = sink;
        if (s == null || current != null) {
            return null;
        }
        s.beginOperation();
        current = RecordedOperation.newBuilder();
        return current;
    }

    /** Closes the operation {@link #begin} returned and hands it to the sink. */
    void end(RecordedOperation.Builder op) {
        if (op == null || op != current) {
            return;
        }
        current = null;
        Sink s = sink;
        if (s != null) {
            s.operation(op);
        }
    }

    /** An operation with no call behind it (a layout change, a rebuilt model), if recording. */
    public void standalone(java.util.function.Consumer<RecordedOperation.Builder> fill) {
        RecordedOperation.Builder op = begin();
        if (op != null) {
            fill.accept(op);
            end(op);
        }
    }

    /** Adds an effect to the open operation, merging a read (write) that continues the previous one. */
    void effect(Effect e) {
        RecordedOperation.Builder op = current;
        if (op == null) {
            return;
        }
        int n = op.getEffectsCount();
        if (n > 0) {
            Effect last = op.getEffects(n - 1);
            if (e.hasRead() && last.hasRead() && continues(last.getRead(), e.getRead())) {
                op.setEffects(n - 1, Effect.newBuilder().setRead(merge(last.getRead(), e.getRead())));
                return;
            }
            if (e.hasWrite() && last.hasWrite() && continues(last.getWrite(), e.getWrite())) {
                op.setEffects(n - 1, Effect.newBuilder().setWrite(merge(last.getWrite(), e.getWrite())));
                return;
            }
        }
        op.addEffects(e);
    }

    private static boolean continues(MemoryBytes a, MemoryBytes b) {
        return a.getAddress() + a.getData().size() == b.getAddress();
    }

    private static MemoryBytes merge(MemoryBytes a, MemoryBytes b) {
        return MemoryBytes.newBuilder().setAddress(a.getAddress()).setData(a.getData().concat(b.getData())).build();
    }

    @Override
    public void read(long addr, byte[] data) {
        if (current != null) {
            effect(Effect.newBuilder().setRead(MemoryBytes.newBuilder().setAddress(addr).setData(ByteString.copyFrom(data))).build());
        }
    }

    @Override
    public void write(long addr, byte[] data) {
        if (current != null) {
            effect(Effect.newBuilder().setWrite(MemoryBytes.newBuilder().setAddress(addr).setData(ByteString.copyFrom(data))).build());
        }
    }

    @Override
    public void abort(long addr, int len) {
        if (current != null) {
            effect(Effect.newBuilder().setAbort(MemoryRange.newBuilder().setAddress(addr).setLength(len)).build());
        }
    }
}
