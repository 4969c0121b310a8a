package dev.iommuemu.guest.smmuv3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.smmuv3.PageTables;
import dev.iommuemu.smmuv3.Recorders;
import dev.iommuemu.smmuv3.Smmuv3;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What QEMU's arm-smmuv3 does not do, driven by the guest driver on the {@code max} profile:
 * PASIDs through a CD table, an I/O page fault resolved by stall + CMD_RESUME, and a PRI page
 * request answered with CMD_PRI_RESP.
 */
class Smmuv3BeyondQemuTest {
    static final long STRTAB = 0x10_0000, CMDQ = 0x20_0000, EVTQ = 0x30_0000, PRIQ = 0x38_0000;
    static final long CDS = 0x40_0000, TABLES = 0x100_0000;

    final SparseGuestMemory mem = new SparseGuestMemory(0, 1L << 32);
    final Recorders.Endpoints endpoints = new Recorders.Endpoints();
    final Smmuv3 smmu = new Smmuv3(mem, DmaHost.NONE, Smmuv3Profile.MAX, endpoints, Smmuv3.Options.DEFAULT);
    final PageTables pt = new PageTables(mem, TABLES);
    final Smmuv3Driver drv = new Smmuv3Driver(new Mmio() {
        @Override
        public long read(long offset, int size) {
            return smmu.mmioRead(offset, size);
        }

        @Override
        public void write(long offset, int size, long value) {
            smmu.mmioWrite(offset, size, value);
        }
    }, mem, STRTAB, 5, CMDQ, 8, EVTQ, 6, PRIQ);

    private void writeCd(int index, long[] cd) {
        for (int i = 0; i < 8; i++) {
            mem.put64(CDS + index * 64L + 8L * i, cd[i]);
        }
    }

    private long translate(int sid, int ssid, long va) {
        return assertInstanceOf(DmaResult.Translated.class, smmu.translate(sid, ssid, va, DmaAccess.READ)).entry()
                .translate(va);
    }

    @Test
    void pasidsStallAndPageRequests() {
        drv.probe(true);
        // Two address spaces behind one StreamID: PASID 1 and PASID 2 (CD table of 4, S1DSS 0b10).
        long as1 = pt.s1Root();
        long as2 = pt.s1Root();
        pt.map(as1, 0x7000_0000L, 0x1111_0000L, PageTables.S1_RW);
        pt.map(as2, 0x7000_0000L, 0x2222_0000L, PageTables.S1_RW);
        long[] cd1 = Smmuv3Driver.cd(as1, 1, 16, 5);
        long[] cd2 = Smmuv3Driver.cd(as2, 2, 16, 5);
        cd2[0] |= 1L << 44; // CD.S: stall on fault
        writeCd(1, cd1);
        writeCd(2, cd2);
        drv.writeSte(4, Smmuv3Driver.steS1(CDS, 2, 0b10));
        assertEquals(0x1111_0000L, translate(4, 1, 0x7000_0000L));
        assertEquals(0x2222_0000L, translate(4, 2, 0x7000_0000L));

        // PASID 2 faults on an unmapped page: the transaction stalls, the record has Stall and STAG.
        DmaResult.Stalled st = assertInstanceOf(DmaResult.Stalled.class,
                smmu.translate(4, 2, 0x7000_5000L, DmaAccess.WRITE));
        List<long[]> ev = drv.drainEvents();
        assertEquals(1, ev.size());
        assertEquals(0x10 | (1L << 11) | (2L << 12) | (4L << 32), ev.get(0)[0]); // F_TRANSLATION, SSV, PASID 2
        assertEquals(st.stag(), (int) (ev.get(0)[1] & 0xffff)); // STAG
        assertTrue((ev.get(0)[1] & (1L << 31)) != 0); // Stall
        // The guest maps the page (a new leaf: no TLBI needed for a previously invalid entry) and resumes.
        pt.map(as2, 0x7000_5000L, 0x2222_5000L, PageTables.S1_RW);
        drv.resume(4, st.stag(), true);
        assertEquals("stall sid=4 stag=" + st.stag() + " retry=true", endpoints.calls.get(0));
        assertEquals(0x2222_5008L, translate(4, 2, 0x7000_5008L)); // the retried access now translates

        // A PRI page request from the endpoint reaches the PRI queue; the guest answers it.
        assertTrue(smmu.pageRequest(new PageRequest(4, 1, 0x7000_9000L, 0x17, true, true, true, false, false)));
        List<long[]> pri = drv.drainPri();
        assertEquals(1, pri.size());
        assertEquals(4 | (1L << 32) | (1L << 60) | (1L << 61) | (1L << 62) | (1L << 63), pri.get(0)[0]);
        assertEquals(0x17 | 0x7000_9000L, pri.get(0)[1]);
        drv.priResponse(4, 1, 0x17, 0b10); // Success
        assertEquals("pri sid=4 ssid=1 prg=23 resp=0", endpoints.calls.get(1));
        assertEquals(0, drv.activeErrors());
    }
}
