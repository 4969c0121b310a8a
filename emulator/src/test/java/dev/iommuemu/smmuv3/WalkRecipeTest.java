package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.field.Field;
import dev.iommuemu.pagetable.WalkRecipe;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.Optional;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * Smmuv3#walkRecipe (docs/protocol.md §4.8 "Walk recipes"): published only for the configuration
 * a VMM's own 4 KiB AArch64 TTB0 walk reproduces (IHI 0070 §5.2 STE, §5.4 CD), and
 * DmaHost#configurationChanged, which empties them, on every CMD_CFGI_*, register write (but the
 * queue pointers and IRQ_CTRL) and reset.
 */
class WalkRecipeTest {
    private static final int SID = 3;
    private static final long IOVA = 0x1234_5000L;
    private static final long PA = 0x8765_4000L;

    private final Harness h = new Harness(Smmuv3Profile.MAX);
    private long ttb;

    /** The Linux io-pgtable-arm set-up: STE stage 1, one CD, T0SZ 16, 4 KiB, IPS 48, EPD1. */
    private void linux(UnaryOperator<long[]> ste, UnaryOperator<long[]> cd) {
        ttb = h.tables.s1Root();
        h.tables.map(ttb, IOVA, PA, PageTables.S1_RW);
        h.enable();
        h.ste(SID, ste.apply(Harness.s1Ste(Harness.CDS, 0)));
        h.cd(Harness.CDS, cd.apply(Harness.cd(ttb, 7)));
    }

    private static UnaryOperator<long[]> with(Field f, long v) {
        return w -> {
            f.set(w, v);
            return w;
        };
    }

    private DmaResult translate() {
        return h.smmu.translate(SID, IommuModel.NO_SUBSTREAM, IOVA, DmaAccess.READ);
    }

    @Test
    void linuxsConfigurationGetsTheRecipeOfItsTables() {
        linux(UnaryOperator.identity(), UnaryOperator.identity());
        assertEquals(Optional.empty(), h.smmu.walkRecipe(SID), "nothing cached yet: no recipe");
        DmaResult r = translate();
        assertEquals(PA, assertInstanceOf(DmaResult.Translated.class, r).entry().translate(IOVA));
        assertEquals(Optional.of(new WalkRecipe(ttb, 16, 0, 48)), h.smmu.walkRecipe(SID));
        assertEquals(Optional.empty(), h.smmu.walkRecipe(SID + 1), "another stream: not cached");
    }

    @Test
    void startLevelAndOutputSizeFollowT0szAndIps() {
        // T0SZ 25: a 39-bit input starts at level 1 (Arm ARM D8.2); IPS 0b010: 40 bits
        linux(UnaryOperator.identity(), w -> {
            Cd.T0SZ.set(w, 25);
            Cd.IPS.set(w, 2);
            return w;
        });
        translate();
        assertEquals(Optional.of(new WalkRecipe(ttb, 25, 1, 40)), h.smmu.walkRecipe(SID));
        assertEquals(3, WalkRecipe.startLevel(48));
        assertEquals(2, WalkRecipe.startLevel(39 - 5));
        assertEquals(0, WalkRecipe.startLevel(24));
    }

    @Test
    void substreamZeroForTrafficWithoutASubstream() {
        // S1CDMax 4 with S1DSS 0b10: non-substream traffic uses CD 0 (§5.2 S1DSS)
        linux(w -> {
            Ste.S1CDMAX.set(w, 4);
            Ste.S1DSS.set(w, Ste.S1DSS_SUBSTREAM0);
            return w;
        }, UnaryOperator.identity());
        assertInstanceOf(DmaResult.Translated.class, translate());
        assertEquals(Optional.of(new WalkRecipe(ttb, 16, 0, 48)), h.smmu.walkRecipe(SID));
    }

    private void assertNoRecipe(String why, UnaryOperator<long[]> ste, UnaryOperator<long[]> cd) {
        linux(ste, cd);
        translate();
        assertEquals(Optional.empty(), h.smmu.walkRecipe(SID), why);
    }

    @Test
    void notForS1dssBypass() {
        assertNoRecipe("S1DSS bypass", w -> {
            Ste.S1CDMAX.set(w, 4);
            Ste.S1DSS.set(w, Ste.S1DSS_BYPASS);
            return w;
        }, UnaryOperator.identity());
    }

    @Test
    void notForBypassSte() {
        assertNoRecipe("STE.Config bypass", with(Ste.CONFIG, Ste.CONFIG_BYPASS), UnaryOperator.identity());
    }

