package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * Hardware updates of the Access flag and dirty state (IHI 0070 §3.13; Arm ARM D8.4.x hardware
 * management): AF set and DBM pages made writable by an atomic compare-and-swap of the
 * descriptor, never when the access faults for another reason, retried when the guest changes
 * the descriptor concurrently; and big-endian tables.
 */
class HttuVectorsTest {
    private static final long VA = 0x40_1234_5000L;
    private static final long PA = 0x8000_0000L;
    private static final long AF = Descriptor.AF.mask();
    private static final long AP2 = Descriptor.AP_RO.mask();
    private static final long DBM = Descriptor.DBM.mask();

    private final SparseGuestMemory mem = new SparseGuestMemory(1L << 32);
    private final PageTableBuilder s1 = PageTableBuilder.stage1(mem, new PageTableBuilder.Bump(0x100_0000L, 0x100_0000L),
            Granule.G4K, 25, 40, 48);
    private final PageTableBuilder s2 = PageTableBuilder.stage2(mem, new PageTableBuilder.Bump(0x300_0000L, 0x100_0000L),
            Granule.G4K, 24, 1, 40, 48);

    private WalkResult walk1(GuestMemory m, Stage1Config c, DmaAccess acc) {
        return new Walker(m, 48).stage1(c, VA + 0x10, acc);
    }

    @Test
    void accessFlagIsSetWithHaAndFaultsWithout() {
        long leaf = s1.map(VA, PA, 3, PageTableBuilder.S1_RW & ~AF);
        long before = mem.get64(leaf);
        TranslationFault f = assertInstanceOf(TranslationFault.class, walk1(mem, s1.stage1Config(), DmaAccess.PRIV_READ));
        assertEquals(FaultType.ACCESS_FLAG, f.type());
        assertEquals(3, f.level());
        assertEquals(leaf, f.descriptorAddress());
        // CD.AFFD: AF is taken as 1, memory unchanged.
        assertInstanceOf(Translation.class, walk1(mem, s1.stage1Config().withFlags(true, false, false), DmaAccess.PRIV_READ));
        assertEquals(before, mem.get64(leaf));
        // CD.HA: the walker sets AF (§3.13.2) and the result carries the updated descriptor.
        Translation t = assertInstanceOf(Translation.class, walk1(mem, s1.stage1Config().withHttu(true, false), DmaAccess.PRIV_READ));
        assertEquals(before | AF, mem.get64(leaf));
        assertEquals(before | AF, t.s1Descriptor());
    }

    /** §3.13.1: an Access fault takes priority over a Permission fault; §3.13.2: no AF update on a Permission fault. */
    @Test
    void accessFlagBeforePermissionAndNoUpdateOnAPermissionFault() {
        long leaf = s1.map(VA, PA, 3, (PageTableBuilder.S1_RW | AP2) & ~AF);
        assertEquals(FaultType.ACCESS_FLAG, assertInstanceOf(TranslationFault.class,
                walk1(mem, s1.stage1Config(), DmaAccess.PRIV_WRITE)).type());
        long before = mem.get64(leaf);
        assertEquals(FaultType.PERMISSION, assertInstanceOf(TranslationFault.class,
                walk1(mem, s1.stage1Config().withHttu(true, false), DmaAccess.PRIV_WRITE)).type());
        assertEquals(before, mem.get64(leaf));
    }

    /** §3.13.3: with HA and HD a write to a DBM page clears AP[2] (and sets AF); a read changes nothing. */
    @Test
    void dirtyStateUpdateOnWrite() {
        long leaf = s1.map(VA, PA, 3, (PageTableBuilder.S1_RW | AP2 | PageTableBuilder.S1_USER | DBM) & ~AF);
        Stage1Config httu = s1.stage1Config().withHttu(true, true);
        long clean = mem.get64(leaf);
        Translation read = assertInstanceOf(Translation.class, walk1(mem, httu, DmaAccess.READ));
        assertEquals(clean | AF, mem.get64(leaf), "a read only sets AF");
        assertEquals(Perm.PR | Perm.UR | Perm.PX | Perm.UX, read.perm());
        assertEquals(Perm.PW | Perm.UW, read.dirtyPerm(), "a write would make it writable");
        Translation write = assertInstanceOf(Translation.class, walk1(mem, httu, DmaAccess.WRITE));
        assertEquals((clean | AF) & ~AP2, mem.get64(leaf));
        assertEquals(Perm.PR | Perm.UR | Perm.PW | Perm.UW | Perm.UX, write.perm(), "writable-dirty, EL0-writable so PXN");
        assertEquals(0, write.dirtyPerm());
        assertEquals((clean | AF) & ~AP2, write.s1Descriptor());
    }

