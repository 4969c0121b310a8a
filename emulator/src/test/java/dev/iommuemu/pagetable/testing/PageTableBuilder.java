package dev.iommuemu.pagetable.testing;

import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.pagetable.Stage2Config;
import java.util.function.LongUnaryOperator;

/**
 * Builds VMSAv8-64 translation tables (Arm ARM D8.3 descriptor formats) in guest memory, for
 * tests and benchmarks of anything that walks them.
 *
 * <p>One builder owns one table tree: a stage 1 TTBx range (covering {@code 2^(64 - TxSZ)}
 * bytes, start level from TxSZ and the granule, Arm ARM D8.2) or a stage 2 tree (start level
 * from S2SL0, with 2 to 16 concatenated start tables where S2T0SZ asks for them, IHI 0070 §5.2).
 * Tables come from a {@link Bump} allocator that several builders may share (its range must read
 * as zeros, as fresh {@code SparseGuestMemory} does: tables are not cleared); they are written
 * through {@link #tableWriter} so that nested stage 1 tables (which live at IPAs) can be placed
 * at the physical addresses stage 2 maps them to.
 *
 * <pre>{@code
 * var mem = new SparseGuestMemory(1L << 32);
 * var tables = new PageTableBuilder.Bump(0x1000_0000L, 0x1000_0000L);
 * var b = PageTableBuilder.stage1(mem, tables, Granule.G4K, 16, 48, 48);
 * b.map(0x4000_0000L, 0x8000_0000L, 2, PageTableBuilder.S1_RW);     // 2 MiB block
 * b.map(0x1000L, 0x9000L, 3, PageTableBuilder.S1_RW | PageTableBuilder.S1_USER);
 * WalkResult r = new Walker(mem, 48).stage1(b.stage1Config(), 0x4000_1234L, DmaAccess.READ);
 * }</pre>
 *
 * <p>Nested: give the stage 1 builder an allocator over IPAs and a {@link #tableWriter} that
 * turns them into PAs, and map that IPA window in stage 2:
 *
 * <pre>{@code
 * var s2 = PageTableBuilder.stage2(mem, new Bump(0x2000_0000L, 1 << 24), Granule.G4K, 24, 1, 40, 48); // S2SL0 = 1
 * var s1 = PageTableBuilder.stage1(mem, new Bump(0x4000_0000L, 1 << 21), Granule.G4K, 16, 40, 48)
 *         .tableWriter(ipa -> ipa - 0x4000_0000L + 0x1000_0000L);
 * for (long off = 0; off < (1 << 21); off += 0x1000) s2.map(0x4000_0000L + off, 0x1000_0000L + off, 3, PageTableBuilder.S2_RW);
 * s1.map(va, ipa, 3, PageTableBuilder.S1_RW);
 * s2.map(ipa, pa, 3, PageTableBuilder.S2_RW);
 * walker.nested(s1.stage1Config(), s2.stage2Config(), va, DmaAccess.READ);
 * }</pre>
 *
 * <p>Other configuration bits (HTTU, WXN, PAN, TBI, TTB1, EL2, XNX, S2PTW) are set on the returned
 * records with their {@code with...} methods; {@link #region()} supplies a TTB1 range. Options
 * ({@link #ds}, {@link #bigEndian}, {@link #tableWriter}) must be set before the first
 * {@code map}. The builder does not check that a block is legal at its level, so tests can build
 * illegal tables; programming errors of the test (a table wanted where a leaf is, a table outside
 * memory, an exhausted allocator) throw {@link IllegalStateException}.
 */
