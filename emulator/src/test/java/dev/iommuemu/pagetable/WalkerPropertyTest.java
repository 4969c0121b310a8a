package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.pagetable.testing.ReferenceWalker;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Randomized comparison of {@link Walker} with the independently written {@link ReferenceWalker}:
 * random configurations (granule per stage, TxSZ, start level, OAS/IPS/PS, DS, TBI, EPD, HTTU,
 * AFFD, WXN, PAN, XNX, HAD, EL2, endianness), random tables (valid and invalid descriptors, blocks
 * at legal and illegal levels, out-of-range and aborting addresses, table attributes), random
 * accesses. Every result must be equal record for record, and guest memory must be equal after
 * the hardware updates. The walker must never throw and never hang.
 *
 * <p>{@code -Diommuemu.fuzz.iterations=N} runs longer (default {@value #DEFAULT_ITERATIONS});
 * {@code -Diommuemu.fuzz.seed=S} replays a failure (the failure message prints S).
 */
class WalkerPropertyTest {
    static final int DEFAULT_ITERATIONS = 4000;

    // Guest physical memory: a low 4 GiB, a 1 GiB window at 1 TiB, and one at 2^50 (for 52-bit
    // outputs); everything else aborts. Tables live in the low region.
    private static final long HIGH = 1L << 40;
    private static final long TOP = 1L << 50;
    private static final long[] REGIONS = {0, 1L << 32, HIGH, 1L << 30, TOP, 1L << 30};
    private static final long HOLE = 1L << 36; // inside every PS >= 40, but no memory

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void walkerMatchesReference() {
        int iterations = Integer.getInteger("iommuemu.fuzz.iterations", DEFAULT_ITERATIONS);
        String fixed = System.getProperty("iommuemu.fuzz.seed");
        long base = fixed != null ? Long.parseLong(fixed) : new Random().nextLong();
        java.util.Map<String, Integer> outcomes = new java.util.TreeMap<>();
        for (int i = 0; i < iterations; i++) {
            long seed = base + i;
            try {
                new Case(seed, outcomes).run();
            } catch (AssertionError | RuntimeException e) {
                AssertionError ae = new AssertionError("walker/reference mismatch with seed " + seed
                        + " (replay: -Diommuemu.fuzz.seed=" + seed + " -Diommuemu.fuzz.iterations=1): " + e.getMessage(), e);
                throw ae;
            }
        }
        System.out.println("WalkerPropertyTest: " + iterations + " cases from seed " + base + ": " + outcomes);
    }

    /**
     * Arbitrary, mostly ILLEGAL configurations (any TxSZ, start level, sizes, null granules) over
     * random table contents: the walker must still only return results (no exception, no hang).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void walkerNeverThrowsOnArbitraryConfigurations() {
        int iterations = Integer.getInteger("iommuemu.fuzz.iterations", DEFAULT_ITERATIONS);
        String fixed = System.getProperty("iommuemu.fuzz.seed");
        long base = fixed != null ? Long.parseLong(fixed) : new Random().nextLong();
        SparseGuestMemory mem = new SparseGuestMemory(0, 1L << 20, HIGH, 1L << 20);
        Random fill = new Random(base);
        for (long a = 0; a < (1L << 20); a += 8) {
            // descriptors that point back into the low megabyte, with random attribute bits
            long d = (fill.nextLong() & ~Descriptor.ADDR_48.mask()) | (fill.nextLong() & 0xf_f000L);
            mem.put64(a, d);
        }
        for (int i = 0; i < iterations; i++) {
            long seed = base + i;
            Random r = new Random(seed);
            Granule[] gs = {Granule.G4K, Granule.G16K, Granule.G64K, null};
            Stage1Config s1 = new Stage1Config(
                    new Stage1Config.Region(r.nextLong() & 0xf_ffffL, r.nextInt(80) - 8, gs[r.nextInt(4)], r.nextInt(8) == 0),
                    r.nextInt(6) == 0 ? null
                            : new Stage1Config.Region(r.nextLong() & 0xf_ffffL, r.nextInt(80) - 8, gs[r.nextInt(4)], r.nextBoolean()),
                    r.nextInt(80) - 8, r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(),
                    r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(),
                    r.nextBoolean());
            Stage2Config s2 = new Stage2Config(r.nextLong() & 0xf_ffffL, r.nextInt(80) - 8,
                    r.nextInt(8) == 0 ? Stage2Config.INVALID_LEVEL : r.nextInt(9) - 4, gs[r.nextInt(4)], r.nextInt(80) - 8,
                    r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(),
                    r.nextBoolean());
            Walker w = new Walker(mem, new int[] {32, 40, 48, 52, 56, 64}[r.nextInt(6)]);
            for (int k = 0; k < 8; k++) {
                long in = r.nextBoolean() ? r.nextLong() : r.nextLong() & 0xff_ffffL;
                DmaAccess acc = new DmaAccess(r.nextBoolean(), r.nextBoolean(), r.nextBoolean());
                try {
                    switch (r.nextInt(4)) {
                        case 0 -> w.stage1(s1, in, acc);
                        case 1 -> w.stage2(s2, in, acc);
                        case 2 -> w.nested(s1, s2, in, acc);
                        default -> w.stage2For(s2, in, acc, FaultClass.values()[r.nextInt(3)], in);
                    }
                } catch (RuntimeException e) {
                    throw new AssertionError("walker threw with seed " + seed + " (replay: -Diommuemu.fuzz.seed=" + seed
                            + " -Diommuemu.fuzz.iterations=1)\n s1=" + s1 + "\n s2=" + s2, e);
                }
            }
        }
    }

    /** Writes every store to two memories (one per walker) and remembers where. */
    private static final class Tee implements GuestMemory {
        final SparseGuestMemory a = new SparseGuestMemory(REGIONS);
        final SparseGuestMemory b = new SparseGuestMemory(REGIONS);
        final TreeSet<Long> written = new TreeSet<>();

        @Override
        public Region find(long addr, int len) {
            return a.find(addr, len);
        }

        @Override
        public OptionalLong load(long addr, int size) {
            return a.load(addr, size);
        }

        @Override
        public boolean store(long addr, int size, long value) {
            boolean ok = a.store(addr, size, value) & b.store(addr, size, value);
            if (ok) {
                written.add(addr);
            }
            return ok;
        }
    }

    private static final class Case {
        final Random rnd;
        final Tee mem = new Tee();
        final int oas;
        final PageTableBuilder.Bump tables = new PageTableBuilder.Bump(0x1000_0000L, 0x3000_0000L);
        final List<Long> inputs = new ArrayList<>();
        final List<Long> outputs = new ArrayList<>();

        final java.util.Map<String, Integer> outcomes;

        Case(long seed, java.util.Map<String, Integer> outcomes) {
            this.outcomes = outcomes;
            this.rnd = new Random(seed);
            this.oas = pick(40, 44, 48, 52);
        }

        int pick(int... v) {
            return v[rnd.nextInt(v.length)];
        }

        boolean chance(int percent) {
            return rnd.nextInt(100) < percent;
        }

        Granule granule() {
            return Granule.values()[rnd.nextInt(3)];
        }

        void run() {
            int mode = rnd.nextInt(4); // 0 stage 1, 1 stage 2, 2 nested, 3 stage2For
            Stage2Config s2 = null;
            PageTableBuilder b2 = null;
            long s1TableIpa = 0;
            long s1TablePa = 0x2000_0000L;
            // Output windows: IPAs/PAs that leaves point at.
            if (mode != 0) {
                b2 = stage2Tree();
                s2 = decorate(b2.stage2Config());
                int ia = 64 - s2.t0sz();
                s1TableIpa = randomBelow(ia, 1L << 24) & -(1L << 24);
            }
            Stage1Config s1 = null;
            List<PageTableBuilder> s1Trees = new ArrayList<>();
            if (mode == 0 || mode == 2) {
                final long ipaBase = s1TableIpa;
                java.util.function.LongUnaryOperator toPa = mode == 2 ? (x -> x - ipaBase + s1TablePa) : (x -> x);
                PageTableBuilder.Bump s1Alloc = mode == 2 ? new PageTableBuilder.Bump(s1TableIpa, 1L << 24) : tables;
                s1 = stage1Config(s1Alloc, toPa, s1Trees);
            }
            if (mode == 2) {
                // Stage 2 maps the stage 1 table window (IPA) onto its physical home, with the odd bad leaf.
                mapWindow(b2, s1TableIpa, s1TablePa, 1L << 24, 8);
            }
            if (b2 != null) {
                stage2Points(b2, s2, mode == 2 ? outputs : inputs);
            }
            for (PageTableBuilder t : s1Trees) {
                populateStage1(t, s1, mode == 2 ? s2 : null);
            }
            final Stage1Config c1 = s1;
            final Stage2Config c2 = s2;
            Walker walker = new Walker(mem.a, oas);
            ReferenceWalker ref = new ReferenceWalker(mem.b, oas);
            int accesses = 12;
            for (int k = 0; k < accesses; k++) {
                final long in = inputAddress(s1, s2);
                DmaAccess acc = new DmaAccess(rnd.nextBoolean(), rnd.nextBoolean(), rnd.nextBoolean());
                WalkResult got;
                WalkResult want;
                try {
                    if (mode == 3) {
                        FaultClass cls = FaultClass.values()[rnd.nextInt(3)];

                        long reported = rnd.nextLong();
                        got = walker.stage2For(s2, in, acc, cls, reported);
                        want = ref.stage2For(s2, in, acc, cls, reported);
                    } else {
                        got = walker.translate(s1, s2, in, acc, null);
                        want = ref.translate(s1, s2, in, acc);
                    }
                } catch (RuntimeException e) {
                    throw new AssertionError("walker threw on input 0x" + Long.toHexString(in) + " " + acc
                            + "\n s1=" + s1 + "\n s2=" + s2, e);
                }
                final DmaAccess fa = acc;
                String key = got instanceof TranslationFault f ? "S" + f.stage() + f.type() + "@L" + f.level()
                        + (f.stage() == 2 ? "/" + f.faultClass() : "")
                        : "OK/L" + ((Translation) got).s1Level() + "," + ((Translation) got).s2Level();
                outcomes.merge(key, 1, Integer::sum);
                assertEquals(want, got, () -> "input 0x" + Long.toHexString(in) + " " + fa
                        + "\n s1=" + c1 + "\n s2=" + c2 + "\n oas=" + oas);
                for (long a : mem.written) {
                    if (mem.a.get64(a) != mem.b.get64(a)) {
                        fail("memory differs at 0x" + Long.toHexString(a) + " after input 0x" + Long.toHexString(in)
                                + " " + acc + ": walker 0x" + Long.toHexString(mem.a.get64(a)) + " reference 0x"
                                + Long.toHexString(mem.b.get64(a)) + "\n result " + got + "\n s1=" + s1 + "\n s2=" + s2);
                    }
                }
            }
        }

        /** A random address below {@code 2^bits} with at least {@code room} bytes left. */
        long randomBelow(int bits, long room) {
            long limit = bits >= 63 ? Long.MAX_VALUE : (1L << bits);
            if (limit <= room) {
                return 0;
            }
            return (rnd.nextLong() & Long.MAX_VALUE) % (limit - room);
        }

        /** A physical output: usually in memory, sometimes in a hole, sometimes beyond the size. */
        long outputAddress(int sizeBits) {
            int r = rnd.nextInt(100);
            if (r < 60) {
                return 0x4000_0000L + (rnd.nextLong() & 0x3fff_ffffL);
            }
            if (r < 75 && sizeBits >= 41) {
                return HIGH + (rnd.nextLong() & 0x3fff_ffffL);
            }
            if (r < 85 && oas >= 52) {
                return TOP + (rnd.nextLong() & 0x3fff_ffffL);
            }
            if (r < 92) {
                return HOLE | (rnd.nextLong() & 0xf_ffff_ffffL);
            }
            return (rnd.nextLong() & ((1L << 52) - 1)) | (1L << (40 + rnd.nextInt(12)));
        }

        // ---- stage 2

        PageTableBuilder stage2Tree() {
            for (int attempt = 0; ; attempt++) {
                Granule g = granule();
                boolean ds = g != Granule.G64K && chance(30);
                boolean stt = chance(30);
                int sl0 = rnd.nextInt(4);
                int sl2 = ds && g == Granule.G4K && chance(15) ? 1 : 0;
                int start = Stage2Config.startLevel(g, sl0, sl2, ds, stt);
                int ps = Math.min(pick(32, 36, 40, 42, 44, 48, 52), oas);
                int t0sz = 12 + rnd.nextInt(37);
                if (start == Stage2Config.INVALID_LEVEL) {
                    continue;
                }
                Stage2Config probe = Stage2Config.simple(0, t0sz, start, g, ps).withDs(ds);
                if (probe.check(oas, stt) != null && attempt < 200) {
                    continue;
                }
                PageTableBuilder b = PageTableBuilder.stage2(mem, tables, g, t0sz, start, ps, oas).ds(ds)
                        .bigEndian(chance(20));
                return b;
            }
        }

        Stage2Config decorate(Stage2Config c) {
            return new Stage2Config(c.ttb(), c.t0sz(), c.startLevel(), c.granule(), c.psBits(), chance(40), chance(40),
                    chance(30), chance(30), c.ds(), c.bigEndian(), chance(50));
        }

        /**
         * Random stage 2 leaves (every level from the start level, legal and illegal blocks),
         * table pointers into holes or beyond S2PS, and invalid descriptors, in a few clusters of
         * IPAs so that tables are shared; each mapped IPA goes to {@code points}.
         */
        void stage2Points(PageTableBuilder b, Stage2Config c, List<Long> points) {
            Granule g = b.granule();
            int ia = 64 - c.t0sz();
            long[] clusters = {randomBelow(ia, 1L << 30), randomBelow(ia, 1L << 30), randomBelow(ia, 0)};
            int n = 8 + rnd.nextInt(24);
            for (int k = 0; k < n; k++) {
                int level = chance(50) ? 3 : b.startLevel() + rnd.nextInt(4 - b.startLevel());
                long ipa = clusters[rnd.nextInt(clusters.length)] + (rnd.nextLong() & ((1L << 30) - 1));
                if (ia < 64) {
                    ipa &= (1L << ia) - 1;
                }
                long pa = outputAddress(c.psBits());
                long attrs = PageTableBuilder.S2_RW;
                int kind = rnd.nextInt(100);
                if (kind < 25) {
                    // random permissions, memory type, AF, DBM, XN
                    attrs = (rnd.nextLong() & (Descriptor.S2_MEMATTR.mask() | Descriptor.S2AP_R.mask()
                            | Descriptor.S2AP_W.mask() | Descriptor.AF.mask() | Descriptor.DBM.mask()
                            | Descriptor.S2_XN.mask() | Descriptor.CONTIGUOUS.mask()));
                } else if (kind < 35) {
                    attrs = (attrs | Descriptor.DBM.prep(1)) & ~Descriptor.S2AP_W.mask();
                }
                try {
                    int how = rnd.nextInt(100);
                    if (how < 75) {
                        b.map(ipa, pa, level, attrs);
                    } else if (how < 80) {
                        b.mapContiguous(ipa, pa, level, attrs);
                    } else if (how < 88) {
                        b.setDescriptor(ipa, level, rnd.nextLong() & ~1L);
                    } else if (how < 92) {
                        b.setDescriptor(ipa, level, rnd.nextLong());
                    } else if (level < 3) {
                        long bad = chance(60) ? HOLE : (1L << (40 + rnd.nextInt(12)));
                        b.setDescriptor(ipa, level, Descriptor.withAddress(0b11, bad, g, c.ds() && g != Granule.G64K,
                                oas >= 52 && g == Granule.G64K));
                    }
                } catch (IllegalStateException e) {
                    // conflicts with an earlier leaf: keep it
                }
                points.add(ipa);
            }
        }

        /**
         * Maps {@code [ipa, ipa + size)} to {@code pa} with leaves of random legal or illegal
         * level and random attributes; {@code badPercent} of them are broken in some way.
         */
        void mapWindow(PageTableBuilder b, long ipa, long pa, long size, int badPercent) {
            Granule g = b.granule();
            long step = g.pageSize();
            int n = 0;
            for (long off = 0; off < size && n < 48; n++) {
                int level = 3;
                if (chance(40)) {
                    level = Math.max(b.startLevel(), 2 - rnd.nextInt(2));
                }
                long leafSize = 1L << g.levelShift(level);
                if (leafSize > size - off || ((ipa + off) & (leafSize - 1)) != 0) {
                    level = 3;
                    leafSize = step;
                }
                long attrs = PageTableBuilder.S2_RW;
                if (chance(badPercent)) {
                    attrs = rnd.nextLong() & ~((1L << 12) - 1 - 0xffc) ; // random attribute bits
                    attrs &= ~0b11L;
                }
                if (chance(badPercent / 2 + 1)) {
                    attrs |= Descriptor.DBM.prep(1);
                    attrs &= ~Descriptor.S2AP_W.prep(1);
                }
                try {
                    if (chance(badPercent / 3)) {
                        b.setDescriptor(ipa + off, level, rnd.nextLong() & ~1L); // invalid
                    } else if (chance(5)) {
                        b.mapContiguous(ipa + off, pa + off, level, attrs);
                    } else {
                        b.map(ipa + off, pa + off, level, attrs);
                    }
                } catch (IllegalStateException e) {
                    // the path holds a leaf or leaves memory: keep what is there
                }
                off += leafSize;
                if (chance(10)) {
                    off += step * rnd.nextInt(4); // holes in the window
                }
            }
        }

        // ---- stage 1

        Stage1Config stage1Config(PageTableBuilder.Bump alloc, java.util.function.LongUnaryOperator toPa,
                List<PageTableBuilder> trees) {
            int vaBits = chance(50) ? 52 : 48;
            boolean stt = chance(30);
            boolean el2 = chance(20);
            boolean ds = chance(30);
            int ips = Math.min(pick(32, 36, 40, 42, 44, 48, 52), oas);
            for (int attempt = 0; ; attempt++) {
                Stage1Config.Region r0 = randomRegion(vaBits, stt, ds, el2 ? 5 : 10);
                Stage1Config.Region r1 = el2 ? null : randomRegion(vaBits, stt, ds, 15);
                Stage1Config c = new Stage1Config(r0, r1, ips, chance(30), chance(30), chance(40), chance(40),
                        chance(30), chance(30), chance(30), ds, chance(20), el2, chance(15), chance(15));
                if (c.check(vaBits, stt) != null && attempt < 200) {
                    continue;
                }
                // Replace each enabled region by a real tree.
                Stage1Config.Region t0 = tree(c, r0, alloc, toPa, trees);
                Stage1Config.Region t1 = r1 == null ? null : tree(c, r1, alloc, toPa, trees);
                return new Stage1Config(t0, t1, c.ipsBits(), c.tbi0(), c.tbi1(), c.ha(), c.hd(), c.affd(), c.wxn(),
                        c.pan(), c.ds(), c.bigEndian(), c.el2(), c.had0(), c.had1());
            }
        }

        Stage1Config.Region randomRegion(int vaBits, boolean stt, boolean ds, int disabledPercent) {
            Granule g = granule();
            int tsz = 12 + rnd.nextInt(37);
            return new Stage1Config.Region(0, tsz, g, chance(disabledPercent));
        }

        Stage1Config.Region tree(Stage1Config c, Stage1Config.Region r, PageTableBuilder.Bump alloc,
                java.util.function.LongUnaryOperator toPa, List<PageTableBuilder> trees) {
            int ia = 64 - r.tsz();
            if (ia <= r.granule().pageShift() || ia > 52) {
                return r; // unwalkable (only reachable when the CD checks are skipped): no tree
            }
            PageTableBuilder b = PageTableBuilder.stage1(mem, alloc, r.granule(), r.tsz(), c.ipsBits(), oas)
                    .ds(c.ds()).bigEndian(c.bigEndian()).tableWriter(toPa);
            if (b.startLevel() < -1) {
                return r;
            }
            trees.add(b);
            return new Stage1Config.Region(b.ttb(), r.tsz(), r.granule(), r.disabled());
        }

        void populateStage1(PageTableBuilder b, Stage1Config c, Stage2Config s2) {
            boolean upper = c.tt1() != null && c.tt1().ttb() == b.ttb() && !c.el2();
            int inBits = b.startBits() + b.granule().levelShift(b.startLevel());
            Granule g = b.granule();
            // A few clusters of VAs so that tables are shared.
            long[] clusters = new long[3];
            for (int i = 0; i < clusters.length; i++) {
                clusters[i] = randomBelow(inBits, 1L << 24);
            }
            int maps = 6 + rnd.nextInt(20);
            for (int m = 0; m < maps; m++) {
                long va = clusters[rnd.nextInt(clusters.length)] + (rnd.nextLong() & ((1L << 24) - 1));
                if (rnd.nextInt(10) == 0) {
                    va = randomBelow(inBits, 0);
                }
                int level = b.startLevel() + rnd.nextInt(4 - b.startLevel());
                if (level < 3 && chance(60)) {
                    level = 3;
                }
                long out = s2 != null && !outputs.isEmpty() && chance(85)
                        ? outputs.get(rnd.nextInt(outputs.size()))
                        : outputAddress(c.ipsBits());
                // Aim the input at the byte whose output is {@code out} (so nested walks reach the
                // stage 2 leaf that maps it).
                long leafMask = (1L << g.levelShift(level)) - 1;
                long aimed = (va & ~leafMask) | (out & leafMask);
                long attrs = Descriptor.AF.prep(chance(80) ? 1 : 0)
                        | Descriptor.AP_USER.prep(rnd.nextInt(2)) | Descriptor.AP_RO.prep(rnd.nextInt(2))
                        | Descriptor.NG.prep(rnd.nextInt(2)) | Descriptor.PXN.prep(chance(25) ? 1 : 0)
                        | Descriptor.UXN.prep(chance(25) ? 1 : 0) | Descriptor.DBM.prep(chance(30) ? 1 : 0);
                long sign = upper ? -(1L << inBits) : 0;
                try {
                    int kind = rnd.nextInt(100);
                    if (kind < 70) {
                        b.map(va, out, level, attrs);
                    } else if (kind < 75) {
                        b.mapContiguous(va, out, level, attrs);
                    } else if (kind < 82) {
                        b.setDescriptor(va, level, rnd.nextLong() & ~1L); // invalid, garbage above
                    } else if (kind < 86) {
                        b.setDescriptor(va, level, rnd.nextLong()); // anything at all
                    } else if (kind < 93 && level < 3) {
                        // a table descriptor with random hierarchical attributes
                        b.tableAttributes(va, level, rnd.nextLong() & (0x1fL << 59));
                    } else if (level < 3) {
                        // a table pointer into a hole, or beyond the output size
                        long bad = chance(50) ? HOLE : (1L << (40 + rnd.nextInt(12)));
                        b.setDescriptor(va, level, Descriptor.withAddress(0b11, bad, g, c.ds() && g != Granule.G64K,
                                oas >= 52 && g == Granule.G64K));
                    }
                } catch (IllegalStateException e) {
                    // conflicts with an earlier leaf: keep it
                }
                inputs.add(aimed | sign);
            }
        }

        long inputAddress(Stage1Config s1, Stage2Config s2) {
            long in;
            int r = rnd.nextInt(100);
            if (!inputs.isEmpty() && r < 85) {
                in = inputs.get(rnd.nextInt(inputs.size()));
                if (chance(50)) {
                    in += rnd.nextInt(1 << 16) - (1 << 15);
                }
            } else {
                in = rnd.nextLong();
                if (s1 == null && chance(80)) {
                    in &= (1L << Math.min(63, 65 - s2.t0sz())) - 1; // around the IPA range
                } else if (chance(50)) {
                    in &= (1L << (20 + rnd.nextInt(40))) - 1;
                }
            }
            if (s1 != null && chance(15)) {
                in ^= (long) (rnd.nextInt(255) + 1) << 56; // top-byte junk: only TBI accepts it
            }
            if (s1 == null && chance(5)) {
                in ^= 1L << rnd.nextInt(64); // beyond the IAS or the S2T0SZ range
            }
            return in;
        }
    }
}
