package dev.iommuemu.bridge.recording;

import dev.iommuemu.bridge.device.VmmProperties;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.proto.v1.RecordedAccess;
import dev.iommuemu.proto.v1.RecordedEndpoints;
import dev.iommuemu.proto.v1.RecordedEntry;
import dev.iommuemu.proto.v1.RecordedProperties;
import dev.iommuemu.proto.v1.RecordedReservedRegion;
import dev.iommuemu.proto.v1.RecordedResult;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/** The model's values as recording.proto messages and back (docs/recording.md). */
public final class RecordingCodec {
    private RecordingCodec() {}

    public static RecordedAccess access(DmaAccess a) {
        return RecordedAccess.newBuilder().setWrite(a.write()).setInstruction(a.instruction()).setPrivileged(a.privileged()).build();
    }

    public static DmaAccess access(RecordedAccess a) {
        return new DmaAccess(a.getWrite(), a.getInstruction(), a.getPrivileged());
    }

    public static RecordedEntry entry(IotlbEntry e) {
        return RecordedEntry.newBuilder().setIova(e.iova()).setTranslatedAddr(e.translatedAddr()).setAddrMask(e.addrMask())
                .setPerm(e.perm()).build();
    }

    public static RecordedResult result(DmaResult r) {
        RecordedResult.Builder b = RecordedResult.newBuilder();
        if (r instanceof DmaResult.Translated t) {
            b.setTranslated(entry(t.entry()));
        } else if (r instanceof DmaResult.Aborted a) {
            b.setIsAborted(true).setAborted(a.reason() == null ? "" : a.reason());
        } else if (r instanceof DmaResult.Stalled s) {
            b.setIsStalled(true).setStallStreamId(s.streamId()).setStag(s.stag());
        }
        return b.build();
    }

    /** A substream for a message: unset for {@link IommuModel#NO_SUBSTREAM}. */
    public static boolean hasSubstream(int substream) {
        return substream != IommuModel.NO_SUBSTREAM;
    }

    public static RecordedEndpoints endpoints(Collection<Integer> ids) {
        return RecordedEndpoints.newBuilder().addAllIds(new TreeSet<>(ids)).build();
    }

    public static Set<Integer> endpoints(RecordedEndpoints e) {
        return Set.copyOf(e.getIdsList());
    }

    public static RecordedProperties properties(VmmProperties p) {
        RecordedProperties.Builder b = RecordedProperties.newBuilder();
        if (p.bootBypass() != null) {
            b.setBootBypass(p.bootBypass());
        }
        if (p.granule() != null) {
            b.setGranule(p.granule());
        }
        if (p.awBits() != null) {
            b.setAwBits(p.awBits());
        }
        if (p.reservedRegions() != null) {
            b.setHasReservedRegions(true);
            for (VmmProperties.ReservedRegion r : p.reservedRegions()) {
                b.addReservedRegions(RecordedReservedRegion.newBuilder().setLow(r.low()).setHigh(r.high()).setType(r.type()));
            }
        }
        if (p.unalignedMaps() != null) {
            b.setUnalignedMaps(p.unalignedMaps());
        }
        if (p.stage() != null) {
            b.setSmmuStage(p.stage().qemuName);
        }
        if (p.pciBus() != null) {
            b.setPciPrimaryBus(p.pciBus().primary()).setPciLastBus(p.pciBus().last());
        }
        return b.build();
    }

    public static VmmProperties properties(RecordedProperties p) {
        List<VmmProperties.ReservedRegion> rr = null;
        if (p.getHasReservedRegions()) {
            rr = new ArrayList<>();
            for (RecordedReservedRegion r : p.getReservedRegionsList()) {
                rr.add(new VmmProperties.ReservedRegion(r.getLow(), r.getHigh(), r.getType()));
            }
        }
        VmmProperties.SmmuStage stage = null;
        for (VmmProperties.SmmuStage s : VmmProperties.SmmuStage.values()) {
            if (s.qemuName.equals(p.getSmmuStage())) {
                stage = s;
            }
        }
        if (stage == null && !p.getSmmuStage().isEmpty()) {
            throw new IllegalArgumentException("the recording's arm-smmuv3 stage '" + p.getSmmuStage() + "' is not 1, 2 or nested");
        }
        return new VmmProperties(p.hasBootBypass() ? p.getBootBypass() : null, p.hasGranule() ? p.getGranule() : null,
                p.hasAwBits() ? p.getAwBits() : null, rr, p.hasUnalignedMaps() ? p.getUnalignedMaps() : null, stage,
                p.hasPciPrimaryBus() ? new VmmProperties.PciBus(p.getPciPrimaryBus(), p.getPciLastBus()) : null);
    }
}
