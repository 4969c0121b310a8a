package dev.iommuemu.virtio.iommu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.interval.Mapping;
import dev.iommuemu.virtqueue.DriverRing;
import dev.iommuemu.virtqueue.VirtqRing;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The model's side of the VMM's request hand-off (docs/protocol.md §4.13): the request queue's
 * state, the mirrored domains (endpoints, RESV_MEM regions, mappings, the bounds that leave a
 * domain without a mirror), which domains changed, recorded before the invalidation of a change
 * that removes a mapping or an endpoint, and the VMM's logged requests applied as the queue would.
 */
class VirtioIommuHandOffTest {
    private static final int MAP = Structs.T_MAP;
    private static final int UNMAP = Structs.T_UNMAP;
    private static final int RW = RequestGuest.READ | RequestGuest.WRITE;
    private static final ResvRegion MSI = ResvRegion.msi(VirtioIommuWorkload.MSI_BASE, VirtioIommuWorkload.MSI_BASE + 0xf_ffff);

    /** A host that records, at each invalidation, which domains the device says changed. */
    private static final class Host implements DmaHost {
        VirtioIommuDevice d;
        final List<ChangedDomains> atInvalidate = new ArrayList<>();
        /** Whether invalidations take the changed domains (the daemon's hook; off while a log drains). */
        boolean watch = true;
        /** DmaHost#prefill calls: endpoint and iova. */
        final List<String> prefills = new ArrayList<>();

        @Override
        public void prefill(int endpoint, dev.iommuemu.dma.IotlbEntry e) {
            prefills.add(endpoint + " " + Long.toHexString(e.iova()));
        }

        @Override
        public void raiseIrq(String line) {}

        @Override
        public void msi(long address, int data) {}

        @Override
        public void invalidate(IotlbInvalidation inv) {
            if (watch) {
                atInvalidate.add(d.takeChangedDomains());
            }
        }
    }

    private final RequestGuest g = new RequestGuest();
    private final Host host = new Host();
    private final VirtioIommuDevice d = new VirtioIommuDevice(VirtioIommuWorkload.config(), g.mem, host);

    VirtioIommuHandOffTest() {
        host.d = d;
        assertTrue(d.setDriverFeatures(d.deviceFeatures() & ~(1L << VirtqRing.F_EVENT_IDX)));
        DriverRing r = g.req;
        assertTrue(d.setQueueSize(0, RequestGuest.QSIZE));
        assertTrue(d.setQueueAddresses(0, r.descAddr(), r.availAddr(), r.usedAddr()));
        d.setQueueEnabled(0, true);
    }

    private void serve(byte[] req) {
        g.publish(req);
        d.queueNotified(0);
    }

    @Test
    void theRequestQueuesState() {
        serve(RequestGuest.attach(1, 1));
        RequestQueueHandOff s = d.requestQueueHandOff();
        assertEquals(new RequestQueueHandOff(true, g.req.descAddr(), g.req.availAddr(), g.req.usedAddr(), RequestGuest.QSIZE,
                1, 1, false, true, true, 0, -1L, 0xfff, 0, 1 << 21, 12, false), s);
        assertTrue(s.servable());
        d.setQueueEnabled(0, false);
        assertFalse(d.requestQueueHandOff().servable(), "queue 0 stopped");
    }

    @Test
    void mirroredDomainsAndTheirBounds() {
        serve(RequestGuest.attach(1, 1));
        serve(RequestGuest.attach(1, 3)); // endpoint 3 has a reserved region of its own
        serve(RequestGuest.map(1, 0x5000, 0x5fff, 0x9000, RequestGuest.READ));
        serve(RequestGuest.map(1, 0x1000, 0x2fff, 0x7000, RW));
        assertEquals(Optional.of(new MirroredDomain(1, List.of(1, 3), List.of(MSI, ResvRegion.reserved(0x3_0000, 0x3_ffff)),
                List.of(new Mapping(0x1000, 0x2fff, 0x7000, RW), new Mapping(0x5000, 0x5fff, 0x9000, RequestGuest.READ)))),
                d.mirroredDomain(1));
        assertEquals(Optional.empty(), d.mirroredDomain(2), "no such domain");
        // a bypass domain has no mirror
        serve(attachBypass(2, 2));
        assertEquals(Optional.empty(), d.mirroredDomain(2));
        assertEquals(1, d.mirroredDomains().size());
    }

    private static byte[] attachBypass(int domain, int ep) {
        long[] w = new long[Structs.Attach.LAYOUT.words()];
        Structs.Head.TYPE.set(w, Structs.T_ATTACH);
        Structs.Attach.DOMAIN.set(w, domain);
        Structs.Attach.ENDPOINT.set(w, ep);
        Structs.Attach.FLAGS.set(w, Structs.Attach.F_BYPASS);
        return Structs.toBytes(w, Structs.Attach.READABLE);
    }

