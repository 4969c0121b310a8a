package dev.iommuemu.bridge.device;

/**
 * A VMM device property the daemon cannot honour (IOMMU_SET_PROPERTIES, docs/protocol.md §4.7):
 * the positive Linux errno, QEMU's name of the property refused ({@code null} when none in
 * particular) and a sentence the front-end prints at VMM start.
 */
public final class PropertyRefusedException extends IllegalArgumentException {
    private final int errno;
    private final String property;

    public PropertyRefusedException(int errno, String property, String sentence) {
        super(sentence);
        this.errno = errno;
        this.property = property;
    }

    public int errno() {
        return errno;
    }

    /** QEMU's property name ("stage", "granule", ...), or null. */
    public String property() {
        return property;
    }
}
