package dev.iommuemu.tlb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Translation;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Random inserts, lookups and invalidations against a deliberately naive reference: a list of
 * entries scanned linearly, with the matching rules of IHI 0070 §3.17 and §4.4 written out again
 * here, independently of {@link TlbInvalidation#matches}. After every step the TLB must hold
 * exactly the reference's entries (evictions are the TLB's choice and are mirrored), a lookup
 * must return one of the reference's candidates or miss only when there is none, and no entry
 * an invalidation removed may ever be hit again.
 *
 * <p>Bounded by default; {@code -Diommuemu.fuzz.iterations=N} runs longer and
 * {@code -Diommuemu.fuzz.seed=S} changes the sequence.
 */
class TlbRandomizedTest {
    private static final int ITERATIONS = Integer.getInteger("iommuemu.fuzz.iterations", 20_000);
    private static final long SEED = Long.getLong("iommuemu.fuzz.seed", 0x5EED);
    private static final long TOP = 0xFFFF_FF00_0000_0000L; // a TTB1-style region at the top

    /** A reference entry: the tag and walk as given, and the regions derived from them here. */
    private static final class Ref {
        final TlbTag tag;
        final Translation t;
        final TlbEntry entry; // what the TLB returned for this insert (identity)
        final boolean global;
        final BigInteger lo; // lookup span, inclusive bounds
        final BigInteger hi;
        final BigInteger inLo; // region an input-address invalidation must hit
        final BigInteger inHi;
        final BigInteger ipaLo; // NESTED: region an S2_IPA must hit
        final BigInteger ipaHi;

        Ref(TlbTag tag, Translation t, TlbEntry entry) {
            this.tag = tag;
            this.t = t;
            this.entry = entry;
            this.global = tag.regime() == Regime.S2 || tag.asid() == TlbTag.NO_ASID || t.global();
            BigInteger in = u(t.inputAddress());
            BigInteger span = BigInteger.ONE.shiftLeft(Math.max(t.pageShift(), t.contigShift()));
            lo = in.subtract(in.mod(span));
            hi = lo.add(span).subtract(BigInteger.ONE);
            BigInteger region = span;
            if (tag.regime() == Regime.NESTED) {
                BigInteger s1Leaf = BigInteger.ONE.shiftLeft(t.s1Granule().levelShift(t.s1Level()));
                region = region.max(s1Leaf);
            }
            inLo = in.subtract(in.mod(region));
            inHi = inLo.add(region).subtract(BigInteger.ONE);
            BigInteger ipa = u(t.ipa());
            BigInteger ipaRegion = span.max(BigInteger.ONE.shiftLeft(t.s2PageShift()));
            ipaLo = ipa.subtract(ipa.mod(ipaRegion));
            ipaHi = ipaLo.add(ipaRegion).subtract(BigInteger.ONE);
        }

        /** Same TLB key: same tag (ASID only if non-global, ASET only if global), same span. */
        boolean sameKey(Ref o) {
            if (tag.regime() != o.tag.regime() || tag.vmid() != o.tag.vmid() || global != o.global) {
                return false;
            }
            if (global ? tag.aset() != o.tag.aset() : tag.asid() != o.tag.asid()) {
                return false;
            }
            return lo.equals(o.lo) && hi.equals(o.hi);
        }

        boolean answers(TlbTag q, long address) {
            if (q.regime() != tag.regime() || q.vmid() != tag.vmid()) {
                return false;
            }
            boolean tagOk = global ? q.aset() == tag.aset()
                    : q.regime() != Regime.S2 && q.asid() != TlbTag.NO_ASID && q.asid() == tag.asid();
            BigInteger a = u(address);
            return tagOk && a.compareTo(lo) >= 0 && a.compareTo(hi) <= 0;
        }

        long translate(long address) {
            BigInteger off = u(address).subtract(lo);
            BigInteger outLo = u(t.outputAddress()).subtract(u(t.inputAddress()).subtract(lo));
            return outLo.add(off).longValue();
        }
    }

    private static BigInteger u(long v) {
        return new BigInteger(Long.toUnsignedString(v));
    }

