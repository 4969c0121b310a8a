package dev.iommuemu.bridge.unix;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;

/** Byte streams over a {@link UnixSocket} (for protocols without descriptors, e.g. the control API). */
public final class UnixSocketStreams {
    private UnixSocketStreams() {}

    /** Reads; any descriptor a peer sends is closed at once. */
    public static InputStream in(UnixSocket s) {
        return new InputStream() {
            private final List<Integer> fds = new ArrayList<>();

            @Override
            public int read() throws IOException {
                byte[] b = new byte[1];
                return read(b, 0, 1) == 1 ? b[0] & 0xff : -1;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (len == 0) {
                    return 0;
                }
                try {
                    int n = s.recv(b, off, len, fds);
                    return n == 0 ? -1 : n;
                } finally {
                    fds.forEach(LibC::closeQuietly);
                    fds.clear();
                }
            }
        };
    }

    public static OutputStream out(UnixSocket s) {
        return new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                s.send(b, off, len);
            }
        };
    }
}
