package dev.iommuemu.bridge.client;

import java.io.IOException;

/** The daemon answered a VMM request with an error reply (docs/protocol.md §6): its errno. */
public final class RequestRefusedException extends IOException {
    private final int errno;

    public RequestRefusedException(String request, int errno) {
        super(request + " refused with errno " + errno);
        this.errno = errno;
    }

    public int errno() {
        return errno;
    }
}
