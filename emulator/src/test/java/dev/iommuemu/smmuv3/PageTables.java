package dev.iommuemu.smmuv3;

import dev.iommuemu.memory.SparseGuestMemory;

/**
 * Builds VMSAv8-64 4KB-granule translation tables in guest memory the way a guest kernel does
 * (Arm ARM D8.3 descriptor formats), for SMMUv3 tests and guest drivers.
 */
public final class PageTables {
    public static final long VALID_TABLE = 0b11;
    public static final long PAGE = 0b11;
    public static final long BLOCK = 0b01;
    public static final long AF = 1L << 10;
    public static final long NG = 1L << 11;
    public static final long SH_INNER = 0b11L << 8;
    /** Stage 1 AP[2:1] (bits [7:6]): 0b01 read/write at any privilege. */
    public static final long S1_AP_RW_ALL = 0b01L << 6;
    /** Stage 1 AP[2:1]: 0b11 read-only at any privilege. */
    public static final long S1_AP_RO_ALL = 0b11L << 6;
    /** Stage 1 AP[2:1]: 0b00 read/write privileged only. */
    public static final long S1_AP_RW_PRIV = 0b00L << 6;
    public static final long PXN = 1L << 53;
    public static final long UXN = 1L << 54;
    /** Stage 2 S2AP (bits [7:6]). */
    public static final long S2AP_R = 0b01L << 6;
    public static final long S2AP_W = 0b10L << 6;
    public static final long S2AP_RW = 0b11L << 6;
    /** Stage 2 MemAttr[3:0] = Normal write-back (bits [5:2]). */
    public static final long S2_MEMATTR_WB = 0b1111L << 2;
    /**
     * Stage 1 leaf attributes for a read/write page usable by any privilege, not global (nG), as
     * Linux's io-pgtable writes stage 1 leaves: the entry is tagged with the CD's ASID.
     */
    public static final long S1_RW = AF | SH_INNER | S1_AP_RW_ALL | NG;
    /** Stage 2 leaf attributes for a read/write page. */
    public static final long S2_RW = AF | SH_INNER | S2AP_RW | S2_MEMATTR_WB;

    private final SparseGuestMemory mem;
    private long next;

    /** Tables are allocated upward from {@code allocBase} (4KB aligned). */
    public PageTables(SparseGuestMemory mem, long allocBase) {
        this.mem = mem;
        this.next = allocBase;
    }

    /** A fresh zeroed 4KB table. */
    public long newTable() {
        long t = next;
        next += 4096;
        for (int i = 0; i < 512; i++) {
            mem.put64(t + i * 8L, 0);
        }
        return t;
    }

    /**
     * Maps the 4KB page at {@code va} to {@code pa} with {@code attrs} under {@code root}, whose
     * table resolves level {@code startLevel}; returns the leaf descriptor's address.
     */
    public long map(long root, int startLevel, long va, long pa, long attrs) {
        return map(root, startLevel, va, pa, attrs, 3);
    }

    /** Maps a block or page whose leaf is at {@code leafLevel} (1: 1GB, 2: 2MB, 3: 4KB). */
    public long map(long root, int startLevel, long va, long pa, long attrs, int leafLevel) {
        long table = root;
        for (int level = startLevel; level < leafLevel; level++) {
            long slot = table + index(va, level) * 8;
            long d = mem.get64(slot);
            if ((d & 1) == 0) {
                long t = newTable();
                mem.put64(slot, t | VALID_TABLE);
                table = t;
            } else {
                table = d & 0x0000_ffff_ffff_f000L;
            }
        }
        long slot = table + index(va, leafLevel) * 8;
        mem.put64(slot, pa | attrs | (leafLevel == 3 ? PAGE : BLOCK));
        return slot;
    }

    /** The address of the leaf descriptor of {@code va}, or -1 when a table is missing. */
    public long leaf(long root, int startLevel, long va, int leafLevel) {
        long table = root;
        for (int level = startLevel; level < leafLevel; level++) {
            long d = mem.get64(table + index(va, level) * 8);
            if ((d & 1) == 0) {
                return -1;
            }
            table = d & 0x0000_ffff_ffff_f000L;
        }
        return table + index(va, leafLevel) * 8;
    }

    private static long index(long va, int level) {
        return (va >>> (12 + 9 * (3 - level))) & 511;
    }
}
