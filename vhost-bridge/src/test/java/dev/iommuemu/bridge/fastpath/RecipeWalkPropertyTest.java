package dev.iommuemu.bridge.fastpath;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.pagetable.WalkRecipe;
import dev.iommuemu.smmuv3.Harness;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The VMM's walk of docs/protocol.md §4.8 "Walk recipes" ({@link SharedCacheView#walk}, with the
 * recipe read back from the shared memory's bytes) against the SMMUv3 model's own translation of
 * the same access, over random 4 KiB stage 1 tables: whatever the VMM translates, the model
 * translates to the same address with the same permission inside the same block and records no
 * event; whatever the model faults, the VMM left to the daemon. 400 fixed seeds (deterministic).
 */
class RecipeWalkPropertyTest {
    private static final int SID = 5;
    private static final int SEEDS = 400;
    private static final long POOL = 0x200_0000L; // table pages handed out from here (guest RAM: 4 GiB)
    private static final long NOT_RAM = 0x1_2000_0000L; // beyond the harness's 4 GiB of RAM

    /** Random translation tables, built along each address as it is first asked for. */
    private static final class Tables {
        final SplittableRandom rnd;
        final Harness h;
        final int oas;
        final Map<Long, Long> written = new HashMap<>();
        long next = POOL;

        Tables(SplittableRandom rnd, Harness h, int oas) {
            this.rnd = rnd;
            this.h = h;
            this.oas = oas;
        }

        long newTable() {
            long t = next;
            next += 0x1000;
            return t;
        }

        long attrs() {
            long a = 0;
            if (rnd.nextInt(8) != 0) {
                a |= Descriptor.AF.prep(1);
            }
            a |= Descriptor.AP_USER.prep(rnd.nextInt(6) != 0 ? 1 : 0);
            a |= Descriptor.AP_RO.prep(rnd.nextInt(3) == 0 ? 1 : 0);
            a |= Descriptor.NG.prep(rnd.nextInt(2));
            a |= Descriptor.SH.prep(3);
            if (rnd.nextInt(10) == 0) {
                a |= Descriptor.UXN.prep(1) | Descriptor.PXN.prep(1);
            }
            if (rnd.nextInt(25) == 0) {
                a |= Descriptor.BITS_51_48.prep(1L << rnd.nextInt(4));
            }
            return a;
        }

        /** An output address aligned to 2^shift: inside the OAS, or now and then beyond it. */
        long output(int shift) {
            int bits = rnd.nextInt(12) == 0 ? Math.min(oas + 1 + rnd.nextInt(3), 48) : oas;
            long a = rnd.nextLong() & ((1L << bits) - 1);
            return a & ~((1L << shift) - 1);
        }

        /** The descriptor at {@code addr} for level {@code level}: made up the first time. */
        long descriptor(long addr, int level) {
            Long d = written.get(addr);
            if (d != null) {
                return d;
            }
            int shift = 12 + 9 * (3 - level);
            long desc;
            int pick = rnd.nextInt(100);
            if (pick < 8) {
                desc = rnd.nextLong() & ~1L; // invalid: bit 0 clear, anything else
            } else if (level < 3 && pick < 60) {
                long table;
                int where = rnd.nextInt(40);
                if (where == 0) {
                    table = NOT_RAM + (rnd.nextInt(16) << 12); // no RAM there
                } else if (where == 1) {
                    table = (1L << Math.min(oas, 47)) | newTable(); // beyond the OAS (when below 48)
                } else {
                    table = newTable();
                }
                desc = table | 0b11;
                if (rnd.nextInt(10) == 0) {
                    desc |= Descriptor.AP_TABLE.prep(1 + rnd.nextInt(3));
                }
                if (rnd.nextInt(15) == 0) {
                    desc |= Descriptor.UXN_TABLE.prep(1) | Descriptor.PXN_TABLE.prep(1);
                }
                if (rnd.nextInt(30) == 0) {
                    desc |= Descriptor.BITS_51_48.prep(1L << rnd.nextInt(4));
                }
            } else if (level < 3) {
                desc = output(shift) | 0b01 | attrs(); // a block (reserved at level 0: a fault)
            } else if (pick < 95) {
                desc = output(12) | 0b11 | attrs(); // a page
            } else {
                desc = output(12) | 0b01 | attrs(); // reserved at level 3
            }
            written.put(addr, desc);
            if (addr < NOT_RAM) {
                h.mem.put64(addr, desc);
            }
            return desc;
        }

        /** Builds the tables along {@code iova}'s walk from {@code ttb}. */
        void path(long ttb, int t0sz, long iova) {
            int ia = 64 - t0sz;
            int start = WalkRecipe.startLevel(t0sz);
            long table = ttb;
            for (int level = start; level <= 3; level++) {
                int shift = 12 + 9 * (3 - level);
                int bits = level == start ? ia - shift : 9;
                long addr = table + 8 * ((iova >>> shift) & ((1L << bits) - 1));
                if (addr >= NOT_RAM || (addr >>> 32) != 0) {
                    return;
                }
                long d = descriptor(addr, level);
                if ((d & 0b11) != 0b11 || level == 3) {
                    return;
                }
                table = Descriptor.ADDR_48.inPlace(d);
            }
        }
    }

