package dev.iommuemu.bridge.recording;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.RecordingHeader;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * docs/recording.md: a session's recording as the control API starts and stops it, its bounds
 * (size limit, a failing disk: one log line each, the session unaffected) and a recording begun
 * mid-session, which replays from its first system reset.
 */
class SessionRecordingTest {
    /** SMMU_STRTAB_BASE (IHI 0070 §6.3.24): writable while SMMUEN = 0; random addresses do not compress. */
    static final long STRTAB_BASE = 0x80;
    static final long IDR0 = 0x0;

    @TempDir
    Path dir;
    SessionRegistry registry;
    DeviceSession s;
    final List<LogRecord> log = new ArrayList<>();
    final Handler handler = new Handler() {
        @Override
        public void publish(LogRecord r) {
            synchronized (log) {
                log.add(r);
            }
        }

        @Override
        public void flush() {}

        @Override
        public void close() {}
    };

    @BeforeEach
    void start() throws Exception {
        DeviceRegistry devices = DeviceRegistry.discover();
        registry = new SessionRegistry(devices, devices.get("smmuv3"), "");
        s = registry.open("control", null, "");
        s.allocateRegion(0, 1 << 20);
        Logger.getLogger(SessionRecording.class.getName()).addHandler(handler);
    }

    @AfterEach
    void stop() {
        Logger.getLogger(SessionRecording.class.getName()).removeHandler(handler);
        registry.closeAll();
    }

    List<String> warnings() {
        synchronized (log) {
            return log.stream().filter(r -> r.getLevel() == Level.WARNING).map(LogRecord::getMessage).toList();
        }
    }

    /** MMIO writes of random values until the recording is no longer active (at most {@code max}). */
    int writeUntilStopped(int max) throws Exception {
        SplittableRandom rnd = new SplittableRandom(18);
        for (int i = 0; i < max; i++) {
            s.mmioWrite(STRTAB_BASE, 8, rnd.nextLong() & 0x000f_ffff_ffff_ffc0L);
            if (!s.recordingStatus().active()) {
                return i + 1;
            }
        }
        return -1;
    }

    @Test
    void theSizeLimitStopsTheRecordingWithOneLineAndTheSessionGoesOn() throws Exception {
        Path file = dir.resolve("limited.iommurec");
        s.startRecording(file, 64 << 10);
        int writes = writeUntilStopped(100_000);
        assertTrue(writes > 0, "stopped");
        SessionRecording.Status st = s.recordingStatus();
        assertFalse(st.active());
        assertEquals("it reached its size limit of 65536 bytes (--record-max-mib)", st.stopped());
        assertEquals(writes, st.operations());
        assertTrue(st.bytes() > 64 << 10 && st.bytes() < (64 << 10) + (32 << 10), "a little past the limit: " + st.bytes());
        assertEquals(List.of("session 1: recording to " + file + " stopped: it reached its size limit of 65536 bytes (--record-max-mib); "
                + "the file holds the first " + writes + " operations"), warnings());
        // the session is unaffected, and the file is a whole recording of what it holds
        s.mmioWrite(STRTAB_BASE, 8, 0x1000);
        assertEquals(0x1000, s.mmioRead(STRTAB_BASE, 8));
        Replay.Outcome o = Replay.run(file, DeviceRegistry.discover());
        assertEquals("replay: " + writes + " operations, identical", o.sentence());
        assertFalse(o.truncated());
    }

