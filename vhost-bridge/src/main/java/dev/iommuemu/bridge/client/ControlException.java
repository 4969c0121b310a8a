package dev.iommuemu.bridge.client;

/** A control-API request the daemon refused: its errno and message (control.proto Error). */
public final class ControlException extends Exception {
    private final int errno;

    public ControlException(int errno, String message) {
        super(message + " (" + Errno.name(errno) + ", errno " + errno + ")");
        this.errno = errno;
    }

    public int errno() {
        return errno;
    }
}
