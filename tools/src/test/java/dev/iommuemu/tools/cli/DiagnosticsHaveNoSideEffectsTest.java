package dev.iommuemu.tools.cli;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.EVENTQ_PROD;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.DecidedBy;
import dev.iommuemu.proto.v1.DescriptorKind;
import dev.iommuemu.proto.v1.Fault;
import dev.iommuemu.proto.v1.WalkResponse;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The control API's Walk and Translate are diagnostics (control.proto): what a client reads from
 * them answers "why did this IOVA fault", and nothing the guest sees changes.
 */
class DiagnosticsHaveNoSideEffectsTest {
    private static final Access READ = ControlClient.access(false, false, false);
    private ControlServer server;
    private ControlClient c;
    private long s;

    @BeforeEach
    void start() throws Exception {
        DeviceRegistry devices = DeviceRegistry.discover();
        SessionRegistry registry = new SessionRegistry(devices, devices.get("smmuv3"), "");
        Path path = Path.of("/tmp/ie-diag-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100000 + ".sock");
        server = new ControlServer(path, registry, "");
        c = ControlClient.connect(path);
        s = NestedScenario.create(c);
    }

    @AfterEach
    void stop() throws Exception {
        c.close();
        server.close();
    }

    @Test
    void threeWalksOfFaultingAddressesChangeNothingTheGuestSees() throws Exception {
        long prod = c.readRegister(s, EVENTQ_PROD.offset(), 4);
        byte[] queue = c.readMemory(s, NestedScenario.EVTQ, 16 * 32);
        byte[] all = c.readMemory(s, 0, 1 << 20);
        byte[] guest = c.readMemory(s, NestedScenario.PA_BASE, 1 << 20);
        Map<String, Long> counters = c.counters(s); // (after the MMIO read above, which counts in mmio_reads)

        WalkResponse nested = c.walk(s, NestedScenario.SID, -1, NestedScenario.VA, READ);
        c.walk(s, NestedScenario.SID, -1, NestedScenario.UNMAPPED, ControlClient.access(true, false, false));
        c.walk(s, NestedScenario.SID + 1, -1, 0x1000, READ); // an invalid STE: C_BAD_STE
        c.translate(s, NestedScenario.SID, -1, NestedScenario.VA, READ);

        assertEquals(counters, c.counters(s), "every counter, the model's (events, tlb_*, config_cache_entries) included");
        assertEquals(prod, c.readRegister(s, EVENTQ_PROD.offset(), 4), "EVENTQ_PROD");
        assertArrayEquals(queue, c.readMemory(s, NestedScenario.EVTQ, 16 * 32), "the Event queue's memory");
        assertArrayEquals(all, c.readMemory(s, 0, 1 << 20), "stream table, queues, stage 2 tables");
        assertArrayEquals(guest, c.readMemory(s, NestedScenario.PA_BASE, 1 << 20), "CD and stage 1 tables");

        // and the answer names the cause
        Fault f = nested.getResult().getFault();
        assertEquals("F_TRANSLATION", f.getType());
        assertEquals(2, f.getStage());
        assertEquals(2, f.getLevel());
        assertEquals("IN", f.getFaultClass());
        assertEquals(NestedScenario.IPA, f.getIpa());
        assertEquals(NestedScenario.S2_L2 + 8 * (NestedScenario.IPA >>> 21 & 511), f.getDescriptorAddress());
        assertEquals(0, f.getDescriptorValue());
        assertTrue(f.getRecorded());
        assertFalse(f.getStall());
        assertEquals(4, f.getEventRecordCount());
        assertEquals(0x10 | ((long) NestedScenario.SID << 32), f.getEventRecord(0)); // F_TRANSLATION, StreamID
        assertEquals(NestedScenario.VA, f.getEventRecord(2)); // InputAddr
        assertEquals(NestedScenario.IPA, f.getEventRecord(3)); // IPA[55:12] in place
        assertEquals(DecidedBy.DECIDED_BY_TABLES, nested.getDecidedBy());
        assertEquals(0b111, nested.getState().getSteConfig());
        assertTrue(nested.getState().getSmmuEnabled());
        assertEquals(NestedScenario.STRTAB + 64 * NestedScenario.SID, nested.getState().getSteAddress());
        // the CD fetch's stage 2 walk, stage 1 levels 0-3 each with its stage 2 walk, the output's stage 2 walk
        assertEquals("CD", nested.getSteps(0).getPurpose());
        var s1 = nested.getStepsList().stream().filter(x -> x.getStage() == 1).toList();
        assertEquals(4, s1.size());
        assertEquals(NestedScenario.S1_L3, s1.get(3).getTableAddress());
        assertEquals(DescriptorKind.DESCRIPTOR_KIND_PAGE, s1.get(3).getKind());
        assertEquals(NestedScenario.IPA, s1.get(3).getNextAddress());
        assertEquals(2, s1.get(3).getStage2Count());
        assertEquals(NestedScenario.S1_L3 + 8 * (NestedScenario.VA >>> 12 & 511), s1.get(3).getStage2(0).getInput());
        var last = nested.getSteps(nested.getStepsCount() - 1);
        assertEquals("IN", last.getPurpose());
        assertEquals(NestedScenario.IPA, last.getInput());
        assertEquals(DescriptorKind.DESCRIPTOR_KIND_INVALID, last.getKind());
    }

    @Test
    void aStaleTlbEntryIsNamedAndSmmuDisabledSaysGbpaDecides() throws Exception {
        // Inject makes the access as an endpoint would: it fills the TLB
        c.call(dev.iommuemu.proto.v1.ControlRequest.newBuilder().setInject(dev.iommuemu.proto.v1.InjectRequest.newBuilder()
                .setSession(s).setFault(dev.iommuemu.proto.v1.TranslateRequest.newBuilder().setStreamId(NestedScenario.SID)
                        .setIova(NestedScenario.MAPPED))));
        c.writeMemory(s, NestedScenario.PA_BASE + 0x1_3000 + 8 * ((NestedScenario.MAPPED >>> 12) & 511), new byte[8]);
        WalkResponse w = c.walk(s, NestedScenario.SID, -1, NestedScenario.MAPPED + 0x10, READ);
        assertEquals(DecidedBy.DECIDED_BY_TLB, w.getDecidedBy());
        assertEquals(NestedScenario.PA_BASE + 0x10_0010, w.getResult().getTranslated().getOutputAddress());
        assertEquals("F_TRANSLATION", w.getTablesResult().getFault().getType());
        assertEquals(1, w.getTablesResult().getFault().getStage());
        assertTrue(w.getState().getSteFromCache());

        c.writeRegister(s, Smmuv3Regs.CR0.offset(), 4, 0);
        WalkResponse off = c.walk(s, NestedScenario.SID, -1, NestedScenario.VA, READ);
        assertFalse(off.getState().getSmmuEnabled());
        assertEquals(DecidedBy.DECIDED_BY_GBPA, off.getDecidedBy());
        assertTrue(off.getBypass());
        assertEquals(0, off.getStepsCount());
        assertEquals(NestedScenario.VA, off.getResult().getTranslated().getOutputAddress());
    }
}
