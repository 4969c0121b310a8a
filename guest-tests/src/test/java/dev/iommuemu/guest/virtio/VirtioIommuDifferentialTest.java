package dev.iommuemu.guest.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.guest.virtio.VirtioIommuDriver.Split;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.virtio.iommu.RecordingHost;
import dev.iommuemu.virtio.iommu.ResvRegion;
import dev.iommuemu.virtio.iommu.VirtioIommuConfig;
import dev.iommuemu.virtio.iommu.VirtioIommuDevice;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Random ATTACH / DETACH / MAP / UNMAP sequences sent through the virtqueues by the guest driver,
 * against a deliberately naive reference model written from the spec (lists and linear scans).
 * After every request, the status and then every endpoint's translation of a set of addresses
 * (mapping edges and random ones) are compared.
 *
 * <p>{@code -Diommuemu.fuzz.iterations=N} (default 1500 requests) and {@code -Diommuemu.fuzz.seed=S}.
 */
class VirtioIommuDifferentialTest {
    static final int PAGE = 0x1000;
    static final int PAGES = 64;
    static final long MSI_PAGE = 60;
    static final int MAX_DOMAINS = 4;
    static final int MAX_EPS = 6;
    static final int MAX_PER_DOMAIN = 12;
    static final int MAX_TOTAL = 20;

    /** The reference: the spec's rules restated as plainly as possible. */
    static final class Ref {
        static final class Dom {
            final boolean bypass;
            final Set<Integer> eps = new LinkedHashSet<>();
            final List<long[]> maps = new ArrayList<>(); // {first, last, phys, flags}

            Dom(boolean bypass) {
                this.bypass = bypass;
            }
        }

        final Map<Integer, Dom> doms = new HashMap<>();
        final Map<Integer, Integer> epDom = new HashMap<>();

        static boolean exists(int ep) {
            return ep >= 0 && ep < 8;
        }

        int total() {
            return doms.values().stream().mapToInt(d -> d.maps.size()).sum();
        }

        void leave(int ep) {
            Integer old = epDom.remove(ep);
            if (old != null) {
                Dom d = doms.get(old);
                d.eps.remove(ep);
                if (d.eps.isEmpty()) {
                    doms.remove(old);
                }
            }
        }

        int attach(int dom, int ep, int flags) {
            boolean bypass = flags == 1;
            if (flags > 1) {
                return 4;
            }
            if (dom < 1 || dom > 1000) {
                return 5;
            }
            if (!exists(ep)) {
                return 6;
            }
            Dom d = doms.get(dom);
            Integer old = epDom.get(ep);
            if (d != null) {
                if (d.bypass != bypass) {
                    return 4;
                }
                if (old != null && old == dom) {
                    return 0;
                }
            } else {
                boolean freed = old != null && doms.get(old).eps.size() == 1;
                if (doms.size() - (freed ? 1 : 0) >= MAX_DOMAINS) {
                    return 8;
                }
            }
            if (old == null && epDom.size() >= MAX_EPS) {
                return 8;
            }
            leave(ep);
            doms.computeIfAbsent(dom, k -> new Dom(bypass)).eps.add(ep);
            epDom.put(ep, dom);
            return 0;
        }

        int detach(int dom, int ep) {
            if (!exists(ep)) {
                return 6;
            }
            Integer cur = epDom.get(ep);
            if (cur == null || cur != dom) {
                return 4;
            }
            leave(ep);
            return 0;
        }

        int map(int dom, long first, long last, long phys, int flags) {
            Dom d = doms.get(dom);
            if (d == null) {
                return 6;
            }
            if (d.bypass) {
                return 4;
            }
            if (first <= MSI_PAGE * PAGE + PAGE - 1 && MSI_PAGE * PAGE <= last) {
                return 4;
            }
            for (long[] m : d.maps) {
                if (first <= m[1] && m[0] <= last) {
                    return 4;
                }
            }
            if (d.maps.size() >= MAX_PER_DOMAIN || total() >= MAX_TOTAL) {
                return 8;
            }
            d.maps.add(new long[] {first, last, phys, flags});
            return 0;
        }

        int unmap(int dom, long first, long last) {
            Dom d = doms.get(dom);
            if (d == null) {
                return 6;
            }
            if (d.bypass) {
                return 4;
            }
            for (long[] m : d.maps) {
                boolean overlaps = first <= m[1] && m[0] <= last;
                boolean inside = first <= m[0] && m[1] <= last;
                if (overlaps && !inside) {
                    return 5;
                }
            }
            d.maps.removeIf(m -> first <= m[0] && m[1] <= last);
            return 0;
        }

        /** Expected output address, or null for an abort. */
        Long translate(int ep, long iova, boolean write) {
            if (!exists(ep)) {
                return null;
            }
            Integer dom = epDom.get(ep);
            if (dom != null && doms.get(dom).bypass) {
                return iova;
            }
            if (iova / PAGE == MSI_PAGE) {
                return iova; // the MSI window, attached or not
            }
            if (dom == null) {
                return null; // bypass is 0
            }
            Dom d = doms.get(dom);
            for (long[] m : d.maps) {
                if (m[0] <= iova && iova <= m[1]) {
                    int need = write ? 2 : 1;
                    return (m[3] & need) != 0 ? m[2] + (iova - m[0]) : null;
                }
            }
            return null;
        }
    }

