package dev.iommuemu.virtio.iommu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.interval.Mapping;
import dev.iommuemu.virtqueue.SplitVirtqueue;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * Saved state of the virtio-iommu (docs/device-state-virtio.md): a device driven by a seeded
 * random guest, saved and loaded into a fresh device, answers the rest of the guest's requests,
 * translations and fault reports exactly as the original does; states a device could not have
 * produced, or saved by a device built otherwise, are refused with a sentence and change nothing.
 * {@code -Diommuemu.state.iterations=N} (default 40) and {@code -Diommuemu.state.seed=S} for more.
 */
class VirtioIommuStateTest {

    @Test
    void aLoadedDeviceAnswersTheNextRequestsAsTheSavedOneWould() {
        long base = Long.getLong("iommuemu.state.seed", 1L);
        int iterations = Integer.getInteger("iommuemu.state.iterations", 40);
        int withMappings = 0;
        int withPending = 0;
        int withBypassDomain = 0;
        for (int i = 0; i < iterations; i++) {
            long seed = base + i;
            VirtioIommuState s;
            try {
                s = roundTrip(seed);
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError("seed " + seed + " (rerun with -Diommuemu.state.seed=" + seed
                        + " -Diommuemu.state.iterations=1): " + e.getMessage(), e);
            }
            withMappings += s.domains().stream().anyMatch(d -> !d.mappings().isEmpty()) ? 1 : 0;
            withPending += s.pendingFaults().isEmpty() ? 0 : 1;
            withBypassDomain += s.domains().stream().anyMatch(VirtioIommuState.DomainState::bypass) ? 1 : 0;
        }
        if (iterations >= 20) {
            // The property is only worth something if the saved states were rich.
            assertTrue(withMappings > iterations / 4, "states with mappings: " + withMappings);
            assertTrue(withPending > 0, "states with pending faults: " + withPending);
            assertTrue(withBypassDomain > 0, "states with a bypass domain: " + withBypassDomain);
        }
    }

    /** Drives two identical guests, moves the second to a fresh device loaded with the first's state, compares. */
    private static VirtioIommuState roundTrip(long seed) {
        Random r = new Random(seed * 31 + 7);
        int before = 10 + r.nextInt(200);
        VirtioIommuWorkload a = new VirtioIommuWorkload(seed);
        VirtioIommuWorkload b = new VirtioIommuWorkload(seed);
        a.run(before);
        b.run(before);
        assertEquals(a.log, b.log, "the same seed is the same guest");
        VirtioIommuState s = a.device().saveState();
        VirtioIommuDevice fresh = new VirtioIommuDevice(VirtioIommuWorkload.config(), b.memory, b.host);
        fresh.loadState(s);
        assertEquals(s, fresh.saveState());
        assertEquals(List.of(IotlbInvalidation.all()), b.host.invalidations, "the VMM drops what it cached");
        for (int q = 0; q < 2; q++) {
            assertEquals(a.device().queueNextAvail(q), fresh.queueNextAvail(q), "GET_VRING_BASE of queue " + q);
            assertEquals(a.device().queueEnabled(q), fresh.queueEnabled(q));
        }
        assertEquals(a.device().readConfig(0, 8), fresh.readConfig(0, 8));
        assertEquals(a.device().readConfig(32, 8), fresh.readConfig(32, 8));
        assertEquals(a.device().driverFeatures(), fresh.driverFeatures());
        b.host.clear();
        b.useDevice(fresh);
        a.log.clear();
        b.log.clear();
        a.run(80);
        b.run(80);
        assertEquals(a.log, b.log);
        assertEquals(a.device().saveState(), fresh.saveState());
        return s;
    }

    // ---- refusals: exact sentences, nothing changed ----

    /** A small known state: endpoint 1 in domain 1 with one mapping, endpoint 2 in domain 2. */
    private static VirtioIommuWorkload known() {
        VirtioIommuWorkload w = new VirtioIommuWorkload(7);
        assertTrue(w.attach(1, 1, 0).endsWith("00000000"));
        assertTrue(w.map(1, 0x1000, 0x1fff, 0x5000, 3).endsWith("00000000"));
        assertTrue(w.attach(2, 2, 0).endsWith("00000000"));
        return w;
    }

