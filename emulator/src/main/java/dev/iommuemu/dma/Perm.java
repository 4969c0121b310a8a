package dev.iommuemu.dma;

/**
 * The permissions a cached translation grants, per privilege and access kind, as bits. Mirrors
 * what both stages of VMSAv8-64 can express (Arm ARM D8.4 access permissions, execute-never) and
 * what QEMU's IOMMUTLBEntry.perm (IOMMU_RO/WO/RW) flattens.
 */
public final class Perm {
    public static final int UR = 1; // unprivileged read
    public static final int UW = 1 << 1; // unprivileged write
    public static final int UX = 1 << 2; // unprivileged execute
    public static final int PR = 1 << 3; // privileged read
    public static final int PW = 1 << 4; // privileged write
    public static final int PX = 1 << 5; // privileged execute
    public static final int ALL = UR | UW | UX | PR | PW | PX;
    public static final int NONE = 0;

    private Perm() {}

    /**
     * Whether the bits grant {@code access}. An instruction fetch needs execute permission only
     * (Arm ARM AArch64 permission checks: for an instruction fetch only execute-never is
     * checked; execute-only memory is legal at EL0 and at stage 2).
     */
    public static boolean allows(int perm, DmaAccess access) {
        return (perm & required(access)) == required(access);
    }

    /** The bits {@code access} needs. */
    public static int required(DmaAccess access) {
        if (access.privileged()) {
            return access.write() ? PW : access.instruction() ? PX : PR;
        }
        return access.write() ? UW : access.instruction() ? UX : UR;
    }

    public static String toString(int perm) {
        StringBuilder sb = new StringBuilder();
        sb.append((perm & PR) != 0 ? 'r' : '-').append((perm & PW) != 0 ? 'w' : '-').append((perm & PX) != 0 ? 'x' : '-');
        sb.append('/');
        sb.append((perm & UR) != 0 ? 'r' : '-').append((perm & UW) != 0 ? 'w' : '-').append((perm & UX) != 0 ? 'x' : '-');
        return sb.toString();
    }
}
