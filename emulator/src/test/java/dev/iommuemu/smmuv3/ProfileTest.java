package dev.iommuemu.smmuv3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.smmuv3.ats.AtsResponse;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import dev.iommuemu.smmuv3.streamtable.Ste;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What a profile advertises is exactly what the model does: for every profile, each feature works
 * when its ID register bit is set and is refused (ILLEGAL structure, CERROR_ILL, RES0) when not.
 */
class ProfileTest {
    static Iterable<Smmuv3Profile> profiles() {
        return Smmuv3Profile.ALL;
    }

    private static final long VA = 0x10_0000L;

    @ParameterizedTest
    @MethodSource("profiles")
    void featuresFollowTheIdRegisters(Smmuv3Profile p) {
        Harness h = new Harness(p).enable();
        // Stage 1 (IDR0.S1P).
        long root = h.tables.s1Root();
        h.tables.map(root, VA, 0x20_0000L, PageTables.S1_RW);
        h.cd(Harness.CDS, Harness.cd(root, 1));
        h.ste(1, Harness.s1Ste(Harness.CDS, 0));
        DmaResult s1 = h.smmu.translate(1, -1, VA, DmaAccess.READ);
        assertEquals(p.s1(), s1 instanceof DmaResult.Translated, p.name() + " S1P");
        // Stage 2 (IDR0.S2P).
        long s2 = h.tables.s2Root(24, 1);
        h.tables.map(s2, VA, 0x30_0000L, PageTables.S2_RW);
        h.ste(2, Harness.s2Ste(s2, 1));
        assertEquals(p.s2(), h.smmu.translate(2, -1, VA, DmaAccess.READ) instanceof DmaResult.Translated,
                p.name() + " S2P");
        // Substreams (IDR1.SSIDSIZE) and 2-level CD tables (IDR0.CD2L).
        if (p.s1()) {
            h.cd(Harness.CDS + 64, Harness.cd(root, 2));
            h.ste(3, Harness.s1Ste(Harness.CDS, 1));
            assertEquals(p.ssidBits() > 0, h.smmu.translate(3, 1, VA, DmaAccess.READ) instanceof DmaResult.Translated,
                    p.name() + " SSIDSIZE");
            long[] ste = Harness.s1Ste(Harness.CDS + 0x1000, 7);
            Ste.S1FMT.set(ste, Ste.S1FMT_2LVL_4K);
            h.mem.put64(Harness.CDS + 0x1000, (Harness.CDS + 0x2000) | 1);
            h.cd(Harness.CDS + 0x2000 + 5 * 64, Harness.cd(root, 3));
            h.ste(4, ste);
            assertEquals(p.ssidBits() > 0 && p.cd2l(),
                    h.smmu.translate(4, 5, VA, DmaAccess.READ) instanceof DmaResult.Translated, p.name() + " CD2L");
            // Stall (IDR0.STALL_MODEL): CD.S is ILLEGAL without it.
            long[] cd = Harness.cd(root, 4);
            Cd.S.set(cd, 1);
            h.cd(Harness.CDS + 0x3000, cd);
            h.ste(5, Harness.s1Ste(Harness.CDS + 0x3000, 0));
            DmaResult st = h.smmu.translate(5, -1, VA + 0x1000, DmaAccess.READ);
            assertEquals(p.stall(), st instanceof DmaResult.Stalled, p.name() + " stall");
            // HTTU (IDR0.HTTU): CD.HA is ILLEGAL without it.
            long[] ha = Harness.cd(root, 6);
            Cd.HA.set(ha, 1);
            h.cd(Harness.CDS + 0x4000, ha);
            h.ste(6, Harness.s1Ste(Harness.CDS + 0x4000, 0));
            assertEquals(p.httu() > 0, h.smmu.translate(6, -1, VA, DmaAccess.READ) instanceof DmaResult.Translated,
                    p.name() + " HTTU");
        }
        h.rawEvents();
        // PRI (IDR0.PRI), ATS (IDR0.ATS), EL2 (IDR0.Hyp): commands, entry points, registers.
        assertEquals(p.pri(), h.smmu.pageRequest(new PageRequest(1, -1, 0, 1, true, true, false, false, false)),
                p.name() + " PRI");
        assertEquals(p.pri() ? Harness.PRIQ | Harness.PRIQ_LOG2 : 0,
                h.smmu.mmioRead(Smmuv3Regs.PRIQ_BASE.offset(), 8), p.name() + " PRIQ_BASE");
        assertEquals(AtsResponse.Status.UR, // EATS == 0 (F_BAD_ATS_TREQ with ATS), or no ATS at all
                h.smmu.atsTranslate(1, -1, VA, DmaAccess.READ).status());
        h.cmd(Command.build(Command.Op.CMD_TLBI_EL2_ALL).command());
        assertEquals(p.hyp() ? 0 : 1, h.read(Smmuv3Regs.GERROR.offset()) & 1, p.name() + " Hyp");
        assertEquals(p.ats(), h.events().stream().anyMatch(e -> e.type() == EventType.F_BAD_ATS_TREQ),
                p.name() + " ATS");
        // MSI (IDR0.MSI): the IRQ_CFG registers exist only with it.
        h.write(Smmuv3Regs.IRQ_CTRL.offset(), 0);
        h.write(Smmuv3Regs.EVENTQ_IRQ_CFG1.offset(), 0x55);
        assertEquals(p.msi() ? 0x55 : 0, h.read(Smmuv3Regs.EVENTQ_IRQ_CFG1.offset()), p.name() + " MSI");
    }

    @ParameterizedTest
    @MethodSource("profiles")
    void namedLookupRoundTrips(Smmuv3Profile p) {
        assertEquals(p, Smmuv3Profile.named(p.name()));
        assertInstanceOf(Smmuv3Profile.class, p);
    }
}
