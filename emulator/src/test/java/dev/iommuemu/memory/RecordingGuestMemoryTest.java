package dev.iommuemu.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/** docs/recording.md: every access a model makes, told with the bytes it moved. */
class RecordingGuestMemoryTest {
    final List<String> told = new ArrayList<>();
    final RecordingGuestMemory.Tap tap = new RecordingGuestMemory.Tap() {
        @Override
        public void read(long addr, byte[] data) {
            told.add(String.format("read 0x%x %s", addr, HexFormat.of().formatHex(data)));
        }

        @Override
        public void write(long addr, byte[] data) {
            told.add(String.format("write 0x%x %s", addr, HexFormat.of().formatHex(data)));
        }

        @Override
        public void abort(long addr, int len) {
            told.add(String.format("abort 0x%x %d", addr, len));
        }
    };

    @Test
    void readsWritesAndAbortsAreToldLittleEndian() {
        SparseGuestMemory ram = new SparseGuestMemory(0x1000, 0x2000);
        RecordingGuestMemory m = new RecordingGuestMemory(ram);
        ram.put64(0x1008, 0x1122_3344_5566_7788L);
        assertSame(ram.find(0x1000, 8), m.find(0x1000, 8), "without a tap: the memory itself");
        m.tap(tap);
        assertEquals(0x5566_7788L, m.load(0x1008, 4).getAsLong());
        assertTrue(m.store(0x1010, 2, 0xbeef));
        byte[] b = new byte[3];
        assertTrue(m.read(0x100e, b, 0, 3));
        assertFalse(m.load(0x4000, 8).isPresent());
        assertEquals(List.of("read 0x1008 88776655", "write 0x1010 efbe", "read 0x100e 2211ef", "abort 0x4000 8"), told);
        m.tap(null);
        m.load(0x1008, 8);
        assertEquals(4, told.size(), "untapped: nothing told");
    }

    /**
     * A hardware descriptor update (Arm ARM D8.4: an atomic read-modify-write) is told as the
     * value it compared and, when it swapped, the value it stored.
     */
    @Test
    void compareAndSetIsToldAsTheValueItSawAndWhatItStored() {
        SparseGuestMemory ram = new SparseGuestMemory(0x1000, 0x1000);
        RecordingGuestMemory m = new RecordingGuestMemory(ram);
        m.tap(tap);
        ram.put64(0x1000, 0x401L);
        GuestMemory.Region r = m.find(0x1000, 8);
        assertTrue(r.compareAndSet64(0x1000, 0x401L, 0x441L));
        assertFalse(r.compareAndSet64(0x1000, 0x401L, 0x481L));
        assertEquals(0x441L, ram.get64(0x1000));
        assertEquals(List.of("read 0x1000 0104000000000000", "write 0x1000 4104000000000000", "read 0x1000 4104000000000000"), told);
        assertNull(m.find(0x3000, 1));
    }
}