    @Test
    void whatTheVmmWalksTheModelTranslatesTheSame() throws Exception {
        MappedRegion vmmSide = MappedRegion.allocate("recipe-property", 0, SharedCache.sizeWithRecipes(1, 1));
        SharedCache shared = SharedCache.map(LibC.dup(vmmSide.fd()), 1, 1, true, true);
        SharedCacheView view = new SharedCacheView(vmmSide);
        int walked = 0;
        int asked = 0;
        int faults = 0;
        int[] levels = new int[4];
        try {
            for (int seed = 0; seed < SEEDS; seed++) {
                SplittableRandom rnd = new SplittableRandom(0x5eed_0000L + seed);
                Harness h = new Harness(Smmuv3Profile.MAX);
                int t0sz = 16 + rnd.nextInt(24); // the model's range for 4 KiB granules without STT: 16..39
                int ips = rnd.nextInt(6); // 32..48 bits
                int oas = new int[] {32, 36, 40, 42, 44, 48}[ips];
                Tables t = new Tables(rnd, h, oas);
                long ttb = t.newTable();
                h.enable();
                h.ste(SID, Harness.s1Ste(Harness.CDS, 0));
                long[] cd = Harness.cd(ttb, 9);
                Cd.T0SZ.set(cd, t0sz);
                Cd.IPS.set(cd, ips);
                // configuration the recipe need not describe: the VMM's walk must stay conservative
                Cd.AFFD.set(cd, rnd.nextInt(4) == 0 ? 1 : 0);
                Cd.WXN.set(cd, rnd.nextInt(4) == 0 ? 1 : 0);
                Cd.PAN.set(cd, rnd.nextInt(4) == 0 ? 1 : 0);
                Cd.HAD0.set(cd, rnd.nextInt(4) == 0 ? 1 : 0);
                Cd.TBI0.set(cd, rnd.nextInt(4) == 0 ? 1 : 0);
                h.cd(Harness.CDS, cd);
                int ia = 64 - t0sz;
                List<Long> iovas = new ArrayList<>();
                long base = rnd.nextLong() & ((1L << ia) - 1);
                for (int i = 0; i < 24; i++) {
                    long iova = switch (rnd.nextInt(5)) {
                        case 0 -> rnd.nextLong() & ((1L << ia) - 1); // anywhere in the range
                        case 1 -> rnd.nextLong(); // anywhere at all (beyond the range, TTB1's half)
                        default -> (base + ((long) rnd.nextInt(1 << 22) << 4)) & ((1L << ia) - 1); // near others
                    };
                    t.path(ttb, t0sz, iova);
                    iovas.add(iova);
                }
                for (long iova : iovas) {
                    boolean write = rnd.nextBoolean();
                    DmaResult model = h.smmu.translate(SID, IommuModel.NO_SUBSTREAM, iova, write ? DmaAccess.WRITE : DmaAccess.READ);
                    Optional<WalkRecipe> recipe = h.smmu.walkRecipe(SID);
                    assertTrue(recipe.isPresent(), "seed " + seed + ": the configuration is cached after a transaction");
                    assertEquals(new WalkRecipe(ttb, t0sz, WalkRecipe.startLevel(t0sz), oas), recipe.get());
                    shared.publishRecipe(SID, recipe.get());
                    SharedCacheView.Walked w = view.walk(h.mem, SID, iova, write);
                    String what = String.format("seed %d: %s of 0x%x (T0SZ %d, OAS %d)", seed, write ? "write" : "read", iova, t0sz, oas);
                    List<long[]> events = h.rawEvents();
                    if (model instanceof DmaResult.Translated tr) {
                        IotlbEntry e = tr.entry();
                        assertEquals(List.of(), events, what);
                        if (w == null) {
                            asked++;
                            continue;
                        }
                        walked++;
                        levels[3 - (w.shift() - 12) / 9]++;
                        assertEquals(e.translate(iova), w.translate(iova), what + ": output");
                        long size = e.addrMask() + 1;
                        assertTrue(size != 0 && Long.compareUnsigned(size, 1L << w.shift()) <= 0
                                && (e.iova() & ~((1L << w.shift()) - 1)) == w.iova(), what + ": the model's entry lies in the walked block");
                        assertEquals(w.writable(), (e.perm() & Perm.UW) != 0, what + ": write permission");
                        assertTrue((e.perm() & Perm.UR) != 0, what + ": read permission");
                    } else {
                        faults++;
                        assertNull(w, what + ": the model faults (" + model + "), the VMM must ask");
                    }
                }
            }
            assertNotNull(view.recipe(SID), "the last recipe reads back");
        } finally {
            shared.close();
            vmmSide.unmap();
        }
        // the property was exercised, not vacuous: walks at every leaf level, faults, and conservative asks
        assertTrue(walked > 1000, "walked " + walked);
        assertTrue(faults > 1000, "faults " + faults);
        assertTrue(asked > 50, "asked " + asked);
        for (int l = 1; l <= 3; l++) {
            assertTrue(levels[l] > 20, "leaves at level " + l + ": " + levels[l]);
        }
    }
}
