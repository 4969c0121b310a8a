package dev.iommuemu.bridge.unix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

/**
 * The few libc calls the daemon needs, bound with JNA direct mapping (one native call each, no
 * per-call reflection). Constants and struct layouts are those of Linux x86_64 / aarch64 (LP64):
 * socket(7), unix(7), cmsg(3), memfd_create(2), mmap(2), eventfd(2), poll(2), fstat(2).
 */
public final class LibC {
    static {
        Native.register("c");
    }

    private LibC() {}

    // socket(2), unix(7)
    public static final int AF_UNIX = 1;
    public static final int SOCK_STREAM = 1;
    public static final int SOCK_CLOEXEC = 0x80000;
    public static final int SOL_SOCKET = 1;
    public static final int SCM_RIGHTS = 1;
    public static final int MSG_CTRUNC = 0x8;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_CMSG_CLOEXEC = 0x40000000;
    public static final int SHUT_RDWR = 2;
    /** sizeof(struct sockaddr_un): sa_family_t + char sun_path[108]. */
    public static final int SOCKADDR_UN_SIZE = 110;
    /** The longest usable sun_path (one byte is the terminating NUL). */
    public static final int UNIX_PATH_MAX = 107;

    // struct msghdr (LP64): name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48.
    public static final int MSGHDR_SIZE = 56;
    public static final int IOVEC_SIZE = 16;
    /** cmsg(3): CMSG_LEN(0) on LP64 (size_t cmsg_len, int level, int type). */
    public static final int CMSG_HDR = 16;
    /** vhost-user's limit of file descriptors in one message. */
    public static final int MAX_FDS = 8;
    /** CMSG_SPACE(MAX_FDS * sizeof(int)). */
    public static final int CMSG_SPACE_MAX = CMSG_HDR + MAX_FDS * 4;

    // memfd_create(2), mmap(2)
    public static final int MFD_CLOEXEC = 1;
    public static final int MFD_ALLOW_SEALING = 2;
    // fcntl(2): file status flags and file seals (memfd_create(2) "File sealing")
    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;
    public static final int O_NONBLOCK = 04000;
    public static final int F_ADD_SEALS = 1033;
    public static final int F_GET_SEALS = 1034;
    public static final int F_SEAL_SEAL = 1;
    public static final int F_SEAL_SHRINK = 2;
    public static final int F_SEAL_GROW = 4;
    // socket(7): SO_SNDTIMEO takes a struct timeval (LP64: long tv_sec, long tv_usec)
    public static final int SO_SNDTIMEO = 21;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 1;
    // eventfd(2)
    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;
    // poll(2)
    public static final short POLLIN = 1;
    public static final short POLLOUT = 4;
    public static final short POLLERR = 8;
    public static final short POLLHUP = 0x10;
    public static final short POLLNVAL = 0x20;
    // fstat(2): struct stat on x86_64 is 144 bytes with st_mode at 24 and st_size at 48; aarch64
    // uses the generic layout (128 bytes, st_mode at 16, st_size at 48).
    public static final int STAT_SIZE = 144;
    public static final int STAT_MODE_OFFSET = "aarch64".equals(System.getProperty("os.arch")) ? 16 : 24;
    public static final int STAT_SIZE_OFFSET = 48;
    public static final int S_IFMT = 0170000;
    public static final int S_IFREG = 0100000;

    public static final int EINTR = 4;
    public static final int EAGAIN = 11;
    public static final int EINVAL = 22;
    public static final int ECONNREFUSED = 111;
    public static final int ENOENT = 2;

    public static native int socket(int domain, int type, int protocol) throws LastErrorException;

    public static native int bind(int fd, byte[] addr, int len) throws LastErrorException;

    public static native int listen(int fd, int backlog) throws LastErrorException;

    public static native int accept4(int fd, Pointer addr, Pointer len, int flags) throws LastErrorException;

    public static native int socketpair(int domain, int type, int protocol, int[] sv) throws LastErrorException;

    public static native int connect(int fd, byte[] addr, int len) throws LastErrorException;

    public static native long recvmsg(int fd, Pointer msg, int flags) throws LastErrorException;

    public static native long sendmsg(int fd, Pointer msg, int flags) throws LastErrorException;

    public static native int shutdown(int fd, int how) throws LastErrorException;

    public static native int close(int fd) throws LastErrorException;

    /** dup(2). */
    public static native int dup(int fd) throws LastErrorException;

    public static native int fchmod(int fd, int mode) throws LastErrorException;

    public static native int chmod(String path, int mode) throws LastErrorException;

    public static native int memfd_create(String name, int flags) throws LastErrorException;

    public static native int ftruncate(int fd, long length) throws LastErrorException;

    public static native int fstat(int fd, Pointer stat) throws LastErrorException;

    public static native Pointer mmap(Pointer addr, long length, int prot, int flags, int fd, long offset)
            throws LastErrorException;

    public static native int munmap(Pointer addr, long length) throws LastErrorException;

    public static native int eventfd(int initval, int flags) throws LastErrorException;

    /** pipe2(2): {@code fds[0]} the read end, {@code fds[1]} the write end. */
    public static native int pipe2(int[] fds, int flags) throws LastErrorException;

    public static native long read(int fd, Pointer buf, long count) throws LastErrorException;

    public static native long write(int fd, Pointer buf, long count) throws LastErrorException;

    public static native int poll(Pointer fds, long nfds, int timeout) throws LastErrorException;

    /** fcntl(2) with an int argument (F_GETFL, F_SETFL, F_ADD_SEALS, F_GET_SEALS). */
    public static native int fcntl(int fd, int cmd, int arg) throws LastErrorException;

    public static native int setsockopt(int fd, int level, int optname, Pointer optval, int optlen) throws LastErrorException;

    /** {@code MAP_FAILED}. */
    public static boolean mapFailed(Pointer p) {
        return p == null || Pointer.nativeValue(p) == -1L;
    }

    /** Closes {@code fd} if it is open (>= 0), ignoring errors: for teardown paths. */
    public static void closeQuietly(int fd) {
        if (fd >= 0) {
            try {
                close(fd);
            } catch (LastErrorException ignored) {
                // EBADF/EINTR on close: nothing useful to do (close(2) notes: do not retry).
            }
        }
    }

    /** A struct sockaddr_un for {@code path}; throws if the path does not fit sun_path. */
    public static byte[] sockaddrUn(String path) {
        byte[] p = path.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (p.length > UNIX_PATH_MAX || p.length == 0) {
            throw new IllegalArgumentException("unix socket path must be 1.." + UNIX_PATH_MAX + " bytes: " + path);
        }
        byte[] a = new byte[SOCKADDR_UN_SIZE];
        a[0] = (byte) AF_UNIX; // sa_family_t, little-endian u16
        System.arraycopy(p, 0, a, 2, p.length);
        return a;
    }
}
