package dev.iommuemu.bridge.session;

import java.io.IOException;

/**
 * A message read whole whose framing is refused after the fact (more than 8 descriptors across its
 * parts: docs/protocol.md §6): the connection answers it with an error reply, if one was
 * expected, and then closes. Its descriptors are already closed.
 */
public final class RejectedMessage extends IOException {
    private final int request;
    private final int flags;
    private final int errno;

    public RejectedMessage(int request, int flags, int errno, String message) {
        super(message);
        this.request = request;
        this.flags = flags;
        this.errno = errno;
    }

    public int request() {
        return request;
    }

    /** vhost-user header flag bit 3, NEED_REPLY. */
    public boolean needReply() {
        return (flags & 0x8) != 0;
    }

    public int errno() {
        return errno;
    }
}
