package dev.iommuemu.smmuv3;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.pagetable.testing.ReferenceWalker;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The whole device path (STE and CD decode, TLB, walker, event records) against the independent
 * {@link ReferenceWalker} on random tables: every translation and every fault must agree, for
 * stage 1, stage 2 and nested streams.
 */
class DifferentialTest {
    private static final long[] S1_ATTRS = {PageTables.S1_RW, PageTables.AF | PageTables.S1_AP_RO_ALL | PageTables.NG,
        PageTables.AF | PageTables.S1_AP_RW_PRIV | PageTables.NG, PageTables.S1_AP_RW_ALL | PageTables.NG,
        PageTables.S1_RW | (1L << 54), PageTables.S1_RW | (1L << 53)};
    private static final long[] S2_ATTRS = {PageTables.S2_RW, PageTables.S2_RW & ~(1L << 7),
        PageTables.S2_RW & ~(1L << 6), PageTables.S2_RW & ~(1L << 10), PageTables.S2_RW | (2L << 53)};
    private static final DmaAccess[] ACCESSES = {DmaAccess.READ, DmaAccess.WRITE, DmaAccess.PRIV_READ,
        DmaAccess.PRIV_WRITE, DmaAccess.EXEC, DmaAccess.PRIV_EXEC};

    @Test
    void deviceAgreesWithTheReferenceWalker() {
        Random rnd = new Random(42);
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        ReferenceWalker ref = new ReferenceWalker(h.mem, 44);
        long s1 = h.tables.s1Root();
        long s2 = h.tables.s2Root(24, 1);
        long base = 0x4000_0000L;
        for (int i = 0; i < 48; i++) {
            h.tables.map(s1, base + i * 4096L, 0x2000_0000L + i * 4096L, S1_ATTRS[rnd.nextInt(S1_ATTRS.length)]);
            h.tables.map(s2, base + i * 4096L, 0x6000_0000L + i * 4096L, S2_ATTRS[rnd.nextInt(S2_ATTRS.length)]);
            h.tables.map(s2, 0x2000_0000L + i * 4096L, 0x7000_0000L + i * 4096L, S2_ATTRS[rnd.nextInt(S2_ATTRS.length)]);
        }
        // Stage 2 must map the stage 1 tables and the CD for the nested stream: identity blocks.
        for (long a = Harness.CDS & ~0x1f_ffffL; a < Harness.TABLES + 0x40_0000L; a += 0x20_0000L) {
            h.tables.map(s2, a, a, PageTables.S2_RW, 2);
        }
        h.cd(Harness.CDS, Harness.cd(s1, 5));
        h.ste(1, Harness.s1Ste(Harness.CDS, 0));
        h.ste(2, Harness.s2Ste(s2, 3));
        long[] nested = Harness.s2Ste(s2, 4);
        Ste.CONFIG.set(nested, Ste.CONFIG_NESTED);
        Ste.S1CONTEXTPTR.set(nested, Harness.CDS >>> 6);
        h.ste(3, nested);
        Stage1Config c1 = Stage1Config.simple(s1, 16, Granule.G4K, 44);
        Stage2Config c2 = Stage2Config.simple(s2, 24, 1, Granule.G4K, 44);
        int compared = 0;
        for (int i = 0; i < 3000; i++) {
            int sid = 1 + rnd.nextInt(3);
            long va = base + rnd.nextInt(56) * 4096L + rnd.nextInt(4096);
            DmaAccess acc = ACCESSES[rnd.nextInt(ACCESSES.length)];
            WalkResult want = switch (sid) {
                case 1 -> ref.translate(c1, null, va, acc);
                case 2 -> ref.translate(null, c2, va, acc);
                default -> ref.translate(c1, c2, va, acc);
            };
            DmaResult got = h.smmu.translate(sid, -1, va, acc);
            List<EventRecord> ev = h.events();
            if (want instanceof Translation t) {
                DmaResult.Translated tr = (DmaResult.Translated) got;
                assertEquals(t.outputAddress(), tr.entry().translate(va), "sid " + sid + " va " + Long.toHexString(va));
            } else {
                TranslationFault f = (TranslationFault) want;
                assertEquals(DmaResult.Aborted.class, got.getClass(), f.toString());
                EventRecord e = ev.get(0);
                assertEquals("F_" + (f.type().name().equals("ACCESS_FLAG") ? "ACCESS"
                        : f.type().name().equals("ADDRESS_SIZE") ? "ADDR_SIZE" : f.type().name()), e.type().name());
                assertEquals(f.stage() == 2, e.s2(), f.toString());
                assertEquals(va, e.inputAddr());
            }
            compared++;
        }
        assertEquals(3000, compared);
    }
}
