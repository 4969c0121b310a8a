package dev.iommuemu.bridge.protocol;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One framed message: header fields, payload and the file descriptors that came with it (in
 * SCM_RIGHTS of the same sendmsg). The receiver owns the descriptors until a handler takes them.
 */
public record VhostUserMessage(int request, int flags, byte[] payload, int[] fds) {
    private static final int[] NO_FDS = new int[0];

    public static VhostUserMessage request(int request, boolean needReply, byte[] payload, int... fds) {
        return new VhostUserMessage(request, VhostUserHeader.VERSION | (needReply ? VhostUserHeader.NEED_REPLY : 0), payload, fds);
    }

    public static VhostUserMessage reply(int request, byte[] payload) {
        return new VhostUserMessage(request, VhostUserHeader.replyFlags(), payload, NO_FDS);
    }

    /** A REPLY_ACK reply: u64 status, 0 on success, else a positive errno. */
    public static VhostUserMessage ack(int request, int errno) {
        return reply(request, Payloads.u64(errno));
    }

    public boolean needReply() {
        return (flags & VhostUserHeader.NEED_REPLY) != 0;
    }

    public boolean isReply() {
        return (flags & VhostUserHeader.REPLY) != 0;
    }

    /** Header then payload, ready for one sendmsg (the fds go separately in SCM_RIGHTS). */
    public byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(VhostUserHeader.SIZE + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        new VhostUserHeader(request, flags, payload.length).encode(b);
        b.put(payload);
        return b.array();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof VhostUserMessage m && m.request == request && m.flags == flags
                && Arrays.equals(m.payload, payload) && Arrays.equals(m.fds, fds);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * request + flags) + Arrays.hashCode(payload);
    }

    @Override
    public String toString() {
        Request r = Request.of(request);
        return (r != null ? r.name() : Integer.toString(request)) + " flags=0x" + Integer.toHexString(flags) + " size=" + payload.length + " fds=" + fds.length;
    }
}
