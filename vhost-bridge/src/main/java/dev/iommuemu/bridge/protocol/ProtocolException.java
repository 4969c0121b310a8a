package dev.iommuemu.bridge.protocol;

/**
 * A peer broke the protocol (docs/protocol.md "Errors"). {@code errno} is the positive Linux errno
 * sent in the error reply; {@code fatal} says whether the connection must be closed afterwards
 * (framing errors) or may continue (a request whose arguments were refused).
 */
public final class ProtocolException extends Exception {
    public static final int EIO = 5;
    public static final int EBADF = 9;
    public static final int ENOMEM = 12;
    public static final int EFAULT = 14;
    public static final int EBUSY = 16;
    public static final int EEXIST = 17;
    public static final int ENODEV = 19;
    public static final int EINVAL = 22;
    public static final int ENOSPC = 28;
    public static final int ENOSYS = 38;
    public static final int EMSGSIZE = 90;
    public static final int EPROTO = 71;
    public static final int ENOENT = 2;
    public static final int EPERM = 1;

    private final int errno;
    private final boolean fatal;

    public ProtocolException(int errno, boolean fatal, String message) {
        super(message);
        this.errno = errno;
        this.fatal = fatal;
    }

    /** A framing or sequencing error: reply if a reply is expected, then close. */
    public static ProtocolException fatal(int errno, String message) {
        return new ProtocolException(errno, true, message);
    }

    /** A refused request: error reply, connection continues. */
    public static ProtocolException refused(int errno, String message) {
        return new ProtocolException(errno, false, message);
    }

    public int errno() {
        return errno;
    }

    public boolean isFatal() {
        return fatal;
    }
}
