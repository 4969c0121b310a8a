package dev.iommuemu.pagetable;

import static dev.iommuemu.pagetable.MemoryAttributes.Cacheability.NON_CACHEABLE;
import static dev.iommuemu.pagetable.MemoryAttributes.Cacheability.WRITE_BACK;
import static dev.iommuemu.pagetable.MemoryAttributes.Cacheability.WRITE_THROUGH;
import static dev.iommuemu.pagetable.MemoryAttributes.MemoryType.DEVICE_GRE;
import static dev.iommuemu.pagetable.MemoryAttributes.MemoryType.DEVICE_nGRE;
import static dev.iommuemu.pagetable.MemoryAttributes.MemoryType.DEVICE_nGnRE;
import static dev.iommuemu.pagetable.MemoryAttributes.MemoryType.DEVICE_nGnRnE;
import static dev.iommuemu.pagetable.MemoryAttributes.Shareability.INNER_SHAREABLE;
import static dev.iommuemu.pagetable.MemoryAttributes.Shareability.NON_SHAREABLE;
import static dev.iommuemu.pagetable.MemoryAttributes.Shareability.OUTER_SHAREABLE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.pagetable.MemoryAttributes.Cacheability;
import dev.iommuemu.pagetable.MemoryAttributes.MemoryType;
import dev.iommuemu.pagetable.MemoryAttributes.Shareability;
import org.junit.jupiter.api.Test;

/**
 * The Arm ARM's memory attribute tables (D8.6) as vectors: MAIR_ELx.Attr encodings (stage 1),
 * Table D8-96 (stage 2 MemAttr, FWB off), Tables D8-97/D8-98 (combining, FWB off), Tables
 * D8-100/D8-101 (FWB on), Table D8-103 (Shareability). Each row: inputs, then the expected result.
 */
class MemoryAttributesVectorsTest {
    private static final int SH_NSH = 0b00;
    private static final int SH_OSH = 0b10;
    private static final int SH_ISH = 0b11;

    private static MemoryAttributes dev(MemoryType t) {
        return MemoryAttributes.device(t);
    }

    private static MemoryAttributes nrm(Cacheability i, Cacheability o, Shareability s) {
        return new MemoryAttributes(MemoryType.NORMAL, i, o, s);
    }

    private static MemoryAttributes nc() {
        return nrm(NON_CACHEABLE, NON_CACHEABLE, OUTER_SHAREABLE);
    }

    private static final MemoryAttributes WB_ISH = nrm(WRITE_BACK, WRITE_BACK, INNER_SHAREABLE);
    private static final MemoryAttributes WT_ISH = nrm(WRITE_THROUGH, WRITE_THROUGH, INNER_SHAREABLE);

    /** MAIR Attr<n> encodings (Arm ARM MAIR_ELx), decoded with SH = Inner Shareable. */
    private static final Object[][] MAIR = {
            {0x00, dev(DEVICE_nGnRnE)},
            {0x04, dev(DEVICE_nGnRE)},
            {0x08, dev(DEVICE_nGRE)},
            {0x0c, dev(DEVICE_GRE)},
            {0x44, nc()}, // Normal iNC oNC: Outer Shareable whatever SH says (D8.6.2 R_PYFVQ)
            {0xff, WB_ISH}, // WB non-transient RW-allocate
            {0xcc, WB_ISH}, // WB non-transient, no allocate (0b11RW with RW == 0b00)
            {0x77, WB_ISH}, // WB transient
            {0xbb, WT_ISH}, // WT non-transient
            {0x88, WT_ISH}, // WT non-transient, no allocate
            {0x33, WT_ISH}, // WT transient
            {0x4f, nrm(WRITE_BACK, NON_CACHEABLE, INNER_SHAREABLE)},
            {0xf4, nrm(NON_CACHEABLE, WRITE_BACK, INNER_SHAREABLE)},
            {0xbf, nrm(WRITE_BACK, WRITE_THROUGH, INNER_SHAREABLE)},
            {0x40, nc()}, // FEAT_XS: Normal iNC oNC, XS == 0
            {0xa0, WT_ISH}, // FEAT_XS: Normal iWT oWT, XS == 0
            {0xf0, WB_ISH}, // FEAT_MTE2: Tagged Normal iWB oWB (tagging not modelled)
            {0x80, nrm(NON_CACHEABLE, WRITE_THROUGH, INNER_SHAREABLE)}, // inner 0b0000 reserved: NC (model's choice)
    };

