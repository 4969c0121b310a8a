package dev.iommuemu.guest.smmuv3;

/**
 * The guest's view of the SMMU's MMIO window: loads and stores of 4 or 8 bytes. Tests bind it to
 * the model directly; the daemon tests bind it to the socket.
 */
public interface Mmio {
    long read(long offset, int size);

    void write(long offset, int size, long value);

    default long read32(long offset) {
        return read(offset, 4) & 0xffff_ffffL;
    }

    default void write32(long offset, long value) {
        write(offset, 4, value & 0xffff_ffffL);
    }

    default long read64(long offset) {
        return read(offset, 8);
    }

    default void write64(long offset, long value) {
        write(offset, 8, value);
    }
}
