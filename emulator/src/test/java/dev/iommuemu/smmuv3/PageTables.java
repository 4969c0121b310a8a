package dev.iommuemu.smmuv3;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import java.util.HashMap;
import java.util.Map;

/**
 * 4KB-granule translation tables for SMMUv3 tests, guest drivers and benchmarks, as a guest kernel
 * writes them: trees identified by their root address (what a CD's TTB0 or an STE's S2TTB holds),
 * built by the shared {@link PageTableBuilder}. Also hands out raw zeroed tables for tests that
 * build unusual trees by hand (nested stage 1 tables in IPA space).
 */
public final class PageTables {
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
    /** Stage 2 MemAttr[3:0] = Normal write-back (bits [5:2]). */
    public static final long S2_MEMATTR_WB = 0b1111L << 2;
    /**
     * Stage 1 leaf attributes for a read/write page usable by any privilege, not global (nG), as
     * Linux's io-pgtable writes stage 1 leaves: the entry is tagged with the CD's ASID.
     */
    public static final long S1_RW = AF | SH_INNER | S1_AP_RW_ALL | NG;
    /** Stage 2 leaf attributes for a read/write page. */
    public static final long S2_RW = PageTableBuilder.S2_RW | SH_INNER;

    private final GuestMemory mem;
    private final PageTableBuilder.Bump alloc;
    private final Map<Long, PageTableBuilder> trees = new HashMap<>();

    /** Tables are allocated upward from {@code allocBase} (fresh, zero memory; 240 MiB available). */
    public PageTables(GuestMemory mem, long allocBase) {
        this.mem = mem;
        this.alloc = new PageTableBuilder.Bump(allocBase, 0x0f00_0000L);
    }

    /** A stage 1 tree: 48-bit VA (T0SZ 16, start level 0), 48-bit output; returns its TTB0. */
    public long s1Root() {
        return register(PageTableBuilder.stage1(mem, alloc, Granule.G4K, 16, 48, 48));
    }

    /** A stage 2 tree for S2T0SZ {@code t0sz} starting at {@code startLevel}; returns its S2TTB. */
    public long s2Root(int t0sz, int startLevel) {
        return register(PageTableBuilder.stage2(mem, alloc, Granule.G4K, t0sz, startLevel, 48, 48));
    }

    private long register(PageTableBuilder b) {
        long root = b.ttb();
        trees.put(root, b);
        return root;
    }

    /** A raw zeroed 4KB table, for trees built by hand. */
    public long newTable() {
        return alloc.allocate(4096, 4096);
    }

    /** Maps the 4KB page at {@code va} to {@code pa} in the tree at {@code root}; returns the leaf's address. */
    public long map(long root, long va, long pa, long attrs) {
        return map(root, va, pa, attrs, 3);
    }

    /** Maps a block or page whose leaf is at {@code leafLevel} (1: 1GB, 2: 2MB, 3: 4KB). */
    public long map(long root, long va, long pa, long attrs, int leafLevel) {
        return tree(root).map(va, pa, leafLevel, attrs);
    }

    /** The address of the leaf descriptor slot of {@code va} at {@code leafLevel}. */
    public long leaf(long root, long va, int leafLevel) {
        return tree(root).slot(va, leafLevel);
    }

    private PageTableBuilder tree(long root) {
        PageTableBuilder b = trees.get(root);
        if (b == null) {
            throw new IllegalStateException("no tree at 0x" + Long.toHexString(root));
        }
        return b;
    }
}
