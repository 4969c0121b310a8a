package dev.iommuemu.bridge.session;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.iommuemu.bridge.device.Finding;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** A session's findings: one log line each (rate-limited), one event each, kept, summarised at the end. */
class SessionFindingsTest {
    private final List<String> lines = new ArrayList<>();
    private final List<BridgeEvent> events = new ArrayList<>();
    private final long[] now = {0};
    private final Logger log = Logger.getLogger(SessionFindings.class.getName());
    private final Handler capture = new Handler() {
        @Override
        public void publish(LogRecord r) {
            lines.add(r.getLevel() + " " + r.getMessage());
        }

        @Override
        public void flush() {}

        @Override
        public void close() {}
    };

    @BeforeEach
    void listen() {
        log.addHandler(capture);
        log.setLevel(Level.ALL);
        log.setUseParentHandlers(false);
    }

    @AfterEach
    void stop() {
        log.removeHandler(capture);
        log.setLevel(null);
        log.setUseParentHandlers(true);
    }

    private static Finding tlb(long va) {
        return new Finding("TLB", 5, -1, va, "0x9000 rw", "Translation[...]\nsecond line", "CMD_TLBI_NH_VA VMID 0x0 ASID 0x5 VA 0x"
                + Long.toHexString(va) + " then CMD_SYNC", "TLB at SID 0x5 address 0x" + Long.toHexString(va) + ": stale\nmore");
    }

    @Test
    void eachFindingIsOneLineOneEventAndKept() {
        SessionFindings f = new SessionFindings(7, events::add, () -> now[0]);
        f.enable(true);
        Finding a = tlb(0x1000);
        f.found(a);
        f.found(new Finding("CD", 5, 0, 0x40_0000, "CD{..}", "CD{..}", "CMD_CFGI_CD SID 0x5 SSID 0x0 then CMD_SYNC", "CD at SID 0x5"));
        assertEquals(List.of("WARNING session 7: strict mode finding: TLB at SID 0x5 address 0x1000: stale more",
                "WARNING session 7: strict mode finding: CD at SID 0x5"), lines, "no line breaks inside a line");
        assertEquals(2, events.size());
        assertEquals(new BridgeEvent(events.get(0).timeMillis(), 7, "coherency_violation", "TLB at SID 0x5 address 0x1000: stale more", a),
                events.get(0));
        assertSame(a, events.get(0).finding());
        assertEquals("Translation[...] second line", a.inMemory());
        assertEquals(Map.of("TLB", 1L, "CD", 1L), f.byKind());
        assertEquals(2, f.total());
        assertEquals(a, f.recent().get(0));
        lines.clear();
        f.summarise();
        assertEquals(List.of("WARNING session 7: strict mode found 2 findings: 1 TLB, 1 CD; first: TLB at SID 0x5 address 0x1000: stale more"),
                lines);
    }

    @Test
    void atMostTenLinesASecondThenOneLineForTheRest() {
        SessionFindings f = new SessionFindings(3, events::add, () -> now[0]);
        f.enable(true);
        for (int i = 0; i < 25; i++) {
            f.found(tlb(0x1000L * i));
        }
        assertEquals(SessionFindings.LINES_PER_SECOND, lines.size());
        assertEquals(25, events.size(), "every finding is published");
        now[0] += 1_000_000_000L;
        f.found(tlb(0x99000));
        assertEquals("WARNING session 3: 15 more strict mode findings not logged (more than 10 a second; "
                + "iommu-emu-ctl violations lists the last 256)", lines.get(10));
        assertEquals("WARNING session 3: strict mode finding: TLB at SID 0x5 address 0x99000: stale more", lines.get(11));
        for (int i = 0; i < 10; i++) {
            f.found(tlb(0xa0000));
        }
        lines.clear();
        f.summarise(); // the one not logged is said before the summary
        assertEquals(List.of("WARNING session 3: 1 more strict mode finding not logged (more than 10 a second; "
                        + "iommu-emu-ctl violations lists the last 256)",
                "WARNING session 3: strict mode found 36 findings: 36 TLB (16 not logged: rate limit); first: "
                        + "TLB at SID 0x5 address 0x0: stale more"), lines);
    }

    @Test
    void theLastFindingsAreKept() {
        SessionFindings f = new SessionFindings(3, events::add, () -> now[0]);
        for (int i = 0; i < SessionFindings.KEPT + 4; i++) {
            f.found(tlb(0x1000L * i));
        }
        assertEquals(SessionFindings.KEPT, f.recent().size());
        assertEquals(0x4000, f.recent().get(0).address());
        assertEquals(SessionFindings.KEPT + 4, f.total());
    }

    @Test
    void summaryOnlyForDevicesThatMakeFindings() {
        SessionFindings off = new SessionFindings(4, events::add, () -> now[0]);
        off.summarise();
        assertEquals(List.of(), lines);
        assertFalse(off.enabled());
        SessionFindings on = new SessionFindings(5, events::add, () -> now[0]);
        on.enable(true);
        on.summarise();
        assertEquals(List.of("INFO session 5: strict mode found no findings"), lines);
    }
}
