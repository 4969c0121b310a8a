package dev.iommuemu.virtio.iommu;

/** Request status codes, written to {@code virtio_iommu_req_tail.status} (virtio spec, IOMMU device, "Device operations"). */
public final class Status {
    public static final int OK = 0;
    public static final int IOERR = 1;
    public static final int UNSUPP = 2;
    public static final int DEVERR = 3;
    public static final int INVAL = 4;
    public static final int RANGE = 5;
    public static final int NOENT = 6;
    public static final int FAULT = 7;
    public static final int NOMEM = 8;

    private static final String[] NAMES = {"OK", "IOERR", "UNSUPP", "DEVERR", "INVAL", "RANGE", "NOENT", "FAULT", "NOMEM"};

    private Status() {}

    public static String name(int status) {
        return status >= 0 && status < NAMES.length ? NAMES[status] : "S_" + status;
    }

    /** Number of defined codes (for counter arrays). */
    public static int count() {
        return NAMES.length;
    }
}
