package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.daemon.Daemon;
import dev.iommuemu.bridge.daemon.DaemonConfig;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.testing.FakeVmm;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Map;
import java.util.Properties;
import java.util.logging.Level;
import org.junit.jupiter.api.Test;

class MainTest {
    private static final String LIMITS = "message.timeout.ms=5000\nhandshake.timeout.ms=10000\nidle.timeout.ms=60000\nrequire.memory.seals=true\n"
            + "control.max.connections=64\ncontrol.request.timeout.ms=5000\ncontrol.idle.timeout.ms=60000\nrecord=\nrecord.max.mib=512\n";

    private static String[] run(String... args) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8), Map.of("XDG_RUNTIME_DIR", "/run/user/7"));
        return new String[] {Integer.toString(rc), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8)};
    }

    @Test
    void helpVersionCapabilitiesAndTheVhostUserConventions() throws Exception {
        String[] h = run("--help");
        assertEquals("0", h[0]);
        assertTrue(h[1].startsWith("Usage: iommu-emu [options]"), h[1]);
        for (String opt : new String[] {"--socket, --socket-path=PATH", "--fd=FD", "--model", "--profile", "--control", "--log-level",
                "--print-capabilities", "-V, --version", "${XDG_RUNTIME_DIR:-/tmp}"}) {
            assertTrue(h[1].contains(opt), opt + " in " + h[1]);
        }
        assertEquals("iommu-emu " + dev.iommuemu.bridge.control.ControlService.VERSION + " (vhost-user IOMMU protocol version "
                + dev.iommuemu.bridge.protocol.Protocol.VERSION + ")\n", run("-V")[1]);
        String caps = run("--print-capabilities")[1];
        assertTrue(caps.startsWith("{\"type\":\"iommu\",\"features\":["), caps);
        assertTrue(caps.contains("\"identity\":{\"protocol_model\":0,\"profiles\":[\"default\"]}"), caps);
        // --opt=value, and the old --socket
        assertTrue(run("--socket-path=/tmp/y.sock", "--print-config")[1].startsWith("socket=/tmp/y.sock\n"));
        assertTrue(run("--socket", "/tmp/z.sock", "--print-config")[1].startsWith("socket=/tmp/z.sock\n"));
        assertTrue(run("--log-level=debug", "--print-config")[1].contains("log.level=debug\n"));
    }

    @Test
    void everyErrorIsASentenceANameAndWhatToDo() throws Exception {
        String[] bad = run("--frobnicate");
        assertEquals("2", bad[0]);
        assertEquals("iommu-emu: Unknown option: '--frobnicate' (see iommu-emu --help)\n", bad[2]);
        String[] noValue = run("--control");
        assertEquals("2", noValue[0]);
        assertEquals("iommu-emu: Missing required parameter for option '--control' (PATH) (see iommu-emu --help)\n", noValue[2]);
        String[] level = run("--log-level", "LOUD", "--print-config");
        assertEquals("2", level[0]);
        assertEquals("iommu-emu: unknown log level 'LOUD' (log.level, --log-level): use one of error, warn, info, debug, trace\n", level[2]);
        String[] missing = run("--config", "/nonexistent/iommu-emu.properties");
        assertEquals("2", missing[0]);
        assertEquals("iommu-emu: --config /nonexistent/iommu-emu.properties: No such file or directory (ENOENT, errno 2); "
                + "give a properties file of the form of the embedded defaults (iommu-emu --print-config)\n", missing[2]);
        String[] dir = run("--config", "/tmp");
        assertEquals("2", dir[0]);
        assertTrue(dir[2].startsWith("iommu-emu: --config /tmp: Is a directory (EISDIR, errno 21); "), dir[2]);
        String[] sock = run("--socket-path", "/nonexistent/dir/vmm.sock", "--control", "none");
        assertEquals("1", sock[0]);
        assertEquals("iommu-emu: --socket-path /nonexistent/dir/vmm.sock: the directory /nonexistent/dir does not exist: "
                + "No such file or directory (ENOENT, errno 2); create it or choose another path\n", sock[2]);
        String[] ctl = run("--socket-path", FakeVmm.socketPath("mainerr").toString(), "--control", "/nonexistent/c.sock");
        assertEquals("1", ctl[0]);
        assertTrue(ctl[2].startsWith("iommu-emu: --control /nonexistent/c.sock: the directory /nonexistent does not exist"), ctl[2]);
        String[] fd = run("--fd", "999", "--control", "none");
        assertEquals("2", fd[0]);
        assertEquals("iommu-emu: --fd 999: no such open file descriptor: Bad file descriptor (EBADF, errno 9); "
                + "pass the number of a listening unix socket this process inherited\n", fd[2]);
        String[] max = run("--max-connections", "0", "--print-config");
        assertEquals("2", max[0]);
        assertEquals("iommu-emu: ack.timeout.ms (--ack-timeout-ms) and max.connections (--max-connections) must be at least 1\n", max[2]);
        String[] seals = run("--require-memory-seals", "maybe", "--print-config");
        assertEquals("2", seals[0]);
        assertEquals("iommu-emu: require.memory.seals (--require-memory-seals) must be true or false, not 'maybe'\n", seals[2]);
        String[] idle = run("--idle-timeout-ms", "-1", "--print-config");
        assertEquals("2", idle[0]);
        assertEquals("iommu-emu: idle.timeout.ms (--idle-timeout-ms) must be 0 (no limit) or a number of milliseconds, not -1\n", idle[2]);
        String[] msg = run("--message-timeout-ms=soon", "--print-config");
        assertEquals("2", msg[0]);
        assertEquals("iommu-emu: message.timeout.ms (--message-timeout-ms) must be a number of milliseconds, not 'soon'\n", msg[2]);
        String[] ctlMax = run("--control-max-connections", "0", "--print-config");
        assertEquals("2", ctlMax[0]);
        assertEquals("iommu-emu: control.max.connections (--control-max-connections) must be at least 1\n", ctlMax[2]);
        for (String[] r : new String[][] {bad, noValue, level, missing, dir, sock, ctl, fd, max, seals, idle, msg, ctlMax}) {
            assertFalse(r[2].contains("Exception") || r[2].contains("\tat "), r[2]);
        }
    }

    @Test
    void aFileDescriptorThatIsNotASocketIsRefused() throws Exception {
        // the JVM keeps its own jars open: one of them is a regular file's descriptor
        Integer fileFd = null;
        try (var fds = Files.list(java.nio.file.Path.of("/proc/self/fd"))) {
            for (var f : (Iterable<java.nio.file.Path>) fds::iterator) {
                try {
                    if (Files.readSymbolicLink(f).toString().endsWith(".jar")) {
                        fileFd = Integer.parseInt(f.getFileName().toString());
                        break;
                    }
                } catch (java.io.IOException ignored) {
                    // gone meanwhile
                }
            }
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(fileFd != null, "no open jar descriptor to use");
        String[] r = run("--fd=" + fileFd, "--control", "none");
        assertEquals("2", r[0]);
        assertTrue(r[2].matches("iommu-emu: --fd " + fileFd + ": it is /\\S+\\.jar, not a socket: Socket operation on non-socket "
                + "\\(ENOTSOCK, errno 88\\); pass a listening unix socket\n"), r[2]);
    }

    @Test
    void systemdSocketActivation() {
        assertEquals(3, dev.iommuemu.bridge.daemon.ListenFds.fromSystemd(Map.of("LISTEN_PID", "42", "LISTEN_FDS", "1"), 42));
        assertEquals(null, dev.iommuemu.bridge.daemon.ListenFds.fromSystemd(Map.of("LISTEN_PID", "41", "LISTEN_FDS", "1"), 42),
                "sockets passed to another process");
        assertEquals(null, dev.iommuemu.bridge.daemon.ListenFds.fromSystemd(Map.of("LISTEN_PID", "42", "LISTEN_FDS", "0"), 42));
        assertEquals(null, dev.iommuemu.bridge.daemon.ListenFds.fromSystemd(Map.of(), 42));
    }

    @Test
    void servesVmmsOnAnInheritedListeningSocket() throws Exception {
        java.nio.file.Path path = FakeVmm.socketPath("inherited");
        Files.deleteIfExists(path);
        byte[] addr = dev.iommuemu.bridge.unix.LibC.sockaddrUn(path.toString());
        int fd = dev.iommuemu.bridge.unix.LibC.socket(dev.iommuemu.bridge.unix.LibC.AF_UNIX, dev.iommuemu.bridge.unix.LibC.SOCK_STREAM, 0);
        dev.iommuemu.bridge.unix.LibC.bind(fd, addr, addr.length);
        dev.iommuemu.bridge.unix.LibC.listen(fd, 8);
        assertEquals(null, dev.iommuemu.bridge.daemon.ListenFds.check(fd));
        Properties p = DaemonConfig.defaults();
        p.setProperty("control", "");
        p.setProperty("model", "identity");
        try (Daemon d = Daemon.start(DaemonConfig.from(p, Map.of()), DeviceRegistry.discover(), fd);
                FakeVmm vmm = new FakeVmm(path)) {
            Payloads.TranslateReply r = Payloads.TranslateReply.decode(vmm.call(Request.IOMMU_TRANSLATE,
                    new Payloads.TranslateRequest(9, Payloads.NO_SUBSTREAM, 0x4321_0000L, 0).encode()).payload());
            assertEquals(0x4321_0000L, r.result().output());
        }
        assertTrue(Files.exists(path), "the inherited socket's file belongs to whoever created it");
        Files.deleteIfExists(path);
    }

    @Test
    void embeddedDefaultsAndOverrides() throws Exception {
        String[] d = run("--print-config");
        assertEquals("0", d[0]);
        assertEquals("socket=/run/user/7/iommu-emu.sock\ncontrol=/run/user/7/iommu-emu-control.sock\nmodel=smmuv3\nprofile=\n"
                + "log.level=info\nack.timeout.ms=5000\nmax.connections=64\n" + LIMITS, d[1]);
        String[] o = run("--socket", "/tmp/x.sock", "--control", "none", "--model", "virtio-iommu", "--profile", "p", "--log-level", "fine", "--print-config");
        assertEquals("socket=/tmp/x.sock\ncontrol=\nmodel=virtio-iommu\nprofile=p\nlog.level=debug\nack.timeout.ms=5000\nmax.connections=64\n" + LIMITS, o[1]);
        // the bounds of docs/daemon.md "Limits and timeouts", also as --option=value
        String[] l = run("--message-timeout-ms", "250", "--handshake-timeout-ms=0", "--require-memory-seals", "false", "--control-max-connections", "3",
                "--idle-timeout-ms", "7", "--control-request-timeout-ms=8", "--control-idle-timeout-ms", "9", "--record", "/tmp/r-{session}.rec",
                "--record-max-mib=3", "--print-config");
        assertEquals("0", l[0], l[2]);
        assertEquals("socket=/run/user/7/iommu-emu.sock\ncontrol=/run/user/7/iommu-emu-control.sock\nmodel=smmuv3\nprofile=\nlog.level=info\nack.timeout.ms=5000\n"
                + "max.connections=64\nmessage.timeout.ms=250\nhandshake.timeout.ms=0\nidle.timeout.ms=7\nrequire.memory.seals=false\n"
                + "control.max.connections=3\ncontrol.request.timeout.ms=8\ncontrol.idle.timeout.ms=9\nrecord=/tmp/r-{session}.rec\n"
                + "record.max.mib=3\n", l[1]);
        // docs/recording.md: a bound of at least 1 MiB
        String[] r0 = run("--record-max-mib", "0", "--print-config");
        assertEquals("2", r0[0]);
        assertEquals("iommu-emu: record.max.mib (--record-max-mib) must be at least 1\n", r0[2]);
        String[] help = run("--help");
        for (String opt : new String[] {"--message-timeout-ms=N", "--handshake-timeout-ms=N", "--idle-timeout-ms=N", "--require-memory-seals=true|false",
                "--control-max-connections=N", "--control-request-timeout-ms=N", "--control-idle-timeout-ms=N", "--record=FILE",
                "--record-max-mib=N"}) {
            assertTrue(help[1].contains(opt), opt + " in " + help[1]);
        }
        assertTrue(run("--list-models")[1].contains("identity (protocol model 0): profiles [default]"));
    }

    @Test
    void daemonServesBothSocketsAndCleansUp() throws Exception {
        Properties p = DaemonConfig.defaults();
        p.setProperty("socket", FakeVmm.socketPath("main").toString());
        p.setProperty("control", FakeVmm.socketPath("mainctl").toString());
        p.setProperty("model", "not-built");
        assertThrows(IllegalArgumentException.class, () -> Daemon.start(DaemonConfig.from(p, Map.of()), DeviceRegistry.discover()));
        p.setProperty("model", "identity");
        DaemonConfig cfg = DaemonConfig.from(p, Map.of());
        assertEquals(Level.INFO, cfg.logLevel());
        try (Daemon d = Daemon.start(cfg, DeviceRegistry.discover())) {
            assertEquals("identity", d.registry().defaultModel().model());
            try (FakeVmm vmm = new FakeVmm(cfg.socket()); ControlClient c = ControlClient.connect(cfg.control())) {
                Payloads.TranslateReply r = Payloads.TranslateReply.decode(vmm.call(Request.IOMMU_TRANSLATE,
                        new Payloads.TranslateRequest(9, Payloads.NO_SUBSTREAM, 0x1234_5678L, 0).encode()).payload());
                assertEquals(0x1234_5678L, r.result().output());
                assertEquals(1, c.status().getSessionsCount());
                assertEquals(cfg.socket().toString(), c.status().getVmmSocket());
            }
        }
        assertFalse(Files.exists(cfg.socket()));
        assertFalse(Files.exists(cfg.control()));
    }
}
