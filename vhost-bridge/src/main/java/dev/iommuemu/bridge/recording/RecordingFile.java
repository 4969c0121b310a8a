package dev.iommuemu.bridge.recording;

import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.RecordingHeader;
import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Reads a recording (docs/recording.md, proto/.../recording.proto): gzip, the magic
 * {@link #MAGIC}, a delimited {@link RecordingHeader}, then delimited {@link RecordedOperation}s.
 * Every problem with the file is an {@link IOException} whose message is a sentence naming it.
 */
public final class RecordingFile implements AutoCloseable {
    /** The first 8 bytes of a recording's (uncompressed) content. */
    public static final byte[] MAGIC = "IOMMUREC".getBytes(StandardCharsets.US_ASCII);
    /** The format this build writes and reads. */
    public static final int FORMAT_VERSION = 1;

    private final Path path;
    private final InputStream in;
    private final RecordingHeader header;
    private boolean truncated;

    private RecordingFile(Path path, InputStream in, RecordingHeader header) {
        this.path = path;
        this.in = in;
        this.header = header;
    }

    /** Opens {@code path} and reads its header; refuses another format version. */
    public static RecordingFile open(Path path) throws IOException {
        InputStream raw;
        try {
            raw = Files.newInputStream(path);
        } catch (NoSuchFileException e) {
            throw new IOException(path + ": no such file");
        } catch (IOException e) {
            throw new IOException(path + ": cannot be read: " + e.getMessage());
        }
        InputStream in = null;
        try {
            in = new BufferedInputStream(new GZIPInputStream(new BufferedInputStream(raw, 1 << 16), 1 << 16), 1 << 16);
            byte[] magic = in.readNBytes(MAGIC.length);
            if (!Arrays.equals(magic, MAGIC)) {
                throw new IOException(path + " is not an iommu-emu recording (its content does not begin with IOMMUREC)");
            }
            RecordingHeader h = RecordingHeader.parseDelimitedFrom(in);
            if (h == null) {
                throw new IOException(path + " ends before its header: the recording is empty");
            }
            if (h.getFormatVersion() != FORMAT_VERSION) {
                throw new IOException(path + " is a recording of format version " + h.getFormatVersion() + " (written by iommu-emu "
                        + h.getDaemonVersion() + "); this build reads format version " + FORMAT_VERSION
                        + " only: replay it with the iommu-emu-ctl of a matching version");
            }
            return new RecordingFile(path, in, h);
        } catch (ZipException e) {
            close(in != null ? in : raw);
            throw new IOException(path + " is not an iommu-emu recording (not a gzip file: " + e.getMessage() + ")");
        } catch (EOFException e) {
            close(in != null ? in : raw);
            throw new IOException(path + " ends before its header: the recording is cut short");
        } catch (com.google.protobuf.InvalidProtocolBufferException e) {
            close(in != null ? in : raw);
            throw new IOException(path + ": its header is damaged: " + e.getMessage());
        } catch (IOException | RuntimeException e) {
            close(in != null ? in : raw);
            throw e;
        }
    }

    private static void close(InputStream in) {
        try {
            in.close();
        } catch (IOException ignored) {
            // nothing more to say than the error being reported
        }
    }

    public RecordingHeader header() {
        return header;
    }

    public Path path() {
        return path;
    }

    /**
     * The next operation, or {@code null} at the end. A file cut inside an operation (a daemon
     * killed while recording) ends there: {@link #truncated()} says so.
     */
    public RecordedOperation next() throws IOException {
        if (truncated) {
            return null;
        }
        try {
            return RecordedOperation.parseDelimitedFrom(in);
        } catch (EOFException e) {
            truncated = true;
            return null;
        } catch (com.google.protobuf.InvalidProtocolBufferException e) {
            if (e.getCause() instanceof EOFException || (e.getMessage() != null && e.getMessage().contains("truncated"))) {
                truncated = true;
                return null;
            }
            throw new IOException(path + ": an operation is damaged: " + e.getMessage());
        } catch (java.util.zip.ZipException e) {
            throw new IOException(path + ": the compressed data is damaged after the operations read so far: " + e.getMessage());
        }
    }

    /** Whether the file ended inside an operation (or inside its gzip stream). */
    public boolean truncated() {
        return truncated;
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