    @Test
    void noDirtyUpdateWithoutHaOrDbmOrWhenSomethingElseForbidsTheWrite() {
        long attrs = PageTableBuilder.S1_RW | AP2 | PageTableBuilder.S1_USER | DBM;
        long leaf = s1.map(VA, PA, 3, attrs);
        long clean = mem.get64(leaf);
        // {HD, HA} = 0b10 behaves as HTTU disabled (IHI 0070 §5.4 CD.HA).
        assertEquals(FaultType.PERMISSION, assertInstanceOf(TranslationFault.class,
                walk1(mem, s1.stage1Config().withHttu(false, true), DmaAccess.WRITE)).type());
        // PAN removes privileged data access to an EL0-accessible page: nothing to make writable.
        assertEquals(FaultType.PERMISSION, assertInstanceOf(TranslationFault.class,
                walk1(mem, s1.stage1Config().withHttu(true, true).withFlags(false, false, true), DmaAccess.PRIV_WRITE)).type());
        assertEquals(clean, mem.get64(leaf));
        // §3.13.3 note: not for a page made read-only by APTable.
        s1.tableAttributes(VA, 2, Descriptor.AP_TABLE_RO.mask());
        TranslationFault f = assertInstanceOf(TranslationFault.class,
                walk1(mem, s1.stage1Config().withHttu(true, true), DmaAccess.WRITE));
        assertEquals(FaultType.PERMISSION, f.type());
        assertEquals(clean, mem.get64(leaf));
        Translation t = assertInstanceOf(Translation.class, walk1(mem, s1.stage1Config().withHttu(true, true), DmaAccess.READ));
        assertEquals(0, t.dirtyPerm());
        // DBM == 0: genuinely read-only.
        mem.put64(leaf, clean & ~DBM);
        s1.setDescriptor(VA, 2, s1.descriptor(VA, 2) & ~Descriptor.AP_TABLE_RO.mask());
        assertEquals(FaultType.PERMISSION, assertInstanceOf(TranslationFault.class,
                walk1(mem, s1.stage1Config().withHttu(true, true), DmaAccess.WRITE)).type());
    }

    /** Stage 2: S2HA sets AF, S2HA+S2HD makes a DBM page writable by setting S2AP[1] (§3.13.3). */
    @Test
    void stage2AccessFlagAndDirtyState() {
        long leaf = s2.map(VA, PA, 3, (PageTableBuilder.S2_RW & ~Descriptor.S2AP_W.mask() & ~AF) | DBM);
        long clean = mem.get64(leaf);
        Walker w = new Walker(mem, 48);
        assertEquals(FaultType.ACCESS_FLAG, assertInstanceOf(TranslationFault.class,
                w.stage2(s2.stage2Config(), VA, DmaAccess.READ)).type());
        assertEquals(FaultType.PERMISSION, assertInstanceOf(TranslationFault.class,
                w.stage2(s2.stage2Config().withAffd(true), VA, DmaAccess.WRITE)).type());
        assertEquals(clean, mem.get64(leaf));
        Translation r = assertInstanceOf(Translation.class, w.stage2(s2.stage2Config().withHttu(true, true), VA, DmaAccess.READ));
        assertEquals(clean | AF, mem.get64(leaf));
        assertEquals(Perm.PW | Perm.UW, r.dirtyPerm());
        Translation t = assertInstanceOf(Translation.class, w.stage2(s2.stage2Config().withHttu(true, true), VA, DmaAccess.WRITE));
        assertEquals(clean | AF | Descriptor.S2AP_W.mask(), mem.get64(leaf));
        assertEquals(Perm.ALL, t.perm());
    }

