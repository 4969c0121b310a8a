package dev.iommuemu.guest.socket;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.guest.smmuv3.Mmio;
import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * The SMMU's MMIO window through the socket: IOMMU_MMIO_READ, and IOMMU_MMIO_WRITE sent with
 * NEED_REPLY so that a write returns once its side effects (commands, invalidations and their
 * acknowledgements, interrupts) are complete (docs/protocol.md §4.2), as a store to device memory
 * followed by a barrier is on hardware.
 */
public final class SocketMmio implements Mmio {
    private final VmmClient vmm;

    public SocketMmio(VmmClient vmm) {
        this.vmm = vmm;
    }

    @Override
    public long read(long offset, int size) {
        try {
            return vmm.mmioRead(offset, size);
        } catch (IOException e) {
            throw new UncheckedIOException("MMIO read 0x" + Long.toHexString(offset), e);
        }
    }

    @Override
    public void write(long offset, int size, long value) {
        try {
            vmm.mmioWrite(offset, size, value);
        } catch (IOException e) {
            throw new UncheckedIOException("MMIO write 0x" + Long.toHexString(offset), e);
        }
    }
}
