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

    /**
     * One row: the page's stage 1 descriptor attributes, the request's PCIe fields (NW == 0 is
     * {@code write}; Exe and Priv come with a PASID), whether it has a PASID, the completion.
     */
    record Vector(String what, long attrs, boolean write, boolean exe, boolean priv, boolean pasid,
            AtsResponse expected) {}

    private static AtsResponse grant(boolean r, boolean w, boolean x, boolean p) {
        return new AtsResponse(AtsResponse.Status.SUCCESS, PA, 4096, r, w, x, p);
    }

    private static AtsResponse nothing(boolean p) {
        return new AtsResponse(AtsResponse.Status.SUCCESS, 0, 4096, false, false, false, p);
    }

    /**
     * IHI 0070 §13.7's table of example ATS Translation Requests, row by row (with a PASID, which
     * carries Exe and Priv). VMSAv8-64 stage 1 cannot express "User-RO, Priv-RW"; its rows use the
     * stage 1 permission that gives the request's privilege the same access (read-only for User,
     * AP 0b00 read/write for Priv).
     */
    static final List<Vector> SECTION_13_7 = List.of(
            new Vector("NW=1 Exe=0 Priv=0, User-RO", RO_ALL, false, false, false, true, grant(true, false, false, false)),
            new Vector("NW=0 Exe=0 Priv=0, User-RW", RW_ALL, true, false, false, true, grant(true, true, false, false)),
            new Vector("NW=0 Exe=0 Priv=0, User-RO: a write to a read-only page gives R", RO_ALL, true, false, false,
                    true, grant(true, false, false, false)),
            new Vector("NW=0 Exe=0 Priv=1, Priv-RW", RW_PRIV, true, false, true, true, grant(true, true, false, true)),
            new Vector("NW=1 Exe=1 Priv=0, User-RW XN: R (W permitted)", RW_ALL | UXN, false, true, false, true,
                    grant(true, true, false, false)),
            new Vector("NW=0 Exe=0 Priv=0, User-RW XN", RW_ALL | UXN, true, false, false, true,
                    grant(true, true, false, false)),
            new Vector("NW=0 Exe=1 Priv=0, User-RW", RW_ALL, true, true, false, true, grant(true, true, true, false)),
            new Vector("NW=0 Exe=1 Priv=0, User-X Priv-RW (execute-only for the request): nothing", RW_PRIV, true,
                    true, false, true, nothing(false)));

    /** Beyond the table: Exe only when requested, and requests without a PASID (Data, Unprivileged). */
    static final List<Vector> MORE = List.of(
            new Vector("Exe read of an XN read-only page: R", RO_ALL | UXN, false, true, false, true,
                    grant(true, false, false, false)),
            new Vector("no Exe requested: none granted on an executable page", RW_ALL, false, false, false, true,
                    grant(true, true, false, false)),
            new Vector("privileged Exe read of a privileged RW page", RW_PRIV, false, true, true, true,
                    grant(true, true, true, true)),
            new Vector("privileged Exe read of a PXN page: R W", RW_PRIV | PXN, false, true, true, true,
                    grant(true, true, false, true)),
            new Vector("no PASID: Data, Unprivileged, Exe = Priv = 0", RW_ALL, true, true, true, false,
                    grant(true, true, false, false)),
            new Vector("no PASID: a privileged-only page grants nothing", RW_PRIV, false, false, true, false,
                    nothing(false)),
            new Vector("no PASID: a write to a read-only page gives R", RO_ALL, true, false, false, false,
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

    private static void check(Vector v) {
        Harness h = atsStream(v.attrs());
        AtsResponse r = h.smmu.atsTranslate(SID, v.pasid() ? PASID : -1, VA + 0x10, v.write(), v.exe(), v.priv());
        assertEquals(v.expected(), r, v.what());
        assertEquals(0, h.rawEvents().size(), v.what() + ": a Translation Request records no fault");
    }

    @Test
    void theSection13_7ExamplesAsVectors() {
        SECTION_13_7.forEach(AtsAnswersTest::check);
        MORE.forEach(AtsAnswersTest::check);
        // The table's last row: a translation-related fault grants nothing, with the request's Priv.
        Harness h = atsStream(RW_ALL);
        assertEquals(nothing(true), h.smmu.atsTranslate(SID, PASID, 0x9000, true, true, true));
        assertEquals(nothing(false), h.smmu.atsTranslate(SID, -1, 0x9000, true, true, true));
        assertEquals(0, h.rawEvents().size());
    }

    @Test
    void httuMarksDirtyOnlyForNw0() {
        // §13.7: with HTTU dirty-state update, NW == 0 to a writable-clean page makes it dirty and
        // grants W; NW == 1 never marks it dirty (and gets no W).
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long root = h.tables.s1Root();
        long dbm = 1L << 51;
        long leaf = h.tables.map(root, VA, PA, RO_ALL | dbm);
        long[] cd = Harness.cd(root, 1);
        dev.iommuemu.smmuv3.cd.Cd.HA.set(cd, 1);
        dev.iommuemu.smmuv3.cd.Cd.HD.set(cd, 1);
        h.cd(Harness.CDS, cd);
        long[] ste = Harness.s1Ste(Harness.CDS, 0);
        Ste.EATS.set(ste, 1);
        h.ste(SID, ste);
        long clean = h.mem.get64(leaf);
        assertEquals(grant(true, false, false, false), h.smmu.atsTranslate(SID, -1, VA, false, false, false));
        assertEquals(clean, h.mem.get64(leaf)); // NW == 1: still clean
        assertEquals(grant(true, true, false, false), h.smmu.atsTranslate(SID, -1, VA, true, false, false));
        assertEquals(clean & ~(1L << 7), h.mem.get64(leaf)); // AP[2] cleared: writable-dirty
    }

    @Test
    void aWriteOnlyStage2PageGrantsWOnly() {
        // Stage 2 S2AP == 0b10 (write-only): not readable, so R = 0, and W is what exists.
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long s2 = h.tables.s2Root(24, 1);
        h.tables.map(s2, VA, PA, PageTables.S2_RW & ~(1L << 6));
        long[] ste = Harness.s2Ste(s2, 1);
        Ste.EATS.set(ste, 1);
        h.ste(SID, ste);
        assertEquals(grant(false, true, false, false), h.smmu.atsTranslate(SID, -1, VA, true, false, false));
        assertEquals(grant(false, true, false, false), h.smmu.atsTranslate(SID, -1, VA, false, false, false));
        assertEquals(0, h.rawEvents().size());
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
