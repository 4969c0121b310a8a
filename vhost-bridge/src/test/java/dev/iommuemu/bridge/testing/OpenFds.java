package dev.iommuemu.bridge.testing;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/**
 * The open descriptors of this process, each with what it refers to (/proc/self/fd), for leak
 * tests. Counting alone races with descriptors the JVM opens for a moment on its own threads (the
 * JIT reads the cgroup's memory.stat when it sizes its compiler threads, seen as a one-off extra
 * descriptor under load) and with teardown still running on daemon threads; so a baseline is taken
 * once the set has stopped changing, and a comparison waits, with a deadline, until the set is
 * back to it.
 */
public final class OpenFds {
    private OpenFds() {}

    /** fd number -> link target; the directory stream's own descriptor is left out. */
    public static Map<Integer, String> snapshot() {
        Map<Integer, String> m = new TreeMap<>();
        Path dir = Path.of("/proc/self/fd");
        try (DirectoryStream<Path> d = Files.newDirectoryStream(dir)) {
            for (Path p : d) {
                try {
                    m.put(Integer.parseInt(p.getFileName().toString()), Files.readSymbolicLink(p).toString());
                } catch (IOException e) {
                    // closed while listing: not open now
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list /proc/self/fd", e);
        }
        m.values().removeIf(t -> t.equals(dir.toString()) || t.startsWith("/proc/") && t.endsWith("/fd"));
        return m;
    }

    /** A snapshot that three reads 20 ms apart agree on (at most 5 s of waiting). */
    public static Map<Integer, String> settled() throws InterruptedException {
        Map<Integer, String> last = snapshot();
        int same = 1;
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (same < 3 && System.nanoTime() < deadline) {
            Thread.sleep(20);
            Map<Integer, String> now = snapshot();
            same = now.equals(last) ? same + 1 : 1;
            last = now;
        }
        return last;
    }

    /**
     * Waits (at most 5 s) until the open descriptors are exactly {@code baseline} (same numbers,
     * same files) and returns the last snapshot, which the caller compares with the baseline.
     */
    public static Map<Integer, String> awaitEqual(Map<Integer, String> baseline) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        Map<Integer, String> now = snapshot();
        while (!now.equals(baseline) && System.nanoTime() < deadline) {
            Thread.sleep(10);
            now = snapshot();
        }
        return now;
    }
}