    private static VirtioIommuState withDomains(VirtioIommuState s, UnaryOperator<List<VirtioIommuState.DomainState>> f) {
        return new VirtioIommuState(s.identity(), s.driverFeatures(), s.bypass(), s.topology(), f.apply(new ArrayList<>(s.domains())),
                s.pendingFaults(), s.queues(), s.nesting());
    }

    private static VirtioIommuState.DomainState domain(int id, List<Integer> eps, List<Mapping> ms) {
        return new VirtioIommuState.DomainState(id, false, eps, ms, -1, null);
    }

    private static VirtioIommuState withQueue(VirtioIommuState s, int q, SplitVirtqueue.State st) {
        List<SplitVirtqueue.State> qs = new ArrayList<>(s.queues());
        qs.set(q, st);
        return new VirtioIommuState(s.identity(), s.driverFeatures(), s.bypass(), s.topology(), s.domains(), s.pendingFaults(), qs,
                s.nesting());
    }

    private static void assertRefused(VirtioIommuDevice target, VirtioIommuState bad, String sentence) {
        VirtioIommuState before = target.saveState();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> target.loadState(bad));
        assertEquals("virtio-iommu state refused: " + sentence + ".", e.getMessage());
        assertEquals(before, target.saveState(), "a refused state changes nothing");
    }

    @Test
    void statesNoRequestSequenceProducesAreRefusedAndChangeNothing() {
        VirtioIommuState s = known().device().saveState();
        VirtioIommuWorkload other = new VirtioIommuWorkload(99);
        other.run(50);
        VirtioIommuDevice target = other.device();
        Mapping m1 = new Mapping(0x1000, 0x1fff, 0x5000, 3);

        assertRefused(target, withDomains(s, ds -> {
            ds.set(0, domain(1, List.of(1), List.of(m1, new Mapping(0x1000, 0x2fff, 0x9000, 3))));
            return ds;
        }), "mapping [0x1000, 0x2fff] of domain 1 overlaps or precedes mapping [0x1000, 0x1fff]");
        assertRefused(target, withDomains(s, ds -> {
            ds.set(1, domain(2, List.of(2, 1), List.of()));
            return ds;
        }), "endpoint 1 is attached to both domain 1 and domain 2");
        assertRefused(target, withDomains(s, ds -> {
            ds.set(1, domain(2, List.of(9), List.of()));
            return ds;
        }), "endpoint 9 is attached to domain 2 but does not exist on this device");
        assertRefused(target, withDomains(s, ds -> {
            ds.set(1, domain(2, List.of(), List.of()));
            return ds;
        }), "domain 2 has no endpoint, but a domain ceases to exist when its last endpoint is detached");
        assertRefused(target, withDomains(s, ds -> {
            ds.set(0, domain(1, List.of(1), List.of(new Mapping(0x1000, 0x17ff, 0x5000, 3))));
            return ds;
        }), "mapping [0x1000, 0x17ff] of domain 1 is not aligned on the 4096-byte granule");
        assertRefused(target, withDomains(s, ds -> {
            ds.set(1, new VirtioIommuState.DomainState(2, true, List.of(2), List.of(m1), -1, null));
            return ds;
        }), "domain 2 is a bypass domain and cannot have mappings");
        assertRefused(target, withDomains(s, ds -> {
            ds.set(1, new VirtioIommuState.DomainState(2, false, List.of(2), List.of(), 5, new long[] {1, 0}));
            return ds;
        }), "domain 2 is a table domain, which needs VIRTIO_IOMMU_F_NESTING_SMMUV3 negotiated on a nesting device");
        SplitVirtqueue.State q0 = s.queues().get(0);
        assertRefused(target, withQueue(s, 0, new SplitVirtqueue.State(24, q0.descAddr(), q0.availAddr(), q0.usedAddr(), true, false,
                q0.nextAvail(), q0.usedIdx(), q0.signalledUsed())), "virtqueue 0: its size 24 is not a power of two of at most 64");
        SplitVirtqueue.State q1 = s.queues().get(1);
        assertRefused(target, withQueue(s, 1, new SplitVirtqueue.State(q1.size(), q1.descAddr(), q1.availAddr(), q1.usedAddr(), true,
                false, 0x10000, q1.usedIdx(), q1.signalledUsed())), "virtqueue 1: its ring index 65536 does not fit the 16-bit index of a split ring");
        assertRefused(target, withQueue(s, 1, new SplitVirtqueue.State(q1.size(), q1.descAddr() + 8, q1.availAddr(), q1.usedAddr(), true,
                false, q1.nextAvail(), q1.usedIdx(), q1.signalledUsed())), "virtqueue 1: its ring addresses 0x3008/0x3100/0x3128 break the "
                + "descriptor (16), available (2) or used (4) ring alignment");
        long nesting = VirtioIommuFeatures.bit(VirtioIommuFeatures.NESTING_SMMUV3);
        assertRefused(target, new VirtioIommuState(s.identity(), s.driverFeatures() | nesting, s.bypass(), s.topology(), s.domains(),
                s.pendingFaults(), s.queues(), null), "its driver features 0x" + Long.toHexString(s.driverFeatures() | nesting)
                + " are not a set this device accepts from a driver (offered 0x" + Long.toHexString(target.deviceFeatures()) + ")");
        List<FaultEvent> many = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            many.add(new FaultEvent(Structs.Fault.R_DOMAIN, 0, i, 0));
        }
        assertRefused(target, new VirtioIommuState(s.identity(), s.driverFeatures(), s.bypass(), s.topology(), s.domains(), many,
                s.queues(), null), "5 pending fault reports exceed this device's bound of 4");
        assertRefused(target, new VirtioIommuState(s.identity(), s.driverFeatures(), s.bypass(), s.topology(), s.domains(),
                s.pendingFaults(), s.queues(), new PvNesting.State(1, 2, 3, Map.of(), List.of(), List.of())),
                "it carries paravirtual nesting state, and this device has no nesting host");
        assertRefused(target, new VirtioIommuState(s.identity(), s.driverFeatures(), s.bypass(), List.of(2), s.domains(),
                s.pendingFaults(), s.queues(), null), "endpoint 1 is attached to domain 1 but does not exist on this device");

        // "ATTACH request": ATTACH_F_BYPASS is an unknown flag (S_INVAL) unless BYPASS_CONFIG is negotiated.
        long noBypassConfig = s.driverFeatures() & ~VirtioIommuFeatures.bit(VirtioIommuFeatures.BYPASS_CONFIG);
        assertRefused(target, new VirtioIommuState(s.identity(), noBypassConfig, s.bypass(), s.topology(),
                List.of(s.domains().get(0), new VirtioIommuState.DomainState(2, true, List.of(2), List.of(), -1, null)),
                s.pendingFaults(), s.queues(), null), "domain 2 is a bypass domain, but VIRTIO_IOMMU_F_BYPASS_CONFIG, without which"
                + " ATTACH refuses VIRTIO_IOMMU_ATTACH_F_BYPASS, is not negotiated");

        // "Fault reporting": reason and flags the device never writes (24-byte record: no PASID_VALID, RECOVERABLE).
        int rw = Structs.Fault.F_READ | Structs.Fault.F_ADDRESS;
        assertRefused(target, withFaults(s, new FaultEvent(3, rw, 1, 0x1000)), "a pending fault report of endpoint 1 has reason 3,"
                + " which is none of VIRTIO_IOMMU_FAULT_R_UNKNOWN (0), R_DOMAIN (1) and R_MAPPING (2)");
        assertRefused(target, withFaults(s, new FaultEvent(0x102, rw, 1, 0x1000)), "a pending fault report of endpoint 1 has reason"
                + " 258, which is none of VIRTIO_IOMMU_FAULT_R_UNKNOWN (0), R_DOMAIN (1) and R_MAPPING (2)");
        assertRefused(target, withFaults(s, new FaultEvent(Structs.Fault.R_MAPPING, rw | 0x8, 1, 0x1000)),
                "a pending fault report of endpoint 1 has flags 0x109 with reserved bits 0x8 set, which this device never sets");
        assertRefused(target, withFaults(s, new FaultEvent(Structs.Fault.R_MAPPING, rw | Structs.Fault.F_RECOVERABLE, 1, 0x1000)),
                "a pending fault report of endpoint 1 has flags 0x501 with reserved bits 0x400 set, which this device never sets");
        assertRefused(target, withFaults(s, new FaultEvent(Structs.Fault.R_DOMAIN, Structs.Fault.F_READ, 1, 0x1000)),
                "a pending fault report of endpoint 1 carries address 0x1000 without VIRTIO_IOMMU_FAULT_F_ADDRESS");
    }

    @Test
    void reportsAndBypassDomainsTheDeviceMakesAreLoaded() {
        VirtioIommuState s = known().device().saveState();
        VirtioIommuWorkload other = new VirtioIommuWorkload(99);
        VirtioIommuDevice target = other.device();
        FaultEvent f = new FaultEvent(Structs.Fault.R_MAPPING, Structs.Fault.F_WRITE | Structs.Fault.F_EXEC | Structs.Fault.F_ADDRESS,
                1, 0x2000);
        VirtioIommuState ok = new VirtioIommuState(s.identity(), s.driverFeatures(), s.bypass(), s.topology(),
                List.of(s.domains().get(0), new VirtioIommuState.DomainState(2, true, List.of(2), List.of(), -1, null)),
                List.of(f, new FaultEvent(Structs.Fault.R_UNKNOWN, 0, 2, 0)), s.queues(), null);
        target.loadState(ok);
        assertTrue(target.domainIsBypass(2));
        assertEquals(2, target.pendingFaults());
        assertEquals(ok, target.saveState());
    }

    private static VirtioIommuState withFaults(VirtioIommuState s, FaultEvent... faults) {
        return new VirtioIommuState(s.identity(), s.driverFeatures(), s.bypass(), s.topology(), s.domains(), List.of(faults),
                s.queues(), null);
    }

    @Test
    void aStateOfADeviceBuiltOtherwiseIsRefused() {
        VirtioIommuState s = known().device().saveState();
        VirtioIommuWorkload w = new VirtioIommuWorkload(7);
        VirtioIommuConfig cfg64k = VirtioIommuConfig.builder().maxQueueSize(64).maxPendingFaults(4).endpoints(0, 5)
                .pageSizeMask(0x1_0000L).probeSize(128).build();
        VirtioIommuDevice d64k = new VirtioIommuDevice(cfg64k, w.memory, w.host);
        assertRefused(d64k, s, "it was saved by a device built differently: page_size_mask 0x40201000 (this device: 0x10000); "
                + "start the destination with the source's profile and properties");
        VirtioIommuConfig noProbe = VirtioIommuConfig.builder().maxQueueSize(64).endpoints(0, 5).probeSize(0).build();
        VirtioIommuDevice dNoProbe = new VirtioIommuDevice(noProbe, w.memory, w.host);
        assertRefused(dNoProbe, s, "it was saved by a device built differently: offered features 0x"
                + Long.toHexString(s.identity().deviceFeatures()) + " (this device: 0x" + Long.toHexString(dNoProbe.deviceFeatures())
                + "); start the destination with the source's profile and properties");
    }

    @Test
    void aFreshDeviceRoundTripsToItself() {
        VirtioIommuWorkload w = new VirtioIommuWorkload(3);
        VirtioIommuDevice d = new VirtioIommuDevice(VirtioIommuWorkload.config(), w.memory, w.host);
        VirtioIommuState s = d.saveState();
        assertEquals(0, s.driverFeatures());
        assertEquals(null, s.topology());
        VirtioIommuDevice e = new VirtioIommuDevice(VirtioIommuWorkload.config(), w.memory, w.host);
        e.loadState(s);
        assertEquals(s, e.saveState());
    }
}
