package dev.iommuemu.guest.smmuv3;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.smmuv3.PageTables;
import dev.iommuemu.smmuv3.Smmuv3;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The spec-written guest driver against the model: the Linux probe sequence, STEs of every
 * Config, mappings, translations, and event records compared byte for byte. The vectors are the
 * ones QEMU's qtest iommu-smmuv3-test uses (STE Config 5/6/7, S2T0SZ 0x14, S2SL0 2, S2PS 5; CD
 * ASID 0x1e20, IPS 4, T0SZ 0x10; CR1 0x0d75; STRTAB_BASE_CFG LOG2SIZE 5; CR0 0xd).
 */
class Smmuv3GuestTest {
    static final long STRTAB = 0x10_0000, CMDQ = 0x20_0000, EVTQ = 0x30_0000, PRIQ = 0x38_0000;
    static final long CDS = 0x40_0000, TABLES = 0x100_0000;

    final SparseGuestMemory mem = new SparseGuestMemory(0, 1L << 32);
    Smmuv3 smmu;
    Smmuv3Driver drv;
    PageTables pt;

    Smmuv3Driver boot(Smmuv3Profile p) {
        smmu = new Smmuv3(mem, DmaHost.NONE, p);
        Mmio mmio = new Mmio() {
            @Override
            public long read(long offset, int size) {
                return smmu.mmioRead(offset, size);
            }

            @Override
            public void write(long offset, int size, long value) {
                smmu.mmioWrite(offset, size, value);
            }
        };
        drv = new Smmuv3Driver(mmio, mem, STRTAB, 5, CMDQ, 8, EVTQ, 6, PRIQ);
        drv.probe(true);
        pt = new PageTables(mem, TABLES);
        return drv;
    }

    /** The 32 bytes of an event record as the guest reads them from the queue. */
    static byte[] bytes(long[] words) {
        byte[] b = new byte[32];
        for (int i = 0; i < 32; i++) {
            b[i] = (byte) (words[i / 8] >>> (8 * (i % 8)));
        }
        return b;
    }

    static byte[] le(long... words) {
        return bytes(words);
    }

    @Test
    void probeSequenceLeavesTheSmmuEnabledAndQuiet() {
        boot(Smmuv3Profile.DEFAULT);
        assertEquals(0xd, drv.mmio.read32(Smmuv3Driver.CR0ACK)); // SMMUEN | EVENTQEN | CMDQEN
        assertEquals(0x0d75, drv.mmio.read32(Smmuv3Driver.CR1));
        assertEquals(5, drv.mmio.read32(Smmuv3Driver.STRTAB_BASE_CFG));
        assertEquals(0x100000, drv.mmio.read32(Smmuv3Driver.GBPA)); // ABORT, Update completed
        assertEquals(0, drv.activeErrors());
        assertEquals(drv.cmdProd(), drv.mmio.read32(Smmuv3Driver.CMDQ_CONS));
        assertEquals(16, drv.sidBits);
        assertTrue(drv.twoLevelStrtab);
        assertEquals(0, drv.drainEvents().size());
        assertEquals(4, smmu.stats().commands()); // CFGI_ALL, SYNC, TLBI_NSNH_ALL, SYNC (no Hyp: no EL2_ALL)
    }

    @Test
    void abortAndBypassStes() {
        boot(Smmuv3Profile.DEFAULT);
        drv.writeSte(1, Smmuv3Driver.steAbort());
        assertInstanceOf(DmaResult.Aborted.class, smmu.translate(1, -1, 0x1000, DmaAccess.READ));
        drv.writeSte(2, Smmuv3Driver.steBypass());
        assertEquals(0xdead_b000L, assertInstanceOf(DmaResult.Translated.class,
                smmu.translate(2, -1, 0xdead_b000L, DmaAccess.WRITE)).entry().translate(0xdead_b000L));
        assertEquals(0, drv.drainEvents().size());
        // StreamID 0 has the all-zero STE the probe wrote: C_BAD_STE, byte for byte.
        smmu.translate(0, -1, 0x1000, DmaAccess.READ);
        assertArrayEquals(le(0x04, 0, 0, 0), bytes(drv.drainEvents().get(0)));
        // StreamID 32 is beyond STRTAB_BASE_CFG.LOG2SIZE 5: C_BAD_STREAMID.
        smmu.translate(32, -1, 0x1000, DmaAccess.READ);
        assertArrayEquals(le(0x02 | (32L << 32), 0, 0, 0), bytes(drv.drainEvents().get(0)));
    }

