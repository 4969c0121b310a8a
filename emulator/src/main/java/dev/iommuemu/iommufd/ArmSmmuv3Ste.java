package dev.iommuemu.iommufd;

import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.Result;
import dev.iommuemu.field.Field;
import dev.iommuemu.smmuv3.streamtable.Ste;

/**
 * The data of IOMMU_HWPT_ALLOC for a nested SMMUv3 domain (struct iommu_hwpt_arm_smmuv3
 * {__le64 ste[2]}): the guest's STE words 0 and 1, validated exactly. Allowed: word 0 V, Config,
 * S1Fmt, S1ContextPtr, S1CDMax; word 1 S1DSS, S1CIR, S1COR, S1CSH, S1STALLD, EATS. V=0 is an
 * abort STE. Any other bit, a Config other than abort/bypass/stage 1, or EATS above 1 is
 * {@link Errno#EIO}; nonzero flags are {@link Errno#EOPNOTSUPP}.
 */
public final class ArmSmmuv3Ste {
    private static final Field[] WORD0 = {Ste.V, Ste.CONFIG, Ste.S1FMT, Ste.S1CONTEXTPTR, Ste.S1CDMAX};
    private static final Field[] WORD1 = {Ste.S1DSS, Ste.S1CIR, Ste.S1COR, Ste.S1CSH, Ste.S1STALLD, Ste.EATS};
    public static final long ALLOWED0 = mask(WORD0);
    public static final long ALLOWED1 = mask(WORD1);

    private ArmSmmuv3Ste() {}

    private static long mask(Field[] fs) {
        long m = 0;
        for (Field f : fs) {
            m |= f.mask();
        }
        return m;
    }

    /** The words to nest with ({0, 0} for V=0: abort), or the errno. */
    public static Result<long[]> validate(long[] ste, int flags) {
        if (flags != 0) {
            return Result.err(Errno.EOPNOTSUPP);
        }
        if (ste == null || ste.length != 2) {
            return Result.err(Errno.EINVAL);
        }
        if (!Ste.V.isSet(ste[0])) {
            return Result.ok(new long[2]);
        }
        if ((ste[0] & ~ALLOWED0) != 0 || (ste[1] & ~ALLOWED1) != 0) {
            return Result.err(Errno.EIO);
        }
        long cfg = Ste.CONFIG.get(ste[0]);
        if (cfg != Ste.CONFIG_ABORT && cfg != Ste.CONFIG_BYPASS && cfg != Ste.CONFIG_S1) {
            return Result.err(Errno.EIO);
        }
        if (Ste.EATS.get(ste[1]) > 1) {
            return Result.err(Errno.EIO);
        }
        return Result.ok(ste.clone());
    }
}