    @Test
    void mairEncodings() {
        for (Object[] row : MAIR) {
            int attr = (Integer) row[0];
            // Put the encoding in Attr5 and select it with AttrIndx 5.
            long mair = 0x1122_3344_5566_7788L & ~(0xffL << 40) | ((long) attr << 40);
            assertEquals(row[1], MemoryAttributes.stage1(mair, 5, SH_ISH), String.format("MAIR Attr 0x%02x", attr));
        }
    }

    /** Stage 1 SH[1:0] for Normal Cacheable memory (D8.6.2). */
    @Test
    void stage1Shareability() {
        assertEquals(nrm(WRITE_BACK, WRITE_BACK, NON_SHAREABLE), MemoryAttributes.stage1(0xff, 0, SH_NSH));
        assertEquals(nrm(WRITE_BACK, WRITE_BACK, OUTER_SHAREABLE), MemoryAttributes.stage1(0xff, 0, SH_OSH));
        assertEquals(WB_ISH, MemoryAttributes.stage1(0xff, 0, SH_ISH));
        assertEquals(nrm(WRITE_BACK, WRITE_BACK, OUTER_SHAREABLE), MemoryAttributes.stage1(0xff, 0, 0b01),
                "SH 0b01 reserved: Outer Shareable (model's choice)");
        assertEquals(dev(DEVICE_nGnRE), MemoryAttributes.stage1(0x04, 0, SH_NSH), "Device is Outer Shareable");
    }

    /**
     * Table D8-96 (FWB off) through stage 2 alone: with stage 1 Normal iWB oWB ISH in front, the
     * result is stage 2's own encoding (Device, or the Cacheability the table gives).
     */
    private static final Object[][] S2_NO_FWB = {
            {0b0000, dev(DEVICE_nGnRnE)},
            {0b0001, dev(DEVICE_nGnRE)},
            {0b0010, dev(DEVICE_nGRE)},
            {0b0011, dev(DEVICE_GRE)},
            {0b0100, nc()}, // reserved (no FEAT_MTE_PERM): read as Non-cacheable
            {0b0101, nc()},
            {0b0110, nrm(WRITE_THROUGH, NON_CACHEABLE, INNER_SHAREABLE)},
            {0b0111, nrm(WRITE_BACK, NON_CACHEABLE, INNER_SHAREABLE)},
            {0b1000, nrm(NON_CACHEABLE, WRITE_THROUGH, INNER_SHAREABLE)}, // reserved inner: NC
            {0b1001, nrm(NON_CACHEABLE, WRITE_THROUGH, INNER_SHAREABLE)},
            {0b1010, WT_ISH},
            {0b1011, nrm(WRITE_BACK, WRITE_THROUGH, INNER_SHAREABLE)},
            {0b1100, nrm(NON_CACHEABLE, WRITE_BACK, INNER_SHAREABLE)}, // reserved inner: NC
            {0b1101, nrm(NON_CACHEABLE, WRITE_BACK, INNER_SHAREABLE)},
            {0b1110, nrm(WRITE_THROUGH, WRITE_BACK, INNER_SHAREABLE)},
            {0b1111, WB_ISH},
    };

    @Test
    void stage2MemAttrWithoutFwb() {
        for (Object[] row : S2_NO_FWB) {
            int m = (Integer) row[0];
            assertEquals(row[1], MemoryAttributes.combine(WB_ISH, m, SH_ISH, false), "MemAttr " + Integer.toBinaryString(m));
            assertEquals(m >>> 2 == 0, MemoryAttributes.stage2Device(m, false));
        }
    }

