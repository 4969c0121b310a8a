package dev.iommuemu.bridge.state;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.control.ControlService;
import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.IdentityDevice;
import dev.iommuemu.bridge.device.smmuv3.Smmuv3Bridge;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.field.Register;
import dev.iommuemu.proto.devstate.v1.DeviceState;
import dev.iommuemu.proto.devstate.v1.Smmuv3Queue;
import dev.iommuemu.smmuv3.Recorders;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.state.SmmuWorld;
import dev.iommuemu.smmuv3.state.Smmuv3State;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The device-state blob (docs/device-state.md): the SMMUv3 state through protobuf and back,
 * byte for byte; loading through the device seam; and the refusals (format version, model,
 * profile, impossible states, a session that is not quiescent), each leaving the device unchanged.
 * {@code -Diommuemu.state.iterations=N} runs more seeds than the default 200.
 */
class DeviceStateCodecTest {
    private static final int ITERATIONS = Integer.getInteger("iommuemu.state.iterations", 200);

    /** A random guest's SMMU after {@code steps} actions. */
    private static SmmuWorld driven(Smmuv3Profile p, long seed, int steps) {
        SmmuWorld w = new SmmuWorld(p);
        Random r = new Random(seed);
        for (int i = 0; i < steps; i++) {
            w.step(r);
        }
        return w;
    }

    private static Smmuv3Bridge bridge(SmmuWorld w, String profile) {
        return (Smmuv3Bridge) new Smmuv3Bridge.Factory().create(profile, new DeviceContext(w.mem, new Recorders.Host()));
    }

    /** A max-profile device of its own on {@code w}'s memory, programmed and enabled as {@code w}'s SMMU is. */
    private static Smmuv3Bridge enabledLike(SmmuWorld w) {
        Smmuv3Bridge b = bridge(w, "max");
        for (Register r : new Register[] {STRTAB_BASE, STRTAB_BASE_CFG, CMDQ_BASE, EVENTQ_BASE, IRQ_CTRL, CR0}) {
            b.mmioWrite(r.offset(), r.size(), w.smmu.mmioRead(r.offset(), r.size()));
        }
        return b;
    }

    @Test
    void theProtobufFormRoundTripsByteForByteAndLoadsThroughTheSeam() {
        for (long seed = 0; seed < ITERATIONS; seed++) {
            Smmuv3Profile p = seed % 2 == 0 ? Smmuv3Profile.MAX : Smmuv3Profile.DEFAULT;
            try {
                SmmuWorld w = driven(p, seed, 10 + (int) (seed % 97));
                Smmuv3State s = w.smmu.saveState();
                byte[] blob = DeviceStateCodec.encode(Smmuv3StateCodec.envelope(s));
                DeviceState d = DeviceStateCodec.decode(blob, "smmuv3");
                assertEquals(1, d.getFormatVersion());
                assertEquals(p.name(), d.getProfile());
                assertEquals(ControlService.VERSION, d.getProducer());
                Smmuv3State back = Smmuv3StateCodec.fromProto(d);
                assertEquals(s, back);
                assertArrayEquals(blob, DeviceStateCodec.encode(Smmuv3StateCodec.envelope(back)));

                // A new session's device on the same memory takes it and reads as the original.
                Smmuv3Bridge b = bridge(w, p.name());
                b.loadState(blob);
                assertArrayEquals(blob, b.saveState());
                for (Register r : ALL) {
                    assertEquals(w.smmu.mmioRead(r.offset(), r.size()), b.mmioRead(r.offset(), r.size()), r.name());
                }
                for (Smmuv3State.HeldStall h : s.stalls()) {
                    DmaResult a = w.smmu.translate(h.streamId(), h.substreamId(), h.iova() + 0x1000, h.access());
                    assertEquals(a, b.iommu().translate(h.streamId(), h.substreamId(), h.iova() + 0x1000, h.access()));
                }
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError("seed " + seed + " (profile " + p.name() + "): " + e.getMessage(), e);
            }
        }
    }

    @Test
    void aNewerFormatVersionIsRefusedNamingBothVersions() {
        byte[] blob = DeviceStateCodec.envelope("smmuv3", "max").setFormatVersion(2).setProducer("9.9.9")
                .setSmmuv3(Smmuv3StateCodec.toProto(new SmmuWorld(Smmuv3Profile.MAX).smmu.saveState())).build().toByteArray();
        SmmuWorld w = new SmmuWorld(Smmuv3Profile.MAX);
        Smmuv3Bridge b = bridge(w, "max");
        byte[] before = b.saveState();
        DeviceStateException e = assertThrows(DeviceStateException.class, () -> b.loadState(blob));
        assertEquals("the device state has format version 2 (saved by iommu-emu 9.9.9) but this daemon (iommu-emu "
                + ControlService.VERSION + ") reads format version 1; load it with a daemon at least as new as the one"
                + " that saved it", e.getMessage());
        assertArrayEquals(before, b.saveState());
    }

