package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.cmdq.Command.*;
import static dev.iommuemu.smmuv3.cmdq.CommandQueue.CERROR_ILL;
import static dev.iommuemu.smmuv3.cmdq.CommandQueue.CERROR_NONE;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.cache.ConfigCache;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.cmdq.CommandQueue;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.translate.ContextConfig;
import dev.iommuemu.smmuv3.translate.StallTable;
import dev.iommuemu.smmuv3.translate.StreamConfig;
import java.util.function.BooleanSupplier;

/**
 * What each command does (IHI 0070 §4.2-§4.7). Invalidations act on the configuration cache and
 * the TLB, and on the VMM's cached translations through {@link DmaHost#invalidate}, all before the
 * command is consumed, so a following CMD_SYNC completes them (§4.7.3).
 */
final class Smmuv3Commands implements CommandQueue.Executor {
    private final Smmuv3Profile profile;
    private final ConfigCache<StreamConfig, ContextConfig> config;
    private final Translations translations;
    private final StallTable stalls;
    private final Interrupts irq;
    private final DmaHost host;
    private final EndpointPort endpoints;
    private final BooleanSupplier smmuEnabled;

    Smmuv3Commands(Smmuv3Profile profile, ConfigCache<StreamConfig, ContextConfig> config, Translations translations,
            StallTable stalls, Interrupts irq, DmaHost host, EndpointPort endpoints, BooleanSupplier smmuEnabled) {
        this.smmuEnabled = smmuEnabled;
        this.profile = profile;
        this.config = config;
        this.translations = translations;
        this.stalls = stalls;
        this.irq = irq;
        this.host = host;
        this.endpoints = endpoints;
    }

    @Override
    public int execute(Command c) {
        SmmuTlb tlb = translations.tlb();
        int sid = c.getInt(SID);
        switch (c.op()) {
            case CMD_PREFETCH_CONFIG, CMD_PREFETCH_ADDR -> {
                // §4.2: prefetches are hints; this model fetches on demand. Only the SubstreamID is checked.
                return ssidOk(c) ? CERROR_NONE : CERROR_ILL;
            }
            case CMD_CFGI_STE -> {
                config.invalidateSte(sid);
                host.invalidate(new IotlbInvalidation(sid, 0, -1L));
            }
            case CMD_CFGI_STE_RANGE -> {
                int range = c.getInt(CFGI_RANGE);
                if (range == 31) {
                    config.invalidateAll(); // §4.3.6: Range 31 is CMD_CFGI_ALL
                    host.invalidate(IotlbInvalidation.all());
                } else {
                    long count = 1L << (range + 1);
                    long first = (sid & 0xffff_ffffL) & ~(count - 1);
                    config.invalidateSteRange(first, count);
                    for (long s = first; s < first + count && s - first < 4096; s++) {
                        host.invalidate(new IotlbInvalidation((int) s, 0, -1L));
                    }
                    if (count > 4096) {
                        host.invalidate(IotlbInvalidation.all());
                    }
                }
            }
            case CMD_CFGI_CD -> {
                // §4.3.3: SubstreamID is the CD index; an out-of-range one (§4.1.7) simply matches no
                // cached CD here.
                config.invalidateCd(sid, c.getInt(SSID));
                host.invalidate(new IotlbInvalidation(sid, 0, -1L));
            }
            case CMD_CFGI_CD_ALL -> {
                config.invalidateCds(sid);
                host.invalidate(new IotlbInvalidation(sid, 0, -1L));
            }
            case CMD_TLBI_NH_ALL -> {
                tlb.nhAll(vmid(c));
                host.invalidate(IotlbInvalidation.all());
            }
            case CMD_TLBI_NH_ASID -> {
                tlb.nhAsid(vmid(c), asid(c));
                host.invalidate(IotlbInvalidation.all());
            }
            case CMD_TLBI_NH_VA, CMD_TLBI_NH_VAA -> {
                long[] r = range(c, TLBI_ADDR);
                if (r == null) {
                    return CERROR_ILL;
                }
                tlb.nhVa(vmid(c), c.op() == Op.CMD_TLBI_NH_VA ? asid(c) : -1, r[0], r[1]);
                host.invalidate(new IotlbInvalidation(IotlbInvalidation.ALL_ENDPOINTS, r[0], r[1]));
            }
            case CMD_TLBI_EL2_ALL -> {
                tlb.el2All();
                host.invalidate(IotlbInvalidation.all());
            }
            case CMD_TLBI_EL2_ASID -> {
                tlb.el2Asid(asid(c));
                host.invalidate(IotlbInvalidation.all());
            }
            case CMD_TLBI_EL2_VA, CMD_TLBI_EL2_VAA -> {
                long[] r = range(c, TLBI_ADDR);
                if (r == null) {
                    return CERROR_ILL;
                }
                tlb.el2Va(c.op() == Op.CMD_TLBI_EL2_VA ? asid(c) : -1, r[0], r[1]);
                host.invalidate(new IotlbInvalidation(IotlbInvalidation.ALL_ENDPOINTS, r[0], r[1]));
            }
            case CMD_TLBI_S12_VMALL -> {
                tlb.s12Vmall(vmid(c));
                host.invalidate(IotlbInvalidation.all());
            }
            case CMD_TLBI_S2_IPA -> {
                long[] r = range(c, TLBI_IPA);
                if (r == null) {
                    return CERROR_ILL;
                }
                tlb.s2Ipa(vmid(c), r[0], r[1]);
                // An IPA is not an IOVA the VMM knows: drop everything it cached.
                host.invalidate(IotlbInvalidation.all());
            }
            case CMD_TLBI_NSNH_ALL -> {
                tlb.nsnhAll();
                host.invalidate(IotlbInvalidation.all());
            }
            case CMD_ATC_INV -> {
                if (!smmuEnabled.getAsBoolean()) {
                    return CERROR_NONE; // §4.5.1: IGNORED while SMMUEN == 0
                }
                // §4.5.1: a span of 4096 * 2^Size bytes, the address aligned to it; Size 52 and above
                // invalidate everything. Without PASIDs SSV is treated as 0; G only counts with SSV.
                int size = c.getInt(ATC_SIZE);
                long bytes = size >= 52 ? -1L : 4096L << size;
                long addr = c.address(ATC_ADDR) & (bytes == -1L ? 0 : ~(bytes - 1));
                int ssid = pasid(c);
                endpoints.atcInvalidate(sid, ssid, addr, bytes, ssid >= 0 && c.is(ATC_GLOBAL));
            }
            case CMD_PRI_RESP -> {
                int code = switch (c.getInt(PRI_RESP)) {
                    case PRI_RESP_FAILURE -> EndpointPort.RESPONSE_FAILURE;
                    case PRI_RESP_INVALID -> EndpointPort.RESPONSE_INVALID_REQUEST;
                    case PRI_RESP_SUCCESS -> EndpointPort.RESPONSE_SUCCESS;
                    default -> -1;
                };
                if (code < 0) {
                    return CERROR_ILL; // §4.5.2: Resp 0b11 is ILLEGAL
                }
                if (smmuEnabled.getAsBoolean()) { // §4.5.2: IGNORED while SMMUEN == 0
                    endpoints.priResponse(sid, pasid(c), c.getInt(PRI_PRGINDEX), code);
                }
            }
            case CMD_RESUME -> {
                // §4.7.1: Ac 1 retries, 0 terminates (with abort: TERM_MODEL == 1 ignores Ab); a STAG
                // that matches no stalled transaction of the StreamID is a no-op.
                StallTable.Stalled s = stalls.resume(sid, c.getInt(RESUME_STAG));
                if (s != null) {
                    endpoints.stallResolved(sid, s.stag(), c.getInt(RESUME_AC) == RESUME_RETRY);
                }
            }
            case CMD_STALL_TERM -> { // §4.7.2
                for (StallTable.Stalled s : stalls.terminate(sid)) {
                    endpoints.stallResolved(sid, s.stag(), false);
                }
            }
            case CMD_SYNC -> {
                int cs = c.getInt(SYNC_CS);
                if (cs == 0b11) {
                    return CERROR_ILL; // §4.7.3: CS 0b11 reserved
                }
                // Every earlier command has completed synchronously; signal completion (§4.7.3).
                if (cs == CS_IRQ) {
                    irq.cmdSync(c.get(SYNC_MSIADDR) << 2, (int) c.get(SYNC_MSIDATA));
                }
                // CS_SEV: a WFE wake-up event (SIG_NONE without IDR0.SEV, §4.7.3); a guest polling
                // CMDQ_CONS already sees the SYNC consumed, which is all SEV promises.
            }
            default -> {
                return CERROR_ILL;
            }
        }
        return CERROR_NONE;
    }

