package dev.iommuemu.bridge.fastpath;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge;
import dev.iommuemu.bridge.device.virtio.VirtioIommuBridge;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.restart.StateJournal;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.Harness;
import dev.iommuemu.smmuv3.PageTables;
import dev.iommuemu.smmuv3.cmdq.Command;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The VMM's command-queue hand-off (docs/protocol.md §4.12, version 13) against the real SMMUv3
 * model over the VMM socket, with {@link VmmHandOff} doing the VMM's steps as the spec writes them:
 * the region's fields, a batch the VMM consumed and the daemon's drain (its TLB, the queue
 * pointers over MMIO, the counters, the journal's count), the cases where {@code ok} is 0, the lock
 * timeout, a scribbling VMM, and the refusals of IOMMU_SET_SHARED_CACHE.
 */
class CommandHandOffSessionTest {
    private static final long STRTAB = 0x10_0000L;
    private static final long CMDQ = 0x20_0000L;
    private static final long EVTQ = 0x30_0000L;
    private static final long CDS = 0x40_0000L;
    private static final long MSI1 = 0x50_0000L;
    private static final long MSI2 = 0x50_0040L;
    private static final int SID = 3;
    private static final int ASID = 5;
    private static final long IOVA = 0x7f12_3456_7000L;
    private static final long PA = 0x2_8000_0000L;
    private static final long PA2 = 0x2_9000_0000L;

    private VhostUserServer server;
    private SessionRegistry registry;
    private VmmClient vmm;
    private GuestMemory mem;
    private PageTables tables;
    private long ttb;
    private int cmdProd;
    private final WarningCapture capture = new WarningCapture();

    /** The VMM's view of the shared memory (startWithHandOff). */
    private SharedCacheView view;

    private void start(String tag, String profile) throws Exception {
        start(tag, new Smmuv3Bridge.Factory(), profile);
        tables = new PageTables(mem, 0x100_0000L);
        ttb = tables.s1Root();
        tables.map(ttb, IOVA, PA, PageTables.S1_RW);
        // the Linux driver's order: tables, queues, then SMMUEN; a stage 1 STE with one CD
        vmm.mmioWrite(STRTAB_BASE.offset(), 8, STRTAB);
        vmm.mmioWrite(STRTAB_BASE_CFG.offset(), 4, 4); // linear, 16 STEs
        vmm.mmioWrite(CMDQ_BASE.offset(), 8, CMDQ | 4); // 16 commands
        vmm.mmioWrite(EVENTQ_BASE.offset(), 8, EVTQ | 4);
        vmm.mmioWrite(CR0.offset(), 4, cr0(true));
        put(STRTAB + 64L * SID, Harness.s1Ste(CDS, 0));
        put(CDS, Harness.cd(ttb, ASID));
    }

    private void start(String tag, DeviceFactory factory, String profile) throws Exception {
        Smmuv3Bridge.Factory smmu = new Smmuv3Bridge.Factory();
        Path socket = FakeVmm.socketPath(tag);
        DeviceRegistry devices = new DeviceRegistry().register(smmu);
        if (factory != smmu && !(factory instanceof Smmuv3Bridge.Factory)) {
            devices.register(factory);
        }
        registry = new SessionRegistry(devices, factory, profile);
        server = new VhostUserServer(socket, registry, 2000);
        vmm = VmmClient.connect(socket);
        vmm.addMemory(0, 0x400_0000L);
        mem = vmm.memory();
        Logger.getLogger(CommandHandOff.class.getName()).addHandler(capture);
    }

    /** A session of {@code profile} with a shared cache of 16 x 2 entries and the §4.12 region, and the VMM's side of it. */
    private VmmHandOff startWithHandOff(String tag, String profile) throws Exception {
        start(tag, profile);
        view = vmm.sharedCacheWithCommandHandOff(16, 2);
        return new VmmHandOff(view.memory(), 16, 2, mem);
    }

    private static long cr0(boolean cmdqen) {
        return (cmdqen ? CR0_CMDQEN.mask() : 0) | CR0_EVENTQEN.mask() | CR0_SMMUEN.mask();
    }

    private void put(long addr, long[] words) {
        for (int i = 0; i < words.length; i++) {
            mem.store(addr + 8L * i, 8, words[i]);
        }
    }

    /** The guest writes a command at PROD and moves its own PROD (not yet written to the SMMU). */
    private void queue(Command c) {
        long slot = CMDQ + 16L * (cmdProd & 15);
        mem.store(slot, 8, c.w0());
        mem.store(slot + 8, 8, c.w1());
        cmdProd = (cmdProd + 1) & 31;
    }

    private static Command tlbiVa(long iova) {
        return Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, ASID).set(Command.TLBI_ADDR, iova >>> 12).command();
    }

    private static Command syncMsi(long addr, int data) {
        return Command.build(Command.Op.CMD_SYNC).set(Command.SYNC_CS, Command.CS_IRQ)
                .set(Command.SYNC_MSIADDR, addr >>> 2).set(Command.SYNC_MSIDATA, data).command();
    }

    private Payloads.TranslateResult translate() throws Exception {
        return vmm.translate(SID, Payloads.NO_SUBSTREAM, IOVA + 0x18, 0).result();
    }

    private DeviceSession session() {
        return registry.list().get(0);
    }

    private long counter(String name) throws Exception {
        return session().allCounters().get(name);
    }

    private long ram32(long addr) {
        return mem.load(addr, 4).getAsLong();
    }

    private long mirrored(SharedCacheView view, long offset) {
        for (int i = 0; i < view.mirrorCount(); i++) {
            if (view.mirrorOffset(i) == offset) {
                return view.mirrorValue(i);
            }
        }
        throw new AssertionError("not mirrored: 0x" + Long.toHexString(offset));
    }

    private List<String> warningTexts() {
        return capture.texts();
    }

    @AfterEach
    void stop() {
        Logger.getLogger(CommandHandOff.class.getName()).removeHandler(capture);
        if (vmm != null) {
            vmm.close();
        }
        if (server != null) {
            server.close();
        }
    }

    @Test
    void aBatchTheVmmConsumedIsDrainedBeforeTheNextTranslation() throws Exception {
        VmmHandOff h = startWithHandOff("cmdq1", "max");
        assertEquals(PA + 0x18, translate().output());
        assertEquals(PA, view.lookup(SID, IOVA).output(), "the daemon cached it for the VMM (§4.8)");

        // the daemon's fields, written before it let go of the lock
        assertEquals(CommandHandOff.FREE, h.lock());
        assertEquals(1, h.ok());
        assertEquals(CMDQ | 4, h.cmdqBase());
        assertEquals(0, h.prod());
        assertEquals(0, h.cons());
        assertEquals(CommandHandOff.FEATURE_MSI | CommandHandOff.FEATURE_RIL, h.features(), "max: IDR0.MSI, IDR3.RIL");
        assertEquals(48, h.oas(), "max: IDR5.OAS 0b101");
        assertEquals(2, h.syncLine(), "cmd-sync is line 2 of evtq, priq, cmd-sync, gerror");

        // the guest unmaps: TLBI_NH_VA + CMD_SYNC (an MSI to RAM, where Linux polls), then writes PROD;
        // the VMM consumes it itself
        long gen = view.invalidationGeneration();
        long applied = view.writesApplied();
        queue(tlbiVa(IOVA));
        queue(syncMsi(MSI1, 0x1111));
        List<Integer> pulses = new ArrayList<>();
        assertEquals(VmmHandOff.Outcome.CONSUMED, h.onProdWrite(cmdProd, applied, pulses::add));
        assertEquals(List.of(2), pulses, "the sync line pulsed once");
        assertEquals(0x1111, ram32(MSI1), "the sync's MSI stored by the VMM");
        assertNull(view.lookup(SID, IOVA), "the VMM dropped the entry");
        assertEquals(gen + 1, view.invalidationGeneration());
        assertEquals(1, h.count(), "the TLBI is logged, not the sync");
        assertEquals(1, h.batches());
        assertEquals(2, h.prod());
        assertEquals(2, h.cons());
        assertEquals(2, mirrored(view, CMDQ_PROD.offset()));
        assertEquals(2, mirrored(view, CMDQ_CONS.offset()));

        // the guest reuses the IOVA for another page; the daemon's TLB still held the old one
        tables.map(ttb, IOVA, PA2, PageTables.S1_RW);
        mem.store(MSI1, 4, 0);
        assertEquals(PA2 + 0x18, translate().output(), "the drain invalidated the daemon's TLB first");
        assertEquals(PA2, view.lookup(SID, IOVA).output());
        assertEquals(0, h.count());
        assertEquals(0, h.batches());
        assertEquals(1, counter("vmm_cmdq_batches"));
        assertEquals(1, counter("vmm_cmdq_commands"));
        assertEquals(1, counter("commands"), "the logged TLBI consumed by the model");
        assertEquals(applied, view.writesApplied(), "a batch is no IOMMU_MMIO_WRITE (§4.8 writes_applied)");
        assertEquals(2, vmm.mmioRead(CMDQ_PROD.offset(), 4));
        assertEquals(2, vmm.mmioRead(CMDQ_CONS.offset(), 4));
        assertEquals(0, ram32(MSI1), "the sync the VMM completed is not signalled again");

        // a posted CMDQ_PROD write consumes only the newer commands
        queue(Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, ASID).command());
        queue(syncMsi(MSI2, 0x2222));
        vmm.mmioWrite(CMDQ_PROD.offset(), 4, cmdProd);
        assertEquals(0x2222, ram32(MSI2));
        assertEquals(0, ram32(MSI1), "the VMM's batch was not consumed again");
        assertEquals(4, vmm.mmioRead(CMDQ_CONS.offset(), 4));
        assertEquals(3, counter("commands"));
        mem.store(MSI2, 4, 0);
        translate();
        assertEquals(0, ram32(MSI2), "written exactly once");
        assertEquals(4, h.prod());
        assertEquals(4, h.cons());
        assertEquals(1, counter("vmm_cmdq_batches"));
    }

    @Test
    void rangeInvalidationsAndTheReservedEncoding() throws Exception {
        VmmHandOff h = startWithHandOff("cmdq9", "max");
        translate();
        assertNotNull(view.lookup(SID, IOVA));
        // IHI 0070 §4.4.1.1, RIL: TG 1 (4 KiB), NUM 1, SCALE 0: 8 KiB from IOVA - 0x1000, covering IOVA
        Command range = Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, ASID)
                .set(Command.TLBI_ADDR, (IOVA - 0x1000) >>> 12).set(Command.TLBI_TG, 1).set(Command.TLBI_NUM, 1).command();
        queue(range);
        queue(Command.build(Command.Op.CMD_SYNC).command());
        assertEquals(VmmHandOff.Outcome.CONSUMED, h.onProdWrite(cmdProd, view.writesApplied(), l -> {}));
        assertNull(view.lookup(SID, IOVA));
        tables.map(ttb, IOVA, PA2, PageTables.S1_RW);
        assertEquals(PA2 + 0x18, translate().output(), "the range reached the daemon's TLB");

        // TG 2 (16 KiB) with TTL 1, NUM = SCALE = 0: TTL counts as 0 without IDR5.DS, so Reserved:
        // the VMM posts it and the daemon raises CERROR_ILL
        int at = cmdProd;
        queue(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, ASID).set(Command.TLBI_ADDR, IOVA >>> 12)
                .set(Command.TLBI_TG, 2).set(Command.TLBI_TTL, 1).command());
        assertEquals(VmmHandOff.Outcome.NOT_HANDLED, h.onProdWrite(cmdProd, view.writesApplied(), l -> {}));
        vmm.mmioWrite(CMDQ_PROD.offset(), 4, cmdProd);
        assertEquals(at | (1 << 24), vmm.mmioRead(CMDQ_CONS.offset(), 4), "CERROR_ILL at the command");
        assertEquals(0, h.ok());
    }

    @Test
    void theBatchesCountInTheJournalNotInWritesApplied() throws Exception {
        start("cmdq2", "max");
        SharedCacheView view = vmm.sharedCacheWithCommandHandOff(16, 2);
        Supplier<StateJournal.Found> journal = vmm.stateJournal(1 << 20);
        VmmHandOff h = new VmmHandOff(view.memory(), 16, 2, mem);
        translate();
        assertEquals(0, journal.get().writesApplied());
        queue(tlbiVa(IOVA));
        queue(syncMsi(0, 0));
        assertEquals(VmmHandOff.Outcome.CONSUMED, h.onProdWrite(cmdProd, view.writesApplied(), l -> {}));
        queue(tlbiVa(IOVA + 0x1000));
        queue(Command.build(Command.Op.CMD_SYNC).command());
        assertEquals(VmmHandOff.Outcome.CONSUMED, h.onProdWrite(cmdProd, view.writesApplied(), l -> {}));
        assertEquals(2, h.batches());
        vmm.mmioRead(CMDQ_CONS.offset(), 4); // a read: the drain alone saves the state
        StateJournal.Found f = journal.get();
        assertEquals(2, f.writesApplied(), "the two batches are two of the VMM's numbered writes (§4.10)");
        assertEquals(2, counter("vmm_cmdq_batches"));
        vmm.mmioWrite(CMDQ_PROD.offset(), 4, cmdProd); // a posted write: nothing new to consume
        assertEquals(3, journal.get().writesApplied());
        assertEquals(2, counter("commands"));
    }

    @Test
    void okIsZeroWhileTheQueueDoesNotConsume() throws Exception {
        VmmHandOff h = startWithHandOff("cmdq3", "max");
        translate();
        assertEquals(1, h.ok());

        // CR0.CMDQEN clear
        vmm.mmioWrite(CR0.offset(), 4, cr0(false));
        assertEquals(0, h.ok());
        queue(tlbiVa(IOVA));
        assertEquals(VmmHandOff.Outcome.NOT_OK, h.onProdWrite(cmdProd, view.writesApplied(), l -> {}));
        assertEquals(CommandHandOff.FREE, h.lock(), "the VMM gave the lock back");
        vmm.mmioWrite(CR0.offset(), 4, cr0(true));
        assertEquals(1, h.ok());
        vmm.mmioWrite(CMDQ_PROD.offset(), 4, cmdProd); // posted

        // GERROR.CMDQ_ERR active: an illegal command (opcode 0xff) stops the queue
        long bad = CMDQ + 16L * (cmdProd & 15);
        mem.store(bad, 8, 0xff);
        mem.store(bad + 8, 8, 0);
        int at = cmdProd;
        cmdProd = (cmdProd + 1) & 31;
        vmm.mmioWrite(CMDQ_PROD.offset(), 4, cmdProd);
        assertEquals(0, h.ok());
        assertEquals(at | (1 << 24), h.cons(), "CONS at the command, ERR = CERROR_ILL");
        // the driver replaces it with a CMD_SYNC and acknowledges (§7.1)
        Command sync = Command.build(Command.Op.CMD_SYNC).command();
        mem.store(bad, 8, sync.w0());
        mem.store(bad + 8, 8, sync.w1());
        vmm.mmioWrite(GERRORN.offset(), 4, vmm.mmioRead(GERROR.offset(), 4));
        assertEquals(1, h.ok());
        assertEquals(cmdProd | (1 << 24), h.cons(), "consumed; ERR keeps the last error code");
        // a batch the VMM consumes keeps ERR in CONS as the daemon gave it
        queue(tlbiVa(IOVA));
        queue(sync);
        assertEquals(VmmHandOff.Outcome.CONSUMED, h.onProdWrite(cmdProd, view.writesApplied(), l -> {}));
        assertEquals(cmdProd | (1 << 24), vmm.mmioRead(CMDQ_CONS.offset(), 4));
        assertEquals(cmdProd, vmm.mmioRead(CMDQ_PROD.offset(), 4));
    }

    @Test
    void okIsZeroForAStrictProfile() throws Exception {
        VmmHandOff h = startWithHandOff("cmdq4", "max+strict");
        translate();
        assertEquals(0, h.ok(), "the coherency detector must see every invalidation");
        assertEquals(CMDQ | 4, h.cmdqBase(), "the other fields are written all the same");
        queue(tlbiVa(IOVA));
        assertEquals(VmmHandOff.Outcome.NOT_OK, h.onProdWrite(cmdProd, view.writesApplied(), l -> {}));
    }

    @Test
    void aVmmHoldingTheLockTooLongFailsTheSessionRatherThanRunTheModelWithoutIt() throws Exception {
        VmmHandOff h = startWithHandOff("cmdq5", "max");
        DeviceSession s = session();
        s.commandLockTimeout(Duration.ofMillis(200));
        translate();
        assertEquals(1, h.ok());
        assertTrue(h.tryLock());
        // §4.12: the VMM is (as far as the daemon can tell) still inside a batch: the request is not
        // served without the lock; the session fails and its connection closes within the bound
        assertThrows(Exception.class, () -> assertTimeoutPreemptively(Duration.ofSeconds(10), this::translate));
        assertEquals(0, h.ok());
        assertEquals(1, warningTexts().size());
        assertTrue(warningTexts().get(0).contains("the VMM held the command-queue lock (docs/protocol.md §4.12) for more than"
                + " 200 ms (a VMM thread stopped inside a batch, or a broken VMM): the daemon closes the connection"),
                warningTexts().get(0));
        assertEquals(CommandHandOff.HELD_BY_VMM, h.lock(), "the daemon never took it");
        assertTrue(s.failure().contains("past the bound"), s.failure());
        // the session is torn down: the daemon serves no more requests of this connection
        assertThrows(Exception.class, () -> vmm.mmioRead(CMDQ_CONS.offset(), 4));
        h.unlock();
    }

    @Test
    void aScribblingVmmNeitherThrowsNorHangsTheDaemon() throws Exception {
        VmmHandOff h = startWithHandOff("cmdq6", "max");
        translate();
        assertTrue(h.tryLock());
        h.setCount(0xffff_ffff);
        h.setBatches(0xffff_ffff);
        java.util.Random r = new java.util.Random(13);
        for (int i = 0; i < CommandHandOff.MAX_LOG; i++) {
            h.logCommand(i, r.nextLong(), r.nextLong());
        }
        // and a logged CMD_SYNC with an MSI to RAM: never signalled by the daemon
        Command sync = syncMsi(MSI1, 0x3333);
        h.logCommand(7, sync.w0(), sync.w1());
        h.setProd(0xffff_ffff);
        h.setCons(0xffff_ffff);
        h.unlock();
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            translate();
            return null;
        });
        assertEquals(0, ram32(MSI1));
        assertEquals(0, h.count());
        assertEquals(0, h.batches());
        assertEquals(1024, counter("vmm_cmdq_commands"));
        assertEquals(0xffff_ffffL, counter("vmm_cmdq_batches"));
        assertTrue(warningTexts().stream().anyMatch(w -> w.contains("claims 4294967295 commands, more than the 1024 it holds")),
                warningTexts().toString());
        // PROD and CONS within the queue: index and wrap of 16 entries, CONS.ERR as written (0x7f)
        assertEquals(31, vmm.mmioRead(CMDQ_PROD.offset(), 4));
        assertEquals(31 | (0x7f << 24), vmm.mmioRead(CMDQ_CONS.offset(), 4));
        // again: the warning is not repeated, and the session goes on
        int said = warningTexts().size();
        assertTrue(h.tryLock());
        h.setCount(5000);
        h.unlock();
        assertEquals(Payloads.TRANSLATED, translate().status());
        assertEquals(said, warningTexts().size());
        assertEquals(2048, counter("vmm_cmdq_commands"));
    }

    @Test
    void refusals() throws Exception {
        start("cmdq7", "max");
        // CMDQ without RECIPES
        RequestRefusedException e = assertThrows(RequestRefusedException.class, () -> vmm.sharedCache(16, 2,
                SharedCache.FLAG_CMDQ, SharedCache.sizeWithCommandHandOff(16, 2)));
        assertEquals(ProtocolException.EINVAL, e.errno());
        // a memfd that holds the recipes but not the hand-off region
        long need = SharedCache.sizeWithCommandHandOff(16, 2);
        assertEquals(4096 + 64 * 16 * 2 + 64 * 256 + 16640, need);
        MappedRegion small = MappedRegion.allocate("cmdq-small", 0, need - 64);
        try {
            ProtocolException p = assertThrows(ProtocolException.class, () -> session().setSharedCache(LibC.dup(small.fd()), 16, 2,
                    SharedCache.FLAG_RECIPES | SharedCache.FLAG_CMDQ));
            assertEquals(ProtocolException.EINVAL, p.errno());
            assertEquals("the shared cache memfd holds 39104 bytes, but 16 x 2 entries with walk recipes and the command hand-off"
                    + " need 39168 (C0 + 16640, C0 = 4096 + 64 * sets * ways + 64 * 256 = 22528): make it larger or leave out CMDQ",
                    p.getMessage());
            ProtocolException q = assertThrows(ProtocolException.class, () -> session().setSharedCache(LibC.dup(small.fd()), 16, 2,
                    SharedCache.FLAG_CMDQ));
            assertEquals(ProtocolException.EINVAL, q.errno());
            assertEquals("IOMMU_SET_SHARED_CACHE: flag CMDQ (bit 1) needs RECIPES (bit 0) too: the command hand-off region"
                    + " follows the recipe table (docs/protocol.md §4.12)", q.getMessage());
        } finally {
            small.unmap();
        }
        // undefined bits
        RequestRefusedException u = assertThrows(RequestRefusedException.class, () -> vmm.sharedCache(16, 2, 8, need));
        assertEquals(ProtocolException.EINVAL, u.errno());
        // the connection goes on; a right one is taken and the region cleared (lock free, ok set)
        MappedRegion dirty = MappedRegion.allocate("cmdq-dirty", 0, need);
        try {
            long c0 = SharedCache.commandRegion(16, 2);
            dirty.write32(c0 + CommandHandOff.OFF_COUNT, 99);
            dirty.write32(c0 + CommandHandOff.OFF_BATCHES, 9);
            dirty.write64(c0 + CommandHandOff.OFF_LOG, -1L);
            session().setSharedCache(LibC.dup(dirty.fd()), 16, 2, SharedCache.FLAG_RECIPES | SharedCache.FLAG_CMDQ);
            VmmHandOff h = new VmmHandOff(dirty, 16, 2, mem);
            assertEquals(0, h.count());
            assertEquals(0, h.batches());
            assertEquals(0, dirty.read64(c0 + CommandHandOff.OFF_LOG));
            assertEquals(CommandHandOff.FREE, h.lock());
            assertEquals(1, h.ok());
            assertEquals(0, counter("vmm_cmdq_commands"));
            // replaced: the old memory says ok = 0 and its lock is free
            SharedCacheView view = vmm.sharedCacheWithCommandHandOff(16, 2);
            assertEquals(0, h.ok());
            assertEquals(CommandHandOff.FREE, h.lock());
            assertEquals(1, new VmmHandOff(view.memory(), 16, 2, mem).ok());
        } finally {
            dirty.unmap();
        }
    }

    @Test
    void aVirtioIommuHasNoCommandQueueToHandOff() throws Exception {
        start("cmdq8", new VirtioIommuBridge.Factory(), "default");
        RequestRefusedException e = assertThrows(RequestRefusedException.class, () -> vmm.sharedCacheWithCommandHandOff(16, 2));
        assertEquals(ProtocolException.EINVAL, e.errno());
        MappedRegion shm = MappedRegion.allocate("cmdq-virtio", 0, SharedCache.sizeWithCommandHandOff(16, 2));
        try {
            ProtocolException p = assertThrows(ProtocolException.class, () -> session().setSharedCache(LibC.dup(shm.fd()), 16, 2,
                    SharedCache.FLAG_RECIPES | SharedCache.FLAG_CMDQ));
            assertEquals(ProtocolException.EINVAL, p.errno());
            assertEquals("IOMMU_SET_SHARED_CACHE: flag CMDQ (bit 1) is for a model with a command queue (smmuv3), but this"
                    + " session's model is virtio-iommu: leave out CMDQ (docs/protocol.md §4.12)", p.getMessage());
        } finally {
            shm.unmap();
        }
        assertNotNull(vmm.sharedCacheWithRecipes(16, 2), "the connection goes on");
    }
}
