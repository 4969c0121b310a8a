package dev.iommuemu.iommufd;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;

import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.Result;
import dev.iommuemu.field.Field;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.ArrayList;
import java.util.List;

/**
 * IOMMU_GET_HW_INFO for an SMMUv3 (struct iommu_hw_info_arm_smmuv3 {flags, __reserved, idr[6],
 * iidr, aidr}): the ID register fields a guest owning stage 1 may rely on, and nothing else.
 * Offered: IDR0 ST_LEVEL, TERM_MODEL, STALL_MODEL, TTENDIAN, CD2L, ASID16, TTF (plus S1P and
 * COHACC, which nesting assumes); IDR1 SIDSIZE, SSIDSIZE; IDR3 BBML, RIL; IDR5 VAX, GRAN4K/16K/64K.
 * Never offered for nesting: HTTU, BTM, MPAM (and every other field reads 0). Without stage 2 (or
 * stage 1) there is nothing to nest: {@link Errno#ENODEV}, never a silent stage 1 fall-back.
 */
public record HwInfo(int flags, int[] idr, int iidr, int aidr) {

    /** The declared fields reported per IDR (index = IDR number). */
    public static final List<List<Field>> OFFERED = List.of(
            List.of(IDR0_S1P, IDR0_TTF, IDR0_COHACC, IDR0_ASID16, IDR0_CD2L, IDR0_TTENDIAN, IDR0_STALL_MODEL,
                    IDR0_TERM_MODEL, IDR0_ST_LEVEL),
            List.of(IDR1_SIDSIZE, IDR1_SSIDSIZE),
            List.of(),
            List.of(IDR3_RIL, IDR3_BBML),
            List.of(),
            List.of(IDR5_GRAN4K, IDR5_GRAN16K, IDR5_GRAN64K, IDR5_VAX));

    /** The nesting info of an SMMU of {@code profile}. */
    public static Result<HwInfo> of(Smmuv3Profile profile) {
        if (!profile.s2() || !profile.s1()) {
            return Result.err(Errno.ENODEV);
        }
        int[] raw = {profile.idr0(), profile.idr1(), profile.idr2(), profile.idr3(), profile.idr4(), profile.idr5()};
        int[] idr = new int[6];
        for (int i = 0; i < 6; i++) {
            for (Field f : OFFERED.get(i)) {
                idr[i] |= (int) f.inPlace(raw[i]);
            }
        }
        return Result.ok(new HwInfo(0, idr, profile.iidr(), profile.aidr()));
    }

    /** One reported field: "IDR0.ST_LEVEL", its bits as the spec prints them, its value. */
    public record Entry(String name, String bits, long value) {}

    /** Every offered field with its value, then IIDR and AIDR, for diagnostics and the control API. */
    public List<Entry> entries() {
        List<Entry> out = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            for (Field f : OFFERED.get(i)) {
                String bits = f.width() == 1 ? "[" + f.lsb() + "]" : "[" + (f.lsb() + f.width() - 1) + ":" + f.lsb() + "]";
                out.add(new Entry("IDR" + i + "." + f.name(), bits, f.get(idr[i])));
            }
        }
        out.add(new Entry("IIDR", "[31:0]", iidr & 0xffff_ffffL));
        out.add(new Entry("AIDR", "[31:0]", aidr & 0xffff_ffffL));
        return out;
    }
}
