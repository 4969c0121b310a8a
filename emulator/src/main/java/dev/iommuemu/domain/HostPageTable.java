package dev.iommuemu.domain;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.pagetable.Granule;

/**
 * A host-owned VMSAv8-64 translation table with the 4KB granule (Arm ARM D8.3), as the kernel's
 * io-pgtable-arm writes them for an SMMUv3 domain: stage 1 (a CD's TTB0, 48-bit input) or stage 2
 * (an STE's S2TTB, input of the SMMU's OAS up to 48 bits, starting at level 0). Pages are 4KB;
 * the prot bits are include/linux/iommu.h's IOMMU_READ / IOMMU_WRITE.
 *
 * <p>This is main-code's own table writer; the tests check it against the independent
 * {@code PageTableBuilder}/{@code ReferenceWalker} oracle through the emulated SMMU.
 */
public final class HostPageTable {
    /** include/linux/iommu.h IOMMU_READ. */
    public static final int IOMMU_READ = 1;
    /** include/linux/iommu.h IOMMU_WRITE. */
    public static final int IOMMU_WRITE = 2;

    public enum Format {
        STAGE1,
        STAGE2,
        /** Stage 2 under an STE with S2FWB = 1 (IHI 0070 §5.2): leaves use the FWB MemAttr encoding. */
        STAGE2_FWB
    }

    private static final long PAGE = 4096;
    /** Most bytes one map or unmap call covers (bounds the work a caller can ask for). */
    public static final long MAX_CALL = 1L << 30;
    /** Stage 2 MemAttr 0b1111: Normal, inner/outer Write-Back (Arm ARM Table D8-96, FWB off). */
    private static final long S2_MEMATTR_WB = 0b1111;
    /**
     * Stage 2 MemAttr 0b0110 with S2FWB: Normal Write-Back whatever stage 1 says (Arm ARM Table
     * D8-101), what Linux's io-pgtable writes for a nest parent on an SMMU with FWB.
     */
    private static final long S2_MEMATTR_FWB_WB = 0b0110;
    private static final long SH_INNER = 0b11;

    private final GuestMemory mem;
    private final HostAllocator alloc;
    private final Format format;
    private final int inputBits;
    private final long root;

    private HostPageTable(GuestMemory mem, HostAllocator alloc, Format format, int inputBits, long root) {
        this.mem = mem;
        this.alloc = alloc;
        this.format = format;
        this.inputBits = inputBits;
        this.root = root;
    }

    /** A new empty table ({@link Errno#ENOMEM} when the host carve-out is exhausted). */
    public static Result<HostPageTable> create(GuestMemory mem, HostAllocator alloc, Format format, int inputBits) {
        long root = alloc.allocate(PAGE, PAGE);
        if (root < 0) {
            return Result.err(Errno.ENOMEM);
        }
        return Result.ok(new HostPageTable(mem, alloc, format, inputBits, root));
    }

    public Format format() {
        return format;
    }

    /** The table base (TTB0 or S2TTB). */
    public long root() {
        return root;
    }

    /** Input address size in bits: 64 - TxSZ. */
    public int inputBits() {
        return inputBits;
    }

    /** 4KB granule: level 0 resolves bits up to 47 (Arm ARM D8.2.7); every table starts at level 0. */
    public int startLevel() {
        return 0;
    }

    /**
     * Maps {@code [iova, iova + size)} to {@code [pa, ...)} with 4KB pages. {@link Errno#EINVAL}
     * for an unaligned or out-of-range range, more than {@link #MAX_CALL} bytes, or no permission, {@link Errno#EEXIST} over an existing
     * mapping (nothing is changed then), {@link Errno#ENOMEM} when a table cannot be allocated.
     */
    public Errno map(long iova, long pa, long size, int prot) {
        if (((iova | pa | size) & (PAGE - 1)) != 0 || size <= 0 || size > MAX_CALL
                || (prot & (IOMMU_READ | IOMMU_WRITE)) == 0) {
            return Errno.EINVAL;
        }
        if (Long.compareUnsigned(iova + size - 1, (1L << inputBits) - 1) > 0 || (pa + size - 1) >>> 48 != 0) {
            return Errno.EINVAL;
        }
        for (long off = 0; off < size; off += PAGE) {
            if (leafSlot(iova + off, false) > 0 && mem.load(leafSlot(iova + off, false), 8).orElse(0) != 0) {
                return Errno.EEXIST;
            }
        }
        for (long off = 0; off < size; off += PAGE) {
            long slot = leafSlot(iova + off, true);
            if (slot < 0) {
                return Errno.ENOMEM;
            }
            mem.store(slot, 8, leaf(pa + off, prot));
        }
        return null;
    }