    /**
     * Walker#speculate (a prefetch, IHI 0070 §4.2.2): where a walk would write AF or the dirty
     * state it faults instead and the descriptor stays as it was, at either stage; where no write
     * is needed it gives the same translation as a walk.
     */
    @Test
    void speculativeWalksNeverWriteDescriptors() {
        Walker w = new Walker(mem, 48);
        long leaf1 = s1.map(VA, PA, 3, (PageTableBuilder.S1_RW | AP2 | PageTableBuilder.S1_USER | DBM) & ~AF);
        long clean1 = mem.get64(leaf1);
        Stage1Config httu1 = s1.stage1Config().withHttu(true, true);
        assertInstanceOf(TranslationFault.class, w.speculate(httu1, null, VA, DmaAccess.READ), "AF would be set");
        assertEquals(clean1, mem.get64(leaf1));
        mem.put64(leaf1, clean1 | AF);
        Translation read = assertInstanceOf(Translation.class, w.speculate(httu1, null, VA + 0x10, DmaAccess.READ));
        assertEquals(PA + 0x10, read.outputAddress());
        assertEquals(assertInstanceOf(Translation.class, w.stage1(httu1, VA + 0x10, DmaAccess.READ)).perm(), read.perm());
        assertInstanceOf(TranslationFault.class, w.speculate(httu1, null, VA, DmaAccess.WRITE), "dirty state would be set");
        assertEquals(clean1 | AF, mem.get64(leaf1));

        long leaf2 = s2.map(VA, PA, 3, (PageTableBuilder.S2_RW & ~Descriptor.S2AP_W.mask() & ~AF) | DBM);
        long clean2 = mem.get64(leaf2);
        Stage2Config httu2 = s2.stage2Config().withHttu(true, true);
        assertInstanceOf(TranslationFault.class, w.speculate(null, httu2, VA, DmaAccess.READ));
        assertEquals(clean2, mem.get64(leaf2));
        mem.put64(leaf2, clean2 | AF);
        assertEquals(PA, assertInstanceOf(Translation.class, w.speculate(null, httu2, VA, DmaAccess.READ)).outputAddress());
        assertInstanceOf(TranslationFault.class, w.speculate(null, httu2, VA, DmaAccess.WRITE));
        assertEquals(clean2 | AF, mem.get64(leaf2));
    }

    /** IHI 0070 §3.13.3: the SMMU never sets S2AP[1] for the stage 2 translation of a CD fetch. */
    @Test
    void noStage2DirtyUpdateForACdFetch() {
        long leaf = s2.map(VA, PA, 3, (PageTableBuilder.S2_RW & ~Descriptor.S2AP_W.mask()) | DBM);
        long clean = mem.get64(leaf);
        Walker w = new Walker(mem, 48);
        Stage2Config httu = s2.stage2Config().withHttu(true, true);
        TranslationFault f = assertInstanceOf(TranslationFault.class,
                w.stage2For(httu, VA, DmaAccess.WRITE, FaultClass.CD, VA));
        assertEquals(FaultType.PERMISSION, f.type());
        assertEquals(FaultClass.CD, f.faultClass());
        assertEquals(clean, mem.get64(leaf));
        assertEquals(0, assertInstanceOf(Translation.class, w.stage2For(httu, VA, DmaAccess.READ, FaultClass.CD, VA)).dirtyPerm());
        // The same page for a stage 1 table walk's update write (CLASS TT) is made writable.
        assertInstanceOf(Translation.class, w.stage2For(httu, VA, DmaAccess.WRITE, FaultClass.TT, VA));
        assertEquals(clean | Descriptor.S2AP_W.mask(), mem.get64(leaf));
    }

    @Test
    void bigEndianTablesAndUpdates() {
        SparseGuestMemory m = new SparseGuestMemory(1L << 32);
        PageTableBuilder be = PageTableBuilder.stage1(m, new PageTableBuilder.Bump(0x100_0000L, 0x100_0000L), Granule.G16K,
                17, 40, 48).bigEndian(true);
        long leaf = be.map(VA, PA, 3, PageTableBuilder.S1_RW & ~AF);
        long stored = m.get64(leaf);
        assertEquals(Long.reverseBytes(0b11 | PA), stored, "CD.ENDI: descriptors stored big-endian");
        Stage1Config c = be.stage1Config().withHttu(true, false);
        Translation t = assertInstanceOf(Translation.class, new Walker(m, 48).stage1(c, VA + 0x10, DmaAccess.PRIV_READ));
        assertEquals(PA + ((VA + 0x10) & 0x3fff), t.outputAddress()); // 16K page offset
        assertEquals(Long.reverseBytes(0b11 | PA | AF), m.get64(leaf), "AF set in the big-endian layout");
        // The same bytes read little-endian are garbage: a Translation fault somewhere, never a throw.
        assertInstanceOf(TranslationFault.class, new Walker(m, 48).stage1(c.withBigEndian(false), VA, DmaAccess.PRIV_READ));
    }

    /**
     * Arm ARM hardware updates: the update is an atomic read-modify-write of an unchanged
     * descriptor; if the guest changed it meanwhile, the walk uses the new value.
     */
    @Test
    void concurrentModificationIsRetried() {
        long leaf = s1.map(VA, PA, 3, PageTableBuilder.S1_RW & ~AF);
        long moved = s1.leaf(PA + 0x10_0000L, 3, PageTableBuilder.S1_RW & ~AF);
        HookedMemory hooked = new HookedMemory(mem, 1, () -> mem.put64(leaf, moved)); // the guest remaps first
        Translation t = assertInstanceOf(Translation.class, walk1(hooked, s1.stage1Config().withHttu(true, false), DmaAccess.PRIV_READ));
        assertEquals(PA + 0x10_0010L, t.outputAddress(), "the walk uses the descriptor as the guest left it");
        assertEquals(moved | AF, mem.get64(leaf));
        assertEquals(2, hooked.casCalls);
    }

