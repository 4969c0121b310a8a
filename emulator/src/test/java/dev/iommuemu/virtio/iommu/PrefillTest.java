package dev.iommuemu.virtio.iommu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A MAP offers the VMM its translations at once (DmaHost#prefill, docs/protocol.md §4.8): for each
 * endpoint of the domain, aligned blocks covering the mapping (at most DomainTable.PREFILL_MAX),
 * each one what a DMA's translation answers ("MAP request": the mapping is in effect once the
 * request completes).
 */
class PrefillTest {
    private static final int RW = Structs.Map.F_READ | Structs.Map.F_WRITE;
    /** Perm bits of READ | WRITE (virtio-iommu: no execute permission of its own, a fetch is a read). */
    private static final int PERM_RW = 0x3f;
    private static final int PERM_R = 0x2d;

    @Test
    void aMapOffersItsBlocksForEveryEndpointOfTheDomain() {
        VirtioIommuWorkload w = new VirtioIommuWorkload(3);
        w.attach(1, 2, 0);
        w.host.clear();
        // 5 pages at 1 MiB to 2 MiB: a 16 KiB block, then a 4 KiB one (both sides aligned alike)
        w.map(1, 0x10_0000L, 0x10_4fffL, 0x20_0000L, RW);
        assertEquals(List.of(
                String.format("2 100000->200000 3fff %x", PERM_RW),
                String.format("2 104000->204000 fff %x", PERM_RW)), w.host.prefills);
        agreeWithTranslate(w);

        w.attach(1, 4, 0);
        w.host.clear();
        // 1 GiB, aligned on both sides: one entry per endpoint, read-only
        w.map(1, 0x4000_0000L, 0x7fff_ffffL, 0x8000_0000L, Structs.Map.F_READ);
        assertEquals(List.of(
                String.format("2 40000000->80000000 3fffffff %x", PERM_R),
                String.format("4 40000000->80000000 3fffffff %x", PERM_R)), w.host.prefills);
        agreeWithTranslate(w);

        // 200 pages whose output is only 4 KiB-aligned relative to the input: pages, at most 64 each
        w.host.clear();
        w.map(1, 0x100_0000L, 0x100_0000L + 200 * 4096L - 1, 0x300_1000L, RW);
        assertEquals(2 * DomainTable.PREFILL_MAX, w.host.prefills.size());
        assertEquals(String.format("2 1000000->3001000 fff %x", PERM_RW), w.host.prefills.get(0));
        assertEquals(String.format("2 103f000->3040000 fff %x", PERM_RW), w.host.prefills.get(DomainTable.PREFILL_MAX - 1));
        agreeWithTranslate(w);

        // a refused MAP (overlapping an existing mapping) offers nothing
        w.host.clear();
        w.map(1, 0x10_0000L, 0x10_0fffL, 0x90_0000L, RW);
        assertEquals(List.of(), w.host.prefills);
    }

    /** Every offered entry translates its first and last address as a DMA's translation does. */
    private static void agreeWithTranslate(VirtioIommuWorkload w) {
        for (String p : w.host.prefills) {
            String[] f = p.split("[ >-]+");
            int ep = Integer.parseInt(f[0]);
            long iova = Long.parseUnsignedLong(f[1], 16);
            long out = Long.parseUnsignedLong(f[2], 16);
            long mask = Long.parseUnsignedLong(f[3], 16);
            for (long a : new long[] {iova, iova | mask}) {
                DmaResult r = w.device().translate(ep, -1, a, new DmaAccess(false, false, false));
                assertTrue(r instanceof DmaResult.Translated, p + " at " + Long.toHexString(a) + ": " + r);
                assertEquals(out + (a - iova), ((DmaResult.Translated) r).entry().translate(a), p + " at " + Long.toHexString(a));
            }
        }
    }
}
