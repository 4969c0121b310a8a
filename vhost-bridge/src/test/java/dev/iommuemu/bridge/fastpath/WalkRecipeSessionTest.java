package dev.iommuemu.bridge.fastpath;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.VhostUserServer;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge;
import dev.iommuemu.bridge.device.virtio.VirtioIommuBridge;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.bridge.testing.FakeVmm;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.Harness;
import dev.iommuemu.smmuv3.PageTables;
import dev.iommuemu.smmuv3.cmdq.Command;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Walk recipes over the VMM socket (docs/protocol.md §4.8 "Walk recipes", version 12), against
 * the real SMMUv3 model driven as Linux's arm-smmu-v3 sets a stream up: the recipe's bytes after a
 * miss, the counters, when the daemon empties recipes (CMD_CFGI_*, register writes, reset) and
 * when it keeps them (TLBIs), and the refusals of IOMMU_SET_SHARED_CACHE.
 */
class WalkRecipeSessionTest {
    private static final long STRTAB = 0x10_0000L;
    private static final long CMDQ = 0x20_0000L;
    private static final long EVTQ = 0x30_0000L;
    private static final long CDS = 0x40_0000L;
    private static final int SID = 3;
    private static final long IOVA = 0x7f12_3456_7000L;
    private static final long PA = 0x2_8000_0000L;

    private VhostUserServer server;
    private SessionRegistry registry;
    private VmmClient vmm;
    private GuestMemory mem;
    private long ttb;
    private int cmdProd;

    private void start(String tag, String profile) throws Exception {
        Smmuv3Bridge.Factory smmu = new Smmuv3Bridge.Factory();
        Path socket = FakeVmm.socketPath(tag);
        registry = new SessionRegistry(new DeviceRegistry().register(smmu), smmu, profile);
        server = new VhostUserServer(socket, registry, 2000);
        vmm = VmmClient.connect(socket);
        vmm.addMemory(0, 0x400_0000L);
        mem = vmm.memory();
        PageTables tables = new PageTables(mem, 0x100_0000L);
        ttb = tables.s1Root();
        tables.map(ttb, IOVA, PA, PageTables.S1_RW);
        // the Linux driver's order: tables, queues, then SMMUEN; a stage 1 STE with one CD
        vmm.mmioWrite(STRTAB_BASE.offset(), 8, STRTAB);
        vmm.mmioWrite(STRTAB_BASE_CFG.offset(), 4, 4); // linear, 16 STEs
        vmm.mmioWrite(CMDQ_BASE.offset(), 8, CMDQ | 4);
        vmm.mmioWrite(EVENTQ_BASE.offset(), 8, EVTQ | 4);
        long cr0 = CR0_CMDQEN.mask() | CR0_EVENTQEN.mask();
        vmm.mmioWrite(CR0.offset(), 4, cr0);
        vmm.mmioWrite(CR0.offset(), 4, cr0 | CR0_SMMUEN.mask());
        for (int sid : new int[] {SID, SID + 1}) {
            put(STRTAB + 64L * sid, Harness.s1Ste(CDS, 0));
        }
        put(CDS, Harness.cd(ttb, 5));
    }

    private void put(long addr, long[] words) {
        for (int i = 0; i < words.length; i++) {
            mem.store(addr + 8L * i, 8, words[i]);
        }
    }

    private void cmd(Command c) throws Exception {
        long slot = CMDQ + 16L * (cmdProd & 15);
        mem.store(slot, 8, c.w0());
        mem.store(slot + 8, 8, c.w1());
        cmdProd = (cmdProd + 1) & 31;
        vmm.mmioWrite(CMDQ_PROD.offset(), 4, cmdProd);
    }

    private void sync() throws Exception {
        cmd(Command.build(Command.Op.CMD_SYNC).command());
    }

    private int translate(int sid, int access) throws Exception {
        return vmm.translate(sid, Payloads.NO_SUBSTREAM, IOVA + 0x18, access).result().status();
    }

    private DeviceSession session() {
        return registry.list().get(0);
    }

    private long counter(String name) throws Exception {
        return session().allCounters().get(name);
    }

    @AfterEach
    void stop() {
        if (vmm != null) {
            vmm.close();
        }
        if (server != null) {
            server.close();
        }
    }

