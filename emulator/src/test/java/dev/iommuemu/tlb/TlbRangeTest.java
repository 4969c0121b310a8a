package dev.iommuemu.tlb;

import static dev.iommuemu.pagetable.Granule.G16K;
import static dev.iommuemu.pagetable.Granule.G4K;
import static dev.iommuemu.pagetable.Granule.G64K;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The range fields of IHI 0070 §4.4.1.1: Range = ((NUM + 1) * 2^SCALE) * granule, from Address. */
class TlbRangeTest {
    @ParameterizedTest(name = "TG {0} NUM {1} SCALE {2} -> {3}")
    @CsvSource({
        // tg, num, scale, bytes (hex)
        "1, 0, 0, 1000",
        "1, 1, 0, 2000",
        "1, 31, 0, 20000",
        "1, 0, 9, 200000",
        "2, 0, 0, 4000",
        "2, 31, 2, 200000",
        "3, 0, 0, 10000",
        "3, 1, 3, 100000",
        "3, 31, 39, 1000000000000000", // 32 << 39 << 16 = 2^60
        "3, 31, 45, 1000000000000000", // SCALE > 39 is treated as 39
        "0, 0, 0, 0",
    })
    void bytes(int tg, int num, int scale, String hex) {
        assertEquals(Long.parseUnsignedLong(hex, 16), new TlbRange(tg, num, scale, 0).bytes());
    }

    @Test
    void tgZeroIsASingleAddressAndClearsTheRes0Fields() {
        TlbRange r = new TlbRange(0, 5, 7, 3);
        assertEquals(TlbRange.SINGLE, r);
        assertFalse(r.isRange());
        assertNull(r.granule());
        assertEquals(-1, r.level());
    }

    @Test
    void levelHint() {
        assertEquals(-1, TlbRange.of(G4K, 0, 0, 0).level());
        assertEquals(2, TlbRange.of(G4K, 0, 0, 2).level());
        assertEquals(G16K, TlbRange.of(G16K, 0, 0, 3).granule());
        assertEquals(3, TlbRange.tgOf(G64K));
    }

    @Test
    void startAlignsDownToTheGranuleAndEndSaturates() {
        TlbRange r = TlbRange.of(G64K, 1, 0);
        assertEquals(0x3000_0000L, r.start(0x3000_F000L));
        assertEquals(0x3001_FFFFL, r.end(0x3000_F000L));
        TlbRange huge = TlbRange.of(G4K, 31, 39);
        assertEquals(-1L, huge.end(0xFFFF_0000_0000_0000L), "§4.4.1.1: the address does not wrap");
        assertEquals(0x100_0000_0000_0000L - 1 + 0x1000_0000L, huge.end(0x1000_0000L)); // 32 << 39 << 12 = 2^56
    }

    @Test
    void reservedEncoding() {
        assertTrue(new TlbRange(1, 0, 0, 0).reserved(), "§4.4.1.1: NUM == SCALE == TTL == 0 with TG != 0");
        assertFalse(new TlbRange(1, 0, 0, 3).reserved());
        assertFalse(new TlbRange(1, 1, 0, 0).reserved());
        assertFalse(TlbRange.SINGLE.reserved());
    }

    @Test
    void commandFieldsAre16Bit() {
        assertThrows(IllegalArgumentException.class, () -> TlbInvalidation.nhAll(0x10000));
        assertThrows(IllegalArgumentException.class, () -> TlbInvalidation.nhAsid(0, 0x10000));
        assertThrows(IllegalArgumentException.class, () -> TlbInvalidation.el2Asid(-1));
        assertEquals(0xFFFF, TlbInvalidation.nhAsid(0xFFFF, 0xFFFF).asid());
    }

    @Test
    void fieldWidths() {
        assertThrows(IllegalArgumentException.class, () -> new TlbRange(4, 0, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new TlbRange(1, 32, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new TlbRange(1, 0, 64, 0));
        assertThrows(IllegalArgumentException.class, () -> new TlbRange(1, 0, 0, 4));
    }
}
