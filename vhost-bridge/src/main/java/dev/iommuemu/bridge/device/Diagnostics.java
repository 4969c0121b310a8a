package dev.iommuemu.bridge.device;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.smmuv3.inspect.WalkExplanation;
import java.util.List;

/**
 * What tools may ask a model about its guest-programmed state ("why did this IOVA fault"). STE and
 * CD decodes are read from guest memory at the time of the call, through the declared
 * {@link dev.iommuemu.field.Layout}s; a walk is explained as the device would handle the access
 * now (its configuration cache and TLB included, and said so). Nothing here changes what the guest
 * or a later access can observe.
 */
public interface Diagnostics {

    /** One decoded structure: its name, raw 64-bit words and its declared fields in order. */
    record Decoded(String name, long address, long[] words, List<FieldValue> fields, String error) {}

    /** A field's name, its position as the spec prints it (e.g. "[3:1]") and value. */
    record FieldValue(String name, String bits, long value) {}

    /** The stream table entry of {@code streamId} (SMMUv3 IHI 0070 §5.2). */
    Decoded ste(int streamId);

    /** The context descriptor of {@code streamId}/{@code substreamId} (IHI 0070 §5.4). */
    Decoded cd(int streamId, int substreamId);

    /**
     * The access explained as the model would handle it now (the state that decided, the table
     * walk step by step, the result and the event record it would write), with nothing changed
     * that the guest can observe; {@code null} when the model has no table walk to explain.
     */
    default WalkExplanation walk(int streamId, int substreamId, long iova, DmaAccess access) {
        return null;
    }

    /**
     * The model's declared MMIO registers (SMMUv3 pages 0 and 1, IHI 0070 §6.2), for register dumps;
     * the daemon reads each with {@link BridgedDevice#mmioRead} and decodes it with its layout.
     */
    default List<dev.iommuemu.field.Register> registers() {
        return List.of();
    }

    /** The nesting info the model reports (an empty list or an error where there is no stage 2). */
    default List<FieldValue> nestingInfo() {
        return List.of();
    }
}
