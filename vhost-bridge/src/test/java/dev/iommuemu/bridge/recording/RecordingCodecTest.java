package dev.iommuemu.bridge.recording;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.bridge.device.VmmProperties;
import dev.iommuemu.proto.v1.RecordedProperties;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The VMM's device properties survive a recording's header (docs/recording.md): a replay builds the same device. */
class RecordingCodecTest {
    @Test
    void everyPropertyRoundTrips() {
        VmmProperties virtio = new VmmProperties(true, 0x4000L, 48, List.of(new VmmProperties.ReservedRegion(0x800_0000L, 0x80f_ffffL, 1)),
                true, null, null);
        assertEquals(virtio, RecordingCodec.properties(RecordingCodec.properties(virtio)));
        VmmProperties smmu = new VmmProperties(null, null, null, null, null, VmmProperties.SmmuStage.NESTED, new VmmProperties.PciBus(0, 3));
        RecordedProperties p = RecordingCodec.properties(smmu);
        assertEquals("nested", p.getSmmuStage());
        assertEquals(smmu, RecordingCodec.properties(p));
        assertEquals(VmmProperties.NONE, RecordingCodec.properties(RecordingCodec.properties(VmmProperties.NONE)));
        VmmProperties emptyList = new VmmProperties(null, null, null, List.of(), null, null, null);
        assertEquals(emptyList, RecordingCodec.properties(RecordingCodec.properties(emptyList)), "given, and empty, is not unset");
    }
}
