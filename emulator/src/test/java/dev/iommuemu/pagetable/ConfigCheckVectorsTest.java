package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.SparseGuestMemory;
import org.junit.jupiter.api.Test;

/**
 * The ILLEGAL configurations that make an SMMU refuse a CD (C_BAD_CD, IHI 0070 §5.4 CD.T0SZ,
 * CD.TG0, CD.TTB0) or an STE (C_BAD_STE, §5.2 S2T0SZ, S2SL0 consistency with S2T0SZ and S2TG,
 * S2TTB), as {@link Stage1Config#check} and {@link Stage2Config#check} report them.
 */
class ConfigCheckVectorsTest {
    // §5.4 CD.T0SZ: {granule, DS, VAX 52-bit VAs, STT, TxSZ, legal}.
    private static final Object[][] CD_TXSZ = {
        {Granule.G4K, false, false, false, 39, true}, // max 39 without STT
        {Granule.G4K, false, false, false, 40, false},
        {Granule.G64K, false, false, false, 39, true},
        {Granule.G64K, false, false, false, 40, false},
        {Granule.G4K, false, false, true, 48, true}, // STT: 48 for 4K and 16K
        {Granule.G4K, false, false, true, 49, false},
        {Granule.G16K, false, false, true, 48, true},
        {Granule.G16K, false, false, true, 49, false},
        {Granule.G64K, false, false, true, 47, true}, // STT: 47 for 64K
        {Granule.G64K, false, false, true, 48, false},
        {Granule.G4K, false, false, false, 16, true}, // min 16
        {Granule.G4K, false, false, false, 15, false},
        {Granule.G64K, false, false, false, 15, false}, // 52-bit VAs need SMMU_IDR5.VAX
        {Granule.G64K, false, true, false, 12, true}, // VAX and 64K: min 12
        {Granule.G64K, false, true, false, 11, false},
        {Granule.G4K, false, true, false, 12, false}, // VAX, 4K without DS: still 16
        {Granule.G4K, false, true, false, 16, true},
        {Granule.G4K, true, true, false, 12, true}, // VAX and DS: min 12
        {Granule.G16K, true, true, false, 12, true},
        {Granule.G16K, true, false, false, 12, false}, // DS without VAX: 16
    };

    @Test
    void cdTxSzRanges() {
        for (Object[] row : CD_TXSZ) {
            Granule g = (Granule) row[0];
            boolean ds = (boolean) row[1];
            int vaBits = (boolean) row[2] ? 52 : 48;
            boolean stt = (boolean) row[3];
            int tsz = (int) row[4];
            boolean legal = (boolean) row[5];
            Stage1Config c0 = Stage1Config.simple(0x1000_0000L, tsz, g, 48).withDs(ds);
            String where = g + (ds ? " DS" : "") + " VA" + vaBits + (stt ? " STT" : "") + " TxSZ " + tsz;
            assertEquals(legal, c0.check(vaBits, stt) == null, where + ": " + c0.check(vaBits, stt));
            // The same rule for T1SZ.
            Stage1Config c1 = Stage1Config.simple(0x1000_0000L, 25, Granule.G4K, 48).withDs(ds)
                    .withTt1(new Stage1Config.Region(0x2000_0000L, tsz, g, false));
            assertEquals(legal, c1.check(vaBits, stt) == null, "TTB1 " + where);
        }
    }

    @Test
    void cdGranuleAndTtb() {
        assertNotNull(Stage1Config.simple(0x1000, 25, null, 48).check(48, false), "reserved TG0");
        // §5.4 CD.TTB0: ILLEGAL outside the effective IPS ...
        assertNull(Stage1Config.simple((1L << 40) - 0x1000, 25, Granule.G4K, 40).check(48, false));
        assertNotNull(Stage1Config.simple(1L << 40, 25, Granule.G4K, 40).check(48, false));
        // ... and outside 48 bits with DS == 0 and a 4K or 16K granule, whatever the IPS.
        assertNotNull(Stage1Config.simple(1L << 48, 25, Granule.G4K, 52).check(52, false));
        assertNotNull(Stage1Config.simple(1L << 48, 25, Granule.G16K, 52).check(52, false));
        assertNull(Stage1Config.simple(1L << 48, 25, Granule.G64K, 52).check(52, false));
        assertNull(Stage1Config.simple(1L << 48, 25, Granule.G4K, 52).withDs(true).check(52, false));
        // §5.4 CD.EPD1: the TTB1 fields are IGNORED when EPD1 == 1.
        Stage1Config epd1 = Stage1Config.simple(0x1000, 25, Granule.G4K, 40)
                .withTt1(new Stage1Config.Region(1L << 50, 3, null, true));
        assertNull(epd1.check(48, false));
        assertNotNull(epd1.withTt1(new Stage1Config.Region(1L << 50, 3, null, false)).check(48, false));
        // StreamWorld any-EL2: one range, TTB1 not used (T1SZ/TG1 RES0).
        assertNull(new Stage1Config(new Stage1Config.Region(0x1000, 25, Granule.G4K, false),
                new Stage1Config.Region(1L << 50, 3, null, false), 40, false, false, false, false, false, false, false,
                false, false, true, false, false).check(48, false));
    }

