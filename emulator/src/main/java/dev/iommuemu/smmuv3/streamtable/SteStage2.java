package dev.iommuemu.smmuv3.streamtable;

import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.PhysicalSize;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;

/** The stage 2 translation an STE configures (IHI 0070 §5.2 STE.S2* fields). */
public final class SteStage2 {
    private SteStage2() {}

    /** The walker configuration of {@code ste}'s stage 2. */
    public static Stage2Config of(Ste ste, Smmuv3Profile p) {
        Granule g = Granule.fromTg0((int) ste.get(Ste.S2TG));
        int sl = g == null ? Stage2Config.INVALID_LEVEL
                : Stage2Config.startLevel(g, (int) ste.get(Ste.S2SL0), 0, false, false);
        boolean ha = ste.get(Ste.S2HA) != 0; // beyond IDR0.HTTU: ILLEGAL (SteValidator)
        boolean hd = ha && ste.get(Ste.S2HD) != 0;
        return new Stage2Config(ste.s2ttb(), (int) ste.get(Ste.S2T0SZ), sl, g,
                PhysicalSize.effective((int) ste.get(Ste.S2PS), p.oasBits()), ha, hd, ste.get(Ste.S2AFFD) != 0,
                ste.get(Ste.S2PTW) != 0, false, ste.get(Ste.S2ENDI) != 0, false,
                p.fwb() && ste.s2fwb()); // §5.2 S2FWB (ILLEGAL without IDR3.FWB: SteValidator)
    }

    /**
     * Why the STE's stage 2 is ILLEGAL (§5.2 S2T0SZ, S2SL0, S2TG, S2TTB rules), or {@code null}.
     * The input address size is the OAS when stage 2 is implemented (§3.4.1).
     */
    public static String check(Stage2Config s2, Smmuv3Profile p) {
        return s2.check(p.oasBits(), false);
    }
}
