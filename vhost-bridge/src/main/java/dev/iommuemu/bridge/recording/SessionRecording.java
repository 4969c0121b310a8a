package dev.iommuemu.bridge.recording;

import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.RecordingHeader;
import java.io.BufferedOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Supplier;
import java.util.logging.Logger;
import java.util.zip.GZIPOutputStream;

/**
 * One session's recording file (docs/recording.md): the header when the first operation begins
 * (so that it names the model the session ended up choosing), then each operation as the model
 * finished it. Bounded: past {@code maxBytes} of file the recording stops, with one log line; a
 * write error stops it the same way. Neither ever reaches the session: the model goes on.
 *
 * <p>Called under the session lock (through the {@link OperationRecorder}); {@link #status} from
 * any thread.
 */
public final class SessionRecording implements OperationRecorder.Sink {
    private static final Logger LOG = Logger.getLogger(SessionRecording.class.getName());

    /** A recording's state for the control API. */
    public record Status(Path path, long operations, long bytes, boolean active, String stopped) {}

    private final Path path;
    private final long maxBytes;
    private final String who;
    private final Supplier<RecordingHeader> header;
    private final OperationRecorder recorder;
    private final Counting counting;
    private final OutputStream out;
    private boolean headerWritten;
    private volatile long operations;
    private volatile boolean active = true;
    private volatile String stopped = "";

    private SessionRecording(Path path, long maxBytes, String who, Supplier<RecordingHeader> header, OperationRecorder recorder,
            Counting counting, OutputStream out) {
        this.path = path;
        this.maxBytes = maxBytes;
        this.who = who;
        this.header = header;
        this.recorder = recorder;
        this.counting = counting;
        this.out = out;
    }

    /**
     * Creates (or replaces) {@code path} and makes it {@code recorder}'s sink. {@code header} is
     * asked once, when the first operation begins (or at the end if none did).
     *
     * @throws IOException with a sentence when the file cannot be created
     */
    public static SessionRecording start(Path path, long maxBytes, String who, Supplier<RecordingHeader> header,
            OperationRecorder recorder) throws IOException {
        OutputStream file;
        try {
            // 0600 when created: the file holds guest memory contents (what the model read)
            file = java.nio.channels.Channels.newOutputStream(Files.newByteChannel(path,
                    java.util.Set.of(java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING,
                            java.nio.file.StandardOpenOption.WRITE),
                    java.nio.file.attribute.PosixFilePermissions.asFileAttribute(java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"))));
        } catch (IOException e) {
            throw new IOException("cannot create the recording file " + path + ": " + reason(e));
        }
        return start(path, file, maxBytes, who, header, recorder);
    }

    /** As {@link #start(Path, long, String, Supplier, OperationRecorder)}, writing to {@code file} (named {@code path}). */
    static SessionRecording start(Path path, OutputStream file, long maxBytes, String who, Supplier<RecordingHeader> header,
            OperationRecorder recorder) throws IOException {
        Counting c = new Counting(file);
        OutputStream out;
        try {
            out = new BufferedOutputStream(new GZIPOutputStream(c, 8192), 8192);
        } catch (IOException e) {
            file.close();
            throw new IOException("cannot write the recording file " + path + ": " + reason(e));
        }
        SessionRecording r = new SessionRecording(path, maxBytes, who, header, recorder, c, out);
        recorder.sink(r);
        LOG.info(who + ": recording to " + path + " (at most " + maxBytes + " bytes)");
        return r;
    }

    private static String reason(IOException e) {
        if (e instanceof java.nio.file.NoSuchFileException) {
            return "its directory does not exist";
        }
        if (e instanceof java.nio.file.AccessDeniedException) {
            return "permission denied";
        }
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }

    private void writeHeader() throws IOException {
        if (!headerWritten) {
            headerWritten = true;
            out.write(RecordingFile.MAGIC);
            header.get().writeDelimitedTo(out);
        }
    }

    @Override
    public void beginOperation() {
        if (!active) {
            return;
        }
        try {
            writeHeader();
        } catch (IOException e) {
            stop("writing the file failed: " + reason(e));
        }
    }

    @Override
    public void operation(RecordedOperation.Builder op) {
        if (!active) {
            return;
        }
        try {
            op.setIndex(operations).build().writeDelimitedTo(out);
            operations++;
        } catch (IOException e) {
            stop("writing the file failed: " + reason(e));
            return;
        }
        if (counting.count > maxBytes) {
            stop("it reached its size limit of " + maxBytes + " bytes (--record-max-mib)");
        }
    }

    /** Ends the recording because of {@code why} (one WARNING line); the file keeps what it has. */
    public void stop(String why) {
        if (close(why, true)) {
            LOG.warning(who + ": recording to " + path + " stopped: " + why + "; the file holds the first " + operations
                    + " operations");
        }
    }

    /** Ends the recording normally (the session closed, or the control API said stop). */
    public void finish(String why) {
        if (close(why, false)) {
            LOG.info(who + ": recording to " + path + " ended (" + why + "): " + operations + " operations, " + counting.count + " bytes");
        }
    }

    /** Closes the file; {@code failing}: it already failed, so a failing close says nothing new. */
    private boolean close(String why, boolean failing) {
        if (!active) {
            return false;
        }
        active = false;
        stopped = why;
        if (recorder.sink() == this) {
            recorder.sink(null);
        }
        try {
            writeHeader();
            out.close();
        } catch (IOException e) {
            try {
                counting.out().close();
            } catch (IOException ignored) {
                // the file is as good as it gets
            }
            if (!failing) {
                stopped = why + "; closing the file failed: " + reason(e);
            }
        }
        return true;
    }

    public Status status() {
        return new Status(path, operations, counting.count, active, stopped);
    }

    /** Whether the header is written (operations began): later model changes are operations of their own. */
    public boolean hasHeader() {
        return headerWritten;
    }

    public boolean active() {
        return active;
    }

    public Path path() {
        return path;
    }

    /** Counts the bytes that reached the file (after compression). */
    private static final class Counting extends FilterOutputStream {
        volatile long count;

        Counting(OutputStream out) {
            super(out);
        }

        OutputStream out() {
            return out;
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            count += len;
        }
    }
}
