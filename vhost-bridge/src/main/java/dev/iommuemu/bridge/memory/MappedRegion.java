package dev.iommuemu.bridge.memory;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.memory.GuestMemory;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One range of guest RAM shared by the VMM as a file descriptor (vhost-user SET_MEM_TABLE /
 * ADD_MEM_REG region: guest_phys_addr, memory_size, userspace_addr, mmap_offset) and mapped
 * MAP_SHARED into this process. Accesses go through direct ByteBuffers and VarHandles (no native
 * call per access); a region is cut into chunks of at most 1 GiB since a ByteBuffer is
 * int-indexed, and the rare access that straddles two chunks is done byte by byte.
 *
 * <p>The region owns its descriptor and mapping: {@link #unmap} releases both. Callers make sure
 * no access runs concurrently with {@code unmap} (the session lock does).
 */
public final class MappedRegion implements GuestMemory.Region {
    static final int CHUNK_SHIFT = 30;
    static final long CHUNK_SIZE = 1L << CHUNK_SHIFT;
    private static final long PAGE = 4096;
    private static final VarHandle I64 = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle I32 = MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle I16 = MethodHandles.byteBufferViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);

    private final long gpa;
    private final long size;
    private final long userAddr;
    private final long mmapOffset;
    private int fd;
    private Pointer mapping;
    private final long mappingLength;
    private final ByteBuffer[] chunks;
    /**
     * The session's dirty log (docs/protocol.md §4.11), or null: every write below marks the pages
     * it touched after writing them (vhost-user.rst "dirty pages log"). Set by the owning
     * {@link MappedGuestMemory} under the session lock; one volatile read per write.
     */
    private volatile DirtyLog log;

    private MappedRegion(long gpa, long size, long userAddr, long mmapOffset, int fd, Pointer mapping, long mappingLength, long delta) {
        this.gpa = gpa;
        this.size = size;
        this.userAddr = userAddr;
        this.mmapOffset = mmapOffset;
        this.fd = fd;
        this.mapping = mapping;
        this.mappingLength = mappingLength;
        int n = (int) ((size + CHUNK_SIZE - 1) >>> CHUNK_SHIFT);
        chunks = new ByteBuffer[n];
        for (int i = 0; i < n; i++) {
            long off = (long) i << CHUNK_SHIFT;
            long len = Math.min(CHUNK_SIZE, size - off);
            chunks[i] = mapping.getByteBuffer(delta + off, len).order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    /** The size in bytes of the file {@code fd} refers to (fstat). */
    public static long fileSize(int fd) throws IOException {
        Memory st = new Memory(LibC.STAT_SIZE);
        try {
            LibC.fstat(fd, st);
        } catch (LastErrorException e) {
            throw new IOException("fstat fd " + fd + ": errno " + e.getErrorCode());
        }
        return st.getLong(LibC.STAT_SIZE_OFFSET);
    }

    /**
     * Maps {@code size} bytes of {@code fd} from {@code mmapOffset}. Takes ownership of {@code fd}
     * only on success. Refuses what would fault later instead of failing now: a descriptor that
     * is not a regular file (memfd, hugetlbfs, tmpfs file), or one shorter than
     * {@code mmapOffset + size} (touching past the end of a shared file raises SIGBUS).
     */
    public static MappedRegion map(long gpa, long size, long userAddr, long mmapOffset, int fd) throws IOException {
        if (size <= 0) {
            throw new IOException("region size must be positive: " + size);
        }
        if (mmapOffset < 0 || mmapOffset + size < 0) {
            throw new IOException("region offset/size overflow");
        }
        if (gpa + size != 0 && Long.compareUnsigned(gpa + size, gpa) < 0) {
            throw new IOException("region wraps the guest physical address space");
        }
        Memory st = new Memory(LibC.STAT_SIZE);
        try {
            LibC.fstat(fd, st);
        } catch (LastErrorException e) {
            throw new IOException("fstat fd " + fd + ": errno " + e.getErrorCode());
        }
        int mode = st.getInt(LibC.STAT_MODE_OFFSET);
        long fileSize = st.getLong(LibC.STAT_SIZE_OFFSET);
        if ((mode & LibC.S_IFMT) != LibC.S_IFREG) {
            throw new IOException("fd " + fd + " is not a regular file (mode 0" + Integer.toOctalString(mode) + ")");
        }
        if (fileSize < mmapOffset + size) {
            throw new IOException("fd " + fd + " holds " + fileSize + " bytes, region needs " + (mmapOffset + size));
        }
        long pageOff = mmapOffset & ~(PAGE - 1);
        long delta = mmapOffset - pageOff;
        long len = size + delta;
        Pointer p;
        try {
            p = LibC.mmap(null, len, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED, fd, pageOff);
        } catch (LastErrorException e) {
            throw new IOException("mmap fd " + fd + " (" + len + " bytes at " + pageOff + "): errno " + e.getErrorCode());
        }
        if (LibC.mapFailed(p)) {
            throw new IOException("mmap fd " + fd + " failed");
        }
        return new MappedRegion(gpa, size, userAddr, mmapOffset, fd, p, len, delta);
    }

    /**
     * Refuses a descriptor that can shrink under the daemon: touching a MAP_SHARED page past the
     * end of its file raises SIGBUS, which the JVM turns into an InternalError on whatever thread
     * touched it. Only a memfd sealed with F_SEAL_SHRINK (memfd_create(2) "File sealing",
     * fcntl(2) F_GET_SEALS) cannot shrink; QEMU's memory-backend-memfd seals so by default.
     */
    public static void requireShrinkSeal(int fd) throws IOException {
        int seals = dev.iommuemu.bridge.unix.Descriptors.seals(fd);
        if (seals < 0 || (seals & LibC.F_SEAL_SHRINK) == 0) {
            throw new IOException("fd " + fd + " (" + dev.iommuemu.bridge.unix.Descriptors.kind(fd) + ") is not a memfd sealed against shrinking"
                    + " (F_SEAL_SHRINK): it could be truncated under the daemon; share a sealed memfd (QEMU memory-backend-memfd, seal=on)"
                    + " or start the daemon with --require-memory-seals false");
        }
    }

    /**
     * Creates a memfd of {@code size} bytes, sealed against shrinking and growing, and maps it (the
     * daemon's own regions, for protobuf-only VMMs, and a test VMM's guest RAM).
     */
    public static MappedRegion allocate(String name, long gpa, long size) throws IOException {
        int fd;
        try {
            fd = LibC.memfd_create(name, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
        } catch (LastErrorException e) {
            throw new IOException("memfd_create: errno " + e.getErrorCode());
        }
        try {
            LibC.ftruncate(fd, size);
            dev.iommuemu.bridge.unix.Descriptors.addSeals(fd, LibC.F_SEAL_SHRINK | LibC.F_SEAL_GROW);
            return map(gpa, size, 0, 0, fd);
        } catch (LastErrorException e) {
            LibC.closeQuietly(fd);
            throw new IOException("ftruncate: errno " + e.getErrorCode());
        } catch (IOException e) {
            LibC.closeQuietly(fd);
            throw e;
        }
    }

    /** Logs this region's writes into {@code l} from now on (null: no more). */
    void dirtyLog(DirtyLog l) {
        log = l;
    }

    /** The whole mapping as one buffer (a region of at most one chunk: a dirty log). */
    ByteBuffer singleChunk() {
        if (chunks.length != 1) {
            throw new IllegalStateException("a mapping of " + size + " bytes is more than one chunk");
        }
        return chunks[0];
    }

    /** After a write of {@code len} bytes at {@code addr}: marks its pages, if a dirty log is set. */
    private void logged(long addr, int len) {
        DirtyLog l = log;
        if (l != null) {
            l.mark(addr, len);
        }
    }

    /** Unmaps and closes the descriptor; idempotent. */
    public synchronized void unmap() {
        if (mapping != null) {
            try {
                LibC.munmap(mapping, mappingLength);
            } catch (LastErrorException ignored) {
                // EINVAL only for a bad range, which ours is not
            }
            mapping = null;
            LibC.closeQuietly(fd);
            fd = -1;
        }
    }

    @Override public long base() { return gpa; }
    @Override public long size() { return size; }

    /** The VMM's virtual address of the region's first byte (vhost-user userspace_addr). */
    public long userAddr() {
        return userAddr;
    }

    public long mmapOffset() {
        return mmapOffset;
    }

    public int fd() {
        return fd;
    }

    private ByteBuffer chunk(long off) {
        return chunks[(int) (off >>> CHUNK_SHIFT)];
    }

    private static int index(long off) {
        return (int) (off & (CHUNK_SIZE - 1));
    }

    private boolean fits(long off, int len) {
        return index(off) + len <= chunk(off).capacity();
    }

    @Override
    public byte read8(long addr) {
        long off = addr - gpa;
        return chunk(off).get(index(off));
    }

    @Override
    public short read16(long addr) {
        long off = addr - gpa;
        return fits(off, 2) ? (short) I16.get(chunk(off), index(off)) : (short) slowRead(off, 2);
    }

    @Override
    public int read32(long addr) {
        long off = addr - gpa;
        if (!fits(off, 4)) {
            return (int) slowRead(off, 4);
        }
        int i = index(off);
        return (i & 3) == 0 ? (int) I32.getOpaque(chunk(off), i) : (int) I32.get(chunk(off), i);
    }

    @Override
    public long read64(long addr) {
        long off = addr - gpa;
        if (!fits(off, 8)) {
            return slowRead(off, 8);
        }
        int i = index(off);
        return (i & 7) == 0 ? (long) I64.getOpaque(chunk(off), i) : (long) I64.get(chunk(off), i);
    }

    @Override
    public void write8(long addr, byte v) {
        long off = addr - gpa;
        chunk(off).put(index(off), v);
        logged(addr, 1);
    }

    @Override
    public void write16(long addr, short v) {
        long off = addr - gpa;
        if (fits(off, 2)) {
            I16.set(chunk(off), index(off), v);
        } else {
            slowWrite(off, 2, v);
        }
        logged(addr, 2);
    }

    @Override
    public void write32(long addr, int v) {
        long off = addr - gpa;
        if (!fits(off, 4)) {
            slowWrite(off, 4, v);
        } else if ((index(off) & 3) == 0) {
            I32.setOpaque(chunk(off), index(off), v);
        } else {
            I32.set(chunk(off), index(off), v);
        }
        logged(addr, 4);
    }

    @Override
    public void write64(long addr, long v) {
        long off = addr - gpa;
        if (!fits(off, 8)) {
            slowWrite(off, 8, v);
        } else if ((index(off) & 7) == 0) {
            I64.setOpaque(chunk(off), index(off), v);
        } else {
            I64.set(chunk(off), index(off), v);
        }
        logged(addr, 8);
    }

    @Override
    public boolean compareAndSet64(long addr, long expect, long update) {
        if ((addr & 7) != 0) {
            throw new IllegalArgumentException("unaligned CAS at 0x" + Long.toHexString(addr));
        }
        long off = addr - gpa;
        // The mapping is page-aligned and chunks are 1 GiB, so an aligned doubleword never straddles.
        if (!I64.compareAndSet(chunk(off), index(off), expect, update)) {
            return false; // nothing written, nothing to log
        }
        logged(addr, 8);
        return true;
    }

    /**
     * An atomic compare-and-set of the aligned little-endian word at {@code addr} (volatile
     * semantics: a full barrier), for a lock shared with another process (docs/protocol.md §4.12).
     */
    public boolean compareAndSet32(long addr, int expect, int update) {
        if ((addr & 3) != 0) {
            throw new IllegalArgumentException("unaligned CAS at 0x" + Long.toHexString(addr));
        }
        long off = addr - gpa;
        // The mapping is page-aligned and chunks are 1 GiB, so an aligned word never straddles.
        if (!I32.compareAndSet(chunk(off), index(off), expect, update)) {
            return false;
        }
        logged(addr, 4);
        return true;
    }

    /**
     * Atomically adds {@code delta} to the aligned little-endian doubleword at {@code addr} (volatile
     * semantics) and returns its old value: a counter another process adds to as well (§4.8 inv_gen).
     */
    public long getAndAdd64(long addr, long delta) {
        if ((addr & 7) != 0) {
            throw new IllegalArgumentException("unaligned atomic add at 0x" + Long.toHexString(addr));
        }
        long off = addr - gpa;
        long old = (long) I64.getAndAdd(chunk(off), index(off), delta);
        logged(addr, 8);
        return old;
    }

    @Override
    public void read(long addr, byte[] dst, int off, int len) {
        long o = addr - gpa;
        while (len > 0) {
            ByteBuffer c = chunk(o);
            int i = index(o);
            int n = Math.min(len, c.capacity() - i);
            c.get(i, dst, off, n);
            o += n;
            off += n;
            len -= n;
        }
    }

    @Override
    public void write(long addr, byte[] src, int off, int len) {
        long o = addr - gpa;
        int left = len;
        while (left > 0) {
            ByteBuffer c = chunk(o);
            int i = index(o);
            int n = Math.min(left, c.capacity() - i);
            c.put(i, src, off, n);
            o += n;
            off += n;
            left -= n;
        }
        if (len > 0) {
            logged(addr, len);
        }
    }

    private long slowRead(long off, int n) {
        long v = 0;
        for (int k = 0; k < n; k++) {
            v |= (chunk(off + k).get(index(off + k)) & 0xffL) << (8 * k);
        }
        return v;
    }

    private void slowWrite(long off, int n, long v) {
        for (int k = 0; k < n; k++) {
            chunk(off + k).put(index(off + k), (byte) (v >>> (8 * k)));
        }
    }

    @Override
    public String toString() {
        return String.format("[gpa 0x%x size 0x%x uaddr 0x%x off 0x%x fd %d]", gpa, size, userAddr, mmapOffset, fd);
    }
}