    /** Table D8-97: Device over Normal, and the more restrictive Device type (FWB off). */
    @Test
    void deviceTypesCombineToTheMostRestrictive() {
        MemoryType[] types = {DEVICE_nGnRnE, DEVICE_nGnRE, DEVICE_nGRE, DEVICE_GRE};
        for (int s1 = 0; s1 < 4; s1++) {
            for (int s2 = 0; s2 < 4; s2++) {
                MemoryType want = types[Math.min(s1, s2)];
                assertEquals(dev(want), MemoryAttributes.combine(dev(types[s1]), s2, SH_ISH, false),
                        types[s1] + " + " + types[s2]);
            }
            // stage 1 Device over stage 2 Normal WB
            assertEquals(dev(types[s1]), MemoryAttributes.combine(dev(types[s1]), 0b1111, SH_ISH, false));
        }
        // stage 1 Normal under stage 2 Device
        assertEquals(dev(DEVICE_nGRE), MemoryAttributes.combine(WB_ISH, 0b0010, SH_ISH, false));
    }

    /** Table D8-98: combining Cacheability (FWB off), rows as printed; applied to inner and outer alike. */
    private static final Cacheability[][] CACHEABILITY = {
            {NON_CACHEABLE, NON_CACHEABLE, NON_CACHEABLE},
            {NON_CACHEABLE, WRITE_THROUGH, NON_CACHEABLE},
            {NON_CACHEABLE, WRITE_BACK, NON_CACHEABLE},
            {WRITE_THROUGH, NON_CACHEABLE, NON_CACHEABLE},
            {WRITE_BACK, NON_CACHEABLE, NON_CACHEABLE},
            {WRITE_THROUGH, WRITE_THROUGH, WRITE_THROUGH},
            {WRITE_THROUGH, WRITE_BACK, WRITE_THROUGH},
            {WRITE_BACK, WRITE_THROUGH, WRITE_THROUGH},
            {WRITE_BACK, WRITE_BACK, WRITE_BACK},
    };

    private static int s2Code(Cacheability c) {
        return switch (c) {
            case NON_CACHEABLE -> 0b01;
            case WRITE_THROUGH -> 0b10;
            case WRITE_BACK -> 0b11;
        };
    }

    @Test
    void cacheabilityCombinesToTheLeastCacheable() {
        for (Cacheability[] row : CACHEABILITY) {
            // inner varies, outer fixed at WB on both stages (and the other way round)
            MemoryAttributes s1 = nrm(row[0], WRITE_BACK, INNER_SHAREABLE);
            MemoryAttributes got = MemoryAttributes.combine(s1, 0b1100 | s2Code(row[1]), SH_ISH, false);
            assertEquals(row[2], got.inner(), "inner " + row[0] + " + " + row[1]);
            s1 = nrm(WRITE_BACK, row[0], INNER_SHAREABLE);
            got = MemoryAttributes.combine(s1, (s2Code(row[1]) << 2) | 0b11, SH_ISH, false);
            assertEquals(row[2], got.outer(), "outer " + row[0] + " + " + row[1]);
        }
    }

    /** Table D8-100 (FWB on, MemAttr[2] == 0): Device of type MemAttr[1:0], whatever stage 1 is. */
    @Test
    void fwbDeviceEncodings() {
        MemoryType[] types = {DEVICE_nGnRnE, DEVICE_nGnRE, DEVICE_nGRE, DEVICE_GRE};
        for (int dd = 0; dd < 4; dd++) {
            assertEquals(dev(types[dd]), MemoryAttributes.combine(WB_ISH, dd, SH_ISH, true));
            assertEquals(dev(types[dd]), MemoryAttributes.combine(nc(), dd, SH_ISH, true));
            assertTrue(MemoryAttributes.stage2Device(dd, true));
            // R_GSDKZ: combined with a stage 1 Device type, the more restrictive wins
            assertEquals(dev(DEVICE_nGnRnE), MemoryAttributes.combine(dev(DEVICE_nGnRnE), dd, SH_ISH, true));
        }
        assertEquals(dev(DEVICE_nGnRE), MemoryAttributes.combine(dev(DEVICE_GRE), 0b001, SH_ISH, true));
        for (int m = 0b100; m <= 0b111; m++) {
            assertFalse(MemoryAttributes.stage2Device(m, true));
        }
    }

