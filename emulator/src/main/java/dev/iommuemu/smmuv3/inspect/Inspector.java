package dev.iommuemu.smmuv3.inspect;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.field.Layout;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.pagetable.Walker;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cd.CdStage1;
import dev.iommuemu.smmuv3.cd.CdTable;
import dev.iommuemu.smmuv3.cd.CdValidator;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.smmuv3.streamtable.SteStage2;
import dev.iommuemu.smmuv3.streamtable.SteValidator;
import dev.iommuemu.smmuv3.streamtable.StreamTable;

/**
 * Diagnostics for tools ("why did this IOVA fault"): the STE, the CD and the table walk of a
 * transaction, decoded from guest memory at the time of the call through the declared layouts,
 * never from the model's caches (which may be stale by design). Read-only. The walk of a
 * transaction is explained by {@link dev.iommuemu.smmuv3.Smmuv3#explain}.
 */
public final class Inspector {
    /** A fetched structure: where it is, its words and layout, or why it could not be used. */
    public record Fetched(String name, long address, long[] words, Layout layout, String error) {}

    private final GuestMemory mem;
    private final Smmuv3Profile profile;

    public Inspector(GuestMemory mem, Smmuv3Profile profile) {
        this.mem = mem;
        this.profile = profile;
    }

    /** The STE of {@code sid} under the given STRTAB_BASE / STRTAB_BASE_CFG values. */
    public Fetched ste(long strtabBase, long strtabBaseCfg, int sid) {
        StreamTable.Lookup l = StreamTable.lookup(mem, profile, strtabBase, strtabBaseCfg, sid, IommuModel.NO_SUBSTREAM);
        if (l instanceof StreamTable.Fault f) {
            return new Fetched("STE", -1, new long[0], Ste.LAYOUT, f.event().type().name());
        }
        StreamTable.Found found = (StreamTable.Found) l;
        String bad = SteValidator.check(found.ste(), profile);
        if (bad == null && found.ste().stage2()) {
            bad = SteStage2.check(SteStage2.of(found.ste(), profile), profile);
        }
        return new Fetched("STE", found.address(), found.ste().words(), Ste.LAYOUT,
                bad == null ? null : "C_BAD_STE: " + bad);
    }

    /** The CD a transaction of {@code sid}/{@code ssid} uses (index 0 without a SubstreamID). */
    public Fetched cd(long strtabBase, long strtabBaseCfg, int sid, int ssid) {
        Fetched s = ste(strtabBase, strtabBaseCfg, sid);
        if (s.error() != null) {
            return new Fetched("CD", -1, new long[0], Cd.LAYOUT, s.error());
        }
        Ste ste = Ste.of(s.words());
        if (!ste.stage1()) {
            return new Fetched("CD", -1, new long[0], Cd.LAYOUT, "stage 1 does not translate (STE.Config)");
        }
        Stage2Config s2 = ste.stage2() ? SteStage2.of(ste, profile) : null;
        Walker w = new Walker(mem, profile.oasBits());
        CdTable.FetchResolver r = s2 == null ? CdTable.FetchResolver.IDENTITY : ipa -> {
            WalkResult t = w.stage2For(s2, ipa, DmaAccess.READ, dev.iommuemu.pagetable.FaultClass.CD, ipa);
            return t instanceof Translation tr ? new CdTable.Pa(tr.outputAddress())
                    : new CdTable.Faulted(dev.iommuemu.smmuv3.translate.TranslationPath.faultEvent(
                            (TranslationFault) t, sid, ssid, ipa, DmaAccess.READ, 0, false));
        };
        CdTable.Lookup l = CdTable.lookup(mem, ste, profile.ssidBits(), Math.max(ssid, 0), r, sid, ssid);
        if (l instanceof CdTable.Fault f) {
            return new Fetched("CD", -1, new long[0], Cd.LAYOUT, f.event().type().name());
        }
        CdTable.Found found = (CdTable.Found) l;
        String bad = CdValidator.check(found.cd(), profile);
        if (bad == null) {
            bad = CdStage1.check(CdStage1.of(found.cd(), profile, false));
        }
        return new Fetched("CD", found.address(), found.cd().words(), Cd.LAYOUT, bad == null ? null : "C_BAD_CD: " + bad);
    }
}
