package dev.iommuemu.bridge;

import dev.iommuemu.bridge.daemon.Daemon;
import dev.iommuemu.bridge.daemon.DaemonConfig;
import dev.iommuemu.bridge.daemon.LogFormat;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.DeviceRegistry;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

/** Entry point of the iommu-emu daemon (bin/iommu-emu). Serves until SIGINT or SIGTERM. */
public final class Main {
    private Main() {}

    static final String USAGE = """
            Usage: iommu-emu [options]

            The iommu-emu daemon: an emulated IOMMU (Arm SMMUv3 or virtio-iommu) served to VMMs over a
            vhost-user-style unix socket (docs/protocol.md), with a protobuf control socket for tools
            (docs/daemon.md). Without options it runs the embedded default configuration.

            Options:
              --socket PATH          VMM socket (default: ${XDG_RUNTIME_DIR:-/tmp}/iommu-emu.sock)
              --control PATH         protobuf control socket (default: ${XDG_RUNTIME_DIR:-/tmp}/iommu-emu-control.sock);
                                     "none" disables it
              --model NAME           model of each new connection: smmuv3, virtio-iommu, identity (default: smmuv3)
              --profile NAME         the model's profile (default: the model's first)
              --log-level LEVEL      SEVERE, WARNING, INFO, FINE, FINER, ALL (default: INFO)
              --ack-timeout-ms N     wait for a VMM's IOTLB invalidation ack (default: 5000)
              --max-connections N    VMM connections served at once (default: 64)
              --message-timeout-ms N the rest of a VMM message once begun, and each send (default: 5000)
              --handshake-timeout-ms N  a new VMM connection's first message (default: 10000)
              --idle-timeout-ms N    a VMM's silence before it shares guest memory (default: 60000)
              --require-memory-seals true|false
                                     guest RAM only as memfds sealed against shrinking (default: true)
              --control-max-connections N  control clients served at once (default: 64)
              --control-request-timeout-ms N  the rest of a control request once begun (default: 5000)
              --control-idle-timeout-ms N  a control client's silence between requests (default: 60000)
                                     (a timeout of 0 is off; docs/daemon.md "Limits and timeouts")
              --config FILE          a properties file overriding the embedded defaults
              --print-config         print the effective configuration and exit
              --list-models          print the models and profiles of this build and exit
              -h, --help             this text
            """;

    public static void main(String[] args) throws Exception {
        // before the first logger: keep log handlers alive through shutdown (see DaemonLogManager)
        System.setProperty("java.util.logging.manager", "dev.iommuemu.bridge.daemon.DaemonLogManager");
        System.exit(run(args, System.out, System.err, System.getenv()));
    }

    /** Parses options and runs; returns the exit status. Blocks until shut down when it serves. */
    static int run(String[] args, PrintStream out, PrintStream err, Map<String, String> env) throws Exception {
        Properties p = DaemonConfig.defaults();
        boolean printConfig = false;
        boolean listModels = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String key = switch (a) {
                case "--socket" -> "socket";
                case "--control" -> "control";
                case "--model" -> "model";
                case "--profile" -> "profile";
                case "--log-level" -> "log.level";
                case "--ack-timeout-ms" -> "ack.timeout.ms";
                case "--max-connections" -> "max.connections";
                case "--message-timeout-ms" -> "message.timeout.ms";
                case "--handshake-timeout-ms" -> "handshake.timeout.ms";
                case "--idle-timeout-ms" -> "idle.timeout.ms";
                case "--require-memory-seals" -> "require.memory.seals";
                case "--control-max-connections" -> "control.max.connections";
                case "--control-request-timeout-ms" -> "control.request.timeout.ms";
                case "--control-idle-timeout-ms" -> "control.idle.timeout.ms";
                case "--config" -> "";
                default -> null;
            };
            if (a.equals("-h") || a.equals("--help")) {
                out.print(USAGE);
                return 0;
            } else if (a.equals("--print-config")) {
                printConfig = true;
            } else if (a.equals("--list-models")) {
                listModels = true;
            } else if (key == null) {
                err.println("iommu-emu: unknown option " + a + " (see --help)");
                return 2;
            } else if (i + 1 >= args.length) {
                err.println("iommu-emu: " + a + " needs a value");
                return 2;
            } else if (key.isEmpty()) {
                DaemonConfig.load(p, Path.of(args[++i]));
            } else {
                String v = args[++i];
                p.setProperty(key, key.equals("control") && v.equals("none") ? "" : v);
            }
        }
        DaemonConfig config;
        try {
            config = DaemonConfig.from(p, env);
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
        if (printConfig) {
            out.println("socket=" + config.socket());
            out.println("control=" + (config.control() == null ? "" : config.control()));
            out.println("model=" + config.model());
            out.println("profile=" + config.profile());
            out.println("log.level=" + config.logLevel().getName());
            out.println("ack.timeout.ms=" + config.ackTimeoutMs());
            out.println("max.connections=" + config.maxConnections());
            dev.iommuemu.bridge.daemon.Limits l = config.limits();
            out.println("message.timeout.ms=" + l.messageTimeoutMs());
            out.println("handshake.timeout.ms=" + l.handshakeTimeoutMs());
            out.println("idle.timeout.ms=" + l.idleTimeoutMs());
            out.println("require.memory.seals=" + l.requireMemorySeals());
            out.println("control.max.connections=" + l.controlMaxConnections());
            out.println("control.request.timeout.ms=" + l.controlRequestTimeoutMs());
            out.println("control.idle.timeout.ms=" + l.controlIdleTimeoutMs());
            return 0;
        }
        LogFormat.install(config.logLevel());
        CountDownLatch stopped = new CountDownLatch(1);
        java.util.concurrent.atomic.AtomicReference<Daemon> running = new java.util.concurrent.atomic.AtomicReference<>();
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
                running.set(Daemon.start(config, devices));
            }
        } catch (Exception e) {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook runs anyway and finds nothing to close
            }
            err.println("iommu-emu: cannot start: " + e.getMessage());
            return 1;
        }
        stopped.await();
        return 0;
    }
}
