package dev.iommuemu.tools.cli;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.Diagnostics;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.field.Access;
import dev.iommuemu.field.Field;
import dev.iommuemu.field.Register;
import java.util.List;

/** A device with diagnostics and two declared registers, for the CLI's output tests. */
final class DemoDevice implements BridgedDevice {
    static final Register IDR0 = new Register("IDR0", 0x0, 4, Access.RO,
            Field.of("S1P", 1, 1, Access.RO, 1), Field.of("TTF", 2, 2, Access.RO, 2));
    static final Register CR0 = new Register("CR0", 0x20, 4, Access.RW, Field.of("SMMUEN", 0, 1));
    private long cr0;

    @Override public String model() { return "demo"; }
    @Override public String profile() { return "default"; }
    @Override public long mmioSize() { return 0x100; }

    @Override
    public long mmioRead(long offset, int size) {
        return offset == 0 ? IDR0.reset() : offset == 0x20 ? cr0 : 0;
    }

    @Override
    public void mmioWrite(long offset, int size, long value) {
        if (offset == 0x20) {
            cr0 = value & 1;
        }
    }

    @Override
    public IommuModel iommu() {
        return (sid, ssid, iova, access) -> new DmaResult.Aborted("F_TRANSLATION");
    }

    @Override
    public Diagnostics diagnostics() {
        return new Diagnostics() {
            @Override
            public Decoded ste(int streamId) {
                return new Decoded("STE", 0x80000 + 64L * streamId, new long[] {0x5, 0}, List.of(new FieldValue("V", "[0:0]", 1), new FieldValue("Config", "[3:1]", 2)), null);
            }

            @Override
            public Decoded cd(int streamId, int substreamId) {
                return new Decoded("CD", 0, new long[0], List.of(), "C_BAD_SUBSTREAMID");
            }

            @Override
            public List<Register> registers() {
                return List.of(IDR0, CR0);
            }
        };
    }

    static final class Factory implements DeviceFactory {
        @Override public String model() { return "demo"; }
        @Override public int modelNumber() { return 0; }
        @Override public List<String> profiles() { return List.of("default"); }

        @Override
        public BridgedDevice create(String profile, DeviceContext context) {
            return new DemoDevice();
        }
    }
}