    /** QEMU qtest's stage 1 vector: CD ASID 0x1e20, IPS 4 (44 bits), T0SZ 0x10, 4-level 4KB tables. */
    @Test
    void stage1MapTranslateUnmap() {
        boot(Smmuv3Profile.S1_ONLY);
        long root = pt.s1Root();
        long va = 0x8080_8000L;
        pt.map(root, va, 0x5000_0000L, PageTables.S1_RW);
        mem.put64(CDS, 0);
        long[] cd = Smmuv3Driver.cd(root, 0x1e20, 0x10, 4);
        for (int i = 0; i < 8; i++) {
            mem.put64(CDS + 8L * i, cd[i]);
        }
        drv.writeSte(5, Smmuv3Driver.steS1(CDS, 0, 0));
        assertEquals(0x5000_0abcL, assertInstanceOf(DmaResult.Translated.class,
                smmu.translate(5, -1, va + 0xabc, DmaAccess.READ)).entry().translate(va + 0xabc));
        // Unmap as Linux does: clear the PTE, TLBI_NH_VA + SYNC.
        mem.put64(pt.leaf(root, va, 3), 0);
        drv.tlbiVa(0x1e20, va);
        assertInstanceOf(DmaResult.Aborted.class, smmu.translate(5, -1, va + 0x10, DmaAccess.WRITE));
        // F_TRANSLATION: type 0x10, StreamID 5; RnW 0 (write); CLASS IN (bits 105:104); InputAddr.
        byte[] expect = le(0x10 | (5L << 32), 2L << 40, va + 0x10, 0);
        assertArrayEquals(expect, bytes(drv.drainEvents().get(0)));
    }

    /** QEMU qtest's stage 2 vector: Config 6, S2T0SZ 0x14 (44-bit IPA), S2SL0 2 (level 0), S2PS 5. */
    @Test
    void stage2MapTranslateAndFault() {
        boot(Smmuv3Profile.S2_ONLY);
        long s2root = pt.s2Root(0x14, 0);
        pt.map(s2root, 0x8080_8000L, 0x6000_0000L, PageTables.S2_RW);
        drv.writeSte(6, Smmuv3Driver.steS2(s2root, 1, 0x14, 2, 5));
        assertEquals(0x6000_0008L, assertInstanceOf(DmaResult.Translated.class,
                smmu.translate(6, -1, 0x8080_8008L, DmaAccess.READ)).entry().translate(0x8080_8008L));
        smmu.translate(6, -1, 0x9000_0000L, DmaAccess.READ);
        // Stage 2 F_TRANSLATION: RnW 1, S2 1, CLASS IN, InputAddr, IPA[55:12] in the last doubleword.
        byte[] expect = le(0x10 | (6L << 32), (1L << 35) | (1L << 39) | (2L << 40), 0x9000_0000L, 0x9000_0000L);
        assertArrayEquals(expect, bytes(drv.drainEvents().get(0)));
        // S2T0SZ inconsistent with S2SL0 (level 0 cannot resolve 44 - 39 bits... use T0SZ 33 with SL0 2).
        drv.writeSte(7, Smmuv3Driver.steS2(s2root, 1, 33, 2, 5));
        smmu.translate(7, -1, 0x1000, DmaAccess.READ);
        assertArrayEquals(le(0x04 | (7L << 32), 0, 0, 0), bytes(drv.drainEvents().get(0)));
    }