    /** A guest that always wins the race cannot hold the walker: a bounded number of tries, then a fault. */
    @Test
    void endlessModificationIsBounded() {
        long leaf = s1.map(VA, PA, 3, PageTableBuilder.S1_RW & ~AF);
        HookedMemory hooked = new HookedMemory(mem, Integer.MAX_VALUE, () -> { });
        TranslationFault f = assertInstanceOf(TranslationFault.class,
                walk1(hooked, s1.stage1Config().withHttu(true, false), DmaAccess.PRIV_READ));
        assertEquals(FaultType.ACCESS_FLAG, f.type());
        assertEquals(leaf, f.descriptorAddress());
        assertEquals(Walker.MAX_UPDATE_RETRIES + 1, hooked.casCalls);
    }

    /**
     * A guest that clears AF again right after every successful update (a racing vCPU) cannot
     * hold the walker either: a successful compare-and-swap establishes the descriptor, and the
     * walk completes with the value it wrote (Arm ARM: the update is atomic; the translation
     * uses the updated descriptor).
     */
    @Test
    void successfulUpdateIsFinalEvenIfTheGuestRewritesAtOnce() {
        long leaf = s1.map(VA, PA, 3, PageTableBuilder.S1_RW & ~AF);
        long l2 = s2.map(VA, PA, 3, PageTableBuilder.S2_RW & ~AF);
        HookedMemory s1Racer = new HookedMemory(mem, 0, () -> { }).afterSuccess(() -> mem.put64(leaf, mem.get64(leaf) & ~AF));
        Translation t = assertTimeoutPreemptively(Duration.ofSeconds(5),
                () -> assertInstanceOf(Translation.class, walk1(s1Racer, s1.stage1Config().withHttu(true, false), DmaAccess.PRIV_READ)));
        assertEquals(PA + 0x10, t.outputAddress());
        assertEquals(1, s1Racer.casCalls);
        HookedMemory s2Racer = new HookedMemory(mem, 0, () -> { }).afterSuccess(() -> mem.put64(l2, mem.get64(l2) & ~AF));
        Translation u = assertTimeoutPreemptively(Duration.ofSeconds(5), () -> assertInstanceOf(Translation.class,
                new Walker(s2Racer, 48).stage2(s2.stage2Config().withHttu(true, false), VA, DmaAccess.READ)));
        assertEquals(PA, u.outputAddress());
        assertEquals(1, s2Racer.casCalls);
    }

    /** GuestMemory whose first {@code failures} compare-and-swaps fail after running {@code meanwhile}. */
    private static final class HookedMemory implements GuestMemory {
        final GuestMemory inner;
        final int failures;
        final Runnable meanwhile;
        Runnable success = () -> { };
        int casCalls;

        HookedMemory(GuestMemory inner, int failures, Runnable meanwhile) {
            this.inner = inner;
            this.failures = failures;
            this.meanwhile = meanwhile;
        }

        HookedMemory afterSuccess(Runnable r) {
            this.success = r;
            return this;
        }

        @Override
        public Region find(long addr, int len) {
            Region r = inner.find(addr, len);
            if (r == null) {
                return null;
            }
            return new Region() {
                @Override public long base() { return r.base(); }
                @Override public long size() { return r.size(); }
                @Override public byte read8(long a) { return r.read8(a); }
                @Override public short read16(long a) { return r.read16(a); }
                @Override public int read32(long a) { return r.read32(a); }
                @Override public long read64(long a) { return r.read64(a); }
                @Override public void write8(long a, byte v) { r.write8(a, v); }
                @Override public void write16(long a, short v) { r.write16(a, v); }
                @Override public void write32(long a, int v) { r.write32(a, v); }
                @Override public void write64(long a, long v) { r.write64(a, v); }
                @Override public void read(long a, byte[] d, int o, int l) { r.read(a, d, o, l); }
                @Override public void write(long a, byte[] s, int o, int l) { r.write(a, s, o, l); }

                @Override
                public boolean compareAndSet64(long a, long expect, long update) {
                    if (++casCalls <= failures) {
                        meanwhile.run();
                        return false;
                    }
                    boolean ok = r.compareAndSet64(a, expect, update);
                    if (ok) {
                        success.run();
                    }
                    return ok;
                }
            };
        }
    }
}
