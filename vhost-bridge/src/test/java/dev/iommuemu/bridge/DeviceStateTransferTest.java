package dev.iommuemu.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.Daemon;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.StatePayloads;
import dev.iommuemu.bridge.testing.FakeVmm;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * docs/protocol.md §4.9 through a real daemon: one VMM's SMMUv3 state saved with IOMMU_SAVE_STATE
 * and loaded into another VMM's session with IOMMU_LOAD_STATE, as a migration's source and
 * destination do; a blob that is not a state is refused with a sentence and changes nothing.
 */
class DeviceStateTransferTest {
    /** IHI 0070 §6.3 offsets: guest-writable registers and the ones the SMMU derives from them. */
    private static final long CR0 = 0x20, CR0ACK = 0x24, CR1 = 0x28, CR2 = 0x2c, GBPA = 0x44, IRQ_CTRL = 0x50, IRQ_CTRLACK = 0x54,
            STRTAB_BASE = 0x80, STRTAB_BASE_CFG = 0x88, CMDQ_BASE = 0x90, CMDQ_PROD = 0x98, CMDQ_CONS = 0x9c, EVENTQ_BASE = 0xa0,
            EVENTQ_PROD = 0x100a8, EVENTQ_CONS = 0x100ac;

    @Test
    void anSmmuStateMovesToAnotherSession() throws Exception {
        Path socket = FakeVmm.socketPath("state");
        Daemon daemon = FakeVmm.daemon(socket, "smmuv3", "");
        try (VmmClient src = VmmClient.connect(socket); VmmClient dst = VmmClient.connect(socket)) {
            src.addMemory(0, 1 << 20);
            dst.addMemory(0, 1 << 20);
            src.mmioWrite(CR1, 4, 0x0d75); // §6.3.2 table and queue cacheability/shareability
            src.mmioWrite(CR2, 4, 0x4);
            src.mmioWrite(STRTAB_BASE, 8, 0x4_0000L);
            src.mmioWrite(STRTAB_BASE_CFG, 4, 0x6);
            src.mmioWrite(CMDQ_BASE, 8, 0x8_0000L | 5);
            src.mmioWrite(EVENTQ_BASE, 8, 0xa_0000L | 5);
            src.mmioWrite(IRQ_CTRL, 4, 0x1);
            src.mmioWrite(CR0, 4, 0xd); // SMMUEN, EVENTQEN, CMDQEN
            assertEquals(0xd, src.mmioRead(CR0ACK, 4));

            byte[] blob = src.saveState();
            assertTrue(blob.length > 16, "a state of " + blob.length + " bytes");
            assertNotEquals(0xd, dst.mmioRead(CR0ACK, 4));
            StatePayloads.Reply ok = dst.loadState(blob);
            assertEquals(new StatePayloads.Reply(0, blob.length, ""), ok);
            for (long r : new long[] {CR0, CR0ACK, CR1, CR2, GBPA, IRQ_CTRL, IRQ_CTRLACK, STRTAB_BASE, STRTAB_BASE_CFG, CMDQ_BASE, CMDQ_PROD,
                    CMDQ_CONS, EVENTQ_BASE, EVENTQ_PROD, EVENTQ_CONS}) {
                int size = r == STRTAB_BASE || r == CMDQ_BASE || r == EVENTQ_BASE ? 8 : 4;
                assertEquals(src.mmioRead(r, size), dst.mmioRead(r, size), String.format("register 0x%x", r));
            }
            // the destination saves what it loaded, byte for byte
            assertEquals(java.util.HexFormat.of().formatHex(blob), java.util.HexFormat.of().formatHex(dst.saveState()));

            // not a state: refused with a sentence, nothing changed
            StatePayloads.Reply bad = dst.loadState(new byte[] {1, 2, 3});
            assertEquals(ProtocolException.EINVAL, bad.errno());
            assertEquals("the device state (3 bytes) is not an iommu-emu device state: it does not parse as a DeviceState"
                    + " message (truncated, or another file?)", bad.message());
            assertEquals(0xd, dst.mmioRead(CR0ACK, 4));

            // larger than any SMMUv3 state: refused before it is parsed
            StatePayloads.Reply huge = dst.loadState(new byte[5 << 20]);
            assertEquals(ProtocolException.EINVAL, huge.errno());
            assertTrue(huge.message().startsWith("the device state is 5242880 bytes, more than an SMMUv3's can be"), huge.message());
            // a format version with the top bit set is newer, not negative
            byte[] future = dev.iommuemu.bridge.state.DeviceStateCodec.encode(dev.iommuemu.proto.devstate.v1.DeviceState
                    .parseFrom(blob).toBuilder().setFormatVersion(0x8000_0000).build());
            StatePayloads.Reply newer = dst.loadState(future);
            assertEquals(ProtocolException.EINVAL, newer.errno());
            assertTrue(newer.message().startsWith("the device state has format version 2147483648"), newer.message());
            assertEquals(0xd, dst.mmioRead(CR0ACK, 4));
        } finally {
            daemon.close();
        }
    }

    /**
     * §4.9: a session that is not quiescent (here a modelled nesting host open on its SMMU) answers
     * EBUSY, not EINVAL, to both calls: the same state loads once the session is quiescent.
     */
    @Test
    void aSessionWithANestingHostOpenAnswersEbusy() throws Exception {
        Path socket = FakeVmm.socketPath("stbusy");
        Daemon daemon = FakeVmm.daemon(socket, "smmuv3", "max");
        try (VmmClient src = VmmClient.connect(socket); VmmClient dst = VmmClient.connect(socket)) {
            byte[] blob = src.saveState();
            long carve = 0x1000_0000L;
            dst.addMemory(carve, 16 << 20);
            assertEquals(0, dst.iommufd(new dev.iommuemu.bridge.nesting.IommufdCall.OpenHost(carve, 16 << 20, 6)).errno());
            StatePayloads.Reply busy = dst.loadState(blob);
            assertEquals(ProtocolException.EBUSY, busy.errno());
            assertEquals("this session has a modelled nesting host open on its SMMU, which a device state does not carry;"
                    + " load it into a session without one, or after a reset", busy.message());
            java.io.IOException e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class, dst::saveState);
            assertTrue(e.getMessage().startsWith("IOMMU_SAVE_STATE refused (errno 16): this session has a modelled nesting host"),
                    e.getMessage());
            assertEquals(new StatePayloads.Reply(0, blob.length, ""), src.loadState(blob), "a quiescent session loads it");
        } finally {
            daemon.close();
        }
    }
}