    @Test
    void notForStage2Only() {
        long s2 = h.tables.s2Root(24, 1);
        h.tables.map(s2, IOVA, PA, PageTables.S2_RW);
        h.enable();
        h.ste(SID, Harness.s2Ste(s2, 1));
        assertInstanceOf(DmaResult.Translated.class, translate());
        assertEquals(Optional.empty(), h.smmu.walkRecipe(SID));
    }

    @Test
    void notForNesting() {
        assertNoRecipe("nested", w -> {
            long[] s2 = Harness.s2Ste(h.tables.s2Root(24, 1), 1);
            for (int i = 2; i < 8; i++) {
                w[i] = s2[i];
            }
            Ste.CONFIG.set(w, Ste.CONFIG_NESTED);
            return w;
        }, UnaryOperator.identity());
    }

    @Test
    void notWithHardwareUpdates() {
        assertNoRecipe("HA", UnaryOperator.identity(), with(Cd.HA, 1));
    }

    @Test
    void notWithHardwareDirtyState() {
        assertNoRecipe("HA+HD", UnaryOperator.identity(), w -> {
            Cd.HA.set(w, 1);
            Cd.HD.set(w, 1);
            return w;
        });
    }

    @Test
    void notWithHdAlone() {
        assertNoRecipe("HD without HA (the reserved {HD, HA} = 0b10)", UnaryOperator.identity(), with(Cd.HD, 1));
    }

    @Test
    void notFor16kGranules() {
        assertNoRecipe("TG0 16K", UnaryOperator.identity(), with(Cd.TG0, 2));
    }

    @Test
    void notFor64kGranules() {
        assertNoRecipe("TG0 64K", UnaryOperator.identity(), with(Cd.TG0, 1));
    }

    @Test
    void notWithTtb0Disabled() {
        assertNoRecipe("EPD0", UnaryOperator.identity(), with(Cd.EPD0, 1));
    }

    @Test
    void notForBigEndianTables() {
        // every profile has SMMU_IDR0.TTENDIAN 0b10 (little-endian only): ENDI == 1 is an ILLEGAL CD
        // (C_BAD_CD), never cached; walkRecipe's own ENDI check is a defence should a profile allow it
        linux(UnaryOperator.identity(), with(Cd.ENDI, 1));
        assertInstanceOf(DmaResult.Aborted.class, translate());
        assertEquals("C_BAD_CD", ((DmaResult.Aborted) translate()).reason());
        assertEquals(Optional.empty(), h.smmu.walkRecipe(SID));
    }

    @Test
    void notForAnEl2Stream() {
        assertNoRecipe("STRW EL2", with(Ste.STRW, Ste.STRW_EL2), UnaryOperator.identity());
    }

    @Test
    void notBeyond48BitOutputs() {
        Harness h52 = new Harness(Smmuv3Profile.MAX52);
        long root = h52.tables.s1Root();
        h52.tables.map(root, IOVA, PA, PageTables.S1_RW);
        h52.enable();
        h52.ste(SID, Harness.s1Ste(Harness.CDS, 0));
        long[] cd = Harness.cd(root, 7);
        Cd.IPS.set(cd, 6); // 52 bits
        h52.cd(Harness.CDS, cd);
        h52.smmu.translate(SID, IommuModel.NO_SUBSTREAM, IOVA, DmaAccess.READ);
        assertEquals(Optional.empty(), h52.smmu.walkRecipe(SID));
        Cd.IPS.set(cd, 5);
        h52.cd(Harness.CDS, cd);
        h52.cfgiSte(SID);
        h52.smmu.translate(SID, IommuModel.NO_SUBSTREAM, IOVA, DmaAccess.READ);
        assertEquals(Optional.of(new WalkRecipe(root, 16, 0, 48)), h52.smmu.walkRecipe(SID), "IPS 48 on a 52-bit SMMU");
    }

    @Test
    void notInStrictMode() {
        Harness strict = new Harness(Smmuv3Profile.MAX, Smmuv3.Options.DEFAULT.withStrict(true));
        long root = strict.tables.s1Root();
        strict.tables.map(root, IOVA, PA, PageTables.S1_RW);
        strict.enable();
        strict.ste(SID, Harness.s1Ste(Harness.CDS, 0));
        strict.cd(Harness.CDS, Harness.cd(root, 7));
        assertInstanceOf(DmaResult.Translated.class, strict.smmu.translate(SID, IommuModel.NO_SUBSTREAM, IOVA, DmaAccess.READ));
        assertEquals(Optional.empty(), strict.smmu.walkRecipe(SID));
    }

