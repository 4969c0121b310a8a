package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.cmdq.Command.*;
import static dev.iommuemu.smmuv3.cmdq.CommandQueue.CERROR_ILL;
import static dev.iommuemu.smmuv3.cmdq.CommandQueue.CERROR_NONE;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.smmuv3.cmdq.PendingInvalidations;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.cache.ConfigCache;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.cmdq.CommandQueue;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.translate.ContextConfig;
import dev.iommuemu.smmuv3.translate.StallTable;
import dev.iommuemu.smmuv3.translate.StreamConfig;
import dev.iommuemu.tlb.Tlb;
import dev.iommuemu.tlb.TlbInvalidation;
import dev.iommuemu.tlb.TlbRange;
import java.util.function.BooleanSupplier;

/**
 * What each command does (IHI 0070 §4.2-§4.7). Invalidations act on the configuration cache and
 * the TLB, and on the VMM's cached translations through {@link DmaHost#invalidate}, all before the
 * command is consumed, so a following CMD_SYNC completes them (§4.7.3).
 */
final class Smmuv3Commands implements CommandQueue.Executor {
    private final Smmuv3Profile profile;
    private final ConfigCache<StreamConfig, ContextConfig> config;
    private final Tlb tlb;
    private final StallTable stalls;
    private final Interrupts irq;
    private final PendingInvalidations vmm;
    /** Told of every CMD_CFGI_* at once (DmaHost#configurationChanged: walk recipes, docs/protocol.md §4.8). */
    private final DmaHost host;
    private final EndpointPort endpoints;
    private final BooleanSupplier smmuEnabled;

    Smmuv3Commands(Smmuv3Profile profile, ConfigCache<StreamConfig, ContextConfig> config, Tlb tlb,
            StallTable stalls, Interrupts irq, DmaHost host, EndpointPort endpoints, BooleanSupplier smmuEnabled) {
        this.smmuEnabled = smmuEnabled;
        this.profile = profile;
        this.config = config;
        this.tlb = tlb;
        this.stalls = stalls;
        this.irq = irq;
        this.vmm = new PendingInvalidations(host);
        this.host = host;
        this.endpoints = endpoints;
    }

    /**
     * End of a batch of commands: send what is pending, so that the VMM's cache does not stay stale
     * past the guest's last published command even without a CMD_SYNC.
     */
    @Override
    public void endOfBatch() {
        vmm.flush();
    }

    /** The CMD_SYNC just executed whose completion is to be signalled ({MSIAddress, MSIData}), or null. */
    private long[] syncSignal;

    @Override
    public void consumed() {
        long[] s = syncSignal;
        if (s != null) {
            syncSignal = null;
            irq.cmdSync(s[0], (int) s[1]);
        }
    }

    /** docs/protocol.md §4.12: the VMM signalled the CMD_SYNC it consumed; its MSI is not written again. */
    @Override
    public void consumedByVmm() {
        syncSignal = null;
    }

