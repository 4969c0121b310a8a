package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import java.util.function.Supplier;

/**
 * A host with a restart journal (docs/protocol.md §4.10): each {@link DmaHost#checkpoint()} saves
 * the device's state through {@link #save} into {@link #journal}; with {@link #kill} set it dies
 * right after, as a SIGKILLed daemon would (nothing after the checkpoint happens). Interrupts,
 * MSIs and invalidations go to {@link #rec}. Shared by the model's and the bridge's restart tests.
 *
 * @param <S> what a save produces (a model state, or the bridge's blob)
 */
public final class JournalHost<S> implements DmaHost {
    /** SIGKILL at the checkpoint. */
    public static final class Killed extends RuntimeException {
        Killed() {
            super("killed at the checkpoint", null, false, false);
        }
    }

    public final RecordingHost rec = new RecordingHost();
    /** The device's save; set once the device exists. */
    public Supplier<S> save;
    public S journal;
    public int checkpoints;
    public boolean kill;

    @Override
    public void checkpoint() {
        journal = save.get();
        checkpoints++;
        if (kill) {
            throw new Killed();
        }
    }

    @Override
    public void raiseIrq(String line) {
        rec.raiseIrq(line);
    }

    @Override
    public void msi(long address, int data) {
        rec.msi(address, data);
    }

    @Override
    public void invalidate(IotlbInvalidation inv) {
        rec.invalidate(inv);
    }
}
