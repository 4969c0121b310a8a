package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.testing.FakeVmm;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The daemon as its own process (Main), driven by both clients, stopped with SIGTERM. */
class DaemonProcessTest {
    @Test
    void servesThenStopsCleanlyOnSigterm() throws Exception {
        Path vmmSock = FakeVmm.socketPath("proc");
        Path ctlSock = FakeVmm.socketPath("procctl");
        Path log = Files.createTempFile("iommu-emu-daemon", ".log");
        Path log2 = Files.createTempFile("iommu-emu-daemon2", ".log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "-Djna.tmpdir=" + System.getProperty("jna.tmpdir", "/tmp"),
                "dev.iommuemu.bridge.Main", "--socket-path", vmmSock.toString(), "--control", ctlSock.toString(), "--model", "identity")
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            for (int i = 0; i < 300 && !(Files.exists(vmmSock) && Files.exists(ctlSock)); i++) {
                Thread.sleep(50);
            }
            assertTrue(Files.exists(vmmSock), "daemon did not start: " + Files.readString(log));
            try (VmmClient vmm = VmmClient.connect(vmmSock); ControlClient ctl = ControlClient.connect(ctlSock)) {
                assertEquals(0x4000_1234L, vmm.translate(3, -1, 0x4000_1234L, 0).result().output());
                assertEquals("identity", ctl.status().getDefaultModel());
                assertEquals(1L, ctl.counters(0).get("translations"));
            }
            // issue 14: a second daemon on the same paths refuses to start and leaves the first's files alone
            Process second = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "-Djna.tmpdir=" + System.getProperty("jna.tmpdir", "/tmp"),
                    "dev.iommuemu.bridge.Main", "--socket-path", vmmSock.toString(), "--control", ctlSock.toString(), "--model", "identity")
                    .redirectErrorStream(true).redirectOutput(log2.toFile()).start();
            boolean exited = second.waitFor(20, TimeUnit.SECONDS);
            second.destroyForcibly(); // a daemon that took the path would serve forever
            String secondOut = Files.readString(log2, StandardCharsets.UTF_8);
            assertTrue(exited, "the second daemon must refuse to start: " + secondOut);
            assertEquals(1, second.exitValue(), secondOut);
            assertTrue(secondOut.contains("iommu-emu: cannot start: another process (a running daemon?) is serving " + vmmSock), secondOut);
            assertTrue(Files.exists(vmmSock) && Files.exists(ctlSock), "the first daemon's socket files stay");
            try (ControlClient ctl = ControlClient.connect(ctlSock)) {
                assertEquals("identity", ctl.status().getDefaultModel(), "the first daemon is still reachable");
            }
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(20, TimeUnit.SECONDS));
            assertEquals(143, p.exitValue());
            assertFalse(Files.exists(vmmSock));
            assertFalse(Files.exists(ctlSock));
            String out = Files.readString(log, StandardCharsets.UTF_8);
            assertTrue(out.contains("level=INFO logger=Daemon thread=iommu-emu-shutdown msg=\"iommu-emu daemon stopped\""), out);
        } finally {
            p.destroyForcibly();
            Files.deleteIfExists(log);
            Files.deleteIfExists(log2);
        }
    }
}
