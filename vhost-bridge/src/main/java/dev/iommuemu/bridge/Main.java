package dev.iommuemu.bridge;

import dev.iommuemu.bridge.client.Errno;
import dev.iommuemu.bridge.control.ControlService;
import dev.iommuemu.bridge.daemon.Daemon;
import dev.iommuemu.bridge.daemon.DaemonConfig;
import dev.iommuemu.bridge.daemon.Limits;
import dev.iommuemu.bridge.daemon.ListenFds;
import dev.iommuemu.bridge.daemon.LogFormat;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.protocol.Protocol;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Entry point of the iommu-emu daemon (bin/iommu-emu). Serves until SIGINT or SIGTERM. Options
 * follow the vhost-user back-end conventions (QEMU docs/interop/vhost-user.rst "Backend program
 * conventions", as virtiofsd and rust-vmm's vhost-device daemons implement them): --socket-path or
 * --fd, --print-capabilities, -V/--version, --log-level, and --opt=value.
 */
@Command(name = "iommu-emu", mixinStandardHelpOptions = true, versionProvider = Main.Version.class, sortOptions = false,
        usageHelpWidth = 100, customSynopsis = "iommu-emu [options]",
        description = {"", "The iommu-emu daemon: an emulated IOMMU (Arm SMMUv3 or virtio-iommu) served to VMMs over a "
                + "vhost-user-style unix socket (docs/protocol.md), with a protobuf control socket for tools "
                + "(docs/daemon.md). Without options it runs the embedded default configuration.", ""},
        footer = {"", "Every option may also be written --option=value. Exit status: 0 stopped by SIGINT/SIGTERM, "
                + "1 could not start, 2 bad options."})
public final class Main implements Callable<Integer> {
    @Option(names = {"--socket-path", "--socket"}, paramLabel = "PATH", order = 1,
            description = "the VMM socket to create and listen on (default: $${XDG_RUNTIME_DIR:-/tmp}/iommu-emu.sock)")
    Path socket;

    @Option(names = "--fd", paramLabel = "FD", order = 2,
            description = "serve VMMs on this inherited listening unix socket instead of creating one; without "
                    + "--socket-path or --fd, a socket systemd passes (LISTEN_FDS, LISTEN_PID) is used")
    Integer fd;

    @Option(names = "--control", paramLabel = "PATH", order = 3,
            description = "the protobuf control socket (default: $${XDG_RUNTIME_DIR:-/tmp}/iommu-emu-control.sock); none disables it")
    String control;

    @Option(names = "--model", paramLabel = "NAME", order = 4,
            description = "the model of each new connection: smmuv3, virtio-iommu, identity (default: smmuv3)")
    String model;

    @Option(names = "--profile", paramLabel = "NAME", order = 5, description = "the model's profile (default: the model's first)")
    String profile;

    @Option(names = "--log-level", paramLabel = "LEVEL", order = 6,
            description = "error, warn, info, debug or trace (default: info)")
    String logLevel;

    @Option(names = "--ack-timeout-ms", paramLabel = "N", order = 7,
            description = "how long to wait for a VMM's IOTLB invalidation ack (default: 5000)")
    String ackTimeoutMs;

    @Option(names = "--max-connections", paramLabel = "N", order = 8, description = "VMM connections served at once (default: 64)")
    String maxConnections;

    // The bounds of docs/daemon.md "Limits and timeouts"; a timeout of 0 turns it off.
    @Option(names = "--message-timeout-ms", paramLabel = "N", order = 9,
            description = "how long the rest of a VMM message may take once begun, and each send to a VMM (default: 5000; 0: no limit)")
    String messageTimeoutMs;

    @Option(names = "--handshake-timeout-ms", paramLabel = "N", order = 10,
            description = "how long a new VMM connection may take to send its first message (default: 10000; 0: no limit)")
    String handshakeTimeoutMs;

    @Option(names = "--idle-timeout-ms", paramLabel = "N", order = 11,
            description = "how long a VMM may stay silent before it shares guest memory (default: 60000; 0: no limit)")
    String idleTimeoutMs;

    @Option(names = "--require-memory-seals", paramLabel = "true|false", order = 12,
            description = "accept guest RAM only as memfds sealed against shrinking, F_SEAL_SHRINK (default: true)")
    String requireMemorySeals;

    @Option(names = "--control-max-connections", paramLabel = "N", order = 13,
            description = "control clients served at once (default: 64)")
    String controlMaxConnections;

    @Option(names = "--control-request-timeout-ms", paramLabel = "N", order = 14,
            description = "how long the rest of a control request may take once begun (default: 5000; 0: no limit)")
    String controlRequestTimeoutMs;

    @Option(names = "--control-idle-timeout-ms", paramLabel = "N", order = 15,
            description = "how long a control client may stay silent between requests; event subscribers are exempt "
                    + "(default: 60000; 0: no limit)")
    String controlIdleTimeoutMs;

    @Option(names = "--record", paramLabel = "FILE", order = 20,
            description = "record each session's IOMMU traffic to FILE for iommu-emu-ctl replay (docs/recording.md); "
                    + "{session} in FILE is the session number, otherwise .N is appended for session N")
    String record;

    @Option(names = "--record-max-mib", paramLabel = "N", order = 21,
            description = "stop a session's recording when its file reaches N MiB (default: 512)")
    String recordMaxMib;

    @Option(names = "--config", paramLabel = "FILE", order = 16, description = "a properties file overriding the embedded defaults")
    Path config;

    @Option(names = "--print-config", order = 17, description = "print the effective configuration and exit")
    boolean printConfig;

    @Option(names = "--list-models", order = 18, description = "print the models and profiles of this build and exit")
    boolean listModels;

    @Option(names = "--print-capabilities", order = 19,
            description = "print the back-end's capabilities as JSON (vhost-user back-end convention) and exit")
    boolean printCapabilities;

    private final PrintStream out;
    private final PrintStream err;
    private final Map<String, String> env;

    private Main(PrintStream out, PrintStream err, Map<String, String> env) {
        this.out = out;
        this.err = err;
        this.env = env;
    }

    /** -V/--version. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"iommu-emu " + ControlService.VERSION + " (vhost-user IOMMU protocol version " + Protocol.VERSION + ")"};
        }
    }

    public static void main(String[] args) throws Exception {
        // before the first logger: keep log handlers alive through shutdown (see DaemonLogManager)
        System.setProperty("java.util.logging.manager", "dev.iommuemu.bridge.daemon.DaemonLogManager");
        System.exit(run(args, System.out, System.err, System.getenv()));
    }

    /** Parses options and runs; returns the exit status. Blocks until shut down when it serves. */
    static int run(String[] args, PrintStream out, PrintStream err, Map<String, String> env) {
        CommandLine cl = new CommandLine(new Main(out, err, env));
        cl.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
        cl.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("iommu-emu: " + ex.getMessage() + " (see iommu-emu --help)");
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, c, parsed) -> {
            // never a stack trace for a user: a sentence, and the log has the rest
            err.println("iommu-emu: cannot start: " + sentence(ex));
            return 1;
        });
        return cl.execute(args);
    }

    @Override
    public Integer call() throws Exception {
        Properties p = DaemonConfig.defaults();
        try {
            if (config != null) {
                DaemonConfig.load(p, config);
            }
            set(p, "socket", socket == null ? null : socket.toString());
            set(p, "control", control == null ? null : control.equals("none") ? "" : control);
            set(p, "model", model);
            set(p, "profile", profile);
            set(p, "log.level", logLevel);
            set(p, "ack.timeout.ms", ackTimeoutMs);
            set(p, "max.connections", maxConnections);
            set(p, "message.timeout.ms", messageTimeoutMs);
            set(p, "handshake.timeout.ms", handshakeTimeoutMs);
            set(p, "idle.timeout.ms", idleTimeoutMs);
            set(p, "require.memory.seals", requireMemorySeals);
            set(p, "control.max.connections", controlMaxConnections);
            set(p, "control.request.timeout.ms", controlRequestTimeoutMs);
            set(p, "control.idle.timeout.ms", controlIdleTimeoutMs);
            set(p, "record", record);
            set(p, "record.max.mib", recordMaxMib);
        } catch (IllegalArgumentException e) {
            err.println("iommu-emu: " + e.getMessage());
            return 2;
        }
        DaemonConfig cfg;
        try {
            cfg = DaemonConfig.from(p, env);
        } catch (IllegalArgumentException e) {
            err.println("iommu-emu: " + e.getMessage());
            return 2;
        }
        DeviceRegistry devices = DeviceRegistry.discover();
        if (listModels) {
            for (String m : devices.models()) {
                DeviceFactory f = devices.get(m);
                out.println(m + " (protocol model " + f.modelNumber() + "): profiles " + f.profiles());
            }
            return 0;
        }
        if (printCapabilities) {
            out.println(capabilities(devices));
            return 0;
        }
        if (printConfig) {
            out.println("socket=" + cfg.socket());
            out.println("control=" + (cfg.control() == null ? "" : cfg.control()));
            out.println("model=" + cfg.model());
            out.println("profile=" + cfg.profile());
            out.println("log.level=" + DaemonConfig.logLevelName(cfg.logLevel()));
            out.println("ack.timeout.ms=" + cfg.ackTimeoutMs());
            out.println("max.connections=" + cfg.maxConnections());
            Limits l = cfg.limits();
            out.println("message.timeout.ms=" + l.messageTimeoutMs());
            out.println("handshake.timeout.ms=" + l.handshakeTimeoutMs());
            out.println("idle.timeout.ms=" + l.idleTimeoutMs());
            out.println("require.memory.seals=" + l.requireMemorySeals());
            out.println("control.max.connections=" + l.controlMaxConnections());
            out.println("control.request.timeout.ms=" + l.controlRequestTimeoutMs());
            out.println("control.idle.timeout.ms=" + l.controlIdleTimeoutMs());
            out.println("record=" + (cfg.recording().file() == null ? "" : cfg.recording().file()));
            out.println("record.max.mib=" + (cfg.recording().maxBytes() >> 20));
            return 0;
        }
        // The listening socket: --fd, else systemd's (LISTEN_FDS, unless --socket-path), else a new one.
        Integer listen = fd;
        if (listen == null && socket == null) {
            listen = ListenFds.fromSystemd(env, ProcessHandle.current().pid());
        }
        if (listen != null) {
            String bad = ListenFds.check(listen);
            if (bad != null) {
                err.println("iommu-emu: --fd " + listen + ": " + bad);
                return 2;
            }
        } else {
            String bad = socketProblem(cfg.socket(), "--socket-path");
            if (bad == null && cfg.control() != null) {
                bad = socketProblem(cfg.control(), "--control");
            }
            if (bad != null) {
                err.println("iommu-emu: " + bad);
                return 1;
            }
        }
        LogFormat.install(cfg.logLevel());
        CountDownLatch stopped = new CountDownLatch(1);
        AtomicReference<Daemon> running = new AtomicReference<>();
        // SIGINT and SIGTERM run shutdown hooks: close the sockets (removing their files) and
        // sessions. Installed before the sockets exist, so that a signal during start-up cannot
        // leave socket files behind.
        Thread hook = new Thread(() -> {
            synchronized (running) {
                Daemon d = running.getAndSet(null);
                if (d != null) {
                    d.close();
                }
            }
            stopped.countDown();
        }, "iommu-emu-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            synchronized (running) {
                running.set(listen != null ? Daemon.start(cfg, devices, listen) : Daemon.start(cfg, devices));
            }
        } catch (Exception e) {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook runs anyway and finds nothing to close
            }
            err.println("iommu-emu: cannot start: " + sentence(e));
            return 1;
        }
        stopped.await();
        return 0;
    }

    private static void set(Properties p, String key, String value) {
        if (value != null) {
            p.setProperty(key, value);
        }
    }

    /**
     * Why a socket file cannot be created at {@code path}, as a sentence naming the option, or null:
     * checked before bind(2) so that the user reads strerror's text, not a bare errno.
     */
    static String socketProblem(Path path, String option) {
        Path dir = path.toAbsolutePath().getParent();
        if (dir != null && !Files.exists(dir)) {
            return option + " " + path + ": the directory " + dir + " does not exist: " + Errno.describe(2)
                    + "; create it or choose another path";
        }
        if (dir != null && !Files.isDirectory(dir)) {
            return option + " " + path + ": " + dir + " is not a directory: " + Errno.describe(20);
        }
        if (dir != null && !Files.isWritable(dir)) {
            return option + " " + path + ": cannot create a socket in " + dir + ": " + Errno.describe(13)
                    + "; choose a directory you can write, e.g. $XDG_RUNTIME_DIR";
        }
        if (path.toString().getBytes(StandardCharsets.UTF_8).length > 107) {
            return option + " " + path + ": a unix socket path is at most 107 bytes: " + Errno.describe(36)
                    + "; choose a shorter path";
        }
        if (Files.isDirectory(path)) {
            return option + " " + path + ": " + Errno.describe(21) + "; name the socket file to create";
        }
        return null;
    }

    private static final Pattern ERRNO = Pattern.compile("errno (\\d+)");

    /** An exception as a sentence: its message with any bare "errno N" spelled out as strerror's text. */
    static String sentence(Throwable e) {
        String m = e.getMessage() == null ? "an internal error (see the log)" : e.getMessage();
        Matcher x = ERRNO.matcher(m);
        StringBuilder b = new StringBuilder();
        while (x.find()) {
            x.appendReplacement(b, Matcher.quoteReplacement(Errno.describe(Integer.parseInt(x.group(1)))));
        }
        x.appendTail(b);
        return b.toString();
    }

    /**
     * --print-capabilities: the vhost-user back-end convention's JSON object ({@code "type"}, here
     * "iommu", and {@code "features"}), with this daemon's models and protocol version.
     */
    static String capabilities(DeviceRegistry devices) {
        StringBuilder b = new StringBuilder("{\"type\":\"iommu\",\"features\":[");
        String sep = "";
        for (String m : devices.models()) {
            b.append(sep).append('"').append(m).append('"');
            sep = ",";
        }
        b.append("],\"protocol_version\":").append(Protocol.VERSION).append(",\"models\":{");
        sep = "";
        for (String m : devices.models()) {
            DeviceFactory f = devices.get(m);
            b.append(sep).append('"').append(m).append("\":{\"protocol_model\":").append(f.modelNumber()).append(",\"profiles\":[");
            String s2 = "";
            for (String pr : f.profiles()) {
                b.append(s2).append('"').append(pr).append('"');
                s2 = ",";
            }
            b.append("]}");
            sep = ",";
        }
        return b.append("}}").toString();
    }
}