    /** The reference's rule: does {@code inv} remove {@code r}? (§4.4.2-§4.4.4, written independently.) */
    private static boolean removes(TlbInvalidation inv, Ref r) {
        Regime rg = r.tag.regime();
        boolean stage1El1 = rg == Regime.NH || rg == Regime.NESTED;
        boolean vmidOk = r.tag.vmid() == inv.vmid();
        boolean asidOk = r.global || r.tag.asid() == inv.asid();
        switch (inv.kind()) {
            case ALL:
                return true;
            case NSNH_ALL:
                return rg != Regime.EL2;
            case S12_VMALL:
                return rg != Regime.EL2 && vmidOk;
            case NH_ALL:
                return stage1El1 && vmidOk;
            case NH_ASID:
                return stage1El1 && vmidOk && !r.global && r.tag.asid() == inv.asid();
            case NH_VA:
                return stage1El1 && vmidOk && asidOk && inputHit(inv, r);
            case NH_VAA:
                return stage1El1 && vmidOk && inputHit(inv, r);
            case EL2_ALL:
                return rg == Regime.EL2;
            case EL2_ASID:
                return rg == Regime.EL2 && !r.global && r.tag.asid() == inv.asid();
            case EL2_VA:
                return rg == Regime.EL2 && asidOk && inputHit(inv, r);
            case EL2_VAA:
                return rg == Regime.EL2 && inputHit(inv, r);
            case S2_IPA:
                if (!vmidOk) {
                    return false;
                }
                if (rg == Regime.S2) {
                    return inputHit(inv, r);
                }
                return rg == Regime.NESTED
                        && regionHit(inv, r.ipaLo, r.ipaHi, r.t.s2Granule(), r.t.s2Level());
            default:
                throw new AssertionError(inv.kind());
        }
    }

    private static boolean inputHit(TlbInvalidation inv, Ref r) {
        boolean s2 = r.tag.regime() == Regime.S2;
        return regionHit(inv, r.inLo, r.inHi, s2 ? r.t.s2Granule() : r.t.s1Granule(),
                s2 ? r.t.s2Level() : r.t.s1Level());
    }

