package dev.iommuemu.smmuv3.cd;

import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.PhysicalSize;
import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;

/** The stage 1 translation a CD configures (IHI 0070 §5.4 CD fields; TCR_EL1 semantics). */
public final class CdStage1 {
    private CdStage1() {}

    /**
     * The walker configuration of {@code cd}. {@code el2} is an STE.STRW == EL2 stream without E2H:
     * a single VA range (§5.4 StreamWorld notes). HA/HD only where IDR0.HTTU has them (§5.4 CD.HA:
     * RES0 otherwise).
     */
    public static Stage1Config of(Cd cd, Smmuv3Profile p, boolean el2) {
        Stage1Config.Region r0 = new Stage1Config.Region(cd.ttb0(), (int) cd.get(Cd.T0SZ),
                Granule.fromTg0((int) cd.get(Cd.TG0)), cd.is(Cd.EPD0));
        Stage1Config.Region r1 = el2 ? null : new Stage1Config.Region(cd.ttb1(), (int) cd.get(Cd.T1SZ),
                Granule.fromTg1((int) cd.get(Cd.TG1)), cd.is(Cd.EPD1));
        boolean ha = cd.is(Cd.HA);
        boolean hd = ha && cd.is(Cd.HD);
        return new Stage1Config(r0, r1, PhysicalSize.effective((int) cd.get(Cd.IPS), p.oasBits()), cd.is(Cd.TBI0),
                cd.is(Cd.TBI1), ha, hd, cd.is(Cd.AFFD), cd.is(Cd.WXN), cd.is(Cd.PAN), false, cd.is(Cd.ENDI), el2,
                false, false);
    }

    /** The translation-system ILLEGAL rules (§5.4 TxSZ ranges, TTBx ranges), or {@code null}. */
    public static String check(Stage1Config s1) {
        return s1.check(48, false);
    }
}
