package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import java.util.ArrayList;
import java.util.List;

/** A DmaHost that records what a model asks of the world (for tests in this and other modules). */
public final class RecordingHost implements DmaHost {
    public final List<String> irqs = new ArrayList<>();
    public final List<IotlbInvalidation> invalidations = new ArrayList<>();

    @Override
    public void raiseIrq(String line) {
        irqs.add(line);
    }

    @Override
    public void msi(long address, int data) {
        irqs.add("msi:" + Long.toHexString(address) + "=" + data);
    }

    @Override
    public void invalidate(IotlbInvalidation inv) {
        invalidations.add(inv);
    }

    public void clear() {
        irqs.clear();
        invalidations.clear();
    }

    public long irqCount(String line) {
        return irqs.stream().filter(line::equals).count();
    }
}
