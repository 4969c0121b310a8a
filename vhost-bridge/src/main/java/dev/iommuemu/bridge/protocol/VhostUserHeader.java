package dev.iommuemu.bridge.protocol;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The 12-byte message header of vhost-user (docs/interop/vhost-user.rst "Message Specification"):
 * u32 request, u32 flags, u32 size, in host byte order (little-endian on every host we support).
 * flags bits 0-1 carry the protocol version (1), bit 2 REPLY, bit 3 NEED_REPLY; the other bits are
 * reserved and must be zero.
 */
public record VhostUserHeader(int request, int flags, int size) {
    public static final int SIZE = 12;
    public static final int VERSION = 1;
    public static final int VERSION_MASK = 0x3;
    public static final int REPLY = 0x4;
    public static final int NEED_REPLY = 0x8;
    /** Largest payload this implementation accepts (the biggest message, a full batch, fits). */
    public static final int MAX_PAYLOAD = 64 * 1024;

    public boolean isReply() {
        return (flags & REPLY) != 0;
    }

    public boolean needReply() {
        return (flags & NEED_REPLY) != 0;
    }

    public void encode(ByteBuffer out) {
        out.order(ByteOrder.LITTLE_ENDIAN).putInt(request).putInt(flags).putInt(size);
    }

    public byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(SIZE);
        encode(b);
        return b.array();
    }

    /**
     * Decodes and validates a header. Violations are fatal: after a bad header the byte stream
     * can no longer be trusted to be in step.
     */
    public static VhostUserHeader decode(byte[] b, int off) throws ProtocolException {
        ByteBuffer in = ByteBuffer.wrap(b, off, SIZE).order(ByteOrder.LITTLE_ENDIAN);
        VhostUserHeader h = new VhostUserHeader(in.getInt(), in.getInt(), in.getInt());
        if ((h.flags & VERSION_MASK) != VERSION) {
            throw ProtocolException.fatal(ProtocolException.EPROTO, "bad version " + (h.flags & VERSION_MASK) + " in flags 0x" + Integer.toHexString(h.flags) + " (request " + h.request + ")");
        }
        if ((h.flags & ~(VERSION_MASK | REPLY | NEED_REPLY)) != 0) {
            throw ProtocolException.fatal(ProtocolException.EPROTO, "reserved flag bits set: 0x" + Integer.toHexString(h.flags) + " (request " + h.request + ")");
        }
        if (h.size < 0 || h.size > MAX_PAYLOAD) {
            throw ProtocolException.fatal(ProtocolException.EMSGSIZE, "payload size " + Integer.toUnsignedString(h.size) + " exceeds " + MAX_PAYLOAD + " (request " + h.request + ")");
        }
        return h;
    }

    /** The flags of a reply: version 1 and REPLY, exactly 0x5 (QEMU checks for this value). */
    public static int replyFlags() {
        return VERSION | REPLY;
    }
}