    /** The PASID of an ATS/PRI command: SSV without PASID support behaves as SSV == 0 (§4.5). */
    private int pasid(Command c) {
        return c.is(SSV) && profile.ssidBits() > 0 ? c.getInt(SSID) & ((1 << profile.ssidBits()) - 1) : -1;
    }

    private boolean ssidOk(Command c) {
        // §4.1: a SubstreamID beyond IDR1.SSIDSIZE makes the command ILLEGAL.
        return !c.is(SSV) || (c.getInt(SSID) >>> profile.ssidBits()) == 0;
    }

    private int vmid(Command c) {
        return profile.s2() ? c.getInt(TLBI_VMID) : 0;
    }

    private int asid(Command c) {
        return c.getInt(TLBI_ASID);
    }

    /**
     * The [start, size] a VA or IPA invalidation covers (§4.4.1.1 range-based invalidation): without
     * TG the one address (any entry containing it); with TG (IDR3.RIL) {@code (NUM + 1) * 2^SCALE}
     * granules from the address, not wrapping. {@code null} for TG 16KB with TTL 0b01 without DS,
     * which §4.4.1.1 makes CERROR_ILL.
     */
    private long[] range(Command c, dev.iommuemu.field.Field addrField) {
        long addr = c.address(addrField);
        int tg = c.getInt(TLBI_TG);
        if (tg == 0 || !profile.ril()) {
            // One address: every entry holding it (a 4KB span touches exactly those, entries being
            // at least 4KB-aligned). Without RIL, TG, TTL, NUM and SCALE are RES0 and ignored.
            return new long[] {addr, 4096};
        }
        if (tg == 0b10 && c.getInt(TLBI_TTL) == 0b01) {
            return null;
        }
        int granuleShift = switch (tg) {
            case 1 -> 12;
            case 2 -> 14;
            default -> 16;
        };
        int shift = c.getInt(TLBI_SCALE) + granuleShift;
        long num = c.getInt(TLBI_NUM) + 1L;
        long size = shift + 6 >= 64 ? -1L : num << shift; // NUM + 1 <= 32: 6 bits
        return new long[] {addr, size};
    }
}
