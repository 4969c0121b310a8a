package dev.iommuemu.tools.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.IdentityDevice;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.InjectRequest;
import dev.iommuemu.proto.v1.TranslateRequest;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@code iommu-emu-ctl violations} against a protobuf-only SMMUv3 session on a "+strict" profile:
 * a guest (the test, through the control API) changes an STE in memory without CMD_CFGI_STE
 * (IHI 0070 §4.3.1), and the tool lists the one finding.
 */
class ViolationsCommandTest {
    static final long STRTAB = 0x1_0000;
    static final int SID = 2;
    private ControlServer server;
    private Path path;
    private ControlClient owner;

    @BeforeEach
    void start() throws Exception {
        DeviceRegistry devices = DeviceRegistry.discover();
        SessionRegistry registry = new SessionRegistry(devices, devices.get(IdentityDevice.Factory.NAME), "");
        path = Path.of("/tmp/ie-vio-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100000 + ".sock");
        server = new ControlServer(path, registry, "/tmp/vmm.sock");
        owner = ControlClient.connect(path);
    }

    @AfterEach
    void stop() throws Exception {
        owner.close();
        server.close();
    }

    private String[] ctl(String... args) {
        return CtlRun.ctl(path, args);
    }

    private static byte[] ste(int config) {
        // STE word 0 (IHI 0070 §5.2): V [0], Config [3:1]
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(1 | (long) config << 1).array();
    }

    private void dma(long session) throws Exception {
        owner.call(ControlRequest.newBuilder().setInject(InjectRequest.newBuilder().setSession(session)
                .setFault(TranslateRequest.newBuilder().setStreamId(SID).setIova(0x1000).setAccess(ControlClient.access(false, false, false)))));
    }

    @Test
    void listsTheSessionsFindings() throws Exception {
        long s = owner.createSession("smmuv3", "default+strict").getId();
        owner.addMemory(s, 0, 1 << 20);
        owner.writeRegister(s, 0x80, 8, STRTAB); // SMMU_STRTAB_BASE
        owner.writeRegister(s, 0x88, 4, 4); // SMMU_STRTAB_BASE_CFG: linear, 2^4 STEs
        owner.writeRegister(s, 0x20, 4, 1); // SMMU_CR0.SMMUEN
        owner.writeMemory(s, STRTAB + SID * 64L, ste(0b100)); // bypass
        dma(s); // the STE is cached
        String id = Long.toString(s);
        assertEquals("0 findings\n", ctl("--session", id, "violations")[1]);
        owner.writeMemory(s, STRTAB + SID * 64L, ste(0b000)); // abort, without CMD_CFGI_STE
        dma(s);
        dma(s); // the same stale STE: no second finding
        String[] r = ctl("--session", id, "violations");
        assertEquals("0", r[0], r[2]);
        String sentence = "STE at SID 0x2 address 0x10080: the SMMU holds STE{V=0x1, Config=0x4}, memory holds STE{V=0x1}; "
                + "CMD_CFGI_STE SID 0x2 (or a CMD_CFGI_STE_RANGE / CMD_CFGI_ALL covering it) then CMD_SYNC";
        assertEquals("1 finding (1 STE)\n" + sentence + "\n", r[1]);
        String[] j = ctl("--json", "--session", id, "violations");
        assertEquals(("{\"strict\":true,\"total\":\"1\",\"by_kind\":{\"STE\":\"1\"},\"findings\":[{\"kind\":\"STE\",\"stream_id\":2,"
                + "\"address\":\"65664\",\"stale\":\"STE{V=0x1, Config=0x4}\",\"in_memory\":\"STE{V=0x1}\",\"remedy\":"
                + "\"CMD_CFGI_STE SID 0x2 (or a CMD_CFGI_STE_RANGE / CMD_CFGI_ALL covering it) then CMD_SYNC\",\"detail\":\""
                + sentence + "\"}]}\n").replace("=", "\\u003d"), j[1], "protobuf's JSON printer escapes '='");
    }

    @Test
    void saysWhenTheSessionIsNotStrict() throws Exception {
        long s = owner.createSession("smmuv3", "default").getId();
        String[] r = ctl("--session", Long.toString(s), "violations");
        assertEquals("0", r[0], r[2]);
        assertEquals("the session is not in strict mode: findings are made with a \"+strict\" profile "
                + "(e.g. bin/iommu-emu --profile default+strict)\n", r[1]);
        String[] none = ctl("--session", "999", "violations");
        assertEquals("1", none[0]);
        assertEquals("iommu-emu-ctl: violations: no session 999 (ENOENT, errno 2)\n", none[2]);
    }
}