    /** QEMU qtest's nested vector: Config 7 with the CD and stage 1 tables in IPA space. */
    @Test
    void nestedMapTranslate() {
        boot(Smmuv3Profile.DEFAULT);
        // Stage 2: IPA [0x4000_0000, +8MB) -> PA [0x8000_0000, +8MB) in 2MB blocks, level-0 start.
        long s2root = pt.s2Root(0x14, 0);
        for (long off = 0; off < 0x80_0000L; off += 0x20_0000L) {
            pt.map(s2root, 0x4000_0000L + off, 0x8000_0000L + off, PageTables.S2_RW, 2);
        }
        long delta = 0x4000_0000L; // PA - IPA
        // Stage 1 tables built by the guest in its IPA space (PA = IPA + delta).
        PageTables guestPt = new PageTables(mem, 0x8010_0000L);
        long va = 0x0000_0012_3456_7000L;
        long[] tbl = {guestPt.newTable(), guestPt.newTable(), guestPt.newTable(), guestPt.newTable()};
        for (int lvl = 0; lvl < 3; lvl++) {
            long idx = (va >>> (39 - 9 * lvl)) & 511;
            mem.put64(tbl[lvl] + idx * 8, (tbl[lvl + 1] - delta) | 3);
        }
        mem.put64(tbl[3] + ((va >>> 12) & 511) * 8, (0x4060_0000L) | PageTables.S1_RW | 3);
        long cdIpa = 0x4000_1000L;
        long[] cd = Smmuv3Driver.cd(tbl[0] - delta, 0x1e20, 0x10, 4);
        for (int i = 0; i < 8; i++) {
            mem.put64(cdIpa + delta + 8L * i, cd[i]);
        }
        drv.writeSte(9, Smmuv3Driver.steNested(cdIpa, s2root, 3, 0x14, 2, 5));
        assertEquals(0x8060_0123L, assertInstanceOf(DmaResult.Translated.class,
                smmu.translate(9, -1, va + 0x123, DmaAccess.READ)).entry().translate(va + 0x123));
        assertEquals(0, drv.drainEvents().size());
        // A stage 1 table pointer to an IPA stage 2 leaves unmapped: stage 2 fault, CLASS TT.
        mem.put64(tbl[2] + ((va >>> 21) & 511) * 8, 0x7000_0000L | 3);
        drv.tlbiVa(0x1e20, va);
        drv.cmd(Smmuv3Driver.CMD_TLBI_S12_VMALL, 3L << 32, 0);
        drv.sync();
        smmu.translate(9, -1, va, DmaAccess.READ);
        long[] ev = drv.drainEvents().get(0);
        assertEquals(0x10 | (9L << 32), ev[0]);
        assertEquals((1L << 35) | (1L << 39) | (1L << 40) | (1L << 44), ev[1]); // RnW, S2, CLASS TT, TTRnW (a read)
        assertEquals(va, ev[2]);
        assertEquals(0x7000_0000L, ev[3]); // IPA of the stage 1 descriptor
    }

    @Test
    void twoLevelStreamTableAsLinuxBuildsIt() {
        smmu = new Smmuv3(mem, DmaHost.NONE, Smmuv3Profile.MAX);
        Mmio mmio = new Mmio() {
            @Override
            public long read(long offset, int size) {
                return smmu.mmioRead(offset, size);
            }

            @Override
            public void write(long offset, int size, long value) {
                smmu.mmioWrite(offset, size, value);
            }
        };
        drv = new Smmuv3Driver(mmio, mem, STRTAB, 4, CMDQ, 8, EVTQ, 6, PRIQ);
        drv.probeTwoLevel(true, 0x60_0000L);
        assertEquals(0x1_020c, drv.mmio.read32(Smmuv3Driver.STRTAB_BASE_CFG)); // FMT 1, SPLIT 8, LOG2SIZE 12
        drv.writeSte(0x345, Smmuv3Driver.steBypass());
        assertEquals(0x1234_5000L, assertInstanceOf(DmaResult.Translated.class,
                smmu.translate(0x345, -1, 0x1234_5000L, DmaAccess.READ)).entry().translate(0x1234_5000L));
        smmu.translate(0x445, -1, 0, DmaAccess.READ); // no level-2 table for StreamIDs 0x400-0x4ff
        assertArrayEquals(le(0x02 | (0x445L << 32), 0, 0, 0), bytes(drv.drainEvents().get(0)));
        smmu.translate(0x1000, -1, 0, DmaAccess.READ); // beyond LOG2SIZE 12
        assertArrayEquals(le(0x02 | (0x1000L << 32), 0, 0, 0), bytes(drv.drainEvents().get(0)));
    }

    @Test
    void cmdSyncMsiPollingAsLinuxDoesIt() {
        boot(Smmuv3Profile.MAX);
        assertTrue(drv.syncMsi()); // the MSI zeroed the CMD_SYNC's first word in the queue
        assertEquals(0, drv.activeErrors());
    }

    @Test
    void everyProfileProbes() {
        for (Smmuv3Profile p : Smmuv3Profile.ALL) {
            boot(p);
            assertEquals(0, drv.activeErrors(), p.name());
            List<long[]> ev = drv.drainEvents();
            assertEquals(0, ev.size(), p.name());
        }
    }
}
