package dev.iommuemu.bridge.memory;

import dev.iommuemu.memory.GuestMemory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;

/**
 * The guest RAM a VMM shared with this process (vhost-user SET_MEM_TABLE, ADD_MEM_REG,
 * REM_MEM_REG), as the models' {@link GuestMemory}. Lookups read a copy-on-write array; changes
 * are serialized. Unmapping a region while a model reads it would crash the process, so the
 * owner (a session) holds its device lock around both.
 */
public final class MappedGuestMemory implements GuestMemory, RamLayout, AutoCloseable {
    private volatile MappedRegion[] regions = new MappedRegion[0];
    private volatile MappedRegion last;
    /** The dirty log every region's writes mark (docs/protocol.md §4.11), or null. */
    private DirtyLog dirtyLog;
    private final int maxRegions;

    public MappedGuestMemory(int maxRegions) {
        this.maxRegions = maxRegions;
    }

    @Override
    public Region find(long addr, int len) {
        MappedRegion r = last;
        if (r != null && r.contains(addr, len)) {
            return r;
        }
        for (MappedRegion c : regions) {
            if (c.contains(addr, len)) {
                last = c;
                return c;
            }
        }
        return null;
    }

    /** Adds a mapped region; refuses (without taking ownership) one that overlaps or exceeds the slot count. */
    public synchronized void add(MappedRegion r) {
        MappedRegion[] cur = regions;
        if (cur.length >= maxRegions) {
            throw new IllegalArgumentException("all " + maxRegions + " memory slots are in use");
        }
        for (MappedRegion c : cur) {
            if (overlaps(c.base(), c.size(), r.base(), r.size())) {
                throw new IllegalArgumentException("region " + r + " overlaps " + c);
            }
        }
        r.dirtyLog(dirtyLog); // a region added during a migration is logged as the others
        MappedRegion[] next = Arrays.copyOf(cur, cur.length + 1);
        next[cur.length] = r;
        regions = next;
    }

    /**
     * Removes and unmaps the region with this guest address and size (vhost-user REM_MEM_REG
     * matches on guest_phys_addr and memory_size). Returns whether one was found.
     */
    public synchronized boolean remove(long gpa, long size) {
        MappedRegion[] cur = regions;
        for (int i = 0; i < cur.length; i++) {
            if (cur[i].base() == gpa && cur[i].size() == size) {
                MappedRegion gone = cur[i];
                List<MappedRegion> next = new ArrayList<>(Arrays.asList(cur));
                next.remove(i);
                regions = next.toArray(new MappedRegion[0]);
                last = null;
                gone.unmap();
                return true;
            }
        }
        return false;
    }

    /** Unmaps everything (SET_MEM_TABLE replaces the table; a disconnect tears it down). */
    public synchronized void clear() {
        MappedRegion[] cur = regions;
        regions = new MappedRegion[0];
        last = null;
        for (MappedRegion r : cur) {
            r.unmap();
        }
    }

    /**
     * Makes every region's writes, and those of regions added later, mark {@code log} (null: stop
     * logging). The caller keeps writes out meanwhile (the session lock) and closes the old log.
     */
    public synchronized void dirtyLog(DirtyLog log) {
        dirtyLog = log;
        for (MappedRegion r : regions) {
            r.dirtyLog(log);
        }
    }

    @Override
    public List<MappedRegion> regions() {
        return List.of(regions);
    }

    public int maxRegions() {
        return maxRegions;
    }

    /**
     * The guest physical address of a VMM virtual address (vhost-user vring addresses are VMM
     * virtual addresses: SET_VRING_ADDR), or empty if no region holds it.
     */
    public OptionalLong userToGuestPhysical(long uaddr) {
        for (MappedRegion c : regions) {
            long off = uaddr - c.userAddr();
            if (Long.compareUnsigned(off, c.size()) < 0) {
                return OptionalLong.of(c.base() + off);
            }
        }
        return OptionalLong.empty();
    }

    @Override
    public void close() {
        clear();
    }

    private static boolean overlaps(long a, long alen, long b, long blen) {
        // [a, a+alen) and [b, b+blen) as unsigned ranges
        return Long.compareUnsigned(b - a, alen) < 0 || Long.compareUnsigned(a - b, blen) < 0;
    }
}