    /**
     * Unmaps the 4KB pages of {@code [iova, iova + size)} (at most {@link #MAX_CALL} bytes per
     * call); returns how many bytes were mapped.
     */
    public long unmap(long iova, long size) {
        long done = 0;
        for (long off = 0; Long.compareUnsigned(off, Math.min(size, MAX_CALL)) < 0; off += PAGE) {
            long slot = leafSlot(iova + off, false);
            if (slot > 0 && mem.load(slot, 8).orElse(0) != 0) {
                mem.store(slot, 8, 0);
                done += PAGE;
            }
        }
        return done;
    }

    /** One run of pages mapped contiguously with the same permission: what {@link #map} calls recreate it. */
    public record Run(long iova, long pa, long size, int prot) {}

    /**
     * Every mapping in the table as maximal runs, in IOVA order (for saved state: the host
     * page table is rebuilt from them, docs/device-state-virtio.md). Walks only the tables that
     * exist (Arm ARM D8.2: a table descriptor per 9 bits of VA at levels 0-2, pages at level 3).
     */
    public java.util.List<Run> runs() {
        java.util.List<Run> out = new java.util.ArrayList<>();
        collect(root, 0, 0, out);
        return out;
    }

    private void collect(long table, int level, long vaBase, java.util.List<Run> out) {
        Granule g = Granule.G4K;
        int entries = 1 << g.stride();
        for (int i = 0; i < entries; i++) {
            long va = vaBase | ((long) i << g.levelShift(level));
            long d = mem.load(table + 8L * i, 8).orElse(0);
            if (!Descriptor.VALID.isSet(d)) {
                continue;
            }
            if (level < 3) {
                collect(Descriptor.ADDR_48.inPlace(d), level + 1, va, out);
                continue;
            }
            long pa = Descriptor.ADDR_48.inPlace(d);
            int prot = protOf(d);
            Run last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (last != null && last.prot() == prot && last.iova() + last.size() == va && last.pa() + last.size() == pa
                    && last.size() < MAX_CALL) {
                out.set(out.size() - 1, new Run(last.iova(), last.pa(), last.size() + PAGE, prot));
            } else {
                out.add(new Run(va, pa, PAGE, prot));
            }
        }
    }

    /** The IOMMU_READ/IOMMU_WRITE a leaf written by {@link #leaf} grants. */
    private int protOf(long d) {
        if (format == Format.STAGE1) {
            return IOMMU_READ | (Descriptor.AP_RO.isSet(d) ? 0 : IOMMU_WRITE);
        }
        return (Descriptor.S2AP_R.isSet(d) ? IOMMU_READ : 0) | (Descriptor.S2AP_W.isSet(d) ? IOMMU_WRITE : 0);
    }

    /** The level 3 descriptor slot of {@code va}, creating tables when asked; -1 (absent / ENOMEM). */
    private long leafSlot(long va, boolean create) {
        long table = root;
        for (int level = 0; level < 3; level++) {
            long slot = slot(table, va, level);
            long d = mem.load(slot, 8).orElse(0);
            if (!Descriptor.VALID.isSet(d)) {
                if (!create) {
                    return -1;
                }
                long t = alloc.allocate(PAGE, PAGE);
                if (t < 0) {
                    return -1;
                }
                d = Descriptor.VALID.prep(1) | Descriptor.TABLE_OR_PAGE.prep(1) | Descriptor.ADDR_48.prep(t >>> 12);
                mem.store(slot, 8, d);
            }
            table = Descriptor.ADDR_48.inPlace(d);
        }
        return slot(table, va, 3);
    }

    /** The descriptor of {@code va} at {@code level} in a 4K-granule table (Arm ARM D8.2: 9 bits a level). */
    private static long slot(long table, long va, int level) {
        Granule g = Granule.G4K;
        return table + (((va >>> g.levelShift(level)) & ((1L << g.stride()) - 1)) << 3);
    }

    private long leaf(long pa, int prot) {
        long d = Descriptor.VALID.prep(1) | Descriptor.TABLE_OR_PAGE.prep(1) | Descriptor.AF.prep(1)
                | Descriptor.SH.prep(SH_INNER) | Descriptor.ADDR_48.prep(pa >>> 12);
        if (format == Format.STAGE1) {
            // AP[1] = 1: usable at EL0 as well (DMA is unprivileged unless PnU); AP[2]: read-only.
            d |= Descriptor.AP_USER.prep(1) | Descriptor.NG.prep(1);
            if ((prot & IOMMU_WRITE) == 0) {
                d |= Descriptor.AP_RO.prep(1);
            }
        } else {
            d |= Descriptor.S2_MEMATTR.prep(format == Format.STAGE2_FWB ? S2_MEMATTR_FWB_WB : S2_MEMATTR_WB);
            if ((prot & IOMMU_READ) != 0) {
                d |= Descriptor.S2AP_R.prep(1);
            }
            if ((prot & IOMMU_WRITE) != 0) {
                d |= Descriptor.S2AP_W.prep(1);
            }
        }
        return d;
    }
}