    @Test
    void notWithoutSmmuenOrInServiceFailureMode() {
        linux(UnaryOperator.identity(), UnaryOperator.identity());
        translate();
        assertTrue(h.smmu.walkRecipe(SID).isPresent(), "Linux's configuration, cached: a recipe");
        // IHI 0070 §6.3.9 SMMU_CR0.SMMUEN = 0: the cached STE and CD stay, but no stream translates
        long cr0 = h.read(CR0.offset());
        h.write(CR0.offset(), cr0 & ~1L);
        assertEquals(Optional.empty(), h.smmu.walkRecipe(SID), "SMMUEN 0");
        h.write(CR0.offset(), cr0);
        translate();
        assertTrue(h.smmu.walkRecipe(SID).isPresent(), "SMMUEN 1 again");
        int before = h.host.configChanges;
        h.smmu.enterServiceFailureMode();
        assertEquals(Optional.empty(), h.smmu.walkRecipe(SID));
        assertTrue(h.host.configChanges > before, "service failure mode empties the recipes");
    }

    @Test
    void recipesRefuseWhatTheWalkCannotUse() {
        assertThrows(IllegalArgumentException.class, () -> new WalkRecipe(0x1000, 16, 1, 48), "start level of T0SZ 16 is 0");
        assertThrows(IllegalArgumentException.class, () -> new WalkRecipe(0x1000, 16, 0, 52));
        assertThrows(IllegalArgumentException.class, () -> new WalkRecipe(0x1008, 16, 0, 48), "unaligned");
        assertEquals(0x1000, WalkRecipe.of(0x1ff8, 16, 48).ttb(), "TTB0 bits below the table's size are zero");
        assertEquals(0x1_0f80L, WalkRecipe.of(0x1_0fc0L, 48, 48).ttb(), "T0SZ 48: a 16-entry level 3 start table, 128-byte aligned");
    }

    // ---- DmaHost#configurationChanged: where recipes are emptied

    @Test
    void everyCfgiEmptiesRecipes() {
        linux(UnaryOperator.identity(), UnaryOperator.identity());
        int n = h.host.configChanges;
        h.cmd(Command.build(Command.Op.CMD_CFGI_STE).set(Command.SID, SID).command());
        assertEquals(n + 1, h.host.configChanges, "CMD_CFGI_STE");
        h.cmd(Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, SID).command());
        assertEquals(n + 2, h.host.configChanges, "CMD_CFGI_CD");
        h.cmd(Command.build(Command.Op.CMD_CFGI_CD_ALL).set(Command.SID, SID).command());
        assertEquals(n + 3, h.host.configChanges, "CMD_CFGI_CD_ALL");
        h.cmd(Command.build(Command.Op.CMD_CFGI_STE_RANGE).set(Command.CFGI_RANGE, 31).command());
        assertEquals(n + 4, h.host.configChanges, "CMD_CFGI_ALL");
        h.cmd(Command.build(Command.Op.CMD_CFGI_STE_RANGE).set(Command.SID, SID).set(Command.CFGI_RANGE, 3).command());
        assertEquals(n + 5, h.host.configChanges, "CMD_CFGI_STE_RANGE");
        h.sync();
        assertEquals(n + 5, h.host.configChanges, "CMD_SYNC and the CMDQ_PROD writes change nothing");
    }

    @Test
    void tlbiAndQueuePointersLeaveRecipes() {
        linux(UnaryOperator.identity(), UnaryOperator.identity());
        translate();
        int n = h.host.configChanges;
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 7).set(Command.TLBI_ADDR, IOVA >>> 12).command());
        h.cmd(Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, 7).command());
        h.sync();
        h.rawEvents(); // an EVENTQ_CONS write
        h.write(IRQ_CTRL.offset(), 0b111);
        h.write(GERRORN.offset(), h.read(GERROR.offset()));
        assertEquals(n, h.host.configChanges);
        assertEquals(Optional.of(new WalkRecipe(ttb, 16, 0, 48)), h.smmu.walkRecipe(SID), "TLBIs leave the configuration cache");
    }

    @Test
    void otherRegisterWritesAndResetEmptyThem() {
        linux(UnaryOperator.identity(), UnaryOperator.identity());
        int n = h.host.configChanges;
        h.write(CR0.offset(), h.read(CR0.offset()));
        assertEquals(n + 1, h.host.configChanges, "SMMU_CR0");
        h.write(CR2.offset(), 0);
        assertEquals(n + 2, h.host.configChanges, "SMMU_CR2");
        h.write64(STRTAB_BASE.offset(), Harness.STRTAB); // guarded (SMMUEN): ignored, still emptied
        assertEquals(n + 3, h.host.configChanges, "SMMU_STRTAB_BASE");
        h.smmu.reset();
        assertEquals(n + 4, h.host.configChanges, "reset");
        h.enable();
        h.smmu.enterServiceFailureMode();
        assertEquals(Optional.empty(), h.smmu.walkRecipe(SID));
    }
}
