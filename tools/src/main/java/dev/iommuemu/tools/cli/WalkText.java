package dev.iommuemu.tools.cli;

import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.DescriptorKind;
import dev.iommuemu.proto.v1.DeviceState;
import dev.iommuemu.proto.v1.Fault;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.WalkResponse;
import dev.iommuemu.proto.v1.WalkStep;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import java.util.Locale;

/** A Walk or Translate answer (control.proto) as a person reads it: iommu-emu-ctl's walk and translate. */
final class WalkText {
    private WalkText() {}

    static String hex(long v) {
        return Numbers.hex(v);
    }

    static String accessName(Access a) {
        return (a.getPrivileged() ? "privileged " : "") + (a.getWrite() ? "write" : a.getInstruction() ? "instruction fetch" : "read");
    }

    /** One line: the input, and its output or the fault with where it arose. */
    static String result(long iova, TranslateResponse t) {
        return switch (t.getResultCase()) {
            case TRANSLATED -> String.format("%s -> 0x%x (mask 0x%x, perm %s%s%s)", hex(iova), t.getTranslated().getOutputAddress(),
                    t.getTranslated().getAddressMask(), t.getTranslated().getRead() ? "r" : "-", t.getTranslated().getWrite() ? "w" : "-",
                    t.getTranslated().getExecute() ? "x" : "-");
            case FAULT -> hex(iova) + " -> fault " + fault(t.getFault());
            case STALLED -> String.format("%s -> stalled (stag %d)", hex(iova), t.getStalled().getStag());
            default -> hex(iova) + " -> no result";
        };
    }

    /**
     * "  memory attributes: Normal iWB oWB ISH" (Arm ARM D8.6) when the answer is a translation by
     * the tables that carries them; else empty.
     */
    static String attributes(TranslateResponse t) {
        if (!t.hasTranslated() || !t.getTranslated().hasAttributes()) {
            return "";
        }
        return "  memory attributes: " + t.getTranslated().getAttributes().getSummary() + "\n";
    }

    /** "F_TRANSLATION (stage 2, level 2, class IN, IPA 0x50000000)". */
    static String fault(Fault f) {
        StringBuilder b = new StringBuilder(f.getType());
        if (f.getStage() > 0) {
            b.append(" (stage ").append(f.getStage()).append(", level ").append(f.getLevel());
            if (!f.getFaultClass().isEmpty()) {
                b.append(", class ").append(f.getFaultClass());
            }
            if (f.getStage() == 2) {
                b.append(", IPA ").append(hex(f.getIpa()));
            }
            b.append(')');
        }
        if (f.getStall()) {
            b.append(", stalls");
        }
        return b.toString();
    }

    static String walk(int sid, Integer ssid, long iova, Access a, WalkResponse w) {
        StringBuilder b = new StringBuilder();
        b.append(String.format("walk of %s for stream %d%s, %s%n", hex(iova), sid, ssid != null ? " substream " + ssid : "", accessName(a)));
        b.append(state(w.getState())).append('\n');
        String group = null;
        for (WalkStep s : w.getStepsList()) {
            String g = header(s, w.getState());
            if (!g.equals(group)) {
                b.append(g).append('\n');
                group = g;
            }
            step(b, "  ", s);
            for (WalkStep s2 : s.getStage2List()) {
                step(b, "      stage 2 ", s2);
            }
        }
        b.append("result: ").append(result(iova, w.getResult())).append('\n');
        b.append(attributes(w.getResult()));
        b.append("  decided by ").append(decidedBy(w)).append('\n');
        if (w.getResult().hasFault()) {
            Fault f = w.getResult().getFault();
            if (f.hasDescriptorAddress()) {
                b.append(String.format("  faulting descriptor at %s = 0x%016x%n", hex(f.getDescriptorAddress()), f.getDescriptorValue()));
            }
            if (f.getEventRecordCount() > 0) {
                b.append("  event record").append(f.getRecorded() ? " (the SMMU writes it to the Event queue)"
                        : " (not written: CD.R / STE.S2R is 0)").append(':');
                f.getEventRecordList().forEach(x -> b.append(String.format(" 0x%016x", x)));
                b.append('\n');
            }
        }
        if (w.hasTablesResult()) {
            b.append("  the tables in memory now give: ").append(result(iova, w.getTablesResult())).append('\n');
        }
        return b.toString();
    }