public final class PageTableBuilder {
    /** Stage 1 leaf attributes: AF set, privileged read/write, executable (AP = 0b00, Arm ARM D8.4.1). */
    public static final long S1_RW = Descriptor.AF.prep(1);
    /** Stage 1 AP[1]: unprivileged access permitted. */
    public static final long S1_USER = Descriptor.AP_USER.prep(1);
    /** Stage 1 AP[2]: read-only. */
    public static final long S1_RO = Descriptor.AP_RO.prep(1);
    /** Stage 1 PXN and UXN. */
    public static final long S1_XN = Descriptor.PXN.prep(1) | Descriptor.UXN.prep(1);
    /** Stage 2 leaf attributes: AF set, S2AP = 0b11 (read/write), MemAttr Normal WB (0b1111), executable. */
    public static final long S2_RW = Descriptor.AF.prep(1) | Descriptor.S2AP_R.prep(1) | Descriptor.S2AP_W.prep(1)
            | Descriptor.S2_MEMATTR.prep(0b1111);
    /** Stage 2 MemAttr = Device-nGnRE (0b0001): MemAttr[3:2] == 0 is Device (Arm ARM D8.5.5). */
    public static final long S2_DEVICE = Descriptor.S2_MEMATTR.prep(0b0001);
    /** The type bits of a table (levels 0-2) or page (level 3) descriptor. */
    public static final long TYPE_TABLE_OR_PAGE = 0b11;
    /** The type bits of a block descriptor. */
    public static final long TYPE_BLOCK = 0b01;

    /** A bump allocator of naturally aligned tables in {@code [base, base + size)}; may be shared. */
    public static final class Bump {
        private long next;
        private final long end;

        public Bump(long base, long size) {
            this.next = base;
            this.end = base + size;
        }

        /** {@code bytes} (a power of two) aligned to {@code align}; throws when exhausted. */
        public long allocate(long bytes, long align) {
            long a = (next + align - 1) & -align;
            if (Long.compareUnsigned(a + bytes, end) > 0 || Long.compareUnsigned(a, next) < 0) {
                throw new IllegalStateException("table allocator exhausted");
            }
            next = a + bytes;
            return a;
        }
    }

    private final GuestMemory mem;
    private final Bump alloc;
    private final boolean stage2;
    private final Granule granule;
    private final int tsz;
    private final int startLevel;
    private final int outBits;
    private final int oasBits;
    private boolean ds;
    private boolean bigEndian;
    private LongUnaryOperator writer = LongUnaryOperator.identity();
    private long root;
    private boolean rootAllocated;

    private PageTableBuilder(GuestMemory mem, Bump alloc, boolean stage2, Granule g, int tsz, int startLevel,
            int outBits, int oasBits) {
        this.mem = mem;
        this.alloc = alloc;
        this.stage2 = stage2;
        this.granule = g;
        this.tsz = tsz;
        this.startLevel = startLevel;
        this.outBits = outBits;
        this.oasBits = oasBits;
    }

    /**
     * A stage 1 TTBx range of {@code 2^(64 - tsz)} bytes.
     *
     * @param ipsBits the CD's IPS in bits (output size of this stage)
     * @param oasBits the SMMU's OAS (SMMU_IDR5.OAS): 52 selects the 64K 52-bit descriptor format
     */
    public static PageTableBuilder stage1(GuestMemory mem, Bump alloc, Granule g, int tsz, int ipsBits, int oasBits) {
        int ia = 64 - tsz;
        int levels = (ia - g.pageShift() + g.stride() - 1) / g.stride();
        return new PageTableBuilder(mem, alloc, false, g, tsz, 4 - levels, ipsBits, oasBits);
    }

    /**
     * A stage 2 tree for an IPA range of {@code 2^(64 - t0sz)} bytes starting at
     * {@code startLevel} (as {@link Stage2Config#startLevel} decodes S2SL0); the start table is
     * concatenated when the range needs more than one table at that level.
     */
    public static PageTableBuilder stage2(GuestMemory mem, Bump alloc, Granule g, int t0sz, int startLevel, int psBits,
            int oasBits) {
        return new PageTableBuilder(mem, alloc, true, g, t0sz, startLevel, psBits, oasBits);
    }

    /** 52-bit descriptors for 4K/16K granules (CD.DS / STE.S2DS, FEAT_LPA2 layout). */
    public PageTableBuilder ds(boolean on) {
        requireUnbuilt();
        this.ds = on;
        return this;
    }

