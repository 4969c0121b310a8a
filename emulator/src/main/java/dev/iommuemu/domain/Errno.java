package dev.iommuemu.domain;

/**
 * The Linux errno values the iommu core and iommufd return (include/uapi/asm-generic/errno-base.h,
 * errno.h), as values: caller input never raises an exception. The attach contract
 * (include/linux/iommu.h, iommu_attach_device / attach_dev): {@link #EINVAL} this domain is
 * incompatible with this device (try another, then a fresh one); {@link #ENOMEM}/{@link #ENOSPC}
 * resources; {@link #EBUSY} cannot change now; {@link #ENODEV} this device can attach nowhere.
 */
public enum Errno {
    EPERM(1),
    ENOENT(2),
    EIO(5),
    ENOMEM(12),
    EBUSY(16),
    EEXIST(17),
    ENODEV(19),
    EINVAL(22),
    ENOSPC(28),
    EOPNOTSUPP(95);

    /** The positive errno number (the ioctl returns its negation). */
    public final int code;

    Errno(int code) {
        this.code = code;
    }
}
