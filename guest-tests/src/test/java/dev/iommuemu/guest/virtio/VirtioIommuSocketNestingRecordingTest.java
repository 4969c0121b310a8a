package dev.iommuemu.guest.virtio;

import dev.iommuemu.guest.socket.GuestDaemon;
import dev.iommuemu.guest.socket.Recordings;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every test of {@link VirtioIommuSocketNestingTest} again with the daemon recording (docs/recording.md): the guest
 * sees the same, and each session's recording replays identically against a fresh model.
 */
class VirtioIommuSocketNestingRecordingTest extends VirtioIommuSocketNestingTest {
    @TempDir
    Path recordings;

    @Override
    GuestDaemon newDaemon(String model, String profile) throws java.io.IOException {
        return Recordings.daemon(recordings, model, profile);
    }

    @Override
    @AfterEach
    void stop() {
        super.stop();
        Recordings.assertReplayIdentically(recordings);
    }
}
