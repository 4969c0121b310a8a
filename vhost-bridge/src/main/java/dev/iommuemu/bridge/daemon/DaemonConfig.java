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
        Limits limits) {
    /** A config with the default {@link Limits}. */
    public DaemonConfig(Path socket, Path control, String model, String profile, Level logLevel, int ackTimeoutMs, int maxConnections) {
        this(socket, control, model, profile, logLevel, ackTimeoutMs, maxConnections, Limits.DEFAULTS);
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

    /** Overlays a properties file. */
    public static void load(Properties p, Path file) throws IOException {
        try (Reader r = Files.newBufferedReader(file)) {
            p.load(r);
        }
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

    /** Builds the config from properties (after overlays), expanding environment variables. */
    public static DaemonConfig from(Properties p, Map<String, String> env) {
        String socket = expand(p.getProperty("socket", ""), env).trim();
        String control = expand(p.getProperty("control", ""), env).trim();
        if (socket.isEmpty()) {
            throw new IllegalArgumentException("no socket path configured");
        }
        Level level;
        try {
            level = Level.parse(expand(p.getProperty("log.level", "INFO"), env).trim().toUpperCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("bad log level: " + p.getProperty("log.level"));
        }
        int ack;
        try {
            ack = Integer.parseInt(expand(p.getProperty("ack.timeout.ms", "5000"), env).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad ack.timeout.ms: " + p.getProperty("ack.timeout.ms"));
        }
        int max;
        try {
            max = Integer.parseInt(expand(p.getProperty("max.connections", "64"), env).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad max.connections: " + p.getProperty("max.connections"));
        }
        if (ack <= 0 || max <= 0) {
            throw new IllegalArgumentException("ack.timeout.ms and max.connections must be positive");
        }
        Limits d = Limits.DEFAULTS;
        String seals = expand(p.getProperty("require.memory.seals", "true"), env).trim();
        if (!seals.equals("true") && !seals.equals("false")) {
            throw new IllegalArgumentException("bad require.memory.seals (true or false): " + seals);
        }
        Limits limits = new Limits(intProperty(p, env, "message.timeout.ms", d.messageTimeoutMs()),
                intProperty(p, env, "handshake.timeout.ms", d.handshakeTimeoutMs()), intProperty(p, env, "idle.timeout.ms", d.idleTimeoutMs()),
                Boolean.parseBoolean(seals), intProperty(p, env, "control.max.connections", d.controlMaxConnections()),
                intProperty(p, env, "control.request.timeout.ms", d.controlRequestTimeoutMs()),
                intProperty(p, env, "control.idle.timeout.ms", d.controlIdleTimeoutMs()));
        return new DaemonConfig(Path.of(socket), control.isEmpty() ? null : Path.of(control),
                expand(p.getProperty("model", "smmuv3"), env).trim(), expand(p.getProperty("profile", ""), env).trim(), level, ack, max, limits);
    }

    private static int intProperty(Properties p, Map<String, String> env, String key, int def) {
        String v = expand(p.getProperty(key, Integer.toString(def)), env).trim();
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad " + key + ": " + v);
        }
    }
}
