package dev.iommuemu.domain;

import dev.iommuemu.memory.GuestMemory;

/**
 * The host's own physical memory for the structures the host driver writes (stream table,
 * queues, CD tables, host page tables): a bump allocator over a carve-out of the host physical
 * address space that the model owns. Running out is {@link Errno#ENOMEM}, as a failed page
 * allocation is in the kernel.
 */
public final class HostAllocator {
    private final GuestMemory mem;
    private final long base;
    private final long end;
    private long next;

    public HostAllocator(GuestMemory mem, long base, long size) {
        this.mem = mem;
        this.base = base;
        this.end = base + size;
        this.next = base;
    }

    /** {@code bytes} zeroed bytes aligned to {@code align} (a power of two), or -1 when exhausted. */
    public long allocate(long bytes, long align) {
        long a = (next + align - 1) & -align;
        if (a + bytes > end || a < base) {
            return -1;
        }
        byte[] zero = new byte[(int) Math.min(bytes, 4096)];
        for (long off = 0; off < bytes; off += zero.length) {
            if (!mem.write(a + off, zero, 0, (int) Math.min(zero.length, bytes - off))) {
                return -1;
            }
        }
        next = a + bytes;
        return a;
    }

    public long used() {
        return next - base;
    }

    public long remaining() {
        return end - next;
    }
}
