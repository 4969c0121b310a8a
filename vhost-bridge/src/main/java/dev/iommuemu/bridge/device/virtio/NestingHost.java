package dev.iommuemu.bridge.device.virtio;

import dev.iommuemu.bridge.memory.RamLayout;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.domain.HostSmmu;
import dev.iommuemu.domain.IommuCore;
import dev.iommuemu.domain.PagingDomain;
import dev.iommuemu.domain.Result;
import dev.iommuemu.iommufd.Iommufd;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.virtio.iommu.PvNesting;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The per-session host behind the virtio-iommu {@code nesting} profile (docs/nesting.md §6): a
 * "physical" SMMUv3 (profile {@code max}) driven by the iommu-core host model, whose host physical
 * memory is the VMM's guest RAM plus a private carve-out at {@link #CARVE_BASE} (the host SMMU's
 * stream table, queues and host page tables, which no guest IPA reaches), endpoints
 * {@code [0, ENDPOINTS)} as StreamIDs one to one, and a nest parent whose stage 2 maps every RAM
 * region the VMM shared at the same address (IPA = PA).
 *
 * <p>The RAM regions change as the VMM adds and removes them (ADD_MEM_REG / REM_MEM_REG), so the
 * nest parent is brought up to date by {@link #sync()}, which the bridge calls under the device
 * lock before each request-queue notification is served: a region added later is mapped before
 * the next request the guest sends (an ATTACH_TABLE, say), a region removed is unmapped then. Not
 * thread-safe on its own: the caller holds the device lock.
 */
final class NestingHost {
    /** Where the host's private structures live (above any RAM a test VMM registers; OAS 48 holds it). */
    static final long CARVE_BASE = 1L << 46;
    /** Bounded: lazily populated, it holds the stream table, queues and 4 KiB stage 2 tables for ~100 GiB of RAM. */
    static final long CARVE_SIZE = 256L << 20;
    /** Endpoints (= StreamIDs) behind the host: a bounded range, so the linear stream table stays small. */
    static final int ENDPOINTS_LOG2 = 8;
    static final int ENDPOINTS = 1 << ENDPOINTS_LOG2;
    private static final int PROT = HostPageTable.IOMMU_READ | HostPageTable.IOMMU_WRITE;

    private final GuestMemory ram;
    private final PvNesting nesting;
    /** Regions mapped into the nest parent: base -> size. */
    private final Map<Long, Long> mapped = new LinkedHashMap<>();
    private long mapFailures;

    private NestingHost(GuestMemory ram, PvNesting nesting) {
        this.ram = ram;
        this.nesting = nesting;
    }

    static NestingHost create(GuestMemory ram) {
        Result<PvNesting> n = PvNesting.create(new Iommufd(newCore(ram)), endpointToSid());
        if (!n.isOk()) {
            throw new IllegalStateException("paravirtual nesting unavailable: " + n.error());
        }
        return new NestingHost(ram, n.get());
    }

    /** A fresh host SMMU (its own carve-out) with StreamIDs {@code [0, ENDPOINTS)} probed. */
    private static IommuCore newCore(GuestMemory ram) {
        GuestMemory hostMem = new CarvedMemory(ram, new SparseGuestMemory(CARVE_BASE, CARVE_SIZE));
        HostSmmu smmu = new HostSmmu(hostMem, CARVE_BASE, CARVE_SIZE, Smmuv3Profile.MAX, DmaHost.NONE, ENDPOINTS_LOG2);
        IommuCore core = new IommuCore(smmu, IommuCore.Options.DEFAULT);
        for (int sid = 0; sid < ENDPOINTS; sid++) {
            Result<?> d = core.probe(sid, null);
            if (!d.isOk()) {
                throw new IllegalStateException("host SMMU refuses StreamID " + sid + ": " + d.error());
            }
        }
        return core;
    }

    /** Endpoint IDs are StreamIDs one to one. */
    private static Map<Integer, Integer> endpointToSid() {
        Map<Integer, Integer> epToSid = new LinkedHashMap<>();
        for (int sid = 0; sid < ENDPOINTS; sid++) {
            epToSid.put(sid, sid);
        }
        return epToSid;
    }

    // ---- saved state (docs/device-state-virtio.md) ----

    /** The iommufd objects of this host (the physical SMMU's own registers and tables are rebuilt, not saved). */
    Iommufd.State iommufdState() {
        return nesting.iommufd().saveState();
    }

    /** The regions mapped into the nest parent now: base -> size, in mapping order. */
    Map<Long, Long> mappedRegionsNow() {
        return new LinkedHashMap<>(mapped);
    }

    /**
     * A host rebuilt from saved state, off to the side: a fresh host SMMU and core, the iommufd
     * objects of {@code fd} with their ids ({@link Iommufd#restore}), the request-level state
     * {@code pv} over them ({@link PvNesting#restore}), and the nest parent regions as saved (the
     * nest parent's mappings came back with its hwpt). {@link #adopt} then takes it over.
     *
     * @throws IllegalArgumentException with a sentence when the state could not have been produced
     */
    NestingHost rebuilt(Iommufd.State fd, Map<Long, Long> regions, PvNesting.State pv) {
        // The saved nest parent covered the source's RAM, which a destination built alike has too:
        // a region this VMM does not have is refused here, before anything is built or swapped (and
        // sync() never walks a range the blob made up).
        Map<Long, Long> have = new LinkedHashMap<>();
        for (GuestMemory.Region r : RamLayout.of(ram)) {
            have.put(r.base(), r.size());
        }
        for (Map.Entry<Long, Long> e : regions.entrySet()) {
            if (!e.getValue().equals(have.get(e.getKey()))) {
                throw new IllegalArgumentException(String.format("paravirtual nesting state refused: its nest parent maps guest"
                        + " RAM [0x%x, +0x%x), which is not a RAM region of this VMM; start the destination with the source's"
                        + " memory layout", e.getKey(), e.getValue()));
            }
            if (overlapsCarve(e.getKey(), e.getValue())) { // sync() never maps one
                throw new IllegalArgumentException(String.format("paravirtual nesting state refused: its nest parent maps guest"
                        + " RAM [0x%x, +0x%x), which overlaps the host's private carve-out [0x%x, +0x%x) that this nesting host"
                        + " never maps; it was not saved by a nesting host, so load a state that was", e.getKey(), e.getValue(),
                        CARVE_BASE, CARVE_SIZE));
            }
        }
        String why = runsRefusal(fd, regions);
        if (why != null) {
            throw new IllegalArgumentException("paravirtual nesting state refused: " + why
                    + "; this nesting host maps only guest RAM, at its own address, so the state was not saved by one: load a state"
                    + " that was, or start afresh.");
        }
        Iommufd restored = Iommufd.restore(newCore(ram), fd);
        NestingHost h = new NestingHost(ram, PvNesting.restore(restored, endpointToSid(), pv));
        h.mapped.putAll(regions);
        return h;
    }

    /**
     * Why the paging hwpts of {@code fd} are not what this host's {@link #sync()} maps, or {@code
     * null}: the nest parent's stage 2 is the identity (IPA = PA, docs/nesting.md §6) over the RAM
     * regions it lists ({@code regions}, checked against this VMM's), never over the host's carve-out
     * (its stream table, queues and page tables). Checked before any page table is built, so a blob
     * cannot make the restore map (and allocate page tables for) more than the VMM's RAM.
     */
    private static String runsRefusal(Iommufd.State fd, Map<Long, Long> regions) {
        for (Iommufd.ObjectState o : fd.objects()) {
            if (!(o instanceof Iommufd.PagingHwptObject p)) {
                continue;
            }
            for (HostPageTable.Run r : p.mappings()) {
                String run = String.format("paging hwpt %d maps IPA [0x%x, +0x%x) to PA 0x%x", p.id(), r.iova(), r.size(), r.pa());
                if (r.iova() != r.pa()) {
                    return run + ", which is not the identity (IPA = PA)";
                }
                if (r.size() <= 0 || Long.compareUnsigned(r.iova() + r.size(), r.iova()) < 0) {
                    return run + ", which is empty or wraps around the address space";
                }
                if (overlapsCarve(r.iova(), r.size())) {
                    return run + String.format(", which reaches the host's private carve-out [0x%x, +0x%x)", CARVE_BASE, CARVE_SIZE);
                }
                if (!covered(r.iova(), r.size(), regions)) {
                    return run + ", which is not inside the RAM regions its nest parent lists";
                }
            }
        }
        return null;
    }

    /** Whether {@code [base, base + size)} lies within the union of {@code regions} (base -> size). */
    private static boolean covered(long base, long size, Map<Long, Long> regions) {
        long at = base;
        long end = base + size;
        while (Long.compareUnsigned(at, end) < 0) {
            long next = at;
            for (Map.Entry<Long, Long> e : regions.entrySet()) {
                long rEnd = e.getKey() + e.getValue();
                if (Long.compareUnsigned(e.getKey(), at) <= 0 && Long.compareUnsigned(at, rEnd) < 0) {
                    next = rEnd;
                    break;
                }
            }
            if (Long.compareUnsigned(next, at) <= 0) { // no region holds it (or one wraps)
                return false;
            }
            at = next;
        }
        return true;
    }

    /** Whether {@code [base, base + size)} overlaps the host's carve-out. */
    private static boolean overlapsCarve(long base, long size) {
        return Long.compareUnsigned(base, CARVE_BASE + CARVE_SIZE) < 0 && Long.compareUnsigned(CARVE_BASE, base + size) < 0;
    }

    /**
     * Takes over {@code restored}'s nest parent bookkeeping (its PvNesting is adopted by the device's
     * own, which this host shares), then brings the nest parent up to the VMM's RAM regions now.
     */
    void adopt(NestingHost restored) {
        mapped.clear();
        mapped.putAll(restored.mapped);
        sync();
    }

    /** The nesting host the device's state was restored with (for {@code VirtioIommuDevice.loadState}). */
    PvNesting restoredNesting() {
        return nesting;
    }

    PvNesting nesting() {
        return nesting;
    }

    /** Regions currently mapped into the nest parent. */
    int mappedRegions() {
        return mapped.size();
    }

    long mapFailures() {
        return mapFailures;
    }

    /**
     * Makes the nest parent's stage 2 the identity over exactly the RAM regions the VMM has now
     * (a region overlapping the carve-out is never mapped: it would reach the host's structures).
     */
    void sync() {
        Map<Long, Long> want = new LinkedHashMap<>();
        for (GuestMemory.Region r : RamLayout.of(ram)) { // the VMM's regions (or a replay's, docs/recording.md)
            if (!overlapsCarve(r.base(), r.size())) {
                want.put(r.base(), r.size());
            }
        }
        PagingDomain parent = nesting.nestParent();
        for (Map.Entry<Long, Long> e : new ArrayList<>(mapped.entrySet())) {
            if (!e.getValue().equals(want.get(e.getKey()))) {
                unmap(parent, e.getKey(), e.getValue());
                mapped.remove(e.getKey());
            }
        }
        for (Map.Entry<Long, Long> e : want.entrySet()) {
            if (!mapped.containsKey(e.getKey())) {
                if (map(parent, e.getKey(), e.getValue())) {
                    mapped.put(e.getKey(), e.getValue());
                } else {
                    mapFailures++; // e.g. beyond the stage 2 input size: that IPA range stage-2 faults at the host
                }
            }
        }
    }

    /** IPA = PA over {@code [base, base + size)} in calls of at most HostPageTable.MAX_CALL; all or nothing. */
    private static boolean map(PagingDomain parent, long base, long size) {
        for (long off = 0; Long.compareUnsigned(off, size) < 0; off += HostPageTable.MAX_CALL) {
            long n = Math.min(HostPageTable.MAX_CALL, size - off);
            Errno err = parent.map(base + off, base + off, n, PROT);
            if (err != null) {
                unmap(parent, base, off);
                return false;
            }
        }
        return true;
    }

    private static void unmap(PagingDomain parent, long base, long size) {
        for (long off = 0; Long.compareUnsigned(off, size) < 0; off += HostPageTable.MAX_CALL) {
            parent.unmap(base + off, Math.min(HostPageTable.MAX_CALL, size - off));
        }
    }

    /** Host physical memory: the carve-out first, then the VMM's RAM. */
    private record CarvedMemory(GuestMemory ram, GuestMemory carve) implements GuestMemory {
        @Override
        public Region find(long addr, int len) {
            Region r = carve.find(addr, len);
            return r != null ? r : ram.find(addr, len);
        }
    }
}
