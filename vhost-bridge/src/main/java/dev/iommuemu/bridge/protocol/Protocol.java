package dev.iommuemu.bridge.protocol;

/** Protocol-wide numbers of docs/protocol.md. */
public final class Protocol {
    private Protocol() {}

    /** Version of docs/protocol.md this code implements (reported by IOMMU_GET_INFO). */
    public static final int VERSION = 14;

    /** First request number of the IOMMU range, front-end and back-end channels alike. */
    public static final int IOMMU_BASE = 1024;

    /** VHOST_USER_F_PROTOCOL_FEATURES: the virtio feature bit that enables protocol features. */
    public static final int F_PROTOCOL_FEATURES = 30;

    // VHOST_USER_PROTOCOL_F_* (docs/interop/vhost-user.rst "Protocol features")
    public static final int PF_MQ = 0;
    public static final int PF_REPLY_ACK = 3;
    public static final int PF_BACKEND_REQ = 5;
    public static final int PF_CONFIG = 9;
    public static final int PF_RESET_DEVICE = 13;
    public static final int PF_CONFIGURE_MEM_SLOTS = 15;
    /** iommu-emu: the IOMMU request range of docs/protocol.md §4 (a bit vhost-user leaves unassigned). */
    public static final int PF_IOMMU = 48;

    /** The protocol features this back-end offers. */
    public static final long PROTOCOL_FEATURES = (1L << PF_MQ) | (1L << PF_REPLY_ACK) | (1L << PF_BACKEND_REQ)
            | (1L << PF_CONFIG) | (1L << PF_RESET_DEVICE) | (1L << PF_CONFIGURE_MEM_SLOTS) | (1L << PF_IOMMU);

    /** Memory slots (GET_MAX_MEM_SLOTS); SET_MEM_TABLE itself carries at most 8. */
    public static final int MAX_MEM_SLOTS = 32;

    /** Models (IOMMU_GET_INFO / IOMMU_SET_MODEL). */
    public static final int MODEL_SMMUV3 = 1;
    public static final int MODEL_VIRTIO_IOMMU = 2;
}