    /**
     * Table D8-101 (FWB on, no FEAT_MTE_PERM): stage 1 type x stage 2 MemAttr[2:0] 0b101 / 0b110 /
     * 0b111 -> result. "Device<attr>" rows use Device-nGnRE.
     */
    private static final Object[][] FWB_TABLE = {
            // stage 1                                         0b101 (NC)         0b110 (force WB)  0b111 (stage 1's)
            {dev(DEVICE_nGnRE), dev(DEVICE_nGnRE), nrm(WRITE_BACK, WRITE_BACK, OUTER_SHAREABLE), dev(DEVICE_nGnRE)},
            {nc(), nc(), nrm(WRITE_BACK, WRITE_BACK, OUTER_SHAREABLE), nc()},
            {WT_ISH, nc(), WB_ISH, WT_ISH},
            {WB_ISH, nc(), WB_ISH, WB_ISH},
            {nrm(WRITE_THROUGH, WRITE_BACK, NON_SHAREABLE), nc(), nrm(WRITE_BACK, WRITE_BACK, INNER_SHAREABLE),
                    nrm(WRITE_THROUGH, WRITE_BACK, INNER_SHAREABLE)},
    };

    @Test
    void fwbNormalEncodings() {
        for (Object[] row : FWB_TABLE) {
            MemoryAttributes s1 = (MemoryAttributes) row[0];
            assertEquals(row[1], MemoryAttributes.combine(s1, 0b101, SH_ISH, true), s1 + " + FWB 0b101");
            assertEquals(row[2], MemoryAttributes.combine(s1, 0b110, SH_ISH, true), s1 + " + FWB 0b110");
            assertEquals(row[3], MemoryAttributes.combine(s1, 0b111, SH_ISH, true), s1 + " + FWB 0b111");
        }
        // The same encodings without FWB give other answers (Table D8-96): 0b0110 is oNC iWT.
        assertEquals(nrm(WRITE_THROUGH, NON_CACHEABLE, INNER_SHAREABLE),
                MemoryAttributes.combine(WB_ISH, 0b0110, SH_ISH, false));
        // Reserved 0b100 reads as 0b101; MemAttr[3] (RES0) is ignored (model's choices).
        assertEquals(nc(), MemoryAttributes.combine(WB_ISH, 0b100, SH_ISH, true));
        assertEquals(WB_ISH, MemoryAttributes.combine(WB_ISH, 0b1110, SH_ISH, true));
        assertEquals(dev(DEVICE_nGnRE), MemoryAttributes.combine(WB_ISH, 0b1001, SH_ISH, true));
    }

    /** Table D8-103 for a Normal cacheable result (independent of FWB): stage 1 x stage 2 -> result. */
    private static final Object[][] SHAREABILITY = {
            {SH_OSH, SH_OSH, OUTER_SHAREABLE}, {SH_OSH, SH_ISH, OUTER_SHAREABLE}, {SH_OSH, SH_NSH, OUTER_SHAREABLE},
            {SH_ISH, SH_OSH, OUTER_SHAREABLE}, {SH_ISH, SH_ISH, INNER_SHAREABLE}, {SH_ISH, SH_NSH, INNER_SHAREABLE},
            {SH_NSH, SH_OSH, OUTER_SHAREABLE}, {SH_NSH, SH_ISH, INNER_SHAREABLE}, {SH_NSH, SH_NSH, NON_SHAREABLE},
    };

    @Test
    void shareabilityCombinesToTheWidest() {
        for (Object[] row : SHAREABILITY) {
            MemoryAttributes s1 = MemoryAttributes.stage1(0xff, 0, (Integer) row[0]);
            for (boolean fwb : new boolean[] {false, true}) {
                int memAttr = fwb ? 0b111 : 0b1111;
                assertEquals(row[2], MemoryAttributes.combine(s1, memAttr, (Integer) row[1], fwb).shareability(),
                        row[0] + " + " + row[1] + (fwb ? " FWB" : ""));
            }
        }
        // A Non-cacheable stage 2 is Outer Shareable whatever its SH says (R_YHCTP).
        assertEquals(nc(), MemoryAttributes.combine(nrm(WRITE_BACK, WRITE_BACK, NON_SHAREABLE), 0b0101, SH_NSH, false));
    }

    @Test
    void rendering() {
        assertEquals("Normal iWB oWB ISH", WB_ISH.toString());
        assertEquals("Device-nGnRE", dev(DEVICE_nGnRE).toString());
        assertEquals("Normal iNC oNC OSH", nc().toString());
    }
}
