package dev.iommuemu.pagetable;

/**
 * Stage 1 translation as a context descriptor configures it (IHI 0070 §5.4 CD; Arm ARM D8 the
 * VMSAv8-64 translation system, TCR_ELx). Addresses of tables are IPAs when stage 2 also
 * translates (nested), PAs otherwise.
 *
 * @param tt0        the TTB0 region (lower VA range)
 * @param tt1        the TTB1 region (upper VA range); {@code null} in a single-range regime (EL2)
 * @param ipsBits    effective output (IPA) size: MIN(CD.IPS, SMMU_IDR5.OAS) (§5.4 CD.IPS)
 * @param tbi0       top-byte-ignore for the TTB0 range (CD.TBI0)
 * @param tbi1       top-byte-ignore for the TTB1 range (CD.TBI1)
 * @param ha         hardware Access flag update (CD.HA)
 * @param hd         hardware dirty state update (CD.HD; effective only with HA, §5.4 {HD,HA}=0b10 reserved)
 * @param affd       Access flag fault disable (CD.AFFD; ignored when HA)
 * @param wxn        write implies execute-never (CD.WXN)
 * @param pan        privileged access never (CD.PAN)
 * @param ds         52-bit descriptors for 4K/16K granules (CD.DS, FEAT_LPA2 layout)
 * @param bigEndian  table endianness (CD.ENDI)
 * @param el2        a single-privilege EL2 regime (StreamWorld any-EL2 without E2H): one range,
 *                   AP[1] ignored, one XN bit, every access privileged (§5.4 notes on StreamWorld)
 * @param had0       hierarchical attributes disabled for TTB0 (CD.HAD0)
 * @param had1       hierarchical attributes disabled for TTB1 (CD.HAD1)
 */
