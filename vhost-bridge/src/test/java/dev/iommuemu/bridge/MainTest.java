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
            + "control.max.connections=64\ncontrol.request.timeout.ms=5000\ncontrol.idle.timeout.ms=60000\n";

    private static String[] run(String... args) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8), Map.of("XDG_RUNTIME_DIR", "/run/user/7"));
        return new String[] {Integer.toString(rc), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8)};
    }

    @Test
    void helpAndErrors() throws Exception {
        String[] h = run("--help");
        assertEquals("0", h[0]);
        assertTrue(h[1].startsWith("Usage: iommu-emu [options]"));
        for (String opt : new String[] {"--socket", "--model", "--profile", "--control", "--log-level"}) {
            assertTrue(h[1].contains(opt), opt);
        }
        String[] bad = run("--frobnicate");
        assertEquals("2", bad[0]);
        assertEquals("iommu-emu: unknown option --frobnicate (see --help)\n", bad[2]);
        assertEquals("2", run("--socket")[0]);
        assertEquals("2", run("--log-level", "LOUD", "--print-config")[0]);
    }

    @Test
    void embeddedDefaultsAndOverrides() throws Exception {
        String[] d = run("--print-config");
        assertEquals("0", d[0]);
        assertEquals("socket=/run/user/7/iommu-emu.sock\ncontrol=/run/user/7/iommu-emu-control.sock\nmodel=smmuv3\nprofile=\n"
                + "log.level=INFO\nack.timeout.ms=5000\nmax.connections=64\n" + LIMITS, d[1]);
        String[] o = run("--socket", "/tmp/x.sock", "--control", "none", "--model", "virtio-iommu", "--profile", "p", "--log-level", "fine", "--print-config");
        assertEquals("socket=/tmp/x.sock\ncontrol=\nmodel=virtio-iommu\nprofile=p\nlog.level=FINE\nack.timeout.ms=5000\nmax.connections=64\n" + LIMITS, o[1]);
        assertEquals("2", run("--max-connections", "0", "--print-config")[0]);
        // the bounds of docs/daemon.md "Limits and timeouts"
        String[] l = run("--message-timeout-ms", "250", "--handshake-timeout-ms", "0", "--require-memory-seals", "false", "--control-max-connections", "3", "--print-config");
        assertEquals("0", l[0]);
        assertEquals("socket=/run/user/7/iommu-emu.sock\ncontrol=/run/user/7/iommu-emu-control.sock\nmodel=smmuv3\nprofile=\nlog.level=INFO\nack.timeout.ms=5000\n"
                + "max.connections=64\nmessage.timeout.ms=250\nhandshake.timeout.ms=0\nidle.timeout.ms=60000\nrequire.memory.seals=false\n"
                + "control.max.connections=3\ncontrol.request.timeout.ms=5000\ncontrol.idle.timeout.ms=60000\n", l[1]);
        assertEquals("2", run("--require-memory-seals", "maybe", "--print-config")[0]);
        assertEquals("2", run("--idle-timeout-ms", "-1", "--print-config")[0]);
        assertEquals("2", run("--control-max-connections", "0", "--print-config")[0]);
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
