package dev.iommuemu.iommufd;

/**
 * One entry of a vEVENT queue: struct iommufd_vevent_header {flags, sequence} followed by struct
 * iommu_vevent_arm_smmuv3 {evt[4]}, the event record (IHI 0070 §7.3) with the StreamID already
 * the guest's virtual one. A header with {@link #LOST_EVENTS} and no record says events were
 * dropped because the queue was full; {@code sequence} is then the first lost one's.
 */
public record Vevent(int flags, int sequence, long[] evt) {
    /** IOMMU_VEVENTQ_FLAG_LOST_EVENTS. */
    public static final int LOST_EVENTS = 1;

    public boolean lost() {
        return (flags & LOST_EVENTS) != 0;
    }

    /** Equal when header and record words are (a record's value, not its array's identity). */
    @Override
    public boolean equals(Object o) {
        return o instanceof Vevent v && v.flags == flags && v.sequence == sequence && java.util.Arrays.equals(v.evt, evt);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * flags + sequence) + java.util.Arrays.hashCode(evt);
    }

    @Override
    public String toString() {
        return "Vevent[flags=" + flags + ", sequence=" + sequence + ", evt=" + java.util.Arrays.toString(evt) + "]";
    }
}
