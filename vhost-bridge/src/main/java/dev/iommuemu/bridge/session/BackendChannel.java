package dev.iommuemu.bridge.session;

import dev.iommuemu.bridge.protocol.BackendRequest;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import dev.iommuemu.bridge.unix.UnixSocket;
import java.io.IOException;

/**
 * The back-end to front-end channel (vhost-user SET_BACKEND_REQ_FD): the daemon sends requests and,
 * for those with NEED_REPLY, waits for the VMM's u64 acknowledgement on the same socket. Only the
 * daemon's side reads it, one request at a time, so a reply always answers the request in flight.
 */
final class BackendChannel implements AutoCloseable {
    private final VhostUserChannel channel;
    private final int ackTimeoutMs;

    BackendChannel(int fd, int ackTimeoutMs) {
        // the ack timeout bounds the whole answer, a reply that stops after a byte included
        this.channel = new VhostUserChannel(new UnixSocket(fd), ackTimeoutMs);
        this.ackTimeoutMs = ackTimeoutMs;
    }

    /** Sends without waiting. */
    synchronized void post(BackendRequest r, byte[] payload) throws IOException {
        channel.send(VhostUserMessage.request(r.code(), false, payload));
    }

    /**
     * Sends with NEED_REPLY and waits for the ack: returns its status (0 = done, else the VMM's
     * errno). Throws if the VMM does not answer in time or answers out of step.
     */
    synchronized long call(BackendRequest r, byte[] payload) throws IOException, ProtocolException {
        channel.send(VhostUserMessage.request(r.code(), true, payload));
        if (!channel.socket().awaitReadable(ackTimeoutMs)) {
            throw new IOException(r + ": no acknowledgement from the front-end within " + ackTimeoutMs + " ms");
        }
        VhostUserMessage reply = channel.read();
        if (reply == null) {
            throw new IOException(r + ": back-end channel closed by the front-end");
        }
        for (int fd : reply.fds()) {
            dev.iommuemu.bridge.unix.LibC.closeQuietly(fd);
        }
        if (!reply.isReply() || reply.request() != r.code() || reply.payload().length != 8) {
            throw ProtocolException.fatal(ProtocolException.EPROTO, r + ": unexpected answer " + reply);
        }
        return Payloads.u64(reply.payload());
    }

    @Override
    public void close() {
        channel.close();
    }
}
