package dev.iommuemu.virtqueue;

import dev.iommuemu.memory.GuestMemory;
import java.util.Arrays;

/**
 * One buffer taken from the available ring: its head index and the guest-physical segments of
 * its device-readable and device-writable parts, in chain order (virtio 1.2 §2.7.4: a device
 * makes no assumption about how a message is split over descriptors, so requests are read and
 * replies written through {@link #read} and {@link #write} at byte offsets across segments).
 *
 * <p>A malformed chain carries its {@link #error()} and the segments gathered before the fault,
 * so a device can still answer through an intact device-writable part.
 */
public final class DescriptorChain {
    private final int head;
    private ChainError error;
    private int descriptors;
    private long[] rAddr = new long[4];
    private int[] rLen = new int[4];
    private int rCount;
    private long rTotal;
    private long[] wAddr = new long[2];
    private int[] wLen = new int[2];
    private int wCount;
    private long wTotal;

    DescriptorChain(int head) {
        this.head = head;
    }

    /** A chain as a device test builds it directly (no ring): readable then writable segments. */
    public static DescriptorChain of(int head, long[] readable, int[] readableLens, long[] writable, int[] writableLens) {
        DescriptorChain c = new DescriptorChain(head);
        for (int i = 0; i < readable.length; i++) {
            c.addReadable(readable[i], readableLens[i]);
        }
        for (int i = 0; i < writable.length; i++) {
            c.addWritable(writable[i], writableLens[i]);
        }
        return c;
    }

    /** Head descriptor index, the id returned in the used ring. */
    public int head() {
        return head;
    }

    /** Why the chain is malformed, or {@code null} for a well-formed chain. */
    public ChainError error() {
        return error;
    }

    public boolean ok() {
        return error == null;
    }

    /** Whether the head can be returned to the used ring (it names a real descriptor). */
    public boolean returnable() {
        return error != ChainError.HEAD_OUT_OF_RANGE;
    }

    /** Descriptors visited, including the one that refers to an indirect table. */
    public int descriptors() {
        return descriptors;
    }

    public long readableLength() {
        return rTotal;
    }

    public long writableLength() {
        return wTotal;
    }

    public int readableSegments() {
        return rCount;
    }

    public int writableSegments() {
        return wCount;
    }

    /**
     * Reads {@code len} bytes at byte {@code offset} of the device-readable part. {@code false}
     * when the part is shorter or guest memory aborts.
     */
    public boolean read(GuestMemory mem, long offset, byte[] dst, int dstOff, int len) {
        if (offset < 0 || offset + len > rTotal) {
            return false;
        }
        return copy(mem, rAddr, rLen, rCount, offset, dst, dstOff, len, false);
    }

    /**
     * Writes {@code len} bytes at byte {@code offset} of the device-writable part. {@code false}
     * (and nothing written to the failing segment) when the part is shorter or memory aborts.
     */
    public boolean write(GuestMemory mem, long offset, byte[] src, int srcOff, int len) {
        if (offset < 0 || offset + len > wTotal) {
            return false;
        }
        return copy(mem, wAddr, wLen, wCount, offset, src, srcOff, len, true);
    }

    private static boolean copy(GuestMemory mem, long[] addr, int[] lens, int count, long offset, byte[] buf, int off, int len, boolean write) {
        long skip = offset;
        int done = 0;
        for (int s = 0; s < count && done < len; s++) {
            long segLen = lens[s] & 0xffff_ffffL;
            if (skip >= segLen) {
                skip -= segLen;
                continue;
            }
            int n = (int) Math.min(segLen - skip, len - done);
            boolean ok = write ? mem.write(addr[s] + skip, buf, off + done, n) : mem.read(addr[s] + skip, buf, off + done, n);
            if (!ok) {
                return false;
            }
            done += n;
            skip = 0;
        }
        return done == len;
    }

    void fail(ChainError e) {
        if (error == null) {
            error = e;
        }
    }

    void countDescriptor() {
        descriptors++;
    }

    void addReadable(long addr, int len) {
        if (rCount == rAddr.length) {
            rAddr = Arrays.copyOf(rAddr, rCount * 2);
            rLen = Arrays.copyOf(rLen, rCount * 2);
        }
        rAddr[rCount] = addr;
        rLen[rCount++] = len;
        rTotal += len & 0xffff_ffffL;
    }

    void addWritable(long addr, int len) {
        if (wCount == wAddr.length) {
            wAddr = Arrays.copyOf(wAddr, wCount * 2);
            wLen = Arrays.copyOf(wLen, wCount * 2);
        }
        wAddr[wCount] = addr;
        wLen[wCount++] = len;
        wTotal += len & 0xffff_ffffL;
    }

    @Override
    public String toString() {
        return "chain{head=" + head + ", r=" + rTotal + "/" + rCount + ", w=" + wTotal + "/" + wCount
                + (error != null ? ", error=" + error : "") + "}";
    }
}
