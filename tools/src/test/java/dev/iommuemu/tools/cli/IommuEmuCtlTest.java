package dev.iommuemu.tools.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.IdentityDevice;
import dev.iommuemu.bridge.session.SessionRegistry;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The CLI against a control server serving the built-in identity model. */
class IommuEmuCtlTest {
    private ControlServer server;
    private Path path;
    private ControlClient owner;
    private long session;

    @BeforeEach
    void start() throws Exception {
        DeviceRegistry devices = DeviceRegistry.discover().register(new DemoDevice.Factory());
        SessionRegistry registry = new SessionRegistry(devices, devices.get(IdentityDevice.Factory.NAME), "");
        path = Path.of("/tmp/ie-ctl-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100000 + ".sock");
        server = new ControlServer(path, registry, "/tmp/vmm.sock");
        owner = ControlClient.connect(path);
        session = owner.createSession("", "").getId();
        owner.addMemory(session, 0x4000_0000L, 1 << 16);
        owner.writeMemory(session, 0x4000_0010L, new byte[] {(byte) 0xde, (byte) 0xad, (byte) 0xbe, (byte) 0xef});
    }

    @AfterEach
    void stop() throws Exception {
        owner.close();
        server.close();
    }

    private String[] ctl(String... args) {
        return CtlRun.ctl(path, args);
    }

    @Test
    void statusTranslateMemoryCounters() {
        String[] s = ctl("status");
        assertEquals("0", s[0], s[2]);
        assertTrue(s[1].contains("vmm socket: /tmp/vmm.sock\n"), s[1]);
        assertTrue(s[1].contains("  session " + session + ": control, model identity profile default, mmio 0x0, memory: 0x40000000+0x10000\n"), s[1]);
        String[] t = ctl("translate", "7", "0x12345678", "--write");
        assertEquals("0x12345678 -> 0x12345678 (mask 0xfff, perm rwx)\n", t[1]);
        String[] m = ctl("mem", "0x40000010", "4");
        assertEquals("0000000040000010: de ad be ef\n", m[1]);
        String[] c = ctl("counters", "--session", Long.toString(session));
        assertTrue(c[1].contains("translations         0\n"), "translate is a diagnostic: " + c[1]);
        assertEquals("{\"address\":\"1073741840\",\"data\":\"3q2+7w==\"}\n", ctl("--json", "mem", "0x40000010", "4")[1]);
    }

    @Test
    void errorsAreReportedWithTheDaemonsReason() {
        String[] r = ctl("read-reg", "0");
        assertEquals("1", r[0]);
        assertEquals("iommu-emu-ctl: read-reg: MMIO offset 0x0 outside the 0x0-byte register space (EINVAL, errno 22)\n", r[2]);
        String[] w = ctl("walk", "1", "0x1000");
        assertEquals("1", w[0]);
        assertEquals("iommu-emu-ctl: walk: model identity offers no diagnostics (ENOSYS, errno 38)\n", w[2]);
        assertEquals("2", ctl("frob")[0]);
        assertEquals("2", ctl("ste")[0]);
        assertEquals("0", ctl("--help")[0]);
        assertTrue(ctl("--help")[1].contains("  walk "), ctl("--help")[1]);
        assertTrue(ctl("walk", "--help")[1].contains("Usage: iommu-emu-ctl walk [-hV] [--exec] [--json] [--priv] [--write]"), ctl("walk", "--help")[1]);
    }

    @Test
    void injectServiceFailureMode() throws Exception {
        String sid = Long.toString(owner.createSession("smmuv3", "max").getId());
        String[] r = ctl("--session", sid, "inject", "sfm");
        assertEquals("0", r[0], r[2]);
        assertEquals("service failure mode: SMMU_GERROR.SFM_ERR is active; transactions are terminated and the queues "
                + "stopped until the SMMU is reset\n", r[1]);
        assertEquals("0x60: 0x100\n", ctl("--session", sid, "read-reg", "0x60")[1]); // GERROR.SFM_ERR (bit 8)
        assertEquals("0x64: 0x0\n", ctl("--session", sid, "read-reg", "0x64")[1]); // GERRORN
        String[] none = ctl("inject", "sfm", "--session", Long.toString(session));
        assertEquals("1", none[0]);
        assertEquals("iommu-emu-ctl: inject: identity has no service failure mode (ENOSYS, errno 38)\n", none[2]);
        String[] bad = ctl("--session", sid, "inject", "frob");
        assertEquals("2", bad[0]);
        assertEquals("iommu-emu-ctl: inject: 'frob' cannot be injected; the choices are: sfm\n", bad[2]);
    }

    @Test
    void diagnosticsAreExplained() throws Exception {
        long demo = owner.createSession("demo", "").getId();
        String sid = Long.toString(demo);
        String[] ste = ctl("--session", sid, "ste", "2");
        assertEquals("STE at 0x80080\n  word 0: 0x0000000000000005\n  word 1: 0x0000000000000000\n"
                + "  V                [0:0]     0x1\n  Config           [3:1]     0x2\n", ste[1]);
        assertEquals("CD at 0x0\n  error: C_BAD_SUBSTREAMID\n", ctl("--session", sid, "cd", "2", "1")[1]);
        ctl("--session", sid, "write-reg", "0x20", "1");
        assertEquals("IDR0                 @0x0     = 0xa\n  S1P              [1:1]     0x1\n  TTF              [3:2]     0x2\n"
                + "CR0                  @0x20    = 0x1\n  SMMUEN           [0:0]     0x1\n", ctl("--session", sid, "registers")[1]);
        assertEquals("0x20: 0x1\n", ctl("--session", sid, "read-reg", "0x20")[1]);
    }

    @Test
    void eventsFollow() throws Exception {
        String[][] result = new String[1][];
        Thread t = new Thread(() -> result[0] = ctl("events", "--follow", "--count", "1", "--session", Long.toString(session)));
        t.start();
        Thread.sleep(1000); // let the tool subscribe
        owner.closeSession(session); // the identity model never faults: closing the session is the event

        t.join(5000);
        assertEquals("0", result[0][0], result[0][2]);
        assertTrue(result[0][1].matches("\\S+ session=" + session + " session_close control\n"), result[0][1]);
        assertTrue(result[0][2].contains("(subscribed: following events)\n"), "the tool says when it is subscribed: " + result[0][2]);
    }

    @Test
    void everyErrorIsASentenceNeverJavaText() throws Exception {
        long smmu = owner.createSession("smmuv3", "").getId(); // no memory, SMMU disabled
        String id = Long.toString(smmu);
        String[] cd = ctl("--session", id, "cd", "0", "0");
        assertEquals("0", cd[0], cd[2]);
        assertEquals("CD at (not read)\n  error: F_STE_FETCH\n", cd[1]); // no memory behind STRTAB_BASE
        String[] neg = ctl("--session", id, "ste", "-1");
        assertEquals("2", neg[0]);
        assertEquals("iommu-emu-ctl: Invalid value for positional parameter at index 0 (SID): '-1' is negative; "
                + "give a number from 0 (decimal or 0x-hex) (see iommu-emu-ctl ste --help)\n", neg[2]);
        String[] big = ctl("--session", id, "ste", "0xffffffff");
        assertEquals("0", big[0], big[2]);
        assertEquals("STE at (not read)\n  error: C_BAD_STREAMID\n", big[1].substring(0, big[1].indexOf("  word") < 0 ? big[1].length() : big[1].indexOf("  word")));
        String[] noValue = ctl("status", "--control");
        assertEquals("2", noValue[0]);
        assertEquals("iommu-emu-ctl: Missing required parameter for option '--control' (PATH) (see iommu-emu-ctl status --help)\n", noValue[2]);
        String[] noDaemon = ctl("--control", "/nonexistent/ctl.sock", "status");
        assertEquals("1", noDaemon[0]);
        assertEquals("iommu-emu-ctl: status: no control socket at /nonexistent/ctl.sock: No such file or directory (ENOENT, errno 2); "
                + "start the daemon (bin/iommu-emu --control /nonexistent/ctl.sock) or name its socket with --control PATH\n", noDaemon[2]);
        String[] size = ctl("--session", id, "read-reg", "0", "3");
        assertEquals("2", size[0]);
        assertTrue(size[2].contains("'3' is not an access size; give 1, 2, 4 or 8"), size[2]);
        String[] none = ctl();
        assertEquals("2", none[0]);
        assertTrue(none[2].startsWith("iommu-emu-ctl: no command given; the commands are:\n"), none[2]);
        for (String[] r : new String[][] {cd, neg, big, noValue, noDaemon, size, none}) {
            assertTrue(!r[2].contains("Exception") && !r[2].contains("\tat "), r[2]);
        }
    }

    @Test
    void createSessionMakesAProtobufOnlySessionWithMemory() {
        String[] r = ctl("create-session", "--model=identity", "--memory", "64K@0x1000000", "--no-hold");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].matches("session \\d+: control, model identity profile default, mmio 0x0, memory: 0x1000000\\+0x10000\n"), r[1]);
        String[] j = ctl("--json", "create-session", "--model=smmuv3", "--no-hold");
        assertTrue(j[1].matches("\\{\"id\":\"\\d+\",\"origin\":\"control\",\"model\":\"smmuv3\",\"profile\":\"default\",\"regions\":\\[\\],"
                + "\"mmio_size\":\"131072\",\"irq_lines\":\\[\"evtq\",\"priq\",\"cmd-sync\",\"gerror\"\\]}\n"), j[1]);
        String[] bad = ctl("create-session", "--model=nope", "--no-hold");
        assertEquals("1", bad[0]);
        assertTrue(bad[2].startsWith("iommu-emu-ctl: create-session: no model 'nope' (have "), bad[2]);
    }

    @Test
    void shellCompletionIsGenerated() {
        String[] r = ctl("generate-completion");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("complete -F _complete_iommu-emu-ctl -o default iommu-emu-ctl"), r[1]);
        assertTrue(r[1].contains("walk"), r[1]);
    }
}
