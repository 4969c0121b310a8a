package dev.iommuemu.bridge.daemon;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Instant;
import java.util.logging.ConsoleHandler;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * One log record per line, as logfmt key=value pairs:
 * {@code ts=2026-01-01T00:00:00.123Z level=WARNING logger=VhostUserConnection thread=iommu-emu-vmm-3 msg="..."}.
 */
public final class LogFormat extends Formatter {
    @Override
    public String format(LogRecord r) {
        StringBuilder sb = new StringBuilder(160);
        sb.append("ts=").append(Instant.ofEpochMilli(r.getMillis()));
        sb.append(" level=").append(r.getLevel().getName());
        String name = r.getLoggerName() == null ? "" : r.getLoggerName();
        sb.append(" logger=").append(name.substring(name.lastIndexOf('.') + 1));
        sb.append(" thread=").append(Thread.currentThread().getName());
        sb.append(" msg=");
        quote(sb, formatMessage(r));
        if (r.getThrown() != null) {
            sb.append(" error=");
            quote(sb, r.getThrown().toString());
            if (r.getLevel().intValue() >= Level.SEVERE.intValue()) {
                StringWriter sw = new StringWriter();
                r.getThrown().printStackTrace(new PrintWriter(sw));
                sb.append(" stack=");
                quote(sb, sw.toString());
            }
        }
        return sb.append('\n').toString();
    }

    static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\t' -> sb.append("\\t");
                default -> sb.append(c);
            }
        }
        sb.append('"');
    }

    /** Routes the root logger to stderr with this format at {@code level}. */
    public static void install(Level level) {
        Logger root = Logger.getLogger("");
        for (Handler h : root.getHandlers()) {
            root.removeHandler(h);
        }
        ConsoleHandler h = new ConsoleHandler();
        h.setFormatter(new LogFormat());
        h.setLevel(level);
        root.addHandler(h);
        root.setLevel(level);
    }
}