    /** Store descriptors big-endian (CD.ENDI / STE.S2ENDI). */
    public PageTableBuilder bigEndian(boolean on) {
        requireUnbuilt();
        this.bigEndian = on;
        return this;
    }

    /**
     * Where a table address (as descriptors and the TTB hold it) is written in {@link #memory}:
     * identity by default; for nested stage 1 tables, the stage 2 translation of the IPA.
     */
    public PageTableBuilder tableWriter(LongUnaryOperator tableAddressToPhysical) {
        requireUnbuilt();
        this.writer = tableAddressToPhysical;
        return this;
    }

    public GuestMemory memory() {
        return mem;
    }

    public Granule granule() {
        return granule;
    }

    public int startLevel() {
        return startLevel;
    }

    /** Input address bits resolved by the start table (more than a stride for concatenated tables). */
    public int startBits() {
        return 64 - tsz - granule.levelShift(startLevel);
    }

    /** The start table's address (TTBx / S2TTB), allocated on first use. */
    public long ttb() {
        if (!rootAllocated) {
            long bytes = 8L << startBits();
            // IHI 0070 §5.4 CD.TTB0: 64-byte minimum alignment with a 52-bit effective IPS.
            long align = Math.max(bytes, outBits >= 52 ? 64 : 8);
            root = alloc.allocate(bytes, align);
            rootAllocated = true;
        }
        return root;
    }

    /** The stage 1 region (TTBx with TxSZ and TGx, walks enabled) for {@link Stage1Config}. */
    public Stage1Config.Region region() {
        return new Stage1Config.Region(ttb(), tsz, granule, false);
    }

    /** A stage 1 configuration with this tree as TTB0 (TTB1 disabled), with this builder's IPS, DS and endianness. */
    public Stage1Config stage1Config() {
        requireStage(false);
        return Stage1Config.simple(ttb(), tsz, granule, outBits).withDs(ds).withBigEndian(bigEndian);
    }

    /** The stage 2 configuration of this tree, with this builder's PS, DS and endianness. */
    public Stage2Config stage2Config() {
        requireStage(true);
        return Stage2Config.simple(ttb(), tsz, startLevel, granule, outBits).withDs(ds).withBigEndian(bigEndian);
    }

    /**
     * Maps the {@code level} leaf holding {@code va} to {@code pa} (both aligned down to the leaf
     * size): a block at levels below 3, a page at level 3. {@code attrs} are the leaf's attribute
     * bits (e.g. {@link #S1_RW}, {@link #S2_RW}); the builder supplies the type and address bits.
     * Does not check that a block is legal at {@code level}, so tests can build illegal ones.
     *
     * @return the leaf descriptor's physical address
     */
    public long map(long va, long pa, int level, long attrs) {
        long d = leaf(pa, level, attrs);
        long slot = slot(va, level);
        write(slot, d);
        return slot;
    }

    /** Maps {@code size} bytes (a block or page size of this granule) at {@code va} to {@code pa}. */
    public long mapSize(long va, long pa, long size, long attrs) {
        for (int l = startLevel; l <= 3; l++) {
            if ((1L << granule.levelShift(l)) == size) {
                return map(va, pa, l, attrs);
            }
        }
        throw new IllegalStateException("no leaf of 0x" + Long.toHexString(size) + " bytes for " + granule);
    }

    /**
     * Maps the whole contiguous run holding {@code va} (Arm ARM D8.6.1: 16/32/128 entries by
     * granule and level, {@link Granule#contiguousEntries}) with the Contiguous bit set.
     */
    public void mapContiguous(long va, long pa, int level, long attrs) {
        int n = granule.contiguousEntries(level);
        int shift = granule.levelShift(level);
        long span = (long) n << shift;
        long va0 = va & -span;
        long pa0 = pa & -span;
        for (int i = 0; i < n; i++) {
            map(va0 + ((long) i << shift), pa0 + ((long) i << shift), level, attrs | Descriptor.CONTIGUOUS.prep(1));
        }
    }