    private static String state(DeviceState s) {
        if (!s.getSmmuEnabled()) {
            return String.format("state: SMMU disabled (SMMU_CR0ACK.SMMUEN 0): SMMU_GBPA %s decides (ABORT %d), no structure is read",
                    hex(s.getGbpa()), (s.getGbpa() >>> 20) & 1);
        }
        StringBuilder b = new StringBuilder("state: SMMU enabled");
        if (s.hasSteAddress()) {
            b.append(String.format("; STE at %s (%s)", hex(s.getSteAddress()), s.getSteFromCache() ? "configuration cache" : "memory"));
        }
        if (s.getSteWordsCount() > 0 && Ste.V.get(words(s)) == 0) {
            b.append(", V 0 (not valid)");
        } else if (s.hasSteConfig()) {
            b.append(", Config ").append(config(s.getSteConfig()));
        }
        if (s.hasCdAddress()) {
            b.append(String.format("; CD at %s (%s)", hex(s.getCdAddress()), s.getCdFromCache() ? "configuration cache" : "memory"));
        }
        return b.toString();
    }

    /** IHI 0070 §5.2 STE.Config. */
    private static long[] words(DeviceState s) {
        return s.getSteWordsList().stream().mapToLong(Long::longValue).toArray();
    }

    private static String config(int c) {
        String name = switch (c) {
            case 0b100 -> "bypass";
            case 0b101 -> "stage 1";
            case 0b110 -> "stage 2";
            case 0b111 -> "nested: stage 1 then stage 2";
            default -> "abort";
        };
        return String.format("0b%s (%s)", Integer.toBinaryString(c | 8).substring(1), name);
    }

    private static String header(WalkStep s, DeviceState st) {
        if (s.getStage() == 1) {
            return "stage 1, VA " + hex(firstInput(s)) + ":";
        }
        return switch (s.getPurpose()) {
            case "CD" -> "stage 2 of the CD fetch, IPA " + hex(s.getInput()) + ":";
            case "TT" -> "stage 2 of a stage 1 descriptor, IPA " + hex(s.getInput()) + ":";
            default -> st.hasSteConfig() && st.getSteConfig() == 0b111
                    ? "stage 2 of the stage 1 output, IPA " + hex(s.getInput()) + ":"
                    : "stage 2, IPA " + hex(s.getInput()) + ":";
        };
    }

    private static long firstInput(WalkStep s) {
        return s.getInput();
    }

    private static void step(StringBuilder b, String indent, WalkStep s) {
        String where = s.getDescriptorPa() == s.getDescriptorAddress() ? hex(s.getDescriptorAddress())
                : hex(s.getDescriptorAddress()) + " (PA " + hex(s.getDescriptorPa()) + ")";
        b.append(String.format("%slevel %d: table %s[%d] at %s = 0x%016x %s", indent, s.getLevel(), hex(s.getTableAddress()),
                s.getIndex(), where, s.getDescriptorValue(), kind(s)));
        if (s.hasHardwareUpdate()) {
            b.append(String.format(" (hardware update would write 0x%016x)", s.getHardwareUpdate()));
        }
        b.append('\n');
    }

    private static String kind(WalkStep s) {
        DescriptorKind k = s.getKind();
        String name = k.name().substring("DESCRIPTOR_KIND_".length()).toLowerCase(Locale.ROOT);
        return s.hasNextAddress() ? name + " -> " + hex(s.getNextAddress()) : name;
    }

    private static String decidedBy(WalkResponse w) {
        return switch (w.getDecidedBy()) {
            case DECIDED_BY_GBPA -> "SMMU_GBPA (the SMMU is disabled)";
            case DECIDED_BY_STE -> "the STE" + (w.getState().getSteWordsCount() > 0 && Ste.V.get(words(w.getState())) == 0 ? " (not valid)"
                    : w.getState().hasSteConfig() ? " (Config " + config(w.getState().getSteConfig()) + ")" : "");
            case DECIDED_BY_CD -> "the CD";
            case DECIDED_BY_TLB -> "the TLB: no walk was made; the steps above are the tables in memory now";
            case DECIDED_BY_TABLES -> "the translation tables";
            default -> "(unspecified)";
        };
    }

    static List<String> lines(String s) {
        return s.lines().toList();
    }
}