    // §5.2 STE.S2SL0 (+ S2SL0_2) decoding, as VTCR_EL2.{SL2, SL0}: {granule, SL0, SL2, DS, STT, level or null}.
    private static final Object[][] S2SL0 = {
        {Granule.G4K, 0, 0, false, false, 2}, {Granule.G4K, 1, 0, false, false, 1},
        {Granule.G4K, 2, 0, false, false, 0}, {Granule.G4K, 3, 0, false, false, null},
        {Granule.G4K, 3, 0, false, true, 3}, {Granule.G4K, 0, 1, true, false, -1},
        {Granule.G4K, 0, 1, false, false, null}, {Granule.G4K, 1, 1, true, false, null},
        {Granule.G16K, 0, 0, false, false, 3}, {Granule.G16K, 1, 0, false, false, 2},
        {Granule.G16K, 2, 0, false, false, 1}, {Granule.G16K, 3, 0, false, false, null},
        {Granule.G16K, 3, 0, true, false, 0}, {Granule.G16K, 0, 1, true, false, null},
        {Granule.G64K, 0, 0, false, false, 3}, {Granule.G64K, 1, 0, false, false, 2},
        {Granule.G64K, 2, 0, false, false, 1}, {Granule.G64K, 3, 0, false, false, null},
    };

    @Test
    void s2sl0Encodings() {
        for (Object[] row : S2SL0) {
            int got = Stage2Config.startLevel((Granule) row[0], (int) row[1], (int) row[2], (boolean) row[3], (boolean) row[4]);
            Integer want = (Integer) row[5];
            assertEquals(want == null ? Stage2Config.INVALID_LEVEL : want, got, java.util.Arrays.toString(row));
        }
        assertNotNull(Stage2Config.simple(0x1000, 25, Stage2Config.INVALID_LEVEL, Granule.G4K, 40).check(48, false));
        // A start level no S2SL0 encoding gives (a hand-built record) is refused, not walked.
        SparseGuestMemory mem = new SparseGuestMemory(1L << 20);
        for (int level : new int[] {-2, 4}) {
            Stage2Config c = Stage2Config.simple(0x1000, 48, level, Granule.G4K, 40);
            assertNotNull(c.check(48, true), "start level " + level);
            TranslationFault f = assertInstanceOf(TranslationFault.class, new Walker(mem, 48).stage2(c, 0x10, DmaAccess.READ));
            assertEquals(FaultType.TRANSLATION, f.type());
            assertEquals(0, f.level());
        }
    }

    // §5.2 S2T0SZ range and consistency with the start level: {granule, DS, start level, S2T0SZ,
    // IAS, STT, legal}. The start level must resolve at least one bit and at most a stride plus
    // 4 bits (16 concatenated tables).
    private static final Object[][] S2T0SZ = {
        {Granule.G4K, false, 0, 16, 48, false, true},
        {Granule.G4K, false, 0, 15, 52, false, false}, // 4K without S2DS: min 16
        {Granule.G4K, true, -1, 12, 52, false, true}, // with S2DS: min 12
        {Granule.G4K, false, 1, 24, 40, false, true}, // MAX(16, 64 - IAS) = 24 with IAS 40
        {Granule.G4K, false, 1, 23, 40, false, false},
        {Granule.G4K, false, 2, 39, 48, false, true}, // max 39 without STT
        {Granule.G4K, false, 3, 40, 48, true, true}, // STT: up to 48
        {Granule.G4K, false, 2, 40, 48, false, false},
        {Granule.G64K, false, 3, 47, 48, true, true}, // STT 64K: up to 47
        {Granule.G64K, false, 3, 48, 48, true, false},
        {Granule.G64K, false, 1, 12, 52, false, true},
        {Granule.G4K, false, 2, 30, 48, false, true}, // level 2 resolving 13 bits: 16 tables
        {Granule.G4K, false, 2, 29, 48, false, false}, // 14 bits: 32 tables
        {Granule.G4K, false, 0, 25, 48, false, false}, // level 0 resolving no bit
        {Granule.G4K, false, 1, 21, 48, false, true}, // level 1: 13 bits
        {Granule.G16K, false, 2, 24, 48, false, true}, // level 2 (shift 25): 15 bits = 11 + 4
        {Granule.G16K, false, 2, 23, 48, false, false},
        {Granule.G64K, false, 2, 18, 48, false, true}, // level 2 (shift 29): 17 bits = 13 + 4
        {Granule.G64K, false, 2, 17, 48, false, false},
        {Granule.G64K, false, 3, 36, 48, false, true}, // level 3 resolving 12 bits: a smaller table
        {Granule.G64K, false, 3, 31, 48, false, true}, // 17 bits: 16 tables
        {Granule.G64K, false, 3, 30, 48, false, false}, // 18 bits
    };

    @Test
    void s2t0szRangeAndStartLevelConsistency() {
        for (Object[] row : S2T0SZ) {
            Stage2Config c = Stage2Config.simple(0x1000_0000L, (int) row[3], (int) row[2], (Granule) row[0], 48)
                    .withDs((boolean) row[1]);
            String msg = c.check((int) row[4], (boolean) row[5]);
            assertEquals((boolean) row[6], msg == null, java.util.Arrays.toString(row) + ": " + msg);
        }
    }

    @Test
    void s2ttbWithinS2ps() {
        assertNull(Stage2Config.simple((1L << 40) - 0x1000, 24, 1, Granule.G4K, 40).check(48, false));
        assertNotNull(Stage2Config.simple(1L << 40, 24, 1, Granule.G4K, 40).check(48, false));
        assertNotNull(Stage2Config.simple(0x1000, 24, 1, null, 40).check(48, false), "S2TG reserved");
    }
}
