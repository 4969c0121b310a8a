package dev.iommuemu.virtqueue;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Layout;

/**
 * The split-virtqueue descriptor, {@code struct virtq_desc} (virtio 1.2 §2.7.5): le64 addr,
 * le32 len, le16 flags, le16 next; 16 bytes, as two little-endian 64-bit words.
 */
public final class VirtqDesc {
    public static final int SIZE = 16;

    public static final Field ADDR = Field.bits("addr", 63, 0);
    public static final Field LEN = Field.bits("len", 95, 64);
    public static final Field FLAGS = Field.bits("flags", 111, 96);
    public static final Field NEXT = Field.bits("next", 127, 112);
    public static final Layout LAYOUT = new Layout("virtq_desc", 2, ADDR, LEN, FLAGS, NEXT);

    /** VIRTQ_DESC_F_NEXT: the buffer continues via {@code next} (§2.7.5). */
    public static final int F_NEXT = 1;
    /** VIRTQ_DESC_F_WRITE: device write-only, otherwise device read-only (§2.7.5). */
    public static final int F_WRITE = 2;
    /** VIRTQ_DESC_F_INDIRECT: the buffer holds a table of descriptors (§2.7.5.3). */
    public static final int F_INDIRECT = 4;

    private VirtqDesc() {}
}