    @Test
    void anotherModelOrProfileOrNoStateAtAllIsRefused() {
        SmmuWorld w = new SmmuWorld(Smmuv3Profile.MAX);
        byte[] max = DeviceStateCodec.encode(Smmuv3StateCodec.envelope(w.smmu.saveState()));
        Smmuv3Bridge def = bridge(new SmmuWorld(Smmuv3Profile.DEFAULT), "default");
        byte[] before = def.saveState();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> def.loadState(max));
        assertEquals("the saved state is for SMMUv3 profile 'max' but this session's profile is 'default'; restore it"
                + " into a session started with --profile max", e.getMessage());
        assertArrayEquals(before, def.saveState());

        byte[] virtio = DeviceStateCodec.envelope("virtio-iommu", "default").build().toByteArray();
        e = assertThrows(DeviceStateException.class, () -> def.loadState(virtio));
        assertEquals("the device state is for model 'virtio-iommu' but this session's model is 'smmuv3'; load it into"
                + " a session started with --model virtio-iommu", e.getMessage());

        byte[] empty = DeviceStateCodec.envelope("smmuv3", "default").build().toByteArray();
        e = assertThrows(DeviceStateException.class, () -> def.loadState(empty));
        assertEquals("the device state for model 'smmuv3' holds no SMMUv3 state", e.getMessage());

        e = assertThrows(DeviceStateException.class, () -> def.loadState(new byte[] {(byte) 0xff, 1, 2}));
        assertTrue(e.getMessage().startsWith("the device state (3 bytes) is not an iommu-emu device state: "), e.getMessage());
        e = assertThrows(DeviceStateException.class, () -> def.loadState(new byte[0]));
        assertEquals("the device state has no format version; it was not saved by iommu-emu", e.getMessage());
        assertArrayEquals(before, def.saveState());
    }

    @Test
    void aCorruptedStateIsRefusedWithTheExactSentenceAndTheDeviceIsUnchanged() {
        SmmuWorld w = new SmmuWorld(Smmuv3Profile.MAX);
        DeviceState good = Smmuv3StateCodec.envelope(w.smmu.saveState());
        // The Event queue's producer index with a bit beyond the 20-bit WR field.
        DeviceState bad = good.toBuilder().setSmmuv3(good.getSmmuv3().toBuilder()
                .setEventq(Smmuv3Queue.newBuilder(good.getSmmuv3().getEventq()).setProd(1 << 22))).build();
        Smmuv3Bridge b = enabledLike(new SmmuWorld(Smmuv3Profile.MAX));
        b.iommu().translate(2, -1, 0x1000, DmaAccess.READ); // a warm TLB, which a refused load keeps
        byte[] before = b.saveState();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.loadState(bad.toByteArray()));
        assertEquals("the saved SMMU_EVENTQ_PROD (0x400000) sets bits 0x400000 outside its fields, which the SMMU"
                + " never holds (IHI 0070 §6.3: RES0)", e.getMessage());
        assertArrayEquals(before, b.saveState());
        assertEquals(1L, b.counters().get("tlb_entries"));
    }

    @Test
    void aSessionHoldingStallsOfItsOwnIsRefused() {
        SmmuWorld src = new SmmuWorld(Smmuv3Profile.MAX);
        byte[] blob = DeviceStateCodec.encode(Smmuv3StateCodec.envelope(src.smmu.saveState()));
        Smmuv3Bridge b = enabledLike(new SmmuWorld(Smmuv3Profile.MAX));
        // The bridge's own SMMU stalls a fault on the stall-enabled stream 1.
        assertTrue(b.iommu().translate(1, -1, 0x10_0000, DmaAccess.READ) instanceof DmaResult.Stalled);
        byte[] before = b.saveState();
        // a dedicated type, which the session answers with EBUSY (docs/protocol.md §4.9)
        IllegalArgumentException e = assertThrows(DeviceStateBusyException.class, () -> b.loadState(blob));
        assertEquals("this session's SMMU holds 1 stalled transaction that loading a device state would drop; load it"
                + " into a session that has not run DMA, or after a reset", e.getMessage());
        assertArrayEquals(before, b.saveState());
    }

    @Test
    void aModelWithoutDeviceStateSaysSo() {
        BridgedDevice d = new IdentityDevice("default");
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, d::saveState);
        assertEquals(d.model() + " cannot save its device state (docs/device-state.md)", e.getMessage());
        e = assertThrows(UnsupportedOperationException.class, () -> d.loadState(new byte[0]));
        assertEquals(d.model() + " cannot load a device state (docs/device-state.md)", e.getMessage());
    }
}