    @Test
    void aMissPublishesTheRecipeByteForByte() throws Exception {
        start("recipe1", "max");
        SharedCacheView view = vmm.sharedCacheWithRecipes(16, 2);
        assertNull(view.recipe(SID));
        assertEquals(Payloads.TRANSLATED, translate(SID, 0));
        long at = SharedCache.recipeTable(16, 2) + 64L * SID;
        assertEquals(4096 + 64 * 16 * 2, SharedCache.recipeTable(16, 2));
        byte[] bytes = new byte[64];
        view.memory().read(at, bytes, 0, 64);
        byte[] expected = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN)
                .putInt(2) // seq: 0, odd while written, 2
                .putInt(SID) // endpoint
                .putLong(ttb) // the start table
                .putInt(1) // kind 1: AArch64, 4 KiB, little-endian, TTB0
                .put((byte) 16).put((byte) 0).put((byte) 48).put((byte) 1) // t0sz, start_level, oas, flags UNPRIV
                .array(); // reserved[40]: zero
        assertArrayEquals(expected, bytes);
        assertEquals(new SharedCacheView.Recipe(2, SID, ttb, 1, 16, 0, 48, 1), view.recipe(SID));
        assertEquals(1, counter("recipes_published"));

        // the VMM walks it: the page's output, read/write
        assertEquals(new SharedCacheView.Walked(IOVA, PA, 12, true), view.walk(mem, SID, IOVA + 0x18, true));
        assertNull(view.walk(mem, SID, IOVA + 0x1000, false), "nothing mapped there: the daemon's F_TRANSLATION");
        assertNull(view.walk(mem, SID + 1, IOVA, false), "no recipe for that endpoint yet");

        // the same recipe again is not rewritten
        assertEquals(Payloads.TRANSLATED, translate(SID, Payloads.ACCESS_WRITE));
        assertEquals(2, view.recipe(SID).seq());
        assertEquals(1, counter("recipes_published"));

        // a privileged request translates but publishes nothing (recipes are for unprivileged traffic)
        assertEquals(Payloads.TRANSLATED, translate(SID + 1, Payloads.ACCESS_PRIV));
        assertNull(view.recipe(SID + 1));
        assertEquals(Payloads.TRANSLATED, translate(SID + 1, 0));
        assertEquals(new SharedCacheView.Recipe(2, SID + 1, ttb, 1, 16, 0, 48, 1), view.recipe(SID + 1));
        assertEquals(2, counter("recipes_published"));