    @Test
    void aWriteErrorStopsTheRecordingWithOneLineAndTheSessionGoesOn() throws Exception {
        // A disk that fills up after 20000 bytes: ENOSPC, as write(2) reports it.
        OutputStream disk = new OutputStream() {
            long written;

            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                if (written + len > 20000) {
                    throw new IOException("No space left on device");
                }
                written += len;
            }
        };
        OperationRecorder rec = new OperationRecorder();
        SessionRecording r = SessionRecording.start(Path.of("/full/disk.iommurec"), disk, 512L << 20, "session 7",
                () -> RecordingHeader.newBuilder().setFormatVersion(1).build(), rec);
        int ops = 0;
        SplittableRandom rnd = new SplittableRandom(7);
        while (r.active() && ops < 100_000) {
            RecordedOperation.Builder b = rec.begin();
            b.setMmioWrite(dev.iommuemu.proto.v1.MmioWriteOp.newBuilder().setOffset(STRTAB_BASE).setSize(8).setValue(rnd.nextLong()));
            rec.end(b);
            ops++;
        }
        assertFalse(r.active());
        assertFalse(rec.active(), "the recorder gathers nothing more");
        assertEquals("writing the file failed: No space left on device", r.status().stopped());
        assertEquals(List.of("session 7: recording to /full/disk.iommurec stopped: writing the file failed: No space left on device; "
                + "the file holds the first " + r.status().operations() + " operations"), warnings());
        assertEquals(null, rec.begin(), "no sink: operations run unrecorded");
    }

    @Test
    void startingTwiceStoppingWhenIdleAndAMissingDirectoryAreRefused() throws Exception {
        ProtocolException e = assertThrows(ProtocolException.class, () -> s.startRecording(dir.resolve("no/such/dir.iommurec"), 1 << 20));
        assertEquals(ProtocolException.EIO, e.errno());
        assertEquals("cannot create the recording file " + dir.resolve("no/such/dir.iommurec") + ": its directory does not exist", e.getMessage());
        assertEquals(ProtocolException.ENOENT, assertThrows(ProtocolException.class, () -> s.stopRecording()).errno());
        Path file = dir.resolve("a.iommurec");
        s.startRecording(file, 1 << 20);
        e = assertThrows(ProtocolException.class, () -> s.startRecording(dir.resolve("b.iommurec"), 1 << 20));
        assertEquals(ProtocolException.EBUSY, e.errno());
        assertEquals("session 1 is already recording to " + file + "; stop that recording first", e.getMessage());
        assertEquals(0, s.stopRecording().operations(), "no operation: a header only");
        assertEquals("rw-------", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(file)),
                "guest memory contents: the owner's only");
        try (RecordingFile f = RecordingFile.open(file)) {
            assertEquals("smmuv3", f.header().getModel());
            assertEquals(List.of(1L << 20), f.header().getRamList().stream().map(r -> r.getSize()).toList());
            assertEquals(null, f.next());
        }
        assertEquals("replay: 0 operations, identical", Replay.run(file, DeviceRegistry.discover()).sentence());
    }

    /** --record: {session} names each session's file; a file that cannot be made leaves the session unrecorded. */
    @Test
    void theDaemonOptionRecordsEachSessionToItsOwnFile() throws Exception {
        registry.record(new dev.iommuemu.bridge.daemon.DaemonConfig.Recording(dir + "/r-{session}.iommurec", 1 << 20));
        DeviceSession two = registry.open("control", null, "");
        assertEquals(dir.resolve("r-2.iommurec"), two.recordingStatus().path());
        assertTrue(two.recordingStatus().active());
        registry.close(two);
        assertEquals("replay: 0 operations, identical", Replay.run(dir.resolve("r-2.iommurec"), DeviceRegistry.discover()).sentence());
        assertEquals(dir.resolve("plain.iommurec.9"),
                new dev.iommuemu.bridge.daemon.DaemonConfig.Recording(dir + "/plain.iommurec", 1).file(9));
        registry.record(new dev.iommuemu.bridge.daemon.DaemonConfig.Recording(dir + "/missing/r-{session}.iommurec", 1 << 20));
        DeviceSession three = registry.open("control", null, "");
        assertEquals(null, three.recordingStatus(), "unrecorded");
        assertEquals(s.mmioRead(IDR0, 4), three.mmioRead(IDR0, 4), "and serving: the profile's SMMU_IDR0");
    }

    @Test
    void aRecordingBegunMidSessionReplaysFromItsFirstSystemReset() throws Exception {
        s.mmioWrite(STRTAB_BASE, 8, 0x4000);
        Path file = dir.resolve("mid.iommurec");
        s.startRecording(file, 1 << 20);
        assertEquals(0x4000, s.mmioRead(STRTAB_BASE, 8), "state from before the recording: a fresh model would read 0");
        s.withDevice(d -> {
            d.systemReset();
            return null;
        });
        s.mmioWrite(STRTAB_BASE, 8, 0x8000);
        assertEquals(0x8000, s.mmioRead(STRTAB_BASE, 8));
        long idr0 = s.mmioRead(IDR0, 4);
        s.translate(new Payloads.TranslateRequest(1, -1, 0x1000, 0));
        assertEquals(6, s.stopRecording().operations());
        RecordingHeader h;
        List<RecordedOperation> ops = new ArrayList<>();
        try (RecordingFile f = RecordingFile.open(file)) {
            h = f.header();
            for (RecordedOperation op = f.next(); op != null; op = f.next()) {
                ops.add(op);
            }
        }
        assertTrue(h.getMidSession());
        assertEquals(idr0, ops.get(4).getMmioRead().getValue());
        assertEquals("replay: 4 operations, identical (after the first system reset; 2 operations before it were skipped)",
                Replay.run(file, DeviceRegistry.discover()).sentence());

        // Without a system reset there is nothing to start from.
        Path noReset = dir.resolve("noreset.iommurec");
        s.startRecording(noReset, 1 << 20);
        s.mmioRead(STRTAB_BASE, 8);
        s.stopRecording();
        Replay.Outcome o = Replay.run(noReset, DeviceRegistry.discover());
        assertFalse(o.identical());
        assertEquals("replay: " + noReset + " began after the session's model was in use (a recording started through the control API) "
                + "and has no system reset to start from: nothing to replay", o.sentence());
    }
}
