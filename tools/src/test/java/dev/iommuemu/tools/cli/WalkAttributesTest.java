package dev.iommuemu.tools.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.control.ControlServer;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.DecidedBy;
import dev.iommuemu.proto.v1.InjectRequest;
import dev.iommuemu.proto.v1.MemoryAttributes;
import dev.iommuemu.proto.v1.TranslateRequest;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.WalkResponse;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The memory attributes (Arm ARM D8.6) in the control API's Walk and Translate answers
 * (control.proto Translated.attributes) and in iommu-emu-ctl's output, through
 * {@link NestedScenario}'s nested stream: stage 1 leaf AttrIndx 0, SH Inner Shareable; stage 2
 * block MemAttr 0b1111 (Normal Write-Back, FWB off), SH Inner Shareable.
 */
class WalkAttributesTest {
    private static final Access READ = ControlClient.access(false, false, false);
    private ControlServer server;
    private ControlClient c;
    private Path path;
    private long s;

    @BeforeEach
    void start() throws Exception {
        DeviceRegistry devices = DeviceRegistry.discover();
        path = Path.of("/tmp/ie-attr-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100000 + ".sock");
        server = new ControlServer(path, new SessionRegistry(devices, devices.get("smmuv3"), ""), "");
        c = ControlClient.connect(path);
        s = NestedScenario.create(c);
    }

    @AfterEach
    void stop() throws Exception {
        c.close();
        server.close();
    }

    /** Sets CD.MAIR (IHI 0070 §5.4) of the scenario's CD in guest memory (no CD is cached yet). */
    private void mair(long mair) throws Exception {
        long cdPa = NestedScenario.CD - NestedScenario.IPA_BASE + NestedScenario.PA_BASE;
        ByteBuffer b = ByteBuffer.wrap(c.readMemory(s, cdPa, 64)).order(ByteOrder.LITTLE_ENDIAN);
        long[] words = new long[8];
        for (int i = 0; i < 8; i++) {
            words[i] = b.getLong();
        }
        Cd.MAIR.set(words, mair);
        ByteBuffer out = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        for (long w : words) {
            out.putLong(w);
        }
        c.writeMemory(s, cdPa, out.array());
    }

    private static void assertAttributes(String type, String inner, String outer, String sh, String summary,
            TranslateResponse t) {
        assertTrue(t.hasTranslated(), t.toString());
        MemoryAttributes a = t.getTranslated().getAttributes();
        assertEquals(type, a.getType());
        assertEquals(inner, a.getInner());
        assertEquals(outer, a.getOuter());
        assertEquals(sh, a.getShareability());
        assertEquals(summary, a.getSummary());
    }

    @Test
    void walkAndTranslateCarryTheCombinedAttributes() throws Exception {
        // MAIR Attr0 0xbb: Normal inner and outer Write-Through; stage 2 Write-Back: the less
        // cacheable wins (Table D8-98), Inner Shareable from both stages (Table D8-103).
        mair(0xbb);
        WalkResponse w = c.walk(s, NestedScenario.SID, -1, NestedScenario.MAPPED, READ);
        assertEquals(DecidedBy.DECIDED_BY_TABLES, w.getDecidedBy());
        assertAttributes("NORMAL", "WRITE_THROUGH", "WRITE_THROUGH", "INNER_SHAREABLE", "Normal iWT oWT ISH",
                w.getResult());
        assertEquals(w.getResult(), c.translate(s, NestedScenario.SID, -1, NestedScenario.MAPPED, READ));
        // MAIR Attr0 0x00 (the scenario's own): Device-nGnRnE wins over stage 2's Normal (Table D8-97).
        mair(0);
        assertAttributes("DEVICE_nGnRnE", "NON_CACHEABLE", "NON_CACHEABLE", "OUTER_SHAREABLE", "Device-nGnRnE",
                c.walk(s, NestedScenario.SID, -1, NestedScenario.MAPPED, READ).getResult());
    }

    @Test
    void aTlbHitCarriesTheAttributesItWasFilledWith() throws Exception {
        mair(0x44); // Normal Non-cacheable: Outer Shareable whatever SH says (Arm ARM D8.6.2)
        c.call(ControlRequest.newBuilder().setInject(InjectRequest.newBuilder().setSession(s)
                .setFault(TranslateRequest.newBuilder().setStreamId(NestedScenario.SID).setIova(NestedScenario.MAPPED))));
        mair(0xff); // the TLB entry keeps what its walk gave; the tables now give Write-Back
        WalkResponse w = c.walk(s, NestedScenario.SID, -1, NestedScenario.MAPPED + 0x10, READ);
        assertEquals(DecidedBy.DECIDED_BY_TLB, w.getDecidedBy());
        assertAttributes("NORMAL", "NON_CACHEABLE", "NON_CACHEABLE", "OUTER_SHAREABLE", "Normal iNC oNC OSH",
                w.getResult());
        assertTrue(w.getState().getCdFromCache());
    }

    @Test
    void noAttributesWithoutATranslationByTheTables() throws Exception {
        WalkResponse fault = c.walk(s, NestedScenario.SID, -1, NestedScenario.VA, READ);
        assertTrue(fault.getResult().hasFault());
        c.writeRegister(s, Smmuv3Regs.CR0.offset(), 4, 0);
        WalkResponse off = c.walk(s, NestedScenario.SID, -1, NestedScenario.MAPPED, READ);
        assertTrue(off.getBypass());
        assertFalse(off.getResult().getTranslated().hasAttributes(), "a GBPA bypass has no table walk");
    }

    @Test
    void ctlPrintsTheAttributesUnderTheResult() throws Exception {
        mair(0xbb);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = new IommuEmuCtl(new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8))
                .run(new String[] {"translate", "--session=" + s, "5", "0x123457abc"},
                        Map.of("IOMMU_EMU_CONTROL", path.toString()));
        assertEquals(0, rc, err.toString(StandardCharsets.UTF_8));
        assertEquals("0x123457abc -> 0x900abc (mask 0xfff, perm rwx)\n  memory attributes: Normal iWT oWT ISH\n",
                out.toString(StandardCharsets.UTF_8));
    }
}
