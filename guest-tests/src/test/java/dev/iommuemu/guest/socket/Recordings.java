package dev.iommuemu.guest.socket;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.daemon.DaemonConfig;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.recording.Replay;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * docs/recording.md for whole socket test classes: their daemon records every session, and after
 * each test every recording must replay identically against a fresh model.
 */
public final class Recordings {
    private Recordings() {}

    /** A daemon recording each session to {@code dir}/s{session}.iommurec. */
    public static GuestDaemon daemon(Path dir, String model, String profile) throws IOException {
        return new GuestDaemon(model, profile, new DaemonConfig.Recording(dir.resolve("s{session}.iommurec").toString(), 64L << 20));
    }

    /** Every recording in {@code dir} (the daemon is closed: they are complete) replays identically. */
    public static void assertReplayIdentically(Path dir) {
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> all = files.filter(f -> f.getFileName().toString().endsWith(".iommurec")).sorted().toList();
            assertTrue(!all.isEmpty(), "a session was recorded");
            for (Path f : all) {
                Replay.Outcome o = Replay.run(f, DeviceRegistry.discover());
                assertEquals("replay: " + o.operations() + " operations, identical", o.sentence(), f.toString());
                assertTrue(o.operations() > 0, f + " recorded operations");
            }
        } catch (IOException e) {
            throw new AssertionError(e.getMessage(), e);
        }
    }
}
