package dev.iommuemu.smmuv3;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.smmuv3.ats.AtsResponse;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * ATS Translation Request answers (IHI 0070 §3.9.1.2, the F_PERMISSION row; §13.7): a permission
 * fault grants the subset of the permissions that exists, and a request without a PASID is Data,
 * Unprivileged with Exe = Priv = 0 in its completion. And the SSIDSIZE == 0 rules of §5.2.
 */
class AtsAnswersTest {
    private static final int SID = 2;
    private static final int PASID = 1;
    private static final long VA = 0x1000;
    private static final long PA = 0x2000;
    private static final long UXN = 1L << 54; // stage 1 descriptor UXN (Arm ARM D8.3)
    private static final long PXN = 1L << 53;
    private static final long BASE = PageTables.AF | PageTables.SH_INNER | PageTables.NG;
    private static final long RW_ALL = BASE | PageTables.S1_AP_RW_ALL;
    private static final long RO_ALL = BASE | PageTables.S1_AP_RO_ALL;
    private static final long RW_PRIV = BASE | PageTables.S1_AP_RW_PRIV;

    /** One row: the page's descriptor attributes, the request, whether it has a PASID, the completion. */
    record Vector(String what, long attrs, DmaAccess request, boolean pasid, AtsResponse expected) {}

    private static AtsResponse grant(boolean r, boolean w, boolean x, boolean p) {
        return new AtsResponse(AtsResponse.Status.SUCCESS, PA, 4096, r, w, x, p);
    }

    private static final AtsResponse NOTHING = new AtsResponse(AtsResponse.Status.SUCCESS, 0, 4096, false, false,
            false, false);

    /** The §13.7 examples and the F_PERMISSION row of §3.9.1.2, with and without a PASID. */
    static final List<Vector> VECTORS = List.of(
            new Vector("read of an RW page, no PASID: Data, Unprivileged", RW_ALL, DmaAccess.READ, false,
                    grant(true, true, false, false)),
            new Vector("write to an RW page, no PASID", RW_ALL, DmaAccess.WRITE, false, grant(true, true, false, false)),
            new Vector("write to a read-only page: the page with R only", RO_ALL, DmaAccess.WRITE, false,
                    grant(true, false, false, false)),
            new Vector("read of a privileged-only page, no PASID: unprivileged, nothing", RW_PRIV, DmaAccess.READ,
                    false, NOTHING),
            new Vector("privileged read without a PASID is still unprivileged", RW_PRIV, DmaAccess.PRIV_READ, false,
                    NOTHING),
            new Vector("Exe read without a PASID is a Data read: no Exe", RW_ALL, DmaAccess.EXEC, false,
                    grant(true, true, false, false)),
            new Vector("Exe read of an executable page", RW_ALL, DmaAccess.EXEC, true, grant(true, true, true, false)),
            new Vector("Exe read of an XN page: R", RO_ALL | UXN, DmaAccess.EXEC, true,
                    grant(true, false, false, false)),
            new Vector("privileged write to a read-only XN page: R, Priv", RO_ALL | UXN | PXN, DmaAccess.PRIV_WRITE,
                    true, grant(true, false, false, true)),
            new Vector("privileged read of a privileged RW page", RW_PRIV | PXN, DmaAccess.PRIV_READ, true,
                    grant(true, true, false, true)),
            new Vector("privileged Exe read of a PXN page: R W", RW_PRIV | PXN, DmaAccess.PRIV_EXEC, true,
                    grant(true, true, false, true)),
            new Vector("unprivileged write to a privileged-only page: nothing", RW_PRIV, DmaAccess.WRITE, true,
                    NOTHING),
            new Vector("read of a read-only XN page", RO_ALL | UXN | PXN, DmaAccess.READ, true,
                    grant(true, false, false, false)));

    private static Harness atsStream(long attrs) {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long root = h.tables.s1Root();
        h.tables.map(root, VA, PA, attrs);
        for (int i = 0; i < 2; i++) {
            long[] cd = Harness.cd(root, 1 + i);
            h.cd(Harness.CDS + 64L * i, cd);
        }
        long[] ste = Harness.s1Ste(Harness.CDS, 1);
        Ste.EATS.set(ste, 1);
        Ste.S1DSS.set(ste, Ste.S1DSS_SUBSTREAM0); // requests without a PASID use CD 0
        h.ste(SID, ste);
        return h;
    }

