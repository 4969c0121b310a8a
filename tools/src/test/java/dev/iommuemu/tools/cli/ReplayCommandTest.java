package dev.iommuemu.tools.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.recording.RecordingFile;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.RecordingHeader;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code iommu-emu-ctl record} and {@code replay} (docs/recording.md): a control-API session of
 * the SMMUv3 model recorded through the daemon, replayed locally by the CLI with its exit status.
 */
class ReplayCommandTest {
    /** IHI 0070 §6.3: SMMU_IDR0, SMMU_CR0, SMMU_CR0ACK, SMMU_STRTAB_BASE. */
    static final long IDR0 = 0x0, CR0 = 0x20, CR0ACK = 0x24, STRTAB_BASE = 0x80;

    @TempDir
    Path dir;
    ControlServer server;
    Path socket;
    ControlClient owner;
    long session;

    @BeforeEach
    void start() throws Exception {
        DeviceRegistry devices = DeviceRegistry.discover();
        SessionRegistry registry = new SessionRegistry(devices, devices.get("smmuv3"), "");
        socket = Path.of("/tmp/ie-rec-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100000 + ".sock");
        server = new ControlServer(socket, registry, "/tmp/vmm.sock");
        owner = ControlClient.connect(socket);
        session = owner.createSession("smmuv3", "").getId();
        owner.addMemory(session, 0, 1 << 20);
    }

    @AfterEach
    void stop() throws Exception {
        owner.close();
        server.close();
    }

    private String[] ctl(String... args) {
        return CtlRun.ctl(socket, args);
    }

    /** Records: IDR0 read, STRTAB_BASE written and read back, CMDQEN set in CR0 and CR0ACK read. */
    Path record() throws Exception {
        Path file = dir.resolve("ctl.iommurec");
        String[] r = ctl("--session", Long.toString(session), "record", file.toString());
        assertEquals("0", r[0], r[2]);
        assertEquals("recording to " + file + "\n", r[1]);
        owner.readRegister(session, IDR0, 4);
        owner.writeRegister(session, STRTAB_BASE, 8, 0x10_0000);
        assertEquals(0x10_0000, owner.readRegister(session, STRTAB_BASE, 8));
        owner.writeRegister(session, CR0, 4, 0);
        assertEquals(0, owner.readRegister(session, CR0ACK, 4));
        String[] s = ctl("--session", Long.toString(session), "record", "--stop");
        assertEquals("0", s[0], s[2]);
        assertTrue(s[1].startsWith("recording to " + file + " ended: 5 operations, "), s[1]);
        return file;
    }

    @Test
    void replayOfAnUntouchedRecordingIsIdenticalAndExitsZero() throws Exception {
        Path file = record();
        String[] r = ctl("replay", file.toString());
        assertEquals("0", r[0], r[2]);
        assertEquals("replay: 5 operations, identical\n", r[1]);
    }

    @Test
    void aChangedRegisterValueIsTheFirstDivergenceAndExitsOne() throws Exception {
        Path file = record();
        RecordingHeader h;
        List<RecordedOperation> ops = new ArrayList<>();
        try (RecordingFile f = RecordingFile.open(file)) {
            h = f.header();
            for (RecordedOperation op = f.next(); op != null; op = f.next()) {
                ops.add(op);
            }
        }
        RecordedOperation.Builder b = ops.get(2).toBuilder();
        b.getMmioReadBuilder().setValue(0x20_0000);
        ops.set(2, b.build());
        Path bad = dir.resolve("bad.iommurec");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(bad))) {
            out.write(RecordingFile.MAGIC);
            h.writeDelimitedTo(out);
            for (RecordedOperation op : ops) {
                op.writeDelimitedTo(out);
            }
        }
        String[] r = ctl("replay", bad.toString());
        assertEquals("1", r[0]);
        assertEquals("replay: operation 2 (MMIO read of 8 bytes at 0x80) diverges: the recording answered 0x200000; "
                + "the model answered 0x100000\n", r[1]);
        // the same from a recording another version made: both versions are named
        Path older = dir.resolve("older.iommurec");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(older))) {
            out.write(RecordingFile.MAGIC);
            h.toBuilder().setDaemonVersion("0.0.9").build().writeDelimitedTo(out);
            for (RecordedOperation op : ops) {
                op.writeDelimitedTo(out);
            }
        }
        assertEquals("replay: operation 2 (MMIO read of 8 bytes at 0x80) diverges: the recording answered 0x200000; "
                + "the model answered 0x100000 (recorded by iommu-emu 0.0.9, replayed by 0.1.0)\n", ctl("replay", older.toString())[1]);
    }

    @Test
    void aFileThatIsNoRecordingIsASentenceAndExitsOne() throws Exception {
        Path none = dir.resolve("missing.iommurec");
        String[] r = ctl("replay", none.toString());
        assertEquals("1", r[0]);
        assertEquals("iommu-emu-ctl: replay: " + none + ": no such file\n", r[2]);
        String[] usage = ctl("record");
        assertEquals("2", usage[0]);
        assertEquals("iommu-emu-ctl: record: give either FILE or --stop (see iommu-emu-ctl record --help)\n", usage[2]);
    }
}
