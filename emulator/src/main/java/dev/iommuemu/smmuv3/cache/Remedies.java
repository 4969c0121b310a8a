package dev.iommuemu.smmuv3.cache;

import dev.iommuemu.pagetable.Translation;
import dev.iommuemu.pagetable.TranslationFault;
import dev.iommuemu.pagetable.WalkResult;
import dev.iommuemu.tlb.Regime;
import dev.iommuemu.tlb.TlbEntry;
import dev.iommuemu.tlb.TlbInvalidation;
import dev.iommuemu.tlb.TlbRange;
import java.util.List;

/**
 * The invalidation that would have removed a stale cached structure, as the sentence a strict-mode
 * finding carries ({@link CoherencyViolation#remedy()}): the exact command and fields for the
 * entry, then a broader command that also covers it, then CMD_SYNC (IHI 0070 §4.7.3: the
 * invalidation is only known complete after a CMD_SYNC). Pure functions of the cached entry.
 */
public final class Remedies {
    private Remedies() {}

    /** A stale STE (§4.3.1 CMD_CFGI_STE; §4.3.2 CMD_CFGI_STE_RANGE covers it too). */
    public static String ste(int sid) {
        return "CMD_CFGI_STE SID " + hex(sid) + " (or a CMD_CFGI_STE_RANGE / CMD_CFGI_ALL covering it) then CMD_SYNC";
    }

    /** A stale CD (§4.3.3 CMD_CFGI_CD, §4.3.4 CMD_CFGI_CD_ALL; {@code index} is the CD's SubstreamID). */
    public static String cd(int sid, int index) {
        return "CMD_CFGI_CD SID " + hex(sid) + " SSID " + hex(index) + " (or CMD_CFGI_CD_ALL SID " + hex(sid)
                + ") then CMD_SYNC";
    }

    /**
     * A stale TLB entry {@code e}, hit at {@code input} (the TLB's input address: a VA, an IPA for
     * {@link Regime#S2}) while the tables now give {@code now}: the commands of
     * {@link #tlbCommands} as a sentence, the first being the exact one and the rest broader
     * ones, then CMD_SYNC.
     */
    public static String tlb(TlbEntry e, long input, WalkResult now) {
        List<TlbInvalidation> cmds = tlbCommands(e, input, now);
        StringBuilder sb = new StringBuilder(command(cmds.get(0)));
        if (e.regime() == Regime.NESTED && cmds.get(0).kind() == TlbInvalidation.Kind.S2_IPA) {
            // §4.4.3.1: S2_IPA need not remove combined stage 1 + stage 2 entries; software follows it
            // with a stage 1 invalidation of the VMID.
            sb.append(" then ").append(command(cmds.get(1)));
            if (cmds.size() > 2) {
                sb.append(" (or ").append(command(cmds.get(2))).append(')');
            }
        } else if (cmds.size() > 1) {
            sb.append(" (or ").append(command(cmds.get(1))).append(')');
        }
        return sb.append(" then CMD_SYNC").toString();
    }

