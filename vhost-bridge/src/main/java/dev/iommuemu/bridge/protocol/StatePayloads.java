package dev.iommuemu.bridge.protocol;

import java.nio.ByteBuffer;

/**
 * The device-state messages (docs/protocol.md §4.9, version 9): IOMMU_SAVE_STATE and
 * IOMMU_LOAD_STATE carry the blob of docs/device-state.md in a memfd, and both answer with
 * {@link Reply}, whose sentence says why a state could not be saved or loaded.
 */
public final class StatePayloads {
    /** IOMMU_SAVE_STATE {u32 flags (0), u32 reserved}. */
    public static final int SAVE_SIZE = 8;
    /** IOMMU_LOAD_STATE {u64 size, u32 flags (0), u32 reserved}. */
    public static final int LOAD_SIZE = 16;
    /** IOMMU_SET_STATE_JOURNAL {u64 size, u32 flags (0), u32 reserved} (§4.10, version 10). */
    public static final int JOURNAL_SIZE = 16;
    /** IOMMU_SET_DIRTY_LOG {u64 mmap_size, u64 mmap_offset} (§4.11, version 11: vhost-user struct vhost_user_log). */
    public static final int DIRTY_LOG_SIZE = 16;
    /** {u32 errno, u32 reserved, u64 size, char message[240]}. */
    public static final int REPLY_SIZE = 256;
    public static final int MESSAGE = 240;
    /** The largest blob either side accepts (a virtio-iommu with a million mappings fits). */
    public static final long MAX_STATE = 64L << 20;

    private StatePayloads() {}

    public record Load(long size, int flags) {
        public byte[] encode() {
            return Payloads.alloc(LOAD_SIZE).putLong(size).putInt(flags).putInt(0).array();
        }

        public static Load decode(byte[] p) {
            ByteBuffer b = Payloads.le(p);
            return new Load(b.getLong(), b.getInt());
        }
    }

    /** IOMMU_SET_STATE_JOURNAL's payload: the memfd's size in bytes. */
    public record Journal(long size, int flags) {
        public byte[] encode() {
            return Payloads.alloc(JOURNAL_SIZE).putLong(size).putInt(flags).putInt(0).array();
        }

        public static Journal decode(byte[] p) {
            ByteBuffer b = Payloads.le(p);
            return new Journal(b.getLong(), b.getInt());
        }
    }

    /**
     * IOMMU_SET_DIRTY_LOG's payload, vhost-user's struct vhost_user_log (vhost-user.rst "Log
     * description"): the bitmap's size and its offset in the memfd; size 0 stops logging.
     */
    public record DirtyLog(long mmapSize, long mmapOffset) {
        public static final DirtyLog STOP = new DirtyLog(0, 0);

        public byte[] encode() {
            return Payloads.alloc(DIRTY_LOG_SIZE).putLong(mmapSize).putLong(mmapOffset).array();
        }

        public static DirtyLog decode(byte[] p) {
            ByteBuffer b = Payloads.le(p);
            return new DirtyLog(b.getLong(), b.getLong());
        }
    }

    /** The answer to both: errno 0 and the blob's size, or an errno and a sentence. */
    public record Reply(int errno, long size, String message) {
        public byte[] encode() {
            return Payloads.alloc(REPLY_SIZE).putInt(errno).putInt(0).putLong(size).put(Payloads.fixedString(message, MESSAGE)).array();
        }

        public static Reply decode(byte[] p) throws ProtocolException {
            if (p.length != REPLY_SIZE) {
                throw ProtocolException.fatal(ProtocolException.EINVAL, "device-state reply of " + p.length + " bytes, expected " + REPLY_SIZE);
            }
            ByteBuffer b = Payloads.le(p);
            int errno = b.getInt();
            b.getInt();
            long size = b.getLong();
            return new Reply(errno, size, Payloads.fixedString(b, MESSAGE));
        }
    }
}
