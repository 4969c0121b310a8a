package dev.iommuemu.smmuv3;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import java.util.ArrayList;
import java.util.List;

/** A {@link DmaHost} and {@link EndpointPort} that record every call, for tests. */
public final class Recorders {
    private Recorders() {}

    public static final class Host implements DmaHost {
        public final List<String> irqs = new ArrayList<>();
        public final List<long[]> msis = new ArrayList<>();
        /** The source of each MSI in {@link #msis}, in order. */
        public final List<dev.iommuemu.dma.MsiSource> msiSources = new ArrayList<>();
        public final List<IotlbInvalidation> invalidations = new ArrayList<>();

        @Override
        public void raiseIrq(String line) {
            irqs.add(line);
        }

        @Override
        public void msi(long address, int data) {
            msi(address, data, dev.iommuemu.dma.MsiSource.OTHER);
        }

        @Override
        public void msi(long address, int data, dev.iommuemu.dma.MsiSource source) {
            msis.add(new long[] {address, data & 0xffff_ffffL});
            msiSources.add(source);
        }

        @Override
        public void invalidate(IotlbInvalidation inv) {
            invalidations.add(inv);
        }

        /** DmaHost#configurationChanged calls (walk recipes emptied, docs/protocol.md §4.8). */
        public int configChanges;

        @Override
        public void configurationChanged() {
            configChanges++;
        }

        public long count(String line) {
            return irqs.stream().filter(line::equals).count();
        }
    }

    public static final class Endpoints implements EndpointPort {
        public final List<String> calls = new ArrayList<>();

        @Override
        public void priResponse(int streamId, int ssid, int prgIndex, int response) {
            calls.add("pri sid=" + streamId + " ssid=" + ssid + " prg=" + prgIndex + " resp=" + response);
        }

        @Override
        public void atcInvalidate(int streamId, int ssid, long addr, long size, boolean global) {
            calls.add("atc sid=" + streamId + " ssid=" + ssid + " addr=0x" + Long.toHexString(addr) + " size=0x"
                    + Long.toHexString(size) + " global=" + global);
        }

        @Override
        public void stallResolved(int streamId, int stag, boolean retry) {
            calls.add("stall sid=" + streamId + " stag=" + stag + " retry=" + retry);
        }
    }
}
