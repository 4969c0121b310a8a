package dev.iommuemu.iommufd;

import static dev.iommuemu.iommufd.VsmmuFixture.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import org.junit.jupiter.api.Test;

/**
 * The host model's nest parent on an SMMU with SMMU_IDR3.FWB, as arm-smmu-v3 builds it
 * (IO_PGTABLE_QUIRK_ARM_S2FWB for nest parents): STE.S2FWB = 1 and leaves with the FWB MemAttr
 * 0b0110, so whatever memory type the guest's stage 1 asks for, its DMA to guest RAM is Normal
 * Write-Back (Arm ARM Table D8-101). Without FWB the guest's Non-cacheable stage 1 stands.
 */
class NestingFwbTest {
    private static final long VA = 0x4000_0000L;
    private static final long IPA = 0x60_0000L;

    /** The guest maps VA to IPA under a CD whose MAIR Attr0 is Normal Non-cacheable (0x44). */
    private static VsmmuFixture guestNonCacheable(Smmuv3Profile p) {
        VsmmuFixture f = new VsmmuFixture(p);
        f.s1.map(VA, IPA, 3, PageTableBuilder.S1_RW | PageTableBuilder.S1_USER);
        long[] cd = cd(f.s1.ttb(), ASID, false);
        Cd.MAIR.set(cd, 0x44);
        f.guestCd(CD_IPA, cd);
        int nested = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), 0).get();
        assertNull(f.fd.attach(f.devId, nested));
        return f;
    }

    @Test
    void nestParentUsesS2fwbWhereTheSmmuHasIt() {
        VsmmuFixture f = guestNonCacheable(Smmuv3Profile.MAX);
        long[] ste = f.core.host().ste(SID);
        assertEquals(Ste.CONFIG_NESTED, Ste.CONFIG.getInt(ste));
        assertEquals(1, Ste.S2FWB.getInt(ste));
        assertEquals(pa(IPA) + 0x48, ((DmaResult.Translated) f.fd.dma(SID, -1, VA + 0x48, DmaAccess.WRITE)).entry()
                .translate(VA + 0x48));
        assertEquals("Normal iWB oWB OSH",
                f.core.host().smmu().memoryAttributes(SID, -1, VA, DmaAccess.WRITE).toString());
    }

    @Test
    void withoutFwbTheGuestsStageOneAttributesStand() {
        VsmmuFixture f = guestNonCacheable(Smmuv3Profile.DEFAULT);
        assertEquals(0, Ste.S2FWB.getInt(f.core.host().ste(SID)));
        assertEquals("Normal iNC oNC OSH",
                f.core.host().smmu().memoryAttributes(SID, -1, VA, DmaAccess.WRITE).toString());
    }
}
