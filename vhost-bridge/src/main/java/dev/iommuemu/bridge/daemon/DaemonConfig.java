package dev.iommuemu.bridge.daemon;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;
import java.util.logging.Level;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The daemon's settings: the embedded {@code default.properties}, then an optional file, then
 * command-line options. Values may use {@code ${VAR:-default}} for environment variables.
 */
public record DaemonConfig(Path socket, Path control, String model, String profile, Level logLevel, int ackTimeoutMs, int maxConnections,
        Limits limits, Recording recording) {
    /** A config with the default {@link Limits}. */
    public DaemonConfig(Path socket, Path control, String model, String profile, Level logLevel, int ackTimeoutMs, int maxConnections) {
        this(socket, control, model, profile, logLevel, ackTimeoutMs, maxConnections, Limits.DEFAULTS);
    }

    /** A config that records nothing. */
    public DaemonConfig(Path socket, Path control, String model, String profile, Level logLevel, int ackTimeoutMs, int maxConnections,
            Limits limits) {
        this(socket, control, model, profile, logLevel, ackTimeoutMs, maxConnections, limits, Recording.NONE);
    }

    /**
     * docs/recording.md: record every session to {@code file} (null: none; "{session}" in it is the
     * session number, else ".N" is appended for session N), each file at most {@code maxBytes}.
     */
    public record Recording(String file, long maxBytes) {
        public static final long DEFAULT_MAX_MIB = 512;
        public static final Recording NONE = new Recording(null, DEFAULT_MAX_MIB << 20);

        /** The file of session {@code id}. */
        public Path file(long id) {
            return Path.of(file.contains("{session}") ? file.replace("{session}", Long.toString(id)) : file + "." + id);
        }
    }

    private static final Pattern VAR = Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?}");

    /** The embedded defaults as properties. */
    public static Properties defaults() {
        Properties p = new Properties();
        try (InputStream in = DaemonConfig.class.getResourceAsStream("/dev/iommuemu/bridge/default.properties")) {
            if (in == null) {
                throw new IllegalStateException("default.properties missing from the jar");
            }
            p.load(in);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return p;
    }

    /**
     * Overlays a properties file. A file that cannot be read is an IllegalArgumentException whose
     * message says why as a person reads it (strerror text and errno) and what to give instead.
     */
    public static void load(Properties p, Path file) {
        String why = null;
        if (!Files.exists(file)) {
            why = "No such file or directory (ENOENT, errno 2)";
        } else if (Files.isDirectory(file)) {
            why = "Is a directory (EISDIR, errno 21)";
        } else if (!Files.isReadable(file)) {
            why = "Permission denied (EACCES, errno 13)";
        }
        if (why == null) {
            try (Reader r = Files.newBufferedReader(file)) {
                p.load(r);
                return;
            } catch (IOException | IllegalArgumentException e) {
                why = "not a properties file (not UTF-8 text, or a malformed \\uXXXX escape)";
            }
        }
        throw new IllegalArgumentException("--config " + file + ": " + why
                + "; give a properties file of the form of the embedded defaults (iommu-emu --print-config)");
    }

    static String expand(String v, Map<String, String> env) {
        Matcher m = VAR.matcher(v);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            String val = env.get(m.group(1));
            if (val == null || val.isEmpty()) {
                val = m.group(2) != null ? m.group(2) : "";
            }
            m.appendReplacement(sb, Matcher.quoteReplacement(val));
        }
        m.appendTail(sb);
        return sb.toString();
    }

    /**
     * The log levels users name, as the vhost-user back-ends (virtiofsd, rust-vmm's vhost-device
     * daemons) spell them, mapped to java.util.logging's; the JUL names are accepted too.
     */
    public static final java.util.List<String> LOG_LEVELS = java.util.List.of("error", "warn", "info", "debug", "trace");

    /** A log level by its user-facing name (error, warn, info, debug, trace) or its JUL name. */
    public static Level logLevel(String name) {
        String n = name.trim().toLowerCase(java.util.Locale.ROOT);
        switch (n) {
            case "error", "severe":
                return Level.SEVERE;
            case "warn", "warning":
                return Level.WARNING;
            case "info":
                return Level.INFO;
            case "debug", "fine", "config":
                return Level.FINE;
            case "trace", "finer", "finest", "all":
                return Level.FINEST;
            case "off":
                return Level.OFF;
            default:
                throw new IllegalArgumentException("unknown log level '" + name + "' (log.level, --log-level): use one of "
                        + String.join(", ", LOG_LEVELS));
        }
    }

    /** The user-facing name of a level {@link #logLevel} gives. */
    public static String logLevelName(Level l) {
        if (l.intValue() >= Level.OFF.intValue()) {
            return "off";
        }
        if (l.intValue() >= Level.SEVERE.intValue()) {
            return "error";
        }
        if (l.intValue() >= Level.WARNING.intValue()) {
            return "warn";
        }
        if (l.intValue() >= Level.INFO.intValue()) {
            return "info";
        }
        return l.intValue() >= Level.FINE.intValue() ? "debug" : "trace";
    }

    /** Builds the config from properties (after overlays), expanding environment variables. */
    public static DaemonConfig from(Properties p, Map<String, String> env) {
        String socket = expand(p.getProperty("socket", ""), env).trim();
        String control = expand(p.getProperty("control", ""), env).trim();
        if (socket.isEmpty()) {
            throw new IllegalArgumentException("no VMM socket path configured: give --socket-path PATH (or --fd N)");
        }
        Level level = logLevel(expand(p.getProperty("log.level", "info"), env).trim());
        int ack;
        try {
            ack = Integer.parseInt(expand(p.getProperty("ack.timeout.ms", "5000"), env).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("ack.timeout.ms (--ack-timeout-ms) must be a number of milliseconds, not '"
                    + p.getProperty("ack.timeout.ms") + "'");
        }
        int max;
        try {
            max = Integer.parseInt(expand(p.getProperty("max.connections", "64"), env).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("max.connections (--max-connections) must be a number, not '"
                    + p.getProperty("max.connections") + "'");
        }
        if (ack <= 0 || max <= 0) {
            throw new IllegalArgumentException("ack.timeout.ms (--ack-timeout-ms) and max.connections (--max-connections)"
                    + " must be at least 1");
        }
        Limits d = Limits.DEFAULTS;
        String seals = expand(p.getProperty("require.memory.seals", "true"), env).trim();
        if (!seals.equals("true") && !seals.equals("false")) {
            throw new IllegalArgumentException("require.memory.seals (--require-memory-seals) must be true or false, not '" + seals + "'");
        }
        int controlMax = intProperty(p, env, "control.max.connections", d.controlMaxConnections(), "a number");
        if (controlMax <= 0) {
            throw new IllegalArgumentException("control.max.connections (--control-max-connections) must be at least 1");
        }
        Limits limits = new Limits(timeout(p, env, "message.timeout.ms", d.messageTimeoutMs()),
                timeout(p, env, "handshake.timeout.ms", d.handshakeTimeoutMs()), timeout(p, env, "idle.timeout.ms", d.idleTimeoutMs()),
                Boolean.parseBoolean(seals), controlMax, timeout(p, env, "control.request.timeout.ms", d.controlRequestTimeoutMs()),
                timeout(p, env, "control.idle.timeout.ms", d.controlIdleTimeoutMs()));
        String record = expand(p.getProperty("record", ""), env).trim();
        long recordMib = intProperty(p, env, "record.max.mib", (int) Recording.DEFAULT_MAX_MIB, "a number of MiB");
        if (recordMib <= 0) {
            throw new IllegalArgumentException("record.max.mib (--record-max-mib) must be at least 1");
        }
        return new DaemonConfig(Path.of(socket), control.isEmpty() ? null : Path.of(control),
                expand(p.getProperty("model", "smmuv3"), env).trim(), expand(p.getProperty("profile", ""), env).trim(), level, ack, max, limits,
                new Recording(record.isEmpty() ? null : record, recordMib << 20));
    }

    /** The option that sets property {@code key} (message.timeout.ms: --message-timeout-ms). */
    private static String option(String key) {
        return "--" + key.replace('.', '-');
    }

    private static int intProperty(Properties p, Map<String, String> env, String key, int def, String what) {
        String v = expand(p.getProperty(key, Integer.toString(def)), env).trim();
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " (" + option(key) + ") must be " + what + ", not '" + v + "'");
        }
    }

    /** A timeout of docs/daemon.md "Limits and timeouts": milliseconds, 0 for none. */
    private static int timeout(Properties p, Map<String, String> env, String key, int def) {
        int v = intProperty(p, env, key, def, "a number of milliseconds");
        if (v < 0) {
            throw new IllegalArgumentException(key + " (" + option(key) + ") must be 0 (no limit) or a number of milliseconds, not " + v);
        }
        return v;
    }
}
