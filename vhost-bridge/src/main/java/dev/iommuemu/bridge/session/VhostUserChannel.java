package dev.iommuemu.bridge.session;

import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.VhostUserHeader;
import dev.iommuemu.bridge.protocol.VhostUserMessage;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.bridge.unix.UnixSocket;
import java.io.EOFException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Frames vhost-user messages on a {@link UnixSocket}: reads exactly a header, then exactly its
 * payload, gathering the descriptors that come with any part of the message; writes header,
 * payload and descriptors in one sendmsg. Used for the front-end socket, the back-end channel, and
 * by test clients acting as the VMM.
 */
public final class VhostUserChannel implements AutoCloseable {
    private final UnixSocket socket;
    private final byte[] header = new byte[VhostUserHeader.SIZE];
    private final int messageTimeoutMs;

    public VhostUserChannel(UnixSocket socket) {
        this(socket, 0);
    }

    /**
     * A channel whose messages, once their first byte arrived, must be complete within
     * {@code messageTimeoutMs} (0: unbounded, for clients); sends are bounded the same way
     * (SO_SNDTIMEO).
     */
    public VhostUserChannel(UnixSocket socket, int messageTimeoutMs) {
        this.socket = socket;
        this.messageTimeoutMs = messageTimeoutMs;
        dev.iommuemu.bridge.unix.Descriptors.sendTimeout(socket.fd(), messageTimeoutMs);
    }

    public UnixSocket socket() {
        return socket;
    }

    /**
     * The next message, or {@code null} when the peer closed between messages. A peer closing
     * mid-message is an {@link EOFException}, one that stalls mid-message past the message timeout a
     * {@link java.net.SocketTimeoutException}; a bad header a fatal {@link ProtocolException}; more
     * than 8 descriptors across the message a {@link RejectedMessage} once it is read whole. On any
     * exception the descriptors already received are closed.
     */
    public VhostUserMessage read() throws IOException, ProtocolException {
        List<Integer> fds = new ArrayList<>(2);
        try {
            int first = socket.recv(header, 0, VhostUserHeader.SIZE, fds);
            if (first == 0) {
                return null;
            }
            long deadline = messageTimeoutMs > 0 ? System.nanoTime() + messageTimeoutMs * 1_000_000L : 0;
            if (first < VhostUserHeader.SIZE) {
                socket.recvFully(header, first, VhostUserHeader.SIZE - first, fds, deadline);
            }
            VhostUserHeader h = VhostUserHeader.decode(header, 0);
            byte[] payload = new byte[h.size()];
            socket.recvFully(payload, 0, payload.length, fds, deadline);
            if (socket.takeFdsTruncated() || fds.size() > LibC.MAX_FDS) {
                // docs/protocol.md §6: answered (EBADF) if a reply is expected, then closed
                throw new RejectedMessage(h.request(), h.flags(), ProtocolException.EBADF,
                        "more than " + LibC.MAX_FDS + " file descriptors in one message (request " + h.request() + ")");
            }
            int[] arr = fds.stream().mapToInt(Integer::intValue).toArray();
            fds.clear();
            return new VhostUserMessage(h.request(), h.flags(), payload, arr);
        } finally {
            for (int fd : fds) {
                LibC.closeQuietly(fd);
            }
        }
    }

    public void send(VhostUserMessage m) throws IOException {
        byte[] b = m.encode();
        socket.send(b, 0, b.length, m.fds());
    }

    @Override
    public void close() {
        socket.close();
    }
}
