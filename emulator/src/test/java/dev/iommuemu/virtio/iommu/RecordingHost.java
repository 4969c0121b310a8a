package dev.iommuemu.virtio.iommu;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import java.util.ArrayList;
import java.util.List;

/** A DmaHost that records what a model asks of the world (for tests in this and other modules). */
public final class RecordingHost implements DmaHost {
    public final List<String> irqs = new ArrayList<>();
    public final List<IotlbInvalidation> invalidations = new ArrayList<>();
    /** DmaHost#prefill calls, as "endpoint iova->output mask perm" in hex. */
    public final List<String> prefills = new ArrayList<>();

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

    @Override
    public void prefill(int endpoint, dev.iommuemu.dma.IotlbEntry e) {
        prefills.add(String.format("%d %x->%x %x %x", endpoint, e.iova(), e.translatedAddr(), e.addrMask(), e.perm()));
    }

    public void clear() {
        irqs.clear();
        invalidations.clear();
        prefills.clear();
    }

    public long irqCount(String line) {
        return irqs.stream().filter(line::equals).count();
    }
}