    @Test
    void aChangeIsRecordedBeforeTheInvalidationOfAnUnmapADetachOrAMove() {
        serve(RequestGuest.attach(1, 1));
        serve(RequestGuest.map(1, 0x1000, 0x1fff, 0x7000, RW));
        d.takeChangedDomains();
        host.atInvalidate.clear();
        serve(RequestGuest.unmap(1, 0x1000, 0x1fff));
        assertEquals(List.of(new ChangedDomains(false, Set.of(1))), host.atInvalidate);
        host.atInvalidate.clear();
        serve(RequestGuest.attach(1, 2));
        serve(RequestGuest.attach(4, 2)); // moves endpoint 2 from domain 1 to domain 4
        assertEquals(List.of(new ChangedDomains(false, Set.of(1)), new ChangedDomains(false, Set.of(1, 4))), host.atInvalidate);
        host.atInvalidate.clear();
        d.reset();
        assertEquals(List.of(new ChangedDomains(true, Set.of())), host.atInvalidate);
        assertEquals(ChangedDomains.NONE, d.takeChangedDomains());
    }

    @Test
    void aLoadedStateChangesEveryDomain() {
        serve(RequestGuest.attach(1, 1));
        serve(RequestGuest.map(1, 0x1000, 0x1fff, 0x7000, RW));
        VirtioIommuState saved = d.saveState();
        d.takeChangedDomains();
        host.watch = false;
        d.setQueueEnabled(0, false);
        d.loadState(saved);
        assertEquals(new ChangedDomains(true, Set.of()), d.takeChangedDomains());
        assertEquals(List.of(new MirroredDomain(1, List.of(1), List.of(MSI), List.of(new Mapping(0x1000, 0x1fff, 0x7000, RW)))),
                d.mirroredDomains());
    }

    @Test
    void theVmmsRequestsAreAppliedAsTheQueueWouldAndItsIndexesTaken() {
        serve(RequestGuest.attach(1, 1));
        d.takeChangedDomains();
        host.watch = false; // as the daemon's drain: the invalidations republish nothing
        long mapsBefore = d.counters().requests[MAP];
        int rejected = d.applyVmmRequests(List.of(
                new VmmRequest(MAP, 1, 0x1000, 0x1fff, 0x7000, RW),
                new VmmRequest(MAP, 1, 0x1000, 0x1fff, 0x8000, RW), // overlaps: INVAL
                new VmmRequest(UNMAP, 1, 0x1800, 0x18ff, 0, 0), // would split: RANGE
                new VmmRequest(MAP, 1, VirtioIommuWorkload.MSI_BASE, VirtioIommuWorkload.MSI_BASE + 0xfff, 0, RW), // RESV_MEM
                new VmmRequest(7, 1, 0, 0, 0, 0)), 5, 5);
        assertEquals(4, rejected);
        assertEquals(mapsBefore + 3, d.counters().requests[MAP]);
        assertEquals(1, d.counters().requests[UNMAP]);
        assertEquals(List.of(new Mapping(0x1000, 0x1fff, 0x7000, RW)), d.mappings(1));
        assertEquals(new ChangedDomains(false, Set.of(1)), d.takeChangedDomains(),
                "the refused requests' domain: the VMM may have changed its mirror for them");
        d.applyVmmRequests(List.of(new VmmRequest(UNMAP, 1, 0x1000, 0x1fff, 0, 0)), 6, 6);
        assertEquals(new ChangedDomains(false, Set.of(1)), d.takeChangedDomains(),
                "an accepted request's domain too: after a restart the log is a replay the new memory's slot never saw");
        assertEquals(List.of(), d.mappings(1));
        RequestQueueHandOff s = d.requestQueueHandOff();
        assertEquals(6, s.nextAvail());
        assertEquals(6, s.usedIdx());
        assertEquals(0, s.mappings());
    }

    /**
     * A MAP the VMM served offers nothing to the VMM's cache when the daemon drains it (§4.13): the
     * UNMAP after it in the same log has completed already, and an entry offered between the two
     * would be a stale hit. A MAP the queue serves offers its translation (§4.8).
     */
    @Test
    void aLoggedMapOffersNoTranslationToTheCache() {
        serve(RequestGuest.attach(1, 1));
        host.watch = false;
        host.prefills.clear();
        assertEquals(0, d.applyVmmRequests(List.of(
                new VmmRequest(MAP, 1, 0x1000, 0x1fff, 0x7000, RW),
                new VmmRequest(UNMAP, 1, 0x1000, 0x1fff, 0, 0)), 1, 1)); // not from this ring: its position stays
        assertEquals(List.of(), host.prefills);
        serve(RequestGuest.map(1, 0x4000, 0x4fff, 0x9000, RW));
        assertEquals(List.of("1 4000"), host.prefills);
    }
}