public record Stage1Config(
        Region tt0,
        Region tt1,
        int ipsBits,
        boolean tbi0,
        boolean tbi1,
        boolean ha,
        boolean hd,
        boolean affd,
        boolean wxn,
        boolean pan,
        boolean ds,
        boolean bigEndian,
        boolean el2,
        boolean had0,
        boolean had1) {

    /**
     * One translation table base (CD.TTBx with TxSZ, TGx, EPDx).
     *
     * @param ttb      table base address (bits below the table's alignment are treated as zero)
     * @param tsz      TxSZ: the range covers {@code 2^(64 - tsz)} bytes
     * @param granule  TGx
     * @param disabled EPDx: a miss in this range is a Translation fault without a walk
     */
    public record Region(long ttb, int tsz, Granule granule, boolean disabled) {
        public int inputBits() {
            return 64 - tsz;
        }

        /** A disabled range (EPDx = 1). */
        public static Region off() {
            return new Region(0, 16, Granule.G4K, true);
        }
    }

    /** A common EL1 configuration: TTB0 only (TTB1 disabled), 4K granule, 48-bit IPA, no HTTU. */
    public static Stage1Config simple(long ttb0, int t0sz, Granule g, int ipsBits) {
        return new Stage1Config(new Region(ttb0, t0sz, g, false), Region.off(), ipsBits,
                false, false, false, false, false, false, false, false, false, false, false, false);
    }

    public Stage1Config withHttu(boolean ha, boolean hd) {
        return new Stage1Config(tt0, tt1, ipsBits, tbi0, tbi1, ha, hd, affd, wxn, pan, ds, bigEndian, el2, had0, had1);
    }

    public Stage1Config withTt1(Region r) {
        return new Stage1Config(tt0, r, ipsBits, tbi0, tbi1, ha, hd, affd, wxn, pan, ds, bigEndian, el2, had0, had1);
    }

    public Stage1Config withTbi(boolean t0, boolean t1) {
        return new Stage1Config(tt0, tt1, ipsBits, t0, t1, ha, hd, affd, wxn, pan, ds, bigEndian, el2, had0, had1);
    }

    public Stage1Config withFlags(boolean affd, boolean wxn, boolean pan) {
        return new Stage1Config(tt0, tt1, ipsBits, tbi0, tbi1, ha, hd, affd, wxn, pan, ds, bigEndian, el2, had0, had1);
    }

    public Stage1Config withDs(boolean ds) {
        return new Stage1Config(tt0, tt1, ipsBits, tbi0, tbi1, ha, hd, affd, wxn, pan, ds, bigEndian, el2, had0, had1);
    }

    public Stage1Config withBigEndian(boolean be) {
        return new Stage1Config(tt0, tt1, ipsBits, tbi0, tbi1, ha, hd, affd, wxn, pan, ds, be, el2, had0, had1);
    }

    public Stage1Config withEl2(boolean el2) {
        return new Stage1Config(tt0, tt1, ipsBits, tbi0, tbi1, ha, hd, affd, wxn, pan, ds, bigEndian, el2, had0, had1);
    }

    public Stage1Config withHad(boolean had0, boolean had1) {
        return new Stage1Config(tt0, tt1, ipsBits, tbi0, tbi1, ha, hd, affd, wxn, pan, ds, bigEndian, el2, had0, had1);
    }

    /**
     * The address a TLB tags with: with top-byte-ignore for the VA's range (VA[55] selects TTB0 or
     * TTB1), bits [63:56] are replaced by the sign extension of bit 55 (IHI 0070 §5.4 CD.TBI0/TBI1,
     * Arm ARM D8.8 address tagging); otherwise the VA itself.
     */
    public long topByteIgnored(long va) {
        boolean upper = ((va >>> 55) & 1) != 0;
        boolean tbi = el2 ? tbi0 : (upper ? tbi1 : tbi0);
        return tbi ? (va << 8) >> 8 : va;
    }

    /**
     * Why this configuration cannot be walked, or {@code null} when it can. These are the
     * translation-system consistency rules of IHI 0070 §5.4 that make a CD ILLEGAL (C_BAD_CD);
     * the CD decoder adds the rules that depend on the SMMU's ID registers.
     *
     * @param vaBits the implemented VA size (48, or 52 with SMMU_IDR5.VAX)
     * @param stt    small translation tables (SMMU_IDR3.STT)
     */
    public String check(int vaBits, boolean stt) {
        if (el2 && tt0 != null && tt0.disabled()) {
            // §5.4 CD.EPD0: IGNORED (effective 0) for StreamWorld any-EL2; TTB0 is always walked.
            return checkRegion("TTB0", new Region(tt0.ttb(), tt0.tsz(), tt0.granule(), false), vaBits, stt);
        }
        String r = checkRegion("TTB0", tt0, vaBits, stt);
        if (r == null && tt1 != null && !el2) {
            r = checkRegion("TTB1", tt1, vaBits, stt);
        }
        return r;
    }

    private String checkRegion(String name, Region rg, int vaBits, boolean stt) {
        if (rg == null || rg.disabled()) {
            return null; // §5.4: TxSZ/TGx/TTBx are IGNORED when EPDx == 1
        }
        Granule g = rg.granule();
        if (g == null) {
            return name + ": reserved granule";
        }
        // §5.4 CD.T0SZ: max 39 (48 for 4K/16K, 47 for 64K with STT); min 16, or 12 with 52-bit VAs
        // (64K granule, or DS with 4K/16K).
        int max = stt ? (g == Granule.G64K ? 47 : 48) : 39;
        boolean big = vaBits >= 52 && (g == Granule.G64K || ds);
        int min = big ? 12 : 16;
        if (rg.tsz() < min || rg.tsz() > max) {
            return name + ": TxSZ " + rg.tsz() + " outside [" + min + ", " + max + "]";
        }
        // §5.4 CD.TTB0: ILLEGAL outside the effective IPS, or outside 48 bits without DS for 4K/16K.
        int limit = (!ds && g != Granule.G64K) ? Math.min(48, ipsBits) : ipsBits;
        if (limit < 64 && (rg.ttb() >>> limit) != 0) {
            return name + ": TTB 0x" + Long.toHexString(rg.ttb()) + " outside " + limit + "-bit range";
        }
        return null;
    }
}