    @Test
    void randomRequestSequencesMatchTheReference() {
        long seed = Long.getLong("iommuemu.fuzz.seed", 20261123L);
        int iterations = Integer.getInteger("iommuemu.fuzz.iterations", 1500);
        SparseGuestMemory mem = new SparseGuestMemory(0, 0x1000_0000L);
        VirtioIommuConfig cfg = VirtioIommuConfig.builder()
                .domainRange(1, 1000)
                .endpoints(0, 7)
                .resv(ResvRegion.msi(MSI_PAGE * PAGE, MSI_PAGE * PAGE + PAGE - 1))
                .maxDomains(MAX_DOMAINS)
                .maxEndpoints(MAX_EPS)
                .maxMappingsPerDomain(MAX_PER_DOMAIN)
                .maxMappings(MAX_TOTAL)
                .maxPendingFaults(4)
                .build();
        VirtioIommuDevice dev = new VirtioIommuDevice(cfg, mem, new RecordingHost());
        VirtioIommuDriver drv = new VirtioIommuDriver(VirtioTransport.direct(dev), mem, seed);
        assertTrue(drv.init(VirtioIommuGuestTest.ALL, 64, 8, 24));
        Random rnd = new Random(seed);
        Ref ref = new Ref();
        int[] statusSeen = new int[9];
        for (int it = 0; it < iterations; it++) {
            drv.split(Split.values()[rnd.nextInt(Split.values().length)]);
            int dom = 1 + rnd.nextInt(6);
            int op = rnd.nextInt(10);
            int got;
            int want;
            String what;
            if (op < 2) {
                int ep = rnd.nextInt(9);
                int flags = rnd.nextInt(8) == 0 ? 1 : 0;
                what = "attach(" + dom + ", " + ep + ", " + flags + ")";
                want = ref.attach(dom, ep, flags);
                got = drv.attach(dom, ep, flags);
            } else if (op < 3) {
                int ep = rnd.nextInt(9);
                what = "detach(" + dom + ", " + ep + ")";
                want = ref.detach(dom, ep);
                got = drv.detach(dom, ep);
            } else if (op < 7) {
                long first = (long) rnd.nextInt(PAGES) * PAGE;
                long last = first + (long) (1 + rnd.nextInt(6)) * PAGE - 1;
                long phys = 0x100_0000L + (long) rnd.nextInt(1 << 12) * PAGE;
                int flags = rnd.nextInt(4);
                what = "map(" + dom + ", 0x" + Long.toHexString(first) + ", 0x" + Long.toHexString(last) + ", flags " + flags + ")";
                want = ref.map(dom, first, last, phys, flags);
                got = drv.map(dom, first, last, phys, flags);
            } else {
                long first = (long) rnd.nextInt(PAGES) * PAGE + (rnd.nextInt(4) == 0 ? PAGE / 2 : 0);
                long last = first + (long) rnd.nextInt(12) * PAGE + PAGE - 1;
                what = "unmap(" + dom + ", 0x" + Long.toHexString(first) + ", 0x" + Long.toHexString(last) + ")";
                want = ref.unmap(dom, first, last);
                got = drv.unmap(dom, first, last);
            }
            assertEquals(want, got, "iteration " + it + " (seed " + seed + "): " + what);
            statusSeen[got]++;
            compareTranslations(dev, ref, rnd, it, seed);
        }
        // The run must have exercised success, every error path the reference knows and the bounds.
        for (int s : new int[] {0, 4, 5, 6, 8}) {
            assertTrue(statusSeen[s] > 0, "status " + s + " never produced; widen the run");
        }
    }

    private static void compareTranslations(VirtioIommuDevice dev, Ref ref, Random rnd, int it, long seed) {
        List<Long> addrs = new ArrayList<>();
        for (Ref.Dom d : ref.doms.values()) {
            for (long[] m : d.maps) {
                addrs.add(m[0]);
                addrs.add(m[1]);
                addrs.add(m[0] - 1);
                addrs.add(m[1] + 1);
            }
        }
        for (int k = 0; k < 6; k++) {
            addrs.add((long) rnd.nextInt(PAGES * PAGE));
        }
        addrs.add(MSI_PAGE * PAGE + 8);
        for (int ep = 0; ep < 9; ep++) {
            for (long a : addrs) {
                boolean write = rnd.nextBoolean();
                Long want = ref.translate(ep, a, write);
                DmaResult r = dev.translate(ep, -1, a, write ? DmaAccess.WRITE : DmaAccess.READ);
                String ctx = "iteration " + it + " (seed " + seed + ") ep " + ep + " iova 0x" + Long.toHexString(a) + (write ? " write" : " read");
                if (want == null) {
                    if (!(r instanceof DmaResult.Aborted)) {
                        fail(ctx + ": expected an abort, got " + r);
                    }
                    continue;
                }
                if (!(r instanceof DmaResult.Translated t)) {
                    fail(ctx + ": expected 0x" + Long.toHexString(want) + ", got " + r);
                    return;
                }
                IotlbEntry e = t.entry();
                assertTrue(e.covers(a), ctx);
                assertEquals(want.longValue(), e.translate(a), ctx);
                // Every address of the cached block must translate the same way in the reference.
                long lo = e.iova();
                long hi = e.iova() + e.addrMask();
                if (e.addrMask() != -1L) {
                    assertEquals(ref.translate(ep, lo, write), Long.valueOf(e.translate(lo)), ctx + " block start");
                    assertEquals(ref.translate(ep, hi, write), Long.valueOf(e.translate(hi)), ctx + " block end");
                }
            }
        }
    }
}
