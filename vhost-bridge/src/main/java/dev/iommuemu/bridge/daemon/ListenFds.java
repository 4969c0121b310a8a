package dev.iommuemu.bridge.daemon;

import dev.iommuemu.bridge.client.Errno;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Inherited listening sockets: --fd N (the vhost-user back-end convention) and systemd's socket
 * activation (sd_listen_fds(3): LISTEN_PID names this process, LISTEN_FDS counts the sockets,
 * which start at fd 3).
 */
public final class ListenFds {
    /** SD_LISTEN_FDS_START. */
    public static final int FIRST = 3;

    private ListenFds() {}

    /** The first socket systemd passed to this process ({@code pid}), or null when it passed none. */
    public static Integer fromSystemd(Map<String, String> env, long pid) {
        String p = env.get("LISTEN_PID");
        String n = env.get("LISTEN_FDS");
        if (p == null || n == null) {
            return null;
        }
        try {
            return Long.parseLong(p.trim()) == pid && Integer.parseInt(n.trim()) >= 1 ? FIRST : null;
        } catch (NumberFormatException e) {
            return null;
        }
    }

    /** Why {@code fd} cannot be served on, as a sentence, or null when it is an open socket (Linux /proc/self/fd). */
    public static String check(int fd) {
        if (fd < 0) {
            return "a file descriptor is a number from 0: " + Errno.describe(9);
        }
        Path link = Path.of("/proc/self/fd/" + fd);
        if (!Files.exists(link, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return "no such open file descriptor: " + Errno.describe(9)
                    + "; pass the number of a listening unix socket this process inherited";
        }
        try {
            String target = Files.readSymbolicLink(link).toString();
            if (!target.startsWith("socket:")) {
                return "it is " + target + ", not a socket: " + Errno.describe(88) + "; pass a listening unix socket";
            }
        } catch (IOException e) {
            return "cannot inspect it: " + Errno.describe(9);
        }
        return null;
    }
}
