package dev.iommuemu.pagetable;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Layout;

/**
 * VMSAv8-64 translation table descriptor fields (Arm ARM D8.3 translation table descriptor
 * formats), declared once. Stage 1 and stage 2 share the layout of the type bits, AF, DBM,
 * Contiguous and the output address; they differ in the attribute and permission bits.
 */
public final class Descriptor {
    private Descriptor() {}

    // ---- common (D8.3.1, D8.3.2)
    /** Bit 0: the descriptor is valid. */
    public static final Field VALID = Field.bit("VALID", 0);
    /** Bit 1: table (levels 0-2) or page (level 3) when set; block when clear. */
    public static final Field TABLE_OR_PAGE = Field.bit("TYPE", 1);
    /** Bit 10: the Access flag. */
    public static final Field AF = Field.bit("AF", 10);
    /** Bits [47:12]: next-level table or output address (48-bit formats; low bits per granule). */
    public static final Field ADDR_48 = Field.bits("ADDR", 47, 12);
    /** Bits [49:12]: address bits [49:12] in the 52-bit 4K/16K format (FEAT_LPA2, DS == 1). */
    public static final Field ADDR_50 = Field.bits("ADDR_DS", 49, 12);
    /** Bits [9:8]: address bits [51:50] in the 52-bit 4K/16K format (DS == 1; SH moves to TCR). */
    public static final Field ADDR_HI_DS = Field.bits("ADDR_51_50", 9, 8);
    /** Bits [15:12]: address bits [51:48] in the 52-bit 64K format (FEAT_LPA). */
    public static final Field ADDR_HI_LPA = Field.bits("ADDR_51_48", 15, 12);
    /** Bit 51: Dirty Bit Modifier (FEAT_HAFDBS). */
    public static final Field DBM = Field.bit("DBM", 51);
    /** Bit 52: the Contiguous hint. */
    public static final Field CONTIGUOUS = Field.bit("Contiguous", 52);
    /**
     * Bit 16 of a Block descriptor (stage 1 and stage 2): nT, FEAT_BBM's "not cached in a way that
     * can cause a TLB conflict"; honoured by an SMMU with SMMU_IDR3.BBML == 1 (IHI 0070 §3.21.1.1,
     * §3.21.1.2), ignored at Level 2 (§3.21.1.3) and RES0 before SMMUv3.2.
     */
    public static final Field NT = Field.bit("nT", 16);

    // ---- stage 1 leaf attributes (D8.3.2 / D8.5)
    public static final Field ATTR_INDX = Field.bits("AttrIndx", 4, 2);
    public static final Field NS = Field.bit("NS", 5);
    /** AP[1] (bit 6): unprivileged (EL0) access permitted. */
    public static final Field AP_USER = Field.bit("AP[1]", 6);
    /** AP[2] (bit 7): read-only. */
    public static final Field AP_RO = Field.bit("AP[2]", 7);
    public static final Field SH = Field.bits("SH", 9, 8);
    /** Bit 11: not global (the translation is tagged with the ASID). */
    public static final Field NG = Field.bit("nG", 11);
    /** Bit 53: privileged execute-never. */
    public static final Field PXN = Field.bit("PXN", 53);
    /** Bit 54: unprivileged execute-never (XN in single-privilege regimes). */
    public static final Field UXN = Field.bit("UXN", 54);

    // ---- stage 1 table attributes (D8.3.1, hierarchical permissions D8.4.2)
    public static final Field PXN_TABLE = Field.bit("PXNTable", 59);
    /** Bit 60: UXNTable (XNTable in single-privilege regimes). */
    public static final Field UXN_TABLE = Field.bit("UXNTable", 60);
    /** APTable[0] (bit 61): no unprivileged access at subsequent levels. */
    public static final Field AP_TABLE_NO_USER = Field.bit("APTable[0]", 61);
    /** APTable[1] (bit 62): no write access at subsequent levels. */
    public static final Field AP_TABLE_RO = Field.bit("APTable[1]", 62);
    public static final Field NS_TABLE = Field.bit("NSTable", 63);
    /** APTable (bits [62:61]) as one field: non-zero when a table restricts later levels' permissions. */
    public static final Field AP_TABLE = Field.bits("APTable", 62, 61);
    /**
     * Bits [51:48] of a 4 KiB-granule descriptor without LPA2: DBM (51), GP (50) and RES0 (49:48);
     * the walk recipes of docs/protocol.md §4.8 leave any descriptor with one set to the daemon.
     */
    public static final Field BITS_51_48 = Field.bits("Bits[51:48]", 51, 48);

