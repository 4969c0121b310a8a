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

    /**
     * Every profile, and every profile narrowed to the stages it has by QEMU's arm-smmuv3
     * {@code stage} property ({@link Smmuv3Profile#withStages}: "1", "2", "nested").
     */
    static Iterable<Smmuv3Profile> profilesAndStages() {
        java.util.List<Smmuv3Profile> all = new java.util.ArrayList<>(Smmuv3Profile.ALL);
        for (Smmuv3Profile p : Smmuv3Profile.ALL) {
            for (boolean[] st : new boolean[][] {{true, false}, {false, true}, {true, true}}) {
                if ((!st[0] || p.s1()) && (!st[1] || p.s2())) {
                    Smmuv3Profile n = p.withStages(st[0], st[1]);
                    all.add(n.withName(p.name() + (st[0] && st[1] ? "/nested" : st[0] ? "/stage1" : "/stage2")));
                }
            }
        }
        return all;
    }

    /** QEMU's stage narrows a profile exactly as the named single-stage profiles are derived. */
    @org.junit.jupiter.api.Test
    void stagesNarrowAsTheSingleStageProfiles() {
        Smmuv3Profile s1 = Smmuv3Profile.DEFAULT.withStages(true, false);
        Smmuv3Profile s2 = Smmuv3Profile.DEFAULT.withStages(false, true);
        assertEquals(Smmuv3Profile.S1_ONLY.idr0(), s1.idr0());
        assertEquals(Smmuv3Profile.S2_ONLY.idr0(), s2.idr0());
        assertEquals(Smmuv3Profile.DEFAULT, Smmuv3Profile.DEFAULT.withStages(true, true));
        Smmuv3Profile maxS2 = Smmuv3Profile.MAX.withStages(false, true);
        assertEquals(0, Smmuv3Regs.IDR1_SSIDSIZE.get(maxS2.idr1() & 0xffff_ffffL));
        assertEquals(0, Smmuv3Regs.IDR0_HYP.get(maxS2.idr0() & 0xffff_ffffL));
        assertEquals(0, Smmuv3Regs.IDR0_CD2L.get(maxS2.idr0() & 0xffff_ffffL));
        assertEquals(1, Smmuv3Regs.IDR0_PRI.get(maxS2.idr0() & 0xffff_ffffL), "what does not describe a stage stays");
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> Smmuv3Profile.S1_ONLY.withStages(false, true));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> Smmuv3Profile.S2_ONLY.withStages(true, true));
    }

    private static final long VA = 0x10_0000L;

    @ParameterizedTest
    @MethodSource("profilesAndStages")
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
        // EATS == 0 (F_BAD_ATS_TREQ with ATS), or no ATS at all: UR. The stream is one whose STE
        // is legal for the profile (stage 1 STE 1, or stage 2 STE 2 without stage 1).
        assertEquals(AtsResponse.Status.UR, h.smmu.atsTranslate(p.s1() ? 1 : 2, -1, VA, DmaAccess.READ).status(),
                p.name() + " ATS response");
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