    private static boolean regionHit(TlbInvalidation inv, BigInteger lo, BigInteger hi, Granule g, int level) {
        TlbRange rr = inv.range();
        BigInteger a = u(inv.address());
        if (rr.tg() == 0) {
            return a.compareTo(lo) >= 0 && a.compareTo(hi) <= 0;
        }
        Granule tg = rr.tg() == 1 ? Granule.G4K : rr.tg() == 2 ? Granule.G16K : Granule.G64K;
        if (g != tg) {
            return false;
        }
        if (rr.ttl() != 0 && rr.ttl() != level) {
            return false;
        }
        BigInteger gsize = BigInteger.valueOf(tg.pageSize());
        BigInteger start = a.subtract(a.mod(gsize));
        BigInteger bytes = BigInteger.valueOf(rr.num() + 1).shiftLeft(Math.min(rr.scale(), 39)).multiply(gsize);
        BigInteger end = start.add(bytes).subtract(BigInteger.ONE).min(BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE));
        return start.compareTo(hi) <= 0 && lo.compareTo(end) <= 0;
    }

    // ---- generation -------------------------------------------------------------------------

    private static final Granule[] GRANULES = Granule.values();

    private static int level(Random rnd, Granule g) {
        return g == Granule.G4K ? 1 + rnd.nextInt(3) : 2 + rnd.nextInt(2);
    }

    private static long addressIn(Random rnd, int bits) {
        long a = rnd.nextLong() & ((1L << bits) - 1);
        return rnd.nextInt(10) == 0 ? TOP | a : a;
    }

    private static TlbTag randomTag(Random rnd) {
        Regime r = Regime.values()[rnd.nextInt(4)];
        int asid = r == Regime.EL2 && rnd.nextInt(4) == 0 ? TlbTag.NO_ASID : rnd.nextInt(4);
        return new TlbTag(r, rnd.nextInt(3), asid, rnd.nextInt(5) == 0);
    }

    private static Translation randomWalk(Random rnd, Regime regime) {
        Granule g = GRANULES[rnd.nextInt(3)];
        int lvl = level(rnd, g);
        int shift = g.levelShift(lvl);
        boolean global = rnd.nextInt(3) == 0;
        if (regime == Regime.NESTED) {
            Granule g2 = GRANULES[rnd.nextInt(3)];
            int lvl2 = level(rnd, g2);
            int a = shift;
            int b = g2.levelShift(lvl2);
            long va = addressIn(rnd, 34);
            long off = va & ((1L << a) - 1);
            long ipa = (addressIn(rnd, 34) & ~((1L << a) - 1) & ~TOP) | off;
            long pa = (rnd.nextLong() & 0xFF_FFFF_FFFFL & ~((1L << b) - 1)) | (ipa & ((1L << b) - 1));
            return new Translation(va, pa, Math.min(a, b), Math.min(a, b), Perm.ALL, 0, global, lvl, lvl2,
                    ipa, b, g, g2, 0, 0);
        }
        int span = shift;
        if (rnd.nextInt(5) == 0) {
            span += Integer.numberOfTrailingZeros(g.contiguousEntries(lvl));
        }
        long in = addressIn(rnd, regime == Regime.S2 ? 36 : 34);
        if (regime == Regime.S2) {
            in &= ~TOP;
        }
        long pa = (rnd.nextLong() & 0xFF_FFFF_FFFFL & ~((1L << span) - 1)) | (in & ((1L << span) - 1));
        boolean s2 = regime == Regime.S2;
        return new Translation(in, pa, shift, span, Perm.ALL, 0, s2 || global,
                s2 ? Translation.NO_LEVEL : lvl, s2 ? lvl : Translation.NO_LEVEL, s2 ? in : pa,
                s2 ? shift : 0, s2 ? null : g, s2 ? g : null, 0, 0);
    }

    /** An address near something live, so that invalidations and lookups often hit. */
    private static long nearby(Random rnd, List<Ref> refs, boolean ipa) {
        if (refs.isEmpty() || rnd.nextInt(4) == 0) {
            return addressIn(rnd, 34) & ~0xFFFL;
        }
        Ref r = refs.get(rnd.nextInt(refs.size()));
        BigInteger lo = ipa ? r.ipaLo : r.inLo;
        BigInteger hi = ipa ? r.ipaHi : r.inHi;
        long size = hi.subtract(lo).longValue();
        long off = size <= 0 ? 0 : (rnd.nextLong() & Long.MAX_VALUE) % (size + 1);
        if (rnd.nextInt(5) == 0) {
            off = rnd.nextBoolean() ? size + 1 : -0x1000; // just outside
        }
        return (lo.longValue() + off) & ~0xFFFL;
    }

    private static TlbRange randomRange(Random rnd) {
        if (rnd.nextBoolean()) {
            return TlbRange.SINGLE;
        }
        int scale = rnd.nextInt(4) == 0 ? rnd.nextInt(64) : rnd.nextInt(4);
        return new TlbRange(1 + rnd.nextInt(3), rnd.nextInt(4) == 0 ? rnd.nextInt(32) : rnd.nextInt(3), scale,
                rnd.nextInt(4));
    }

    private static TlbInvalidation randomInvalidation(Random rnd, List<Ref> refs) {
        int vmid = rnd.nextInt(3);
        int asid = rnd.nextInt(4);
        boolean leaf = rnd.nextBoolean();
        int k = rnd.nextInt(100);
        if (k < 25) {
            return TlbInvalidation.nhVa(vmid, asid, nearby(rnd, refs, false), leaf, randomRange(rnd));
        } else if (k < 40) {
            return TlbInvalidation.nhVaa(vmid, nearby(rnd, refs, false), leaf, randomRange(rnd));
        } else if (k < 50) {
            return TlbInvalidation.el2Va(asid, nearby(rnd, refs, false), leaf, randomRange(rnd));
        } else if (k < 55) {
            return TlbInvalidation.el2Vaa(nearby(rnd, refs, false), leaf, randomRange(rnd));
        } else if (k < 75) {
            return TlbInvalidation.s2Ipa(vmid, nearby(rnd, refs, rnd.nextBoolean()), leaf, randomRange(rnd));
        } else if (k < 82) {
            return TlbInvalidation.nhAsid(vmid, asid);
        } else if (k < 86) {
            return TlbInvalidation.el2Asid(asid);
        } else if (k < 90) {
            return TlbInvalidation.nhAll(vmid);
        } else if (k < 93) {
            return TlbInvalidation.s12Vmall(vmid);
        } else if (k < 95) {
            return TlbInvalidation.el2All();
        } else if (k < 97) {
            return TlbInvalidation.nsnhAll();
        } else {
            return TlbInvalidation.all();
        }
    }

    // ---- the run ----------------------------------------------------------------------------

    /** Capacity 4096 rarely or never fills in this run; 48 evicts constantly. */
    @ParameterizedTest(name = "capacity {0}")
    @ValueSource(ints = {4096, 48})
    void agreesWithTheReference(int capacity) {
        Random rnd = new Random(SEED ^ capacity);
        Tlb tlb = new Tlb(capacity);
        List<Ref> refs = new ArrayList<>();
        List<Ref> removedEver = new ArrayList<>();
        for (int it = 0; it < ITERATIONS; it++) {
            int op = rnd.nextInt(100);
            if (op < 50 || refs.isEmpty()) {
                TlbTag tag = randomTag(rnd);
                Translation t = randomWalk(rnd, tag.regime());
                long evictionsBefore = tlb.stats().evictions();
                int sizeBefore = tlb.size();
                TlbEntry e = tlb.insert(tag, t);
                Ref r = new Ref(tag, t, e);
                refs.removeIf(o -> o.sameKey(r));
                refs.add(r);
                if (tlb.stats().evictions() != evictionsBefore) {
                    assertEquals(capacity, sizeBefore, "evicted below capacity");
                    Set<TlbEntry> live = live(tlb);
                    refs.removeIf(o -> !live.contains(o.entry));
                }
            } else if (op < 80) {
                TlbTag q;
                long addr;
                if (rnd.nextInt(4) != 0) {
                    Ref r = refs.get(rnd.nextInt(refs.size()));
                    q = rnd.nextInt(4) == 0 ? randomTag(rnd) : r.tag;
                    addr = r.lo.longValue() + ((rnd.nextLong() & Long.MAX_VALUE) % r.hi.subtract(r.lo).add(BigInteger.ONE).longValue());
                } else {
                    q = randomTag(rnd);
                    addr = addressIn(rnd, 34);
                }
                TlbEntry hit = tlb.lookup(q, addr);
                List<Ref> candidates = new ArrayList<>();
                for (Ref r : refs) {
                    if (r.answers(q, addr)) {
                        candidates.add(r);
                    }
                }
                if (hit == null) {
                    assertEquals(List.of(), candidates.stream().map(c -> c.entry).toList(),
                            "miss although live at " + Long.toHexString(addr) + " for " + q);
                } else {
                    Ref match = null;
                    for (Ref c : candidates) {
                        if (c.entry == hit) {
                            match = c;
                        }
                    }
                    if (match == null) {
                        fail("hit " + hit + " for " + q + " @" + Long.toHexString(addr) + " is not a live candidate"
                                + (removedEver.stream().anyMatch(r -> r.entry == hit) ? " (it was invalidated)" : ""));
                    }
                    assertEquals(match.translate(addr), hit.translate(addr), "wrong translation");
                }
            } else {
                TlbInvalidation inv = randomInvalidation(rnd, refs);
                List<Ref> gone = new ArrayList<>();
                for (Ref r : refs) {
                    if (removes(inv, r)) {
                        gone.add(r);
                    }
                }
                int n = tlb.invalidate(inv);
                assertEquals(gone.size(), n, "removed by " + inv);
                refs.removeAll(gone);
                removedEver.addAll(gone);
                Set<TlbEntry> live = live(tlb);
                for (Ref r : gone) {
                    assertTrue(!live.contains(r.entry), "survived " + inv + ": " + r.entry);
                    assertTrue(tlb.lookup(r.tag, r.lo.longValue()) != r.entry, "hit after " + inv);
                }
            }
            assertTrue(tlb.size() <= capacity);
            assertEquals(refs.size(), tlb.size(), "TLB and reference hold the same number of entries");
            if (removedEver.size() > 10_000) {
                removedEver.subList(0, 5_000).clear();
            }
        }
        Set<TlbEntry> live = live(tlb);
        for (Ref r : refs) {
            assertTrue(live.contains(r.entry));
        }
        assertTrue(tlb.probedInvalidations > 0 && tlb.scannedInvalidations > 0, "both invalidation paths ran");
    }

    private static Set<TlbEntry> live(Tlb tlb) {
        Set<TlbEntry> s = Collections.newSetFromMap(new IdentityHashMap<>());
        Collections.addAll(s, tlb.entries());
        return s;
    }
}