    @Override
    public int execute(Command c) {
        syncSignal = null;
        int sid = c.getInt(SID);
        switch (c.op()) {
            case CMD_PREFETCH_CONFIG, CMD_PREFETCH_ADDR -> {
                // §4.2: prefetches are hints; this model fetches on demand. Only the SubstreamID is checked.
                return ssidOk(c) ? CERROR_NONE : CERROR_ILL;
            }
            case CMD_CFGI_STE -> {
                config.invalidateSte(sid);
                host.configurationChanged(); // docs/protocol.md §4.8: walk recipes emptied before the CMD_SYNC completes
                vmm.add(new IotlbInvalidation(sid, 0, -1L));
            }
            case CMD_CFGI_STE_RANGE -> {
                int range = c.getInt(CFGI_RANGE);
                host.configurationChanged();
                if (range == 31) {
                    config.invalidateAll(); // §4.3.6: Range 31 is CMD_CFGI_ALL
                    vmm.add(IotlbInvalidation.all());
                } else {
                    long count = 1L << (range + 1);
                    long first = (sid & 0xffff_ffffL) & ~(count - 1);
                    config.invalidateSteRange(first, count);
                    for (long s = first; s < first + count && s - first < 4096; s++) {
                        vmm.add(new IotlbInvalidation((int) s, 0, -1L));
                    }
                    if (count > 4096) {
                        vmm.add(IotlbInvalidation.all());
                    }
                }
            }
            case CMD_CFGI_CD -> {
                // §4.3.3: SubstreamID is the CD index; an out-of-range one (§4.1.7) simply matches no
                // cached CD here.
                config.invalidateCd(sid, c.getInt(SSID));
                host.configurationChanged();
                vmm.add(new IotlbInvalidation(sid, 0, -1L));
            }
            case CMD_CFGI_CD_ALL -> {
                config.invalidateCds(sid);
                host.configurationChanged();
                vmm.add(new IotlbInvalidation(sid, 0, -1L));
            }
            case CMD_TLBI_NH_ALL -> tlbi(TlbInvalidation.nhAll(vmid(c)), null);
            case CMD_TLBI_NH_ASID -> tlbi(TlbInvalidation.nhAsid(vmid(c), asid(c)), null);
            case CMD_TLBI_NH_VA, CMD_TLBI_NH_VAA, CMD_TLBI_EL2_VA, CMD_TLBI_EL2_VAA, CMD_TLBI_S2_IPA -> {
                TlbRange range = range(c);
                if (range == null) {
                    return CERROR_ILL;
                }
                boolean s2 = c.op() == Op.CMD_TLBI_S2_IPA;
                long addr = c.address(s2 ? TLBI_IPA : TLBI_ADDR);
                boolean leaf = c.is(TLBI_LEAF);
                TlbInvalidation inv = switch (c.op()) {
                    case CMD_TLBI_NH_VA -> TlbInvalidation.nhVa(vmid(c), asid(c), addr, leaf, range);
                    case CMD_TLBI_NH_VAA -> TlbInvalidation.nhVaa(vmid(c), addr, leaf, range);
                    case CMD_TLBI_EL2_VA -> TlbInvalidation.el2Va(asid(c), addr, leaf, range);
                    case CMD_TLBI_EL2_VAA -> TlbInvalidation.el2Vaa(addr, leaf, range);
                    default -> TlbInvalidation.s2Ipa(vmid(c), addr, leaf, range);
                };
                // The VMM caches IOVAs: a VA range is passed on; an IPA is not an IOVA it knows.
                tlbi(inv, s2 ? IotlbInvalidation.all() : vmmRange(addr, range));
            }
            case CMD_TLBI_EL2_ALL -> tlbi(TlbInvalidation.el2All(), null);
            case CMD_TLBI_EL2_ASID -> tlbi(TlbInvalidation.el2Asid(asid(c)), null);
            case CMD_TLBI_S12_VMALL -> tlbi(TlbInvalidation.s12Vmall(vmid(c)), null);
            case CMD_TLBI_NSNH_ALL -> tlbi(TlbInvalidation.nsnhAll(), null);
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
                // §4.7.3: the SYNC completes only once every earlier invalidation has completed,
                // including the VMM's copies of the translations.
                vmm.flush();
                // Every earlier command has now completed; completion is signalled once the SYNC is
                // consumed (consumed(): CMDQ_CONS past it first).
                if (cs == CS_IRQ) {
                    syncSignal = new long[] {c.get(SYNC_MSIADDR) << 2, c.get(SYNC_MSIDATA)};
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

    /** Carries out a TLBI on the TLB now, and on the VMM's cache at the next SYNC ({@code null}: everything). */
    private void tlbi(TlbInvalidation inv, IotlbInvalidation forVmm) {
        tlb.invalidate(inv);
        vmm.add(forVmm == null ? IotlbInvalidation.all() : forVmm);
    }

    /**
     * TG/NUM/SCALE/TTL (§4.4.1.1): RES0 and ignored without IDR3.RIL; with it, TG 16KB with TTL
     * 0b01 acts as TTL 0 (no DS), and TG != 0 with NUM = SCALE = TTL = 0 is Reserved: {@code null},
     * which the caller turns into CERROR_ILL.
     */
    private TlbRange range(Command c) {
        int tg = c.getInt(TLBI_TG);
        if (tg == 0 || !profile.ril()) {
            return TlbRange.SINGLE;
        }
        int ttl = c.getInt(TLBI_TTL);
        if (tg == 0b10 && ttl == 0b01) {
            ttl = 0;
        }
        TlbRange r = new TlbRange(tg, c.getInt(TLBI_NUM), c.getInt(TLBI_SCALE), ttl);
        return r.reserved() ? null : r;
    }

    /** What the VMM must drop for a VA invalidation: the range, or the 4KB holding one address. */
    private static IotlbInvalidation vmmRange(long addr, TlbRange range) {
        if (!range.isRange()) {
            return new IotlbInvalidation(IotlbInvalidation.ALL_ENDPOINTS, addr & ~0xfffL, 4096);
        }
        long first = range.start(addr);
        long last = range.end(addr);
        return last == -1L && first == 0 ? IotlbInvalidation.all()
                : new IotlbInvalidation(IotlbInvalidation.ALL_ENDPOINTS, first, last - first + 1);
    }
}
