package dev.iommuemu.bridge.client;

import java.util.Map;

/**
 * Linux errno numbers as a person reads them: the symbolic name and strerror(3)'s text (glibc's
 * wording, asm-generic/errno-base.h and errno.h numbering), for error messages of the daemon and
 * its tools. Numbers outside the table print as "errno N".
 */
public final class Errno {
    private Errno() {}

    private record E(String name, String text) {}

    private static final Map<Integer, E> TABLE = Map.ofEntries(
            Map.entry(1, new E("EPERM", "Operation not permitted")),
            Map.entry(2, new E("ENOENT", "No such file or directory")),
            Map.entry(4, new E("EINTR", "Interrupted system call")),
            Map.entry(5, new E("EIO", "Input/output error")),
            Map.entry(9, new E("EBADF", "Bad file descriptor")),
            Map.entry(11, new E("EAGAIN", "Resource temporarily unavailable")),
            Map.entry(12, new E("ENOMEM", "Cannot allocate memory")),
            Map.entry(13, new E("EACCES", "Permission denied")),
            Map.entry(14, new E("EFAULT", "Bad address")),
            Map.entry(16, new E("EBUSY", "Device or resource busy")),
            Map.entry(17, new E("EEXIST", "File exists")),
            Map.entry(19, new E("ENODEV", "No such device")),
            Map.entry(20, new E("ENOTDIR", "Not a directory")),
            Map.entry(21, new E("EISDIR", "Is a directory")),
            Map.entry(22, new E("EINVAL", "Invalid argument")),
            Map.entry(23, new E("ENFILE", "Too many open files in system")),
            Map.entry(24, new E("EMFILE", "Too many open files")),
            Map.entry(28, new E("ENOSPC", "No space left on device")),
            Map.entry(30, new E("EROFS", "Read-only file system")),
            Map.entry(32, new E("EPIPE", "Broken pipe")),
            Map.entry(36, new E("ENAMETOOLONG", "File name too long")),
            Map.entry(38, new E("ENOSYS", "Function not implemented")),
            Map.entry(88, new E("ENOTSOCK", "Socket operation on non-socket")),
            Map.entry(95, new E("EOPNOTSUPP", "Operation not supported")),
            Map.entry(98, new E("EADDRINUSE", "Address already in use")),
            Map.entry(104, new E("ECONNRESET", "Connection reset by peer")),
            Map.entry(110, new E("ETIMEDOUT", "Connection timed out")),
            Map.entry(111, new E("ECONNREFUSED", "Connection refused")));

    /** strerror(3)'s text, e.g. "No such file or directory"; "errno N" when unknown. */
    public static String text(int errno) {
        E e = TABLE.get(errno);
        return e == null ? "errno " + errno : e.text();
    }

    /** The symbolic name, e.g. "ENOENT"; "errno N" when unknown. */
    public static String name(int errno) {
        E e = TABLE.get(errno);
        return e == null ? "errno " + errno : e.name();
    }

    /** "No such file or directory (ENOENT, errno 2)". */
    public static String describe(int errno) {
        E e = TABLE.get(errno);
        return e == null ? "errno " + errno : e.text() + " (" + e.name() + ", errno " + errno + ")";
    }
}