    // ---- stage 2 leaf attributes (D8.3.2, D8.4.3)
    public static final Field S2_MEMATTR = Field.bits("MemAttr", 5, 2);
    /** MemAttr[3:2] == 0b00 is Device memory (stage 2 without FWB). */
    public static final Field S2_MEMATTR_HI = Field.bits("MemAttr[3:2]", 5, 4);
    /** S2AP[0] (bit 6): read permitted. */
    public static final Field S2AP_R = Field.bit("S2AP[0]", 6);
    /** S2AP[1] (bit 7): write permitted. */
    public static final Field S2AP_W = Field.bit("S2AP[1]", 7);
    /** XN[1:0] (bits 54:53) with FEAT_XNX; bit 54 alone otherwise. */
    public static final Field S2_XN = Field.bits("XN", 54, 53);

    /** Stage 1 block/page layout, for decoding in tools and tests. */
    public static final Layout STAGE1_LEAF = new Layout("S1Leaf", 1, VALID, TABLE_OR_PAGE, ATTR_INDX, NS, AP_USER, AP_RO,
            SH, AF, NG, ADDR_48, DBM, CONTIGUOUS, PXN, UXN);
    /** Stage 1 table layout. */
    public static final Layout STAGE1_TABLE = new Layout("S1Table", 1, VALID, TABLE_OR_PAGE, ADDR_48, PXN_TABLE, UXN_TABLE,
            AP_TABLE_NO_USER, AP_TABLE_RO, NS_TABLE);
    /** Stage 2 block/page layout. */
    public static final Layout STAGE2_LEAF = new Layout("S2Leaf", 1, VALID, TABLE_OR_PAGE, S2_MEMATTR, S2AP_R, S2AP_W,
            SH, AF, ADDR_48, DBM, CONTIGUOUS, S2_XN);

    /**
     * The address a table, block or page descriptor holds, aligned to {@code alignShift} (the
     * granule for tables and pages, the block size for blocks): bits [47:12] in the 48-bit
     * formats, plus [51:48] from bits [15:12] with a 64K granule and 52-bit OA (FEAT_LPA), or
     * [49:12] plus [51:50] from bits [9:8] with DS (FEAT_LPA2).
     */
    public static long address(long desc, Granule g, boolean ds, boolean lpa, int alignShift) {
        long a;
        if (ds && g != Granule.G64K) {
            a = ADDR_50.inPlace(desc) | (ADDR_HI_DS.get(desc) << 50);
        } else {
            a = ADDR_48.inPlace(desc);
            if (lpa && g == Granule.G64K) {
                a |= ADDR_HI_LPA.get(desc) << 48;
            }
        }
        return a & ~((1L << alignShift) - 1);
    }

    /**
     * The descriptor with its address replaced (the inverse of {@link #address}), for table
     * builders in tools and tests.
     */
    public static long withAddress(long desc, long addr, Granule g, boolean ds, boolean lpa) {
        if (ds && g != Granule.G64K) {
            desc = ADDR_50.insert(desc, addr >>> 12);
            return ADDR_HI_DS.insert(desc, addr >>> 50);
        }
        desc = ADDR_48.insert(desc, addr >>> 12);
        if (lpa && g == Granule.G64K) {
            desc = ADDR_HI_LPA.insert(desc, addr >>> 48);
        }
        return desc;
    }

    /**
     * Whether a block descriptor is permitted at {@code level} (Arm ARM D8.3.1): 4K at levels 1
     * and 2 (and 0 with DS); 16K at level 2 (and 1 with DS); 64K at level 2 (and 1 with 52-bit
     * output, FEAT_LPA).
     */
    public static boolean blockAllowed(Granule g, int level, boolean ds, boolean lpa) {
        return switch (g) {
            case G4K -> level == 1 || level == 2 || (level == 0 && ds);
            case G16K -> level == 2 || (level == 1 && ds);
            case G64K -> level == 2 || (level == 1 && lpa);
        };
    }
}
