package dev.iommuemu.bridge.session;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The translated_pages counter's page count of one entry (DeviceSession#pages). */
class TranslatedPagesTest {
    @Test
    void entriesCountTheir4KiBPagesUpTo1GiB() {
        assertEquals(1, DeviceSession.pages(0xfff)); // a page
        assertEquals(1, DeviceSession.pages(0x7f)); // a sub-page entry
        assertEquals(512, DeviceSession.pages(0x1f_ffff)); // a 2 MiB block
        assertEquals(262_144, DeviceSession.pages((1L << 30) - 1)); // 1 GiB
        assertEquals(262_144, DeviceSession.pages((1L << 39) - 1)); // 512 GiB: counted up to 1 GiB
        // virtio-iommu identity (bypass) mappings answer with an all-ones mask: 1 GiB, not 2^52 pages
        assertEquals(262_144, DeviceSession.pages(-1L));
        assertEquals(262_144, DeviceSession.pages(Long.MIN_VALUE | 0xfff));
    }
}
