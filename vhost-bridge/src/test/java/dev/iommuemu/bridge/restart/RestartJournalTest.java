package dev.iommuemu.bridge.restart;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.Daemon;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.protocol.StatePayloads;
import dev.iommuemu.bridge.testing.FakeVmm;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * docs/protocol.md §4.10, the restart journal: the layout byte for byte, the two slots that keep
 * the last complete state through a torn write, and, through a real daemon, a session whose
 * journal a second session (a restarted daemon's) loads with the MMIO writes it had applied.
 */
class RestartJournalTest {
    /** IHI 0070 §6.3 offsets. */
    private static final long CR0 = 0x20, CR0ACK = 0x24, CR1 = 0x28, CR2 = 0x2c, STRTAB_BASE = 0x80, STRTAB_BASE_CFG = 0x88,
            CMDQ_BASE = 0x90, CMDQ_PROD = 0x98, CMDQ_CONS = 0x9c, EVENTQ_BASE = 0xa0;

    private static ByteBuffer copy(MappedRegion m) {
        byte[] b = new byte[(int) m.size()];
        m.read(0, b, 0, b.length);
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void layoutAndAlternatingSlots() throws Exception {
        MappedRegion m = MappedRegion.allocate("journal-test", 0, StateJournal.MIN_SIZE);
        try (StateJournal j = StateJournal.map(dev.iommuemu.bridge.unix.LibC.dup(m.fd()), StateJournal.MIN_SIZE, true)) {
            ByteBuffer b = copy(m);
            assertEquals(0x314a4549, b.getInt(0), "magic IEJ1");
            assertEquals(0, b.getInt(4), "no state yet");
            assertEquals(4096, b.getInt(0x10), "slot size: (12288 - 4096) / 2");
            assertNull(StateJournal.Found.read(b).state());

            j.write(new byte[] {1, 2, 3}, 7);
            b = copy(m);
            assertEquals(1, b.getInt(4), "slot 1 active");
            assertEquals(1, b.getLong(8), "saves");
            assertEquals(3, b.getLong(0x20), "slot 1 size");
            assertEquals(7, b.getLong(0x28), "slot 1 writes_applied");
            assertEquals(1, b.getLong(0x30), "slot 1 serial");
            assertEquals(1, b.get(4096));
            assertEquals(0, StateJournal.Found.read(b).reason(), "no reason while a state is kept");
            assertArrayEquals(new byte[] {1, 2, 3}, StateJournal.Found.read(b).state());

            j.write(new byte[] {1, 2, 3}, 7); // the same state and count: not written again
            assertEquals(1, j.saves());
            j.write(new byte[] {4, 5}, 8);
            b = copy(m);
            assertEquals(2, b.getInt(4), "slot 2 active");
            assertEquals(2, b.getLong(0x40), "slot 2 size");
            assertEquals(8, b.getLong(0x48));
            assertEquals(4, b.get(4096 + 4096));
            StateJournal.Found f = StateJournal.Found.read(b);
            assertArrayEquals(new byte[] {4, 5}, f.state());
            assertEquals(8, f.writesApplied());

            // a daemon killed while writing the next state leaves slot 2 active and whole: the torn
            // bytes land in slot 1 only
            m.write(4096, new byte[] {(byte) 0xee, (byte) 0xee, (byte) 0xee}, 0, 3);
            assertArrayEquals(new byte[] {4, 5}, StateJournal.Found.read(copy(m)).state());

            // larger than a slot: no state at all, and why (a stale one must not be restarted from)
            j.write(new byte[4097], 9);
            b = copy(m);
            assertEquals(0, b.getInt(4));
            assertEquals(dev.iommuemu.bridge.protocol.ProtocolException.ENOSPC, b.getInt(0x14));
            assertEquals(dev.iommuemu.bridge.protocol.ProtocolException.ENOSPC, StateJournal.Found.read(b).reason());
            assertNull(StateJournal.Found.read(b).state());
            j.write(new byte[] {6}, 10);
            b = copy(m);
            assertEquals(1, b.getInt(4), "the slot after the last active one");
            assertEquals(0, b.getInt(0x14), "reason cleared");
        } finally {
            m.unmap();
        }
        assertThrows(IllegalArgumentException.class, () -> StateJournal.map(-1, StateJournal.MIN_SIZE - 1, false));
    }

    @Test
    void aRestartedDaemonsSessionLoadsTheJournal() throws Exception {
        Path socket = FakeVmm.socketPath("journal");
        Daemon daemon = FakeVmm.daemon(socket, "smmuv3", "");
        try (VmmClient src = VmmClient.connect(socket); VmmClient dst = VmmClient.connect(socket)) {
            src.addMemory(0, 1 << 20);
            dst.addMemory(0, 1 << 20);
            Supplier<StateJournal.Found> journal = src.stateJournal(1 << 16);
            StateJournal.Found empty = journal.get();
            assertEquals(0, empty.writesApplied(), "a state at once, before any write");
            assertArrayEquals(src.saveState(), empty.state());

            src.mmioWrite(CR1, 4, 0x0d75); // §6.3.2
            src.mmioWrite(CR2, 4, 0x4);
            src.mmioWrite(STRTAB_BASE, 8, 0x4_0000L);
            src.mmioWrite(STRTAB_BASE_CFG, 4, 0x6);
            src.mmioWrite(CMDQ_BASE, 8, 0x8_0000L | 5);
            src.mmioWrite(EVENTQ_BASE, 8, 0xa_0000L | 5);
            src.mmioWrite(CR0, 4, 0x9); // SMMUEN, CMDQEN
            // a CMD_SYNC (opcode 0x46, CS = SIG_NONE) at CMDQ slot 0 (IHI 0070 §4.7.3), then CMDQ_PROD
            assertTrue(src.memory().store(0x8_0000L, 8, 0x46));
            assertTrue(src.memory().store(0x8_0008L, 8, 0));
            src.mmioWrite(CMDQ_PROD, 4, 1);
            assertEquals(1, src.mmioRead(CMDQ_CONS, 4));

            StateJournal.Found f = journal.get();
            assertEquals(8, f.writesApplied(), "eight IOMMU_MMIO_WRITEs applied, the last one's effects in the state");
            assertArrayEquals(src.saveState(), f.state(), "the journal holds the current state");

            // the VMM hands the journal's state to another session (a restarted daemon's)
            assertEquals(new StatePayloads.Reply(0, f.state().length, ""), dst.loadState(f.state()));
            assertEquals(0x9, dst.mmioRead(CR0ACK, 4));
            assertEquals(1, dst.mmioRead(CMDQ_CONS, 4));
            assertEquals(0x8_0000L | 5, dst.mmioRead(CMDQ_BASE, 8));
        } finally {
            daemon.close();
        }
    }
}
