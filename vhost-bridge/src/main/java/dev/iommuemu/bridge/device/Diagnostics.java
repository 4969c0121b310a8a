package dev.iommuemu.bridge.device;

import dev.iommuemu.dma.DmaAccess;
import java.util.List;

/**
 * What tools may ask a model about its guest-programmed state ("why did this IOVA fault"). All
 * results are decoded from guest memory at the time of the call, through the declared
 * {@link dev.iommuemu.field.Layout}s, never from cached state the guest cannot see.
 */
public interface Diagnostics {

    /** One decoded structure: its name, raw 64-bit words and its declared fields in order. */
    record Decoded(String name, long address, long[] words, List<FieldValue> fields, String error) {}

    /** A field's name, its position as the spec prints it (e.g. "[3:1]") and value. */
    record FieldValue(String name, String bits, long value) {}

    /**
     * One step of an explained translation: the stage and level, the table address read, the
     * descriptor found, and what the step decided (e.g. "table -> 0x81000", "block, out 0x4020_0000",
     * "F_TRANSLATION: invalid descriptor").
     */
    record WalkStep(int stage, int level, long tableAddress, long descriptorAddress, long descriptor, String outcome) {}

    /** The stream table entry of {@code streamId} (SMMUv3 IHI 0070 §5.2). */
    Decoded ste(int streamId);

    /** The context descriptor of {@code streamId}/{@code substreamId} (IHI 0070 §5.4). */
    Decoded cd(int streamId, int substreamId);

    /** The table walk of {@code iova}, step by step, ending in the output address or the fault. */
    List<WalkStep> walk(int streamId, int substreamId, long iova, DmaAccess access);

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