    /**
     * The commands that remove {@code e} (each {@link TlbInvalidation#matches} it), exact first,
     * by its regime (§3.17 tagging, §4.4 scope):
     * <ul>
     *   <li>NH: CMD_TLBI_NH_VA with the entry's VMID and ASID (CMD_TLBI_NH_VAA for a global entry,
     *       nG == 0), or CMD_TLBI_NH_ASID (CMD_TLBI_NH_ALL for a global one) (§4.4.2.1-4);</li>
     *   <li>EL2: CMD_TLBI_EL2_VA with the ASID when the entry has one (EL2-E2H, nG == 1), else
     *       CMD_TLBI_EL2_VAA; or CMD_TLBI_EL2_ASID / CMD_TLBI_EL2_ALL (§4.4.2.7-10);</li>
     *   <li>S2: CMD_TLBI_S2_IPA, or CMD_TLBI_S12_VMALL (§4.4.3);</li>
     *   <li>NESTED: what changed decides. A stage 1 change (the tables now give another IPA, a
     *       stage 1 fault, or another stage 1 leaf) is the NH form; a stage 2 change is
     *       CMD_TLBI_S2_IPA of the IPA followed by CMD_TLBI_NH_ALL of the VMID (§4.4.3.1), or
     *       CMD_TLBI_S12_VMALL; where both could have, CMD_TLBI_S12_VMALL alone.</li>
     * </ul>
     */
    public static List<TlbInvalidation> tlbCommands(TlbEntry e, long input, WalkResult now) {
        long va = input & ~0xfffL; // the commands' Address fields are [63:12] (§4.4.1)
        int vmid = e.vmid();
        int asid = e.global() ? 0 : e.asid();
        TlbRange one = TlbRange.SINGLE;
        return switch (e.regime()) {
            case NH -> e.global()
                    ? List.of(TlbInvalidation.nhVaa(vmid, va, true, one), TlbInvalidation.nhAll(vmid))
                    : List.of(TlbInvalidation.nhVa(vmid, asid, va, true, one), TlbInvalidation.nhAsid(vmid, asid));
            case EL2 -> e.global()
                    ? List.of(TlbInvalidation.el2Vaa(va, true, one), TlbInvalidation.el2All())
                    : List.of(TlbInvalidation.el2Va(asid, va, true, one), TlbInvalidation.el2Asid(asid));
            case S2 -> List.of(TlbInvalidation.s2Ipa(vmid, va, true, one), TlbInvalidation.s12Vmall(vmid));
            case NESTED -> {
                Translation was = e.translation();
                long ipa = was.ipa() + (input - was.inputAddress()); // linear within the span (<= the stage 1 leaf)
                boolean s1 = stage1Changed(was, ipa, now);
                boolean s2 = stage2Changed(was, ipa, now);
                if (s1 && !s2) {
                    yield e.global()
                            ? List.of(TlbInvalidation.nhVaa(vmid, va, true, one), TlbInvalidation.nhAll(vmid))
                            : List.of(TlbInvalidation.nhVa(vmid, asid, va, true, one), TlbInvalidation.nhAsid(vmid, asid));
                }
                if (s2 && !s1) {
                    yield List.of(TlbInvalidation.s2Ipa(vmid, ipa & ~0xfffL, true, one), TlbInvalidation.nhAll(vmid),
                            TlbInvalidation.s12Vmall(vmid));
                }
                yield List.of(TlbInvalidation.s12Vmall(vmid));
            }
        };
    }

    /** Descriptor bits hardware may update itself (AF; AP[2] / S2AP[1] for the dirty state, §3.13). */
    private static final long HW_UPDATED = dev.iommuemu.pagetable.Descriptor.AF.mask()
            | dev.iommuemu.pagetable.Descriptor.AP_RO.mask() | dev.iommuemu.pagetable.Descriptor.S2AP_W.mask();

    private static boolean stage1Changed(Translation was, long ipa, WalkResult now) {
        if (now instanceof TranslationFault f) {
            return f.stage() == 1;
        }
        Translation t = (Translation) now;
        return t.ipa() != ipa || ((t.s1Descriptor() ^ was.s1Descriptor()) & ~HW_UPDATED & ~dev.iommuemu.pagetable.Descriptor.ADDR_50.mask()
                & ~dev.iommuemu.pagetable.Descriptor.ADDR_HI_LPA.mask()) != 0;
    }

    private static boolean stage2Changed(Translation was, long ipa, WalkResult now) {
        if (now instanceof TranslationFault f) {
            return f.stage() == 2;
        }
        Translation t = (Translation) now;
        return t.ipa() == ipa && (t.outputAddress() - t.ipa() != was.outputAddress() - was.ipa()
                || ((t.s2Descriptor() ^ was.s2Descriptor()) & ~HW_UPDATED) != 0);
    }

    /** The command as a driver writes it: its name and the fields it needs (§4.4 field names). */
    public static String command(TlbInvalidation i) {
        String vmid = "VMID " + hex(i.vmid());
        String asid = "ASID " + hex(i.asid());
        String addr = hex(i.address());
        return switch (i.kind()) {
            case NH_ALL -> "CMD_TLBI_NH_ALL " + vmid;
            case NH_ASID -> "CMD_TLBI_NH_ASID " + vmid + " " + asid;
            case NH_VA -> "CMD_TLBI_NH_VA " + vmid + " " + asid + " VA " + addr;
            case NH_VAA -> "CMD_TLBI_NH_VAA " + vmid + " VA " + addr;
            case EL2_ALL -> "CMD_TLBI_EL2_ALL";
            case EL2_ASID -> "CMD_TLBI_EL2_ASID " + asid;
            case EL2_VA -> "CMD_TLBI_EL2_VA " + asid + " VA " + addr;
            case EL2_VAA -> "CMD_TLBI_EL2_VAA VA " + addr;
            case S12_VMALL -> "CMD_TLBI_S12_VMALL " + vmid;
            case S2_IPA -> "CMD_TLBI_S2_IPA " + vmid + " IPA " + addr;
            case NSNH_ALL -> "CMD_TLBI_NSNH_ALL";
            case ALL -> "CMD_TLBI_NSNH_ALL and CMD_TLBI_EL2_ALL";
        };
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
