package dev.iommuemu.bridge.control;

import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.pagetable.MemoryAttributes;
import dev.iommuemu.pagetable.WalkObserver;
import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.DecidedBy;
import dev.iommuemu.proto.v1.DescriptorKind;
import dev.iommuemu.proto.v1.DeviceState;
import dev.iommuemu.proto.v1.Fault;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.Translated;
import dev.iommuemu.proto.v1.WalkResponse;
import dev.iommuemu.proto.v1.WalkStep;
import dev.iommuemu.smmuv3.inspect.WalkExplanation;

/**
 * The control API's Walk and Translate answers (control.proto) from a model's
 * {@link WalkExplanation}: protobuf mapping only, every field as control.proto documents it.
 */
final class WalkAnswers {
    private WalkAnswers() {}

    static WalkResponse walk(WalkExplanation e, long iova, Access access) {
        WalkResponse.Builder b = WalkResponse.newBuilder().setDecidedBy(decidedBy(e.decidedBy()))
                .setBypass(e.result().bypass()).setResult(withValue(result(e.result(), iova, access), e));
        DeviceState.Builder st = DeviceState.newBuilder().setSmmuEnabled(e.smmuEnabled()).setGbpa(e.gbpa())
                .setSteFromCache(e.steCached()).setCdFromCache(e.cdCached());
        if (e.steAddress() >= 0) {
            st.setSteAddress(e.steAddress());
        }
        for (long w : e.steWords()) {
            st.addSteWords(w);
        }
        if (e.steConfig() >= 0) {
            st.setSteConfig(e.steConfig());
        }
        if (e.cdAddress() >= 0) {
            st.setCdAddress(e.cdAddress());
        }
        b.setState(st);
        for (WalkExplanation.Step s : e.steps()) {
            b.addSteps(step(s));
        }
        if (e.tables() != null) {
            b.setTablesResult(withValue(result(e.tables(), iova, access), e));
        }
        return b.build();
    }

    /** A fault's descriptor_value: the value of the step that read its descriptor. */
    private static TranslateResponse withValue(TranslateResponse t, WalkExplanation e) {
        if (!t.hasFault() || !t.getFault().hasDescriptorAddress()) {
            return t;
        }
        WalkObserver.Read r = find(e.steps(), t.getFault().getDescriptorAddress());
        if (r == null) {
            return t;
        }
        return t.toBuilder().setFault(t.getFault().toBuilder().setDescriptorValue(r.descriptor())).build();
    }

    private static WalkObserver.Read find(java.util.List<WalkExplanation.Step> steps, long pa) {
        WalkObserver.Read found = null;
        for (WalkExplanation.Step s : steps) {
            WalkObserver.Read in = find(s.stage2(), pa);
            if (in != null) {
                found = in;
            }
            if (s.read().physical() == pa && !s.read().aborted()) {
                found = s.read();
            }
        }
        return found;
    }

    static TranslateResponse result(WalkExplanation.Result r, long iova, Access access) {
        if (r.fault() == null) {
            TranslateResponse t = translated(r.entry(), iova, access);
            if (r.attributes() == null) {
                return t;
            }
            return t.toBuilder().setTranslated(t.getTranslated().toBuilder().setAttributes(attributes(r.attributes())))
                    .build();
        }
        WalkExplanation.Fault f = r.fault();
        Fault.Builder fb = Fault.newBuilder().setType(f.type()).setStage(f.stage()).setLevel(f.level())
                .setInputAddress(iova).setIpa(f.ipa()).setRecorded(f.recorded()).setStall(f.stall());
        if (f.faultClass() != null) {
            fb.setFaultClass(f.faultClass().name());
        }
        if (f.descriptorAddress() >= 0) {
            fb.setDescriptorAddress(f.descriptorAddress());
        }
        if (f.event() != null) {
            for (long w : f.event().encode()) {
                fb.addEventRecord(w);
            }
        }
        return TranslateResponse.newBuilder().setFault(fb).build();
    }

    /** A translation as control.proto's Translated: the requested address's output and the access's permissions. */
    static TranslateResponse translated(IotlbEntry e, long iova, Access access) {
        int p = e.perm();
        boolean priv = access.getPrivileged();
        return TranslateResponse.newBuilder().setTranslated(Translated.newBuilder().setOutputAddress(e.translate(iova))
                .setAddressMask(e.addrMask()).setPerm(p).setRead((p & (priv ? Perm.PR : Perm.UR)) != 0)
                .setWrite((p & (priv ? Perm.PW : Perm.UW)) != 0).setExecute((p & (priv ? Perm.PX : Perm.UX)) != 0))
                .build();
    }

    /** control.proto MemoryAttributes: the model's (Arm ARM D8.6) by the names it documents. */
    static dev.iommuemu.proto.v1.MemoryAttributes attributes(MemoryAttributes a) {
        return dev.iommuemu.proto.v1.MemoryAttributes.newBuilder().setType(a.type().name())
                .setInner(a.inner().name()).setOuter(a.outer().name()).setShareability(a.shareability().name())
                .setSummary(a.toString()).build();
    }

    private static WalkStep step(WalkExplanation.Step s) {
        WalkObserver.Read r = s.read();
        WalkStep.Builder b = WalkStep.newBuilder().setStage(r.stage()).setLevel(r.level()).setTableAddress(r.tableBase())
                .setIndex(r.index()).setDescriptorAddress(r.address()).setDescriptorPa(r.physical())
                .setDescriptorValue(r.descriptor()).setKind(kind(s.kind())).setPurpose(r.purpose().name())
                .setInput(r.input());
        if (s.next() >= 0) {
            b.setNextAddress(s.next());
        }
        if (s.updated()) {
            b.setHardwareUpdate(s.update());
        }
        for (WalkExplanation.Step s2 : s.stage2()) {
            b.addStage2(step(s2));
        }
        return b.build();
    }

    private static DescriptorKind kind(WalkObserver.Kind k) {
        return switch (k) {
            case TABLE -> DescriptorKind.DESCRIPTOR_KIND_TABLE;
            case BLOCK -> DescriptorKind.DESCRIPTOR_KIND_BLOCK;
            case PAGE -> DescriptorKind.DESCRIPTOR_KIND_PAGE;
            case INVALID -> DescriptorKind.DESCRIPTOR_KIND_INVALID;
            case RESERVED -> DescriptorKind.DESCRIPTOR_KIND_RESERVED;
            case ABORTED -> DescriptorKind.DESCRIPTOR_KIND_ABORTED;
        };
    }

    private static DecidedBy decidedBy(WalkExplanation.DecidedBy d) {
        return switch (d) {
            case GBPA -> DecidedBy.DECIDED_BY_GBPA;
            case STREAM_TABLE_ENTRY -> DecidedBy.DECIDED_BY_STE;
            case CONTEXT_DESCRIPTOR -> DecidedBy.DECIDED_BY_CD;
            case TLB -> DecidedBy.DECIDED_BY_TLB;
            case TRANSLATION_TABLES -> DecidedBy.DECIDED_BY_TABLES;
        };
    }
}
