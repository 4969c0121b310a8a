package dev.iommuemu.smmuv3.profile;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;

import java.util.List;
import java.util.Locale;

/**
 * What an emulated SMMUv3 advertises in its ID registers (IHI 0070 §6.3 SMMU_IDR0-5, SMMU_IIDR, SMMU_AIDR), and therefore what
 * the model implements: every feature bit read here switches the matching behaviour on or off, so
 * a profile never advertises something the model does not do.
 *
 * <p>Profiles: {@link #DEFAULT} (close to QEMU's virt SMMU: S1+S2, 16-bit ASID/VMID, 2-level
 * stream table, no substreams, range invalidation, OAS 44), {@link #MAX} (everything this model
 * implements: S1+S2, 2-level stream and CD tables, SSIDSIZE 20, HTTU, stall, PRI, ATS, MSIs, EL2
 * TLBIs, S2FWB, every granule, OAS 48), {@link #MAX52} (MAX with OAS 52), {@link #S1_ONLY},
 * {@link #S2_ONLY} and {@link #NESTING_HOST}.
 */
public record Smmuv3Profile(String name, int idr0, int idr1, int idr2, int idr3, int idr4, int idr5, int iidr,
        int aidr) {

    /** IIDR: ProductID 0x1e0 under a JEP106-less implementer 0 (this model, not a real part). */
    private static final int IIDR = (int) (IIDR_PRODUCTID.prep(0x1e0) | IIDR_REVISION.prep(0));

    public static final Smmuv3Profile DEFAULT = new Smmuv3Profile("default",
            (int) (IDR0_S1P.prep(1) | IDR0_S2P.prep(1) | IDR0_TTF.prep(2) | IDR0_COHACC.prep(1)
                    | IDR0_ASID16.prep(1) | IDR0_VMID16.prep(1) | IDR0_TTENDIAN.prep(2) | IDR0_STALL_MODEL.prep(1)
                    | IDR0_TERM_MODEL.prep(1) | IDR0_ST_LEVEL.prep(1)),
            (int) (IDR1_SIDSIZE.prep(16) | IDR1_SSIDSIZE.prep(0) | IDR1_EVENTQS.prep(19) | IDR1_CMDQS.prep(19)),
            0,
            (int) IDR3_RIL.prep(1),
            0,
            (int) (IDR5_OAS.prep(4) | IDR5_GRAN4K.prep(1) | IDR5_GRAN16K.prep(1) | IDR5_GRAN64K.prep(1)),
            IIDR,
            (int) AIDR_MINOR.prep(1));

    public static final Smmuv3Profile MAX = new Smmuv3Profile("max",
            (int) (IDR0_S1P.prep(1) | IDR0_S2P.prep(1) | IDR0_TTF.prep(2) | IDR0_COHACC.prep(1) | IDR0_HTTU.prep(2)
                    | IDR0_HYP.prep(1) | IDR0_ATS.prep(1) | IDR0_ASID16.prep(1) | IDR0_MSI.prep(1) | IDR0_SEV.prep(1)
                    | IDR0_PRI.prep(1) | IDR0_VMID16.prep(1) | IDR0_CD2L.prep(1) | IDR0_TTENDIAN.prep(2)
                    | IDR0_NS1ATS.prep(1)
                    | IDR0_STALL_MODEL.prep(0) | IDR0_TERM_MODEL.prep(1) | IDR0_ST_LEVEL.prep(1)),
            (int) (IDR1_SIDSIZE.prep(20) | IDR1_SSIDSIZE.prep(20) | IDR1_PRIQS.prep(19) | IDR1_EVENTQS.prep(19)
                    | IDR1_CMDQS.prep(19)),
            0,
            // §3.21.1.1: an SMMUv3.2 supports break-before-make Level 1 or 2; Arm recommends 2.
            (int) (IDR3_RIL.prep(1) | IDR3_PPS.prep(1) | IDR3_FWB.prep(1) | IDR3_BBML.prep(2)),
            0,
            (int) (IDR5_OAS.prep(5) | IDR5_GRAN4K.prep(1) | IDR5_GRAN16K.prep(1) | IDR5_GRAN64K.prep(1)
                    | IDR5_STALL_MAX.prep(256)),
            IIDR,
            (int) AIDR_MINOR.prep(2));

    public static final Smmuv3Profile MAX52 = MAX.withName("max52").withIdr5(
            (int) IDR5_OAS.insert(MAX.idr5, 6));

    public static final Smmuv3Profile S1_ONLY = DEFAULT.withName("s1-only").withIdr0(
            (int) IDR0_VMID16.insert(IDR0_S2P.insert(DEFAULT.idr0, 0), 0));

    public static final Smmuv3Profile S2_ONLY = DEFAULT.withName("s2-only").withIdr0(
            (int) IDR0_ASID16.insert(IDR0_S1P.insert(DEFAULT.idr0, 0), 0));

    /**
     * What a guest that is itself a nesting host needs (docs/nesting.md "Which profile"): Linux's
     * iommufd vIOMMU (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3-iommufd.c) wants stage 1 and stage
     * 2 (FEAT_NESTING) and, with a device tree, SMMU_IDR3.FWB (§6.3.4), which an SMMUv3.2 (AIDR)
     * implements; substreams (SSIDSIZE 16, 2-level CD tables) so a nested guest's vSTE can carry a
     * CD table. Otherwise {@link #DEFAULT}'s QEMU-like set: no HTTU, ATS, PRI, stall or MSIs, which
     * the nested path does not use.
     */
    public static final Smmuv3Profile NESTING_HOST = new Smmuv3Profile("nesting-host",
            (int) IDR0_CD2L.insert(DEFAULT.idr0, 1),
            (int) IDR1_SSIDSIZE.insert(DEFAULT.idr1, 16),
            DEFAULT.idr2,
            // BBML 2: an SMMUv3.2 implements Level 1 or 2 (§3.21.1.1); Level 2 as MAX and QEMU's do
            (int) IDR3_BBML.insert(IDR3_FWB.insert(DEFAULT.idr3, 1), 2),
            DEFAULT.idr4,
            DEFAULT.idr5,
            IIDR,
            (int) AIDR_MINOR.prep(2));

    public static final List<Smmuv3Profile> ALL = List.of(DEFAULT, MAX, MAX52, S1_ONLY, S2_ONLY, NESTING_HOST);

    /** The profile named {@code name} (as the daemon's configuration spells it). */
    public static Smmuv3Profile named(String name) {
        for (Smmuv3Profile p : ALL) {
            if (p.name.equals(name.toLowerCase(Locale.ROOT))) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown SMMUv3 profile: " + name);
    }

    public Smmuv3Profile withName(String n) {
        return new Smmuv3Profile(n, idr0, idr1, idr2, idr3, idr4, idr5, iidr, aidr);
    }

    public Smmuv3Profile withIdr0(int v) {
        return new Smmuv3Profile(name, v, idr1, idr2, idr3, idr4, idr5, iidr, aidr);
    }

    public Smmuv3Profile withIdr1(int v) {
        return new Smmuv3Profile(name, idr0, v, idr2, idr3, idr4, idr5, iidr, aidr);
    }

    public Smmuv3Profile withIdr3(int v) {
        return new Smmuv3Profile(name, idr0, idr1, idr2, v, idr4, idr5, iidr, aidr);
    }

    public Smmuv3Profile withIdr5(int v) {
        return new Smmuv3Profile(name, idr0, idr1, idr2, idr3, idr4, v, iidr, aidr);
    }

    /**
     * This profile advertising only the translation stages asked for (QEMU's arm-smmuv3
     * {@code stage} property: "1", "2" or "nested" select SMMU_IDR0.S1P and S2P, IHI 0070 §6.3.1).
     * A stage left out takes the fields that only describe it: without stage 1, ASID16, Hyp
     * (stage 1 EL2 contexts), CD2L and SMMU_IDR1.SSIDSIZE (context descriptors and substreams
     * select stage 1 contexts, §5.4) read 0; without stage 2, VMID16 does, as {@link #S1_ONLY} and
     * {@link #S2_ONLY} are derived from {@link #DEFAULT}. A stage the profile does not implement
     * cannot be added.
     *
     * @throws IllegalArgumentException when neither stage is asked for, or one the profile lacks
     */
    public Smmuv3Profile withStages(boolean stage1, boolean stage2) {
        if (!stage1 && !stage2) {
            throw new IllegalArgumentException("an SMMU needs at least one translation stage");
        }
        if ((stage1 && !s1()) || (stage2 && !s2())) {
            throw new IllegalArgumentException("profile " + name + " has no stage " + (stage1 && !s1() ? 1 : 2));
        }
        long i0 = idr0 & 0xffff_ffffL;
        long i1 = idr1 & 0xffff_ffffL;
        if (!stage1) {
            i0 = IDR0_S1P.insert(i0, 0);
            i0 = IDR0_ASID16.insert(i0, 0);
            i0 = IDR0_HYP.insert(i0, 0);
            i0 = IDR0_CD2L.insert(i0, 0);
            i1 = IDR1_SSIDSIZE.insert(i1, 0);
        }
        if (!stage2) {
            i0 = IDR0_S2P.insert(i0, 0);
            i0 = IDR0_VMID16.insert(i0, 0);
        }
        return withIdr0((int) i0).withIdr1((int) i1);
    }

    /**
     * Whether the SMMU has register {@code r}: registers of features the profile lacks are RES0
     * (IHI 0070 §6.3: the PRI queue's only with IDR0.PRI, the IRQ_CFG registers only with
     * IDR0.MSI).
     */
    public boolean hasRegister(dev.iommuemu.field.Register r) {
        if (r == PRIQ_BASE || r == PRIQ_PROD || r == PRIQ_CONS) {
            return pri();
        }
        if (r == PRIQ_IRQ_CFG0 || r == PRIQ_IRQ_CFG1 || r == PRIQ_IRQ_CFG2) {
            return pri() && msi();
        }
        if (r == GERROR_IRQ_CFG0 || r == GERROR_IRQ_CFG1 || r == GERROR_IRQ_CFG2 || r == EVENTQ_IRQ_CFG0
                || r == EVENTQ_IRQ_CFG1 || r == EVENTQ_IRQ_CFG2) {
            return msi();
        }
        return true;
    }

    // ---- the features, decoded once from the ID registers

    public boolean s1() {
        return IDR0_S1P.isSet(idr0);
    }

    public boolean s2() {
        return IDR0_S2P.isSet(idr0);
    }

    public boolean asid16() {
        return IDR0_ASID16.isSet(idr0);
    }

    public boolean vmid16() {
        return IDR0_VMID16.isSet(idr0);
    }

    /** IDR0.ST_LEVEL == 0b01: 2-level stream tables. */
    public boolean twoLevelStreamTable() {
        return IDR0_ST_LEVEL.get(idr0) == 1;
    }

    public boolean cd2l() {
        return IDR0_CD2L.isSet(idr0);
    }

    public boolean hyp() {
        return IDR0_HYP.isSet(idr0);
    }

    public boolean ats() {
        return IDR0_ATS.isSet(idr0);
    }

    public boolean pri() {
        return IDR0_PRI.isSet(idr0);
    }

    public boolean msi() {
        return IDR0_MSI.isSet(idr0);
    }

    public boolean sev() {
        return IDR0_SEV.isSet(idr0);
    }

    /** IDR0.HTTU: 0 none, 1 Access flag, 2 Access flag and dirty state. */
    public int httu() {
        return IDR0_HTTU.getInt(idr0);
    }

    /** IDR0.STALL_MODEL: 0b00 stall and terminate, 0b01 terminate only, 0b10 stall forced. */
    public int stallModel() {
        return IDR0_STALL_MODEL.getInt(idr0);
    }

    /** IDR0.NS1ATS: split-stage ATS is not supported. */
    public boolean ns1ats() {
        return IDR0_NS1ATS.isSet(idr0);
    }

    /** IDR0.STALL_MODEL != 0b01: the stall model is supported (§3.12.2). */
    public boolean stall() {
        return IDR0_STALL_MODEL.get(idr0) != 1;
    }

    /** IDR0.STALL_MODEL == 0b10: stalling is forced (STE.S1STALLD ILLEGAL). */
    public boolean stallForced() {
        return IDR0_STALL_MODEL.get(idr0) == 2;
    }

    public int sidBits() {
        return IDR1_SIDSIZE.getInt(idr1);
    }

    public int ssidBits() {
        return IDR1_SSIDSIZE.getInt(idr1);
    }

    public int cmdqs() {
        return IDR1_CMDQS.getInt(idr1);
    }

    public int eventqs() {
        return IDR1_EVENTQS.getInt(idr1);
    }

    public int priqs() {
        return IDR1_PRIQS.getInt(idr1);
    }

    /** IDR3.FWB: STE.S2FWB is implemented (§6.3.4; FEAT_S2FWB). */
    public boolean fwb() {
        return IDR3_FWB.isSet(idr3);
    }

    /**
     * IDR3.BBML: the break-before-make level (§3.21.1.1-3): 0 break-before-make is required to
     * change a translation's size; 1 the nT bit of a Block descriptor may be used instead; 2 sizes
     * may change without either. Field values 3 (reserved) read as 0.
     */
    public int bbml() {
        int l = IDR3_BBML.getInt(idr3);
        return l == 3 ? 0 : l;
    }

    public boolean ril() {
        return IDR3_RIL.isSet(idr3);
    }

    public boolean gran4k() {
        return IDR5_GRAN4K.isSet(idr5);
    }

    public boolean gran16k() {
        return IDR5_GRAN16K.isSet(idr5);
    }

    public boolean gran64k() {
        return IDR5_GRAN64K.isSet(idr5);
    }

    /** IDR5.OAS decoded to bits (§6.3 SMMU_IDR5: 32, 36, 40, 42, 44, 48, 52). */
    public int oasBits() {
        return oasBits(IDR5_OAS.getInt(idr5));
    }

    /** An OAS/IPS/PS encoding in bits; reserved encodings are capped at 52 (IHI 0070 §3.4.3). */
    public static int oasBits(int enc) {
        return switch (enc) {
            case 0 -> 32;
            case 1 -> 36;
            case 2 -> 40;
            case 3 -> 42;
            case 4 -> 44;
            case 5 -> 48;
            default -> 52;
        };
    }

    /** Maximum stalled transactions outstanding (IDR5.STALL_MAX). */
    public int stallMax() {
        return IDR5_STALL_MAX.getInt(idr5);
    }
}