    /** Writes a raw descriptor value (any bits) into the {@code level} slot for {@code va}. */
    public long setDescriptor(long va, int level, long value) {
        long slot = slot(va, level);
        write(slot, value);
        return slot;
    }

    /** Sets extra bits (APTable, PXNTable/UXNTable) in the table descriptor at {@code level} on the path of {@code va}. */
    public long tableAttributes(long va, int level, long bits) {
        if (level >= 3) {
            throw new IllegalStateException("no table descriptor at level 3");
        }
        long slot = slot(va, level);
        long d = read(slot);
        if ((d & 0b11) != TYPE_TABLE_OR_PAGE) {
            slot(va, level + 1); // creates the table below
            d = read(slot);
        }
        write(slot, d | bits);
        return slot;
    }

    /** The descriptor's value (as the walker sees it, after any byte swap) at {@code level} for {@code va}. */
    public long descriptor(long va, int level) {
        return read(slot(va, level));
    }

    /**
     * The table address (as a descriptor or TTB holds it) of the {@code level} descriptor for
     * {@code va}, creating the tables on the way; {@link #tableWriter} gives its physical address.
     */
    public long slot(long va, int level) {
        if (level < startLevel || level > 3) {
            throw new IllegalStateException("level " + level + " outside " + startLevel + "..3");
        }
        long table = ttb();
        for (int l = startLevel; ; l++) {
            int bits = l == startLevel ? startBits() : granule.stride();
            long slot = table + (((va >>> granule.levelShift(l)) & ((1L << bits) - 1)) << 3);
            if (l == level) {
                return slot;
            }
            long d = read(slot);
            if ((d & 1) == 0) {
                long next = alloc.allocate(granule.pageSize(), granule.pageSize());
                d = Descriptor.withAddress(TYPE_TABLE_OR_PAGE, next, granule, dsFormat(), lpaFormat());
                write(slot, d);
            } else if ((d & 0b11) != TYPE_TABLE_OR_PAGE) {
                throw new IllegalStateException("level " + l + " holds a leaf on the path of 0x" + Long.toHexString(va));
            }
            table = Descriptor.address(d, granule, dsFormat(), lpaFormat(), granule.pageShift());
        }
    }

    /** The leaf descriptor value this builder would write for {@code pa} at {@code level}. */
    public long leaf(long pa, int level, long attrs) {
        long type = level == 3 ? TYPE_TABLE_OR_PAGE : TYPE_BLOCK;
        long aligned = pa & -(1L << granule.levelShift(level));
        return Descriptor.withAddress((attrs & ~0b11L) | type, aligned, granule, dsFormat(), lpaFormat());
    }

    private boolean dsFormat() {
        return ds && granule != Granule.G64K;
    }

    private boolean lpaFormat() {
        // IHI 0070 §5.4 CD.IPS / Arm ARM AArch64.NextTableBase: with a 52-bit OAS the 64K
        // descriptor holds OA[51:48] in bits [15:12].
        return oasBits >= 52 && granule == Granule.G64K;
    }

    private long read(long tableAddr) {
        long pa = writer.applyAsLong(tableAddr);
        long v = mem.load(pa, 8).orElseThrow(() -> new IllegalStateException("table outside memory: 0x" + Long.toHexString(pa)));
        return bigEndian ? Long.reverseBytes(v) : v;
    }

    private void write(long tableAddr, long value) {
        long pa = writer.applyAsLong(tableAddr);
        if (!mem.store(pa, 8, bigEndian ? Long.reverseBytes(value) : value)) {
            throw new IllegalStateException("table outside memory: 0x" + Long.toHexString(pa));
        }
    }

    private void requireUnbuilt() {
        if (rootAllocated) {
            throw new IllegalStateException("set options before the first map");
        }
    }

    private void requireStage(boolean s2) {
        if (stage2 != s2) {
            throw new IllegalStateException(stage2 ? "a stage 2 builder" : "a stage 1 builder");
        }
    }
}
