package dev.iommuemu.tools.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.session.SessionRegistry;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Golden output of {@code iommu-emu-ctl walk}, human and --json, through a nested stage 1 + stage 2
 * fault ({@link NestedScenario}): byte for byte as in src/test/resources/dev/iommuemu/tools/cli/.
 * After an intended format change, regenerate with -Diommuemu.golden.update=true and review the diff.
 */
class WalkGoldenTest {
    private ControlServer server;
    private ControlClient owner;
    private Path path;
    private long s;

    @BeforeEach
    void start() throws Exception {
        DeviceRegistry devices = DeviceRegistry.discover();
        path = Path.of("/tmp/ie-golden-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100000 + ".sock");
        server = new ControlServer(path, new SessionRegistry(devices, devices.get("smmuv3"), ""), "");
        owner = ControlClient.connect(path);
        s = NestedScenario.create(owner);
    }

    @AfterEach
    void stop() throws Exception {
        owner.close();
        server.close();
    }

    private String ctl(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = new IommuEmuCtl(new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8))
                .run(args, Map.of("IOMMU_EMU_CONTROL", path.toString()));
        assertEquals(0, rc, err.toString(StandardCharsets.UTF_8));
        return out.toString(StandardCharsets.UTF_8);
    }

    private static void golden(String name, String actual) throws IOException {
        if (Boolean.getBoolean("iommuemu.golden.update")) {
            Files.writeString(Path.of("src/test/resources/dev/iommuemu/tools/cli", name), actual);
            return;
        }
        try (InputStream in = WalkGoldenTest.class.getResourceAsStream(name)) {
            assertEquals(new String(in.readAllBytes(), StandardCharsets.UTF_8), actual, name);
        }
    }

    @Test
    void nestedStage2FaultAsAPersonReadsIt() throws Exception {
        golden("walk-nested-fault.txt", ctl("--session", Long.toString(s), "walk", "5", "0x123456000"));
    }

    @Test
    void nestedStage2FaultAsJson() throws Exception {
        golden("walk-nested-fault.json", ctl("--session", Long.toString(s), "--json", "walk", "5", "0x123456000"));
    }

    @Test
    void stage1FaultAndTranslationAsAPersonReadsThem() throws Exception {
        golden("walk-nested-write-unmapped.txt", ctl("walk", "--session=" + s, "5", "0x123458000", "--write"));
        golden("walk-nested-translated.txt", ctl("walk", "--session=" + s, "5", "0x123457abc"));
    }
}
