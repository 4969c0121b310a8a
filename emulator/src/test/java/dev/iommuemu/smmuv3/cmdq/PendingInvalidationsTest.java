package dev.iommuemu.smmuv3.cmdq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The VMM invalidations a batch of commands calls for are sent at CMD_SYNC, merged (IHI 0070 §4.7.3). */
class PendingInvalidationsTest {
    private final List<IotlbInvalidation> sent = new ArrayList<>();
    private final DmaHost host = new DmaHost() {
        @Override
        public void raiseIrq(String line) {}

        @Override
        public void msi(long address, int data) {}

        @Override
        public void invalidate(IotlbInvalidation inv) {
            sent.add(inv);
        }
    };

    @Test
    void adjacentPagesOfOneEndpointMergeIntoOneRange() {
        PendingInvalidations p = new PendingInvalidations(host);
        for (int i = 0; i < 512; i++) {
            p.add(new IotlbInvalidation(IotlbInvalidation.ALL_ENDPOINTS, 0x4020_0000L + i * 4096L, 4096));
        }
        assertTrue(sent.isEmpty(), "nothing is sent before the flush");
        p.flush();
        assertEquals(List.of(new IotlbInvalidation(IotlbInvalidation.ALL_ENDPOINTS, 0x4020_0000L, 0x20_0000L)), sent);
        p.flush();
        assertEquals(1, sent.size(), "a second flush sends nothing");
    }

    @Test
    void distinctRangesKeepTheirOrderAndDuplicatesCollapse() {
        PendingInvalidations p = new PendingInvalidations(host);
        IotlbInvalidation a = new IotlbInvalidation(3, 0x1000, 0x1000);
        IotlbInvalidation b = new IotlbInvalidation(4, 0x9000, 0x1000);
        p.add(a);
        p.add(a);
        p.add(b);
        p.add(new IotlbInvalidation(4, 0, -1L));
        p.add(new IotlbInvalidation(4, 0x5000, 0x1000)); // inside the endpoint-wide one just before it
        p.flush();
        assertEquals(List.of(a, b, new IotlbInvalidation(4, 0, -1L)), sent);
    }

    @Test
    void everythingAbsorbsTheRestAndTooManyRangesBecomeEverything() {
        PendingInvalidations p = new PendingInvalidations(host);
        p.add(new IotlbInvalidation(1, 0x1000, 0x1000));
        p.add(IotlbInvalidation.all());
        p.add(new IotlbInvalidation(2, 0x1000, 0x1000));
        p.flush();
        assertEquals(List.of(IotlbInvalidation.all()), sent);
        sent.clear();
        for (int i = 0; i <= PendingInvalidations.LIMIT; i++) {
            p.add(new IotlbInvalidation(i, 0x1000, 0x1000));
        }
        p.flush();
        assertEquals(List.of(IotlbInvalidation.all()), sent);
    }
}
