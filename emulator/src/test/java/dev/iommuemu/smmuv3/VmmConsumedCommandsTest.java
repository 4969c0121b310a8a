package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.cmdq.CommandQueue;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import org.junit.jupiter.api.Test;

/**
 * Commands the VMM consumed itself (docs/protocol.md §4.12), applied to the model: executed as the
 * queue would (IHI 0070 §4.4.1 TLB invalidation), no CMD_SYNC signalled again (§4.7.3), a rejected
 * command skipped without CERROR (§4.1.1), CMDQ_PROD/CONS set (§6.3.26, §6.3.27); and the state the
 * hand-off publishes.
 */
class VmmConsumedCommandsTest {
    private static final int SID = 3;
    private static final long IOVA = 0x4000_0000L;
    private static final long PA = 0x8000_0000L;
    private static final long PA2 = 0x9000_0000L;
    private static final long MSI = 0x60_0000L;

    private static long output(Harness h) {
        DmaResult r = h.smmu.translate(SID, -1, IOVA + 0x10, new DmaAccess(false, false, false));
        return ((DmaResult.Translated) r).entry().translate(IOVA + 0x10);
    }

    @Test
    void loggedCommandsRunWithoutSignallingAndSetThePointers() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long ttb = h.tables.s1Root();
        h.tables.map(ttb, IOVA, PA, PageTables.S1_RW);
        h.ste(SID, Harness.s1Ste(Harness.CDS, 0));
        h.cd(Harness.CDS, Harness.cd(ttb, 5));
        assertEquals(PA + 0x10, output(h));
        h.tables.map(ttb, IOVA, PA2, PageTables.S1_RW);
        assertEquals(PA + 0x10, output(h), "the TLB holds the old page until its invalidation");

        Smmuv3.CommandHandOffState s = h.smmu.commandHandOffState();
        assertEquals(new Smmuv3.CommandHandOffState(true, Harness.CMDQ | Harness.CMDQ_LOG2, 0, 0, true, true, 48), s);

        Command tlbi = Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 5).set(Command.TLBI_ADDR, IOVA >>> 12).command();
        Command sync = Command.build(Command.Op.CMD_SYNC).set(Command.SYNC_CS, Command.CS_IRQ)
                .set(Command.SYNC_MSIADDR, MSI >>> 2).set(Command.SYNC_MSIDATA, 0x77).command();
        long[] words = {tlbi.w0(), tlbi.w1(), sync.w0(), sync.w1(), 0xffL, 0};
        int irqs = h.host.irqs.size();
        int prod = 0x103; // index 3 of 256 entries, wrap bit (bit 8) set
        CommandQueue.VmmBatch b = h.smmu.applyVmmConsumed(words, 3, prod, prod | (1 << 24));
        assertEquals(new CommandQueue.VmmBatch(2, 1), b, "opcode 0xff is skipped");
        assertEquals(PA2 + 0x10, output(h), "the TLBI took effect");
        assertEquals(0, h.mem.load(MSI, 4).getAsLong(), "the VMM signalled the sync: no MSI again");
        assertEquals(irqs, h.host.irqs.size(), "nor the cmd-sync line");
        assertTrue(h.host.msis.isEmpty());
        assertEquals(0, h.read(GERROR.offset()), "no CERROR for a command the VMM consumed");
        assertEquals(prod, h.read(CMDQ_PROD.offset()));
        assertEquals(prod | (1 << 24), h.read(CMDQ_CONS.offset()), "CONS.ERR as the VMM kept it");
        assertEquals(2, h.smmu.stats().commands());
        assertTrue(h.host.invalidations.stream().anyMatch(i -> i.iova() == IOVA), "the VMM's copies were invalidated too");

        // bits beyond the queue's pointer (index and wrap of 256 entries) are not taken
        h.smmu.applyVmmConsumed(new long[0], 0, 0xfff_ffff, 0xffff_ffff);
        assertEquals(0x1ff, h.read(CMDQ_PROD.offset()));
        assertEquals(0x1ff | (0x7f << 24), h.read(CMDQ_CONS.offset()));
        assertEquals(2, h.smmu.stats().commands());
    }

    @Test
    void okOnlyWhileTheQueueConsumes() {
        Harness h = new Harness(Smmuv3Profile.MAX);
        assertFalse(h.smmu.commandHandOffState().ok(), "CMDQEN clear after reset");
        h.enable();
        assertTrue(h.smmu.commandHandOffState().ok());
        h.smmu.enterServiceFailureMode();
        assertFalse(h.smmu.commandHandOffState().ok(), "§12.3: no queue is consumed");
        Harness strict = new Harness(Smmuv3Profile.MAX, Smmuv3.Options.DEFAULT.withStrict(true)).enable();
        assertFalse(strict.smmu.commandHandOffState().ok());
    }
}
