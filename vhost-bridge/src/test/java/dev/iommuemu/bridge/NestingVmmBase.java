package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge;
import dev.iommuemu.bridge.nesting.IommufdCall;
import dev.iommuemu.bridge.protocol.NestingPayloads;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.testing.FakeVmm;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/**
 * What the nesting tests over the VMM socket share (docs/protocol.md §4.6): a daemon whose
 * connections get the SMMUv3 model, profile max, a connected VmmClient, and the guest side of a
 * vSMMU: guest RAM at GPA_BASE (IPA 0), a guest CD and guest stage 1 tables in it.
 */
abstract class NestingVmmBase {
    static final long CARVE = 0x1000_0000L;
    static final long GPA_BASE = 0x4000_0000L; // host physical address of guest IPA 0
    static final long GUEST_RAM = 0x80_0000L;
    static final int SID = 5;
    static final long VSID = 0x42;
    static final long VA = 0x4000_0000L;
    static final long CD_IPA = 0x10_0000L;
    static final long CD_STALL_IPA = 0x10_0040L;
    static final long TABLES_IPA = 0x20_0000L;
    static final int ENOENT = 2, EIO = 5, EEXIST = 17, ENODEV = 19, EINVAL = 22, EOPNOTSUPP = 95;
    /** Stage 1 page: valid page, AF, inner shareable, EL0 read/write (AP[1]), nG. */
    static final long S1_PAGE = 0b11 | (1L << 10) | (3L << 8) | (1L << 6) | (1L << 11);

    VhostUserServer server;
    VmmClient vmm;

    /** Hook for a test that watches the registry (e.g. its event bus) before the VMM connects. */
    void registry(SessionRegistry registry) {}

    @BeforeEach
    void start() throws Exception {
        Smmuv3Bridge.Factory smmu = new Smmuv3Bridge.Factory();
        Path socket = FakeVmm.socketPath(getClass().getSimpleName().substring(0, 6));
        SessionRegistry registry = new SessionRegistry(new DeviceRegistry().register(smmu), smmu, "max");
        registry(registry);
        server = new VhostUserServer(socket, registry, 2000);
        vmm = VmmClient.connect(socket);
    }

    @AfterEach
    void stop() {
        if (vmm != null) {
            vmm.close();
        }
        server.close();
    }

    void guest64(long ipa, long v) {
        vmm.memory().store(GPA_BASE + ipa, 8, v);
    }

    NestingPayloads.Reply fd(IommufdCall call) throws Exception {
        return vmm.iommufd(call);
    }

    int errno(IommufdCall call) throws Exception {
        return fd(call).errno();
    }

    int ok(IommufdCall call) throws Exception {
        NestingPayloads.Reply r = fd(call);
        assertEquals(0, r.errno(), call.toString());
        return r.id();
    }

    /** A guest CD (IHI 0070 §5.4): T0SZ 16, EPD1, V, IPS 48-bit, AA64, S (stall), R, A, ASID 3; TTB0. */
    void guestCd(long ipa, boolean stall) {
        long w0 = 16 | (1L << 30) | (1L << 31) | (5L << 32) | (1L << 41) | (stall ? 1L << 44 : 0) | (1L << 45)
                | (1L << 46) | (3L << 48);
        guest64(ipa, w0);
        guest64(ipa + 8, TABLES_IPA);
    }

    /** Guest stage 1 tables at TABLES_IPA, levels 0-2 leading to the level 3 table of VA. */
    void guestTables() {
        guest64(TABLES_IPA, TABLES_IPA + 0x1000 | 0b11);
        guest64(TABLES_IPA + 0x1000 + 8, TABLES_IPA + 0x2000 | 0b11);
        guest64(TABLES_IPA + 0x2000, TABLES_IPA + 0x3000 | 0b11);
    }

    /** Guest page {@code page} after VA mapped to {@code ipa}. */
    void guestMap(int page, long ipa) {
        guest64(TABLES_IPA + 0x3000 + 8L * page, ipa | S1_PAGE);
    }

    Payloads.TranslateResult dma(long va, boolean write) throws Exception {
        return vmm.translate(SID, Payloads.NO_SUBSTREAM, va, write ? Payloads.ACCESS_WRITE : 0).result();
    }
}
