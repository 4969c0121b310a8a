package dev.iommuemu.bridge.testing;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.Diagnostics;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.dma.Perm;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A stand-in device model for the daemon's tests: a tiny register file whose writes trigger each
 * host callback, a translation that follows a one-level table in guest memory, config space and two
 * queues. Registers (64-bit, offsets in bytes):
 * <pre>
 *   0x00 ID       RO  0x1234_5678_9abc_def0
 *   0x08 SCRATCH  RW
 *   0x10 INV      WO  write e: DmaHost.invalidate(endpoint e, iova 0x1000, size 0x1000), then INV_DONE += 1
 *   0x18 IRQ      WO  write n: DmaHost.raiseIrq(irqLines[n]) (n past the lines: ignored)
 *   0x20 MSI      WO  write d: DmaHost.msi(0xfee0_0000, d)
 *   0x28 PEEK     RW  a guest physical address; reading 0x30 returns the u64 there (or ~0 on an abort)
 *   0x38 INV_DONE RO  completed invalidations
 *   0x40 ATC_INV  WO  write s: EndpointHost.atcInvalidate(stream s, no substream, 0, all)
 * SCRATCH and INV_DONE are in the shared register mirror (docs/protocol.md §4.8).
 * </pre>
 * ATS: stream 1 translates as above, others abort "UR" (no ATS). PRI: page requests are recorded;
 * the last of a group is answered at once with a Success page response.
 * Translation: stream 1 adds 0x1_0000_0000 (RW, 4 KiB); stream 2 aborts F_TRANSLATION; stream 3
 * stalls with stag 7; stream 4 reads a table of u64 output page addresses at guest physical 0,
 * indexed by iova >> 12 (bit 0 = valid, bit 1 = writable), and aborts F_WALK_EABT outside memory.
 */
public final class FakeDevice implements BridgedDevice {
    public static final long ID = 0x1234_5678_9abc_def0L;
    public static final List<String> LINES = List.of("evtq", "priq", "cmdq-sync", "gerror");

    private final DeviceContext ctx;
    private final String profile;
    private long scratch;
    private long peek;
    private long invDone;
    private long features;
    private final byte[] config = new byte[40];
    public final List<String> calls = new CopyOnWriteArrayList<>();