    @Test
    void theSection13_7ExamplesAsVectors() {
        for (Vector v : VECTORS) {
            Harness h = atsStream(v.attrs());
            AtsResponse r = h.smmu.atsTranslate(SID, v.pasid() ? PASID : -1, VA + 0x10, v.request());
            assertEquals(v.expected(), r, v.what());
            assertEquals(0, h.rawEvents().size(), v.what() + ": a Translation Request records no fault");
        }
    }

    @Test
    void theGrantedSubsetIsWhatTheBridgeCaches() {
        // The translated transaction that follows uses the granted read: it translates.
        Harness h = atsStream(RO_ALL);
        assertEquals(grant(true, false, false, false), h.smmu.atsTranslate(SID, -1, VA, DmaAccess.WRITE));
        DmaResult t = h.smmu.translate(SID, -1, VA, DmaAccess.READ);
        assertEquals(PA, ((DmaResult.Translated) t).entry().translatedAddr());
    }

    // ---- SSIDSIZE == 0 (§5.2 S1CDMax, S1DSS, S1Fmt IGNORED)

    private static long[] ignoredSubstreamFields(long cdTable) {
        long[] ste = Harness.s1Ste(cdTable, 5);
        Ste.S1DSS.set(ste, Ste.S1DSS_TERMINATE);
        Ste.S1FMT.set(ste, Ste.S1FMT_2LVL_4K);
        return ste;
    }

    @Test
    void withSsidsize0S1CdMaxS1DssAndS1FmtAreIgnored() {
        Harness h = new Harness(Smmuv3Profile.DEFAULT).enable();
        assertEquals(0, h.smmu.profile().ssidBits());
        long root = h.tables.s1Root();
        h.tables.map(root, VA, PA, RW_ALL);
        h.cd(Harness.CDS, Harness.cd(root, 1));
        h.ste(SID, ignoredSubstreamFields(Harness.CDS));
        DmaResult r = h.smmu.translate(SID, -1, VA + 8, DmaAccess.READ);
        assertEquals(PA + 8, ((DmaResult.Translated) r).entry().translate(VA + 8));
        assertEquals(0, h.rawEvents().size()); // no F_STREAM_DISABLED, no C_BAD_STE
        // A SubstreamID cannot be used at all: C_BAD_SUBSTREAMID, byte for byte (§7.3.9: SSV 0,
        // SubstreamID recorded).
        h.smmu.translate(SID, 3, VA, DmaAccess.READ);
        assertArrayEquals(new long[] {0x08 | (3L << 12) | ((long) SID << 32), 0, 0, 0}, h.rawEvents().get(0));
    }

    @Test
    void withSubstreamsS1CdMaxBeyondSsidsizeIsCBadSteAndS1DssApplies() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        assertEquals(20, h.smmu.profile().ssidBits());
        long root = h.tables.s1Root();
        h.tables.map(root, VA, PA, RW_ALL);
        h.cd(Harness.CDS, Harness.cd(root, 1));
        // §5.2 S1CDMax: ILLEGAL beyond SMMU_IDR1.SSIDSIZE when stage 1 translates.
        h.ste(SID, Harness.s1Ste(Harness.CDS, 21));
        h.smmu.translate(SID, -1, VA, DmaAccess.READ);
        assertArrayEquals(new long[] {0x04 | ((long) SID << 32), 0, 0, 0}, h.rawEvents().get(0));
        // The same field in an STE whose stage 1 is off (Config stage 2 only) is IGNORED.
        long[] s2 = Harness.s2Ste(h.tables.s2Root(24, 1), 1);
        Ste.S1CDMAX.set(s2, 31);
        h.ste(SID + 1, s2);
        h.smmu.translate(SID + 1, -1, 0x5000, DmaAccess.READ);
        assertEquals(0x10, h.rawEvents().get(0)[0] & 0xff); // F_TRANSLATION from the walk, not C_BAD_STE
        // S1DSS applies with substreams: terminate gives F_STREAM_DISABLED (§7.3.7), SSV 0.
        long[] ste = Harness.s1Ste(Harness.CDS, 5);
        Ste.S1DSS.set(ste, Ste.S1DSS_TERMINATE);
        h.ste(SID + 2, ste);
        h.smmu.translate(SID + 2, -1, VA, DmaAccess.READ);
        assertArrayEquals(new long[] {0x06 | ((long) (SID + 2) << 32), 0, 0, 0}, h.rawEvents().get(0));
    }
}