        // walked_pages: the VMM's count, reported as a counter
        assertEquals(0, counter("walked_pages"));
        view.addWalkedPages(5);
        assertEquals(5, counter("walked_pages"));
        view.addWalkedPages(2);
        assertEquals(7, counter("walked_pages"));
    }

    @Test
    void cfgiRegisterWritesAndResetEmptyThemTlbisDoNot() throws Exception {
        start("recipe2", "max");
        SharedCacheView view = vmm.sharedCacheWithRecipes(16, 2);
        translate(SID, 0);
        assertNotNull(view.recipe(SID));

        // a CMDQ_PROD write that runs only TLBIs and a sync: kept (the VMM caches no walk), but
        // inv_gen moved before the sync completed, so a walk that ran across it is not used
        long gen = view.invalidationGeneration();
        cmd(Command.build(Command.Op.CMD_TLBI_NH_VA).set(Command.TLBI_ASID, 5).set(Command.TLBI_ADDR, IOVA >>> 12).command());
        cmd(Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, 5).command());
        sync();
        assertEquals(2, view.recipe(SID).seq(), "kept, untouched");
        assertTrue(view.invalidationGeneration() > gen, "the TLBIs bumped inv_gen before the CMD_SYNC completed");
        assertEquals(cmdProd, vmm.mmioRead(CMDQ_CONS.offset(), 4) & 31, "every command consumed");

        Command[] cfgis = {
            Command.build(Command.Op.CMD_CFGI_STE).set(Command.SID, SID).command(),
            Command.build(Command.Op.CMD_CFGI_CD).set(Command.SID, SID).command(),
            Command.build(Command.Op.CMD_CFGI_CD_ALL).set(Command.SID, SID).command(),
            Command.build(Command.Op.CMD_CFGI_STE_RANGE).set(Command.CFGI_RANGE, 31).command(), // CMD_CFGI_ALL
        };
        int seq = 2;
        for (Command c : cfgis) {
            cmd(c);
            sync();
            assertNull(view.recipe(SID), c.op() + " then CMD_SYNC: empty");
            seq += 2;
            assertEquals(new SharedCacheView.Recipe(seq, SID, 0, 0, 16, 0, 48, 1), view.recipeSlot(SID), "kind 0, seq even");
            translate(SID, 0);
            seq += 2;
            assertEquals(seq, view.recipe(SID).seq(), "published again after the next miss");
        }

        // a register write other than the queue pointers and IRQ_CTRL
        vmm.mmioWrite(CR0.offset(), 4, vmm.mmioRead(CR0.offset(), 4));
        assertNull(view.recipe(SID), "SMMU_CR0 write");
        translate(SID, 0);
        assertNotNull(view.recipe(SID));
        vmm.mmioWrite(IRQ_CTRL.offset(), 4, 0);
        vmm.mmioWrite(EVENTQ_CONS.offset(), 4, vmm.mmioRead(EVENTQ_PROD.offset(), 4));
        assertNotNull(view.recipe(SID), "IRQ_CTRL and EVENTQ_CONS leave them");

        // a device reset
        vmm.resetDevice();
        assertNull(view.recipe(SID), "reset");
        assertTrue(view.recipeSlot(SID).seq() % 2 == 0);
        translate(SID, 0);
        assertNull(view.recipe(SID), "SMMUEN is 0 after the reset: GBPA decides, no recipe");
    }

    @Test
    void neverOnAStrictProfile() throws Exception {
        start("recipe3", "max+strict");
        SharedCacheView view = vmm.sharedCacheWithRecipes(16, 2);
        assertEquals(Payloads.TRANSLATED, translate(SID, 0));
        assertEquals(0, view.recipeSlot(SID).kind(), "the detector sees every translation");
        assertNull(view.recipe(SID));
        assertEquals(0, counter("recipes_published"));
    }

    @Test
    void neverForVirtioIommu() {
        var device = new VirtioIommuBridge.Factory().create("default",
                new DeviceContext(dev.iommuemu.memory.SparseGuestMemory.unbounded(), dev.iommuemu.dma.DmaHost.NONE));
        try {
            for (int e = 0; e < 4; e++) {
                assertTrue(device.walkRecipe(e).isEmpty());
            }
        } finally {
            device.close();
        }
    }

    @Test
    void refusals() throws Exception {
        start("recipe4", "max");
        // RECIPES with a memfd that only holds the entries: EINVAL with a sentence
        RequestRefusedException e = assertThrows(RequestRefusedException.class,
                () -> vmm.sharedCache(16, 2, SharedCache.FLAG_RECIPES, SharedCache.size(16, 2)));
        assertEquals(ProtocolException.EINVAL, e.errno());
        MappedRegion small = MappedRegion.allocate("recipe-small", 0, SharedCache.size(16, 2));
        try {
            ProtocolException p = assertThrows(ProtocolException.class,
                    () -> session().setSharedCache(LibC.dup(small.fd()), 16, 2, SharedCache.FLAG_RECIPES));
            assertEquals(ProtocolException.EINVAL, p.errno());
            assertEquals("the shared cache memfd holds 6144 bytes, but 16 x 2 entries with walk recipes need 22528"
                    + " (4096 + 64 * sets * ways + 64 * 256): make it larger or leave out RECIPES", p.getMessage());
        } finally {
            small.unmap();
        }
        // undefined flag bits
        RequestRefusedException u = assertThrows(RequestRefusedException.class,
                () -> vmm.sharedCache(16, 2, 4, SharedCache.sizeWithRecipes(16, 2)));
        assertEquals(ProtocolException.EINVAL, u.errno());
        // the connection goes on, and a right one is taken
        SharedCacheView view = vmm.sharedCacheWithRecipes(16, 2);
        translate(SID, 0);
        assertNotNull(view.recipe(SID));
        // without RECIPES nothing is published (the memory has no table)
        SharedCacheView plain = vmm.sharedCache(16, 2);
        translate(SID, 0);
        assertEquals(16, plain.sets());
        assertEquals(1, counter("recipes_published"));
    }
}