    public FakeDevice(String profile, DeviceContext ctx) {
        this.profile = profile;
        this.ctx = ctx;
        // virtio-iommu config layout (virtio 1.x §5.13.4): page_size_mask, input_range, domain_range, probe_size, bypass.
        ByteBuffer b = ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0, 0xffff_ffff_ffff_f000L).putLong(8, 0).putLong(16, -1L).putInt(24, 0).putInt(28, 0xffff).putInt(32, 512);
    }

    @Override public String model() { return "fake"; }
    @Override public String profile() { return profile; }
    @Override public long mmioSize() { return 0x1000; }
    @Override public List<String> irqLines() { return LINES; }
    @Override public long virtioFeatures() { return (1L << 32) | 0b111; }
    @Override public void setVirtioFeatures(long f) { features = f; calls.add("features " + Long.toHexString(f)); }
    @Override public int numQueues() { return 2; }

    public long acceptedFeatures() {
        return features;
    }

    /** SCRATCH and INV_DONE are mirrored (docs/protocol.md §4.8). */
    @Override
    public java.util.List<dev.iommuemu.bridge.device.MirroredRegister> mirroredRegisters() {
        return java.util.List.of(new dev.iommuemu.bridge.device.MirroredRegister(0x08, 8),
                new dev.iommuemu.bridge.device.MirroredRegister(0x38, 8));
    }

    @Override
    public long mmioRead(long offset, int size) {
        long v = switch ((int) offset) {
            case 0x00 -> ID;
            case 0x08 -> scratch;
            case 0x28 -> peek;
            case 0x30 -> {
                OptionalLong o = ctx.memory().load(peek, 8);
                yield o.isPresent() ? o.getAsLong() : -1L;
            }
            case 0x38 -> invDone;
            default -> 0;
        };
        return size == 8 ? v : v & ((1L << (8 * size)) - 1);
    }

    @Override
    public void mmioWrite(long offset, int size, long value) {
        switch ((int) offset) {
            case 0x08 -> scratch = value;
            case 0x10 -> {
                ctx.host().invalidate(new IotlbInvalidation((int) value, 0x1000, 0x1000));
                invDone++;
            }
            case 0x18 -> {
                if (value >= 0 && value < LINES.size()) { // a guest's write never throws (the fuzz writes anything)
                    ctx.host().raiseIrq(LINES.get((int) value));
                }
            }
            case 0x20 -> ctx.host().msi(0xfee0_0000L, (int) value);
            case 0x28 -> peek = value;
            case 0x40 -> ctx.endpoints().atcInvalidate((int) value, IommuModel.NO_SUBSTREAM, 0, -1L);
            default -> { }
        }
    }

    @Override
    public IommuModel iommu() {
        return this::translate;
    }

    private DmaResult translate(int sid, int ssid, long iova, DmaAccess access) {
        switch (sid) {
            case 1:
                return new DmaResult.Translated(new IotlbEntry(iova & ~0xfffL, (iova & ~0xfffL) + 0x1_0000_0000L, 0xfff, Perm.UR | Perm.UW | Perm.PR | Perm.PW));
            case 2:
                return new DmaResult.Aborted("F_TRANSLATION");
            case 3:
                return new DmaResult.Stalled(3, 7);
            case 4: {
                OptionalLong d = ctx.memory().load((iova >>> 12) * 8, 8);
                if (d.isEmpty()) {
                    return new DmaResult.Aborted("F_WALK_EABT");
                }
                long desc = d.getAsLong();
                if ((desc & 1) == 0) {
                    return new DmaResult.Aborted("F_TRANSLATION");
                }
                int perm = Perm.UR | Perm.PR | ((desc & 2) != 0 ? Perm.UW | Perm.PW : 0);
                if (!Perm.allows(perm, access)) {
                    return new DmaResult.Aborted("F_PERMISSION");
                }
                return new DmaResult.Translated(new IotlbEntry(iova & ~0xfffL, desc & ~0xfffL, 0xfff, perm));
            }
            default:
                return new DmaResult.Aborted("C_BAD_STREAMID");
        }
    }

    @Override
    public DmaResult atsTranslate(int sid, int ssid, long iova, DmaAccess access) {
        return sid == 1 ? translate(sid, ssid, iova, access) : new DmaResult.Aborted("UR");
    }

    @Override
    public void pageRequest(PageRequest r) {
        calls.add("page request " + r);
        if (r.last()) {
            ctx.endpoints().pageResponse(r.streamId(), r.substreamId(), r.groupIndex(), 0);
        }
    }

    @Override
    public byte[] readConfig(int offset, int length) {
        if (offset < 0 || length < 0 || offset + length > config.length) {
            throw new IllegalArgumentException("config [" + offset + ", +" + length + ") outside 40 bytes");
        }
        byte[] out = new byte[length];
        System.arraycopy(config, offset, out, 0, length);
        return out;
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        // only the bypass byte (offset 36) is writable (virtio 1.x §5.13.4)
        if (offset != 36 || data.length != 1) {
            throw new IllegalArgumentException("config write at " + offset + " is read-only");
        }
        config[36] = data[0];
    }

    @Override
    public void queueStart(int index, Vring ring) {
        calls.add("start " + index + " " + ring);
    }

    @Override
    public int queueStop(int index) {
        calls.add("stop " + index);
        return 42;
    }

    @Override
    public void queueNotified(int index) {
        calls.add("kick " + index);
        ctx.host().raiseIrq("vq" + index);
    }

    @Override
    public Map<String, Long> counters() {
        return Map.of("fake_invalidations", invDone);
    }

    @Override
    public Diagnostics diagnostics() {
        return new Diagnostics() {
            @Override
            public Decoded ste(int streamId) {
                return new Decoded("STE", 0x8000L + 64L * streamId, new long[] {1, 0}, List.of(new FieldValue("V", "[0:0]", 1)), null);
            }

            @Override
            public Decoded cd(int streamId, int substreamId) {
                return new Decoded("CD", 0, new long[0], List.of(), "no CD tables in the fake model");
            }

            @Override
            public dev.iommuemu.smmuv3.inspect.WalkExplanation walk(int streamId, int substreamId, long iova, DmaAccess access) {
                // the fake's own translation (pure), with stream 4's one level-3 descriptor as the step
                List<dev.iommuemu.smmuv3.inspect.WalkExplanation.Step> steps = new ArrayList<>();
                if (streamId == 4) {
                    long at = (iova >>> 12) * 8;
                    OptionalLong d = ctx.memory().load(at, 8);
                    steps.add(new dev.iommuemu.smmuv3.inspect.WalkExplanation.Step(new dev.iommuemu.pagetable.WalkObserver.Read(1, 3, iova,
                            dev.iommuemu.pagetable.FaultClass.IN, 0, (int) (iova >>> 12), at, at, d.orElse(0), d.isEmpty(),
                            dev.iommuemu.pagetable.Granule.G4K, false, false), false, 0, List.of()));
                }
                DmaResult r = translate(streamId, substreamId, iova, access);
                var result = r instanceof DmaResult.Translated t
                        ? new dev.iommuemu.smmuv3.inspect.WalkExplanation.Result(t.entry(), false, null, null)
                        : new dev.iommuemu.smmuv3.inspect.WalkExplanation.Result(null, false, new dev.iommuemu.smmuv3.inspect.WalkExplanation.Fault(
                                r instanceof DmaResult.Aborted a ? a.reason() : "F_TRANSLATION", 1, 3, dev.iommuemu.pagetable.FaultClass.IN, 0,
                                streamId == 4 ? (iova >>> 12) * 8 : -1, null, true, r instanceof DmaResult.Stalled), null);
                return new dev.iommuemu.smmuv3.inspect.WalkExplanation(true, 0, dev.iommuemu.smmuv3.inspect.WalkExplanation.DecidedBy.TRANSLATION_TABLES,
                        -1, new long[0], false, -1, false, steps, result, null);
            }
        };
    }

    @Override
    public void reset() {
        scratch = 0;
        calls.add("reset");
    }

    /** Its factory: model "fake", protocol model number {@code number}. */
    public static final class Factory implements DeviceFactory {
        public final List<FakeDevice> created = new CopyOnWriteArrayList<>();
        private final String name;
        private final int number;

        public Factory() {
            this("fake", 1);
        }

        public Factory(String name, int number) {
            this.name = name;
            this.number = number;
        }

        @Override public String model() { return name; }
        @Override public int modelNumber() { return number; }
        @Override public List<String> profiles() { return List.of("default", "small"); }

        @Override
        public BridgedDevice create(String profile, DeviceContext context) {
            if (!profiles().contains(profile)) {
                throw new IllegalArgumentException("no profile " + profile);
            }
            FakeDevice d = new FakeDevice(profile, context);
            created.add(d);
            return d;
        }
    }
}
