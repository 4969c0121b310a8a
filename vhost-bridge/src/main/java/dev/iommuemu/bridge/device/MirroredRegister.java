package dev.iommuemu.bridge.device;

/**
 * A register the VMM may read from the shared register mirror (docs/protocol.md §4.8) instead of
 * asking the daemon: {@code size} bytes (4 or 8) at {@code offset} of the register space. Only
 * registers whose reads have no side effects qualify.
 */
public record MirroredRegister(long offset, int size) {
    public MirroredRegister {
        if (size != 4 && size != 8 || (offset & (size - 1)) != 0 || offset < 0) {
            throw new IllegalArgumentException(String.format("mirrored register of %d bytes at 0x%x", size, offset));
        }
    }
}
