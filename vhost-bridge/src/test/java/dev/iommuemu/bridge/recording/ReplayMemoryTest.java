package dev.iommuemu.bridge.recording;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.proto.v1.Effect;
import dev.iommuemu.proto.v1.MemoryBytes;
import dev.iommuemu.proto.v1.RamRegion;
import dev.iommuemu.proto.v1.RecordedOperation;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A replay's memory gives the model what the recording says it read, in order (docs/recording.md). */
class ReplayMemoryTest {
    static Effect read(long addr, int... bytes) {
        byte[] b = new byte[bytes.length];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) bytes[i];
        }
        return Effect.newBuilder().setRead(MemoryBytes.newBuilder().setAddress(addr).setData(ByteString.copyFrom(b))).build();
    }

    ReplayMemory memory(Effect... effects) {
        ReplayMemory m = new ReplayMemory();
        m.layout(List.of(RamRegion.newBuilder().setGuestPhysAddr(0x1000).setSize(0x1000).build()));
        m.seed(RecordedOperation.newBuilder().addAllEffects(List.of(effects)).build());
        return m;
    }

    /**
     * A virtqueue's available index (virtio 1.x §2.7.6, le16 at avail + 2) read twice in one kick,
     * another vCPU having added a request in between: the replay gets 5, then 6, then 6.
     */
    @Test
    void aByteTheGuestChangedBetweenTwoReadsGivesBothValuesInOrder() {
        ReplayMemory m = memory(read(0x1002, 5, 0), read(0x1010, 0xaa), read(0x1002, 6, 0));
        GuestMemory.Region r = m.find(0x1002, 2);
        assertEquals(5, r.read16(0x1002));
        assertEquals(0xaa, r.read8(0x1010) & 0xff);
        assertEquals(6, r.read16(0x1002));
        assertEquals(6, r.read16(0x1002), "then the last value stays");
    }

    @Test
    void theLayoutDecidesWhereMemoryIsAndReadsLittleEndian() {
        ReplayMemory m = memory(read(0x1008, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11));
        assertEquals(0x1122_3344_5566_7788L, m.find(0x1008, 8).read64(0x1008));
        assertEquals(0x5566_7788, m.find(0x1008, 4).read32(0x1008));
        assertNull(m.find(0x2000, 1), "outside the recorded RAM: an abort, as in the daemon");
        assertNull(m.find(0x1ffc, 8), "straddling the end of RAM");
        GuestMemory.Region r = m.find(0x1000, 1);
        assertEquals(0x1000, r.base());
        assertEquals(0x1000, r.size());
        r.write64(0x1100, 42);
        assertEquals(42, r.read64(0x1100), "the model's own write reads back");
        assertTrue(r.compareAndSet64(0x1100, 42, 43));
        assertEquals(43, r.read64(0x1100));
    }
}
