package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.IotlbInvalidation;
import dev.iommuemu.dma.MsiSource;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.field.Register;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage1Config;
import dev.iommuemu.pagetable.WalkRecipe;
import dev.iommuemu.smmuv3.ats.AtsResponse;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.cache.CoherencyViolation;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.cache.ConfigCache;
import dev.iommuemu.smmuv3.cache.ViolationListener;
import dev.iommuemu.smmuv3.cmdq.CommandQueue;
import dev.iommuemu.smmuv3.evtq.EventQueue;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.priq.PriQueue;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.registers.RegisterFile;
import dev.iommuemu.smmuv3.state.StateCheck;
import dev.iommuemu.smmuv3.state.StateRefusedException;
import dev.iommuemu.smmuv3.state.Smmuv3State;
import dev.iommuemu.smmuv3.streamtable.Ste;
import dev.iommuemu.smmuv3.translate.ContextConfig;
import dev.iommuemu.smmuv3.translate.StallTable;
import dev.iommuemu.smmuv3.translate.StreamConfig;
import dev.iommuemu.smmuv3.translate.TranslationPath;
import dev.iommuemu.tlb.Tlb;
import dev.iommuemu.tlb.TlbStats;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Optional;

/**
 * An emulated Arm SMMUv3 (IHI 0070) as a guest driver sees it: the two-page MMIO window, and DMA
 * translation for endpoints. It wires the parts together and delegates: registers
 * ({@link RegisterFile}), the command queue ({@link CommandQueue} executing through
 * {@link Smmuv3Commands}), the event and PRI queues, interrupts, the configuration cache, the
 * translation path and its TLB ({@link Translations}).
 *
 * <p>A functional core: no threads; not thread-safe (the shell serialises calls). Command queue
 * processing happens synchronously in the {@code CMDQ_PROD} write that makes commands visible.
 */
public final class Smmuv3 implements IommuModel {

    /**
     * Model options.
     *
     * @param strict             report each missing invalidation (STE, CD, TLB) as a
     *                           {@link CoherencyViolation}; off by default
     * @param configCacheEntries bound on cached STEs and on cached CDs
     * @param tlbEntries         bound on TLB entries
     */
    public record Options(boolean strict, int configCacheEntries, int tlbEntries) {
        public static final Options DEFAULT = new Options(false, 4096, 8192);

        public Options withStrict(boolean s) {
            return new Options(s, configCacheEntries, tlbEntries);
        }
    }

    /** How many coherency violations are kept for {@link #coherencyViolations()}. */
    private static final int MAX_VIOLATIONS = 256;

    private final GuestMemory mem;
    private final DmaHost host;
    private final Smmuv3Profile profile;
    private final EndpointPort endpoints;
    private final Options options;
    private final RegisterFile regs = new RegisterFile(ALL);
    private final Interrupts irq;
    private final EventQueue evtq;
    private final PriQueue priq;
    private final ConfigCache<StreamConfig, ContextConfig> configCache;
    private final StallTable stalls;
    private final Tlb tlb;
    private final Translations translations;
    private final TranslationPath path;
    private final CommandQueue cmdq;
    private final Deque<CoherencyViolation> violations = new ArrayDeque<>();
    /** Stall records waiting for the Event queue to become writable (bounded by STALL_MAX). */
    private final Deque<EventRecord> pendingStallRecords = new ArrayDeque<>();
    private long violationCount;
    private ViolationListener listener = ViolationListener.NONE;
    /** Service failure mode (IHI 0070 §12.3, §6.3 SMMU_GERROR.SFM_ERR): left only by a reset. */
    private boolean serviceFailure;

    public Smmuv3(GuestMemory mem, DmaHost host, Smmuv3Profile profile, EndpointPort endpoints, Options options) {
        this.mem = mem;
        this.host = host;
        this.profile = profile;
        this.endpoints = endpoints;
        this.options = options;
        this.irq = new Interrupts(regs, mem, host, profile);
        this.evtq = new EventQueue(regs, mem, irq, profile);
        this.priq = new PriQueue(regs, mem, irq, profile, endpoints);
        this.configCache = new ConfigCache<>(options.configCacheEntries());
        this.stalls = new StallTable(Math.max(profile.stallMax(), 1));
        this.tlb = new Tlb(options.tlbEntries());
        this.path = new TranslationPath(mem, profile, configCache, tlb,
                options.strict() ? this::violation : null, () -> CR2_E2H.isSet(regs.get(CR2)));
        this.translations = new Translations(path, tlb);
        Smmuv3Commands commands = new Smmuv3Commands(profile, configCache, tlb, stalls, irq, host, endpoints,
                () -> CR0_SMMUEN.isSet(regs.get(CR0ACK)));
        this.cmdq = new CommandQueue(regs, mem, irq, profile, commands);
        reset();
    }

    /** A device with the default options and no endpoint port. */
    public Smmuv3(GuestMemory mem, DmaHost host, Smmuv3Profile profile) {
        this(mem, host, profile, EndpointPort.NONE, Options.DEFAULT);
    }

    public Smmuv3Profile profile() {
        return profile;
    }

    public Options options() {
        return options;
    }

    /** Power-on reset (IHI 0070 §6.3: each register's reset value; caches empty). */
    public void reset() {
        regs.reset();
        regs.set(IDR0, profile.idr0() & 0xffff_ffffL);
        regs.set(IDR1, profile.idr1() & 0xffff_ffffL);
        regs.set(IDR2, profile.idr2() & 0xffff_ffffL);
        regs.set(IDR3, profile.idr3() & 0xffff_ffffL);
        regs.set(IDR4, profile.idr4() & 0xffff_ffffL);
        regs.set(IDR5, profile.idr5() & 0xffff_ffffL);
        regs.set(IIDR, profile.iidr() & 0xffff_ffffL);
        regs.set(AIDR, profile.aidr() & 0xffff_ffffL);
        configCache.invalidateAll();
        host.configurationChanged(); // walk recipes came from the configuration just dropped
        translations.invalidateAll();
        stalls.drain();
        pendingStallRecords.clear();
        serviceFailure = false; // a reset is the only way out of service failure mode
    }

    // ------------------------------------------------------------------------------------------
    // MMIO (IHI 0070 §6)

    /** A guest read of {@code size} (4 or 8) bytes at {@code offset} in the 0x20000-byte window. */
    public long mmioRead(long offset, int size) {
        Register r = regs.at(offset);
        if (r != null && !present(r)) {
            return 0;
        }
        return regs.read(offset, size);
    }

    /** A guest write; side effects (handshakes, queue processing) complete before it returns. */
    public void mmioWrite(long offset, int size, long value) {
        Register r = regs.target(offset, size);
        if (r != CMDQ_PROD && r != EVENTQ_CONS && r != PRIQ_CONS && r != GERRORN && r != IRQ_CTRL) {
            // docs/protocol.md §4.8 walk recipes: any other register may change what the recipes
            // reproduce (SMMU_CR0.SMMUEN, SMMU_STRTAB_BASE, SMMU_CR2.E2H ...); emptied first, cheaply.
            // Queue pointers and interrupt controls do not; CFGI commands the CMDQ_PROD write runs
            // empty them themselves (Smmuv3Commands).
            host.configurationChanged();
        }
        if (r == null || !present(r)) {
            return; // RAZ/WI (§6.2)
        }
        long old = regs.get(r);
        long v = regs.merged(r, offset, size, value);
        if (guarded(r)) {
            return; // §6.2 Guarded registers: writes while their enable is set are ignored
        }
        if (r == GBPA) {
            writeGbpa(v);
            return;
        }
        if (r == CR2 && !profile.hyp()) {
            v = CR2_E2H.insert(v, 0); // §6.3 SMMU_CR2: E2H is RES0 without IDR0.Hyp
        }
        regs.set(r, v);
        if (r == CR0) {
            writeCr0(old, v);
        } else if (r == IRQ_CTRL) {
            // §6.3 SMMU_IRQ_CTRL: the new enables take effect at once and are acknowledged in
            // IRQ_CTRLACK; PRIQ_IRQEN is RES0 without PRI.
            if (!profile.pri()) {
                v = IRQ_CTRL_PRIQ_IRQEN.insert(v, 0);
                regs.set(IRQ_CTRL, v);
            }
            regs.set(IRQ_CTRLACK, v);
        } else if (r == GERRORN) {
            processCommands(); // an acknowledged CMDQ_ERR lets consumption resume (§7.1)
            flushStallRecords();
        } else if (r == CMDQ_PROD) {
            processCommands();
        } else if (r == EVENTQ_CONS) {
            flushStallRecords();
        }
    }

    /** Consumes commands, unless in service failure mode, where the queue is not consumed. */
    private void processCommands() {
        if (!serviceFailure) {
            cmdq.process();
        }
    }

    /** Writes held stall records while the Event queue is writable (§7.2.1). */
    private void flushStallRecords() {
        while (!serviceFailure && !pendingStallRecords.isEmpty() && evtq.writable()) {
            EventRecord e = pendingStallRecords.peekFirst();
            if (!stalls.held(e.streamId(), e.stag())) {
                pendingStallRecords.removeFirst(); // resolved before it could be recorded (§4.7.2)
                continue;
            }
            if (!evtq.record(e)) {
                return;
            }
            pendingStallRecords.removeFirst();
        }
    }

    /** Registers whose features the profile lacks are RES0 (§6.3: "present only when ..."). */
    private boolean present(Register r) {
        return profile.hasRegister(r);
    }

    private boolean guarded(Register r) {
        long ack = regs.get(CR0ACK);
        long irqAck = regs.get(IRQ_CTRLACK);
        if (r == STRTAB_BASE || r == STRTAB_BASE_CFG) {
            return CR0_SMMUEN.isSet(ack); // §6.3 SMMU_STRTAB_BASE
        }
        if (r == CMDQ_BASE || r == CMDQ_CONS) {
            return CR0_CMDQEN.isSet(ack); // §6.3 SMMU_CMDQ_BASE, §6.3 SMMU_CMDQ_CONS
        }
        if (r == EVENTQ_BASE || r == EVENTQ_PROD) {
            return CR0_EVENTQEN.isSet(ack); // §6.3 SMMU_EVENTQ_BASE, §6.3 SMMU_EVENTQ_PROD
        }
        if (r == PRIQ_BASE || r == PRIQ_PROD) {
            return CR0_PRIQEN.isSet(ack); // §6.3 SMMU_PRIQ_BASE
        }
        if (r == GERROR_IRQ_CFG0 || r == GERROR_IRQ_CFG1 || r == GERROR_IRQ_CFG2) {
            return IRQ_CTRL_GERROR_IRQEN.isSet(irqAck); // §6.3 SMMU_GERROR_IRQ_CFG0
        }
        if (r == EVENTQ_IRQ_CFG0 || r == EVENTQ_IRQ_CFG1 || r == EVENTQ_IRQ_CFG2) {
            return IRQ_CTRL_EVENTQ_IRQEN.isSet(irqAck);
        }
        if (r == PRIQ_IRQ_CFG0 || r == PRIQ_IRQ_CFG1 || r == PRIQ_IRQ_CFG2) {
            return IRQ_CTRL_PRIQ_IRQEN.isSet(irqAck);
        }
        return false;
    }

    private void writeCr0(long old, long v) {
        // §6.3 SMMU_CR0: features the profile lacks stay 0; the change completes at once, shown in CR0ACK.
        if (!profile.pri()) {
            v = CR0_PRIQEN.insert(v, 0);
        }
        if (!profile.ats()) {
            v = CR0_ATSCHK.insert(v, 0);
        }
        v = CR0_VMW.insert(v, 0); // IDR0.VMW == 0: VMID wildcards are not implemented
        regs.set(CR0, v);
        regs.set(CR0ACK, v);
        if (CR0_SMMUEN.isSet(old) != CR0_SMMUEN.isSet(v)) {
            // Translations the VMM cached under the old mode (bypass/GBPA or tables) are stale.
            host.invalidate(IotlbInvalidation.all());
            if (!CR0_SMMUEN.isSet(v)) {
                for (StallTable.Stalled s : stalls.drain()) {
                    endpoints.stallResolved(s.streamId(), s.stag(), false);
                }
            }
        }
        if (!CR0_SMMUEN.isSet(v)) {
            pendingStallRecords.clear(); // the stalls were terminated above
        }
        if (CR0_CMDQEN.isSet(v)) {
            processCommands();
        }
        flushStallRecords();
    }

    private void writeGbpa(long v) {
        // §6.3 SMMU_GBPA: a write with Update == 1 changes the fields and completes at once (Update reads 0);
        // a write with Update == 0 has no effect.
        if (!GBPA_UPDATE.isSet(v)) {
            return;
        }
        regs.set(GBPA, GBPA_UPDATE.insert(v, 0));
        if (!CR0_SMMUEN.isSet(regs.get(CR0ACK))) {
            host.invalidate(IotlbInvalidation.all());
        }
    }

    // ------------------------------------------------------------------------------------------
    // DMA translation (IHI 0070 §3.2)

    @Override
    public DmaResult translate(int streamId, int substreamId, long iova, DmaAccess access) {
        if (serviceFailure) {
            return new DmaResult.Aborted("SFM"); // service failure mode terminates every transaction
        }
        if (!CR0_SMMUEN.isSet(regs.get(CR0ACK))) {
            // §3.2, §6.3 SMMU_GBPA: with SMMUEN == 0, SMMU_GBPA decides: abort, or bypass.
            if (GBPA_ABORT.isSet(regs.get(GBPA))) {
                return new DmaResult.Aborted("GBPA.ABORT");
            }
            return gbpaBypass();
        }
        Translations.Result r = translations.translate(regs.get(STRTAB_BASE), regs.get(STRTAB_BASE_CFG), streamId,
                substreamId, iova, access);
        if (r instanceof Translations.Hit h) {
            return new DmaResult.Translated(h.entry());
        }
        if (r instanceof Translations.BypassResult) {
            return steBypass(profile.oasBits());
        }
        Translations.Miss m = (Translations.Miss) r;
        EventRecord ev = m.event();
        // §7.2.1: events caused by stalled transactions are not discarded when the Event queue is
        // not writable (disabled by EVENTQEN == 0, full, or with EVENTQ_ABT_ERR active): the
        // transaction stays stalled and its record is written once the queue is writable (§3.12.2:
        // software learns of the stall only when it enables the queue). Only STALL_MAX bounds it.
        if (m.stall()) {
            int stag = stalls.allocate(streamId);
            if (stag >= 0) {
                // §3.12.2: the transaction is held; its record carries Stall == 1 and the STAG. A
                // stall record the queue cannot take now is kept and written once it can (§7.2.1).
                EventRecord held = withStall(ev, stag);
                stalls.hold(new StallTable.Stalled(streamId, substreamId, stag, iova, access));
                if (!evtq.record(held)) {
                    pendingStallRecords.addLast(held);
                }
                return new DmaResult.Stalled(streamId, stag);
            }
        }
        if (ev != null && m.record()) {
            evtq.record(ev);
        }
        return new DmaResult.Aborted(m.reason());
    }

    /**
     * IommuModel: a translation as CMD_PREFETCH_ADDR makes one (§4.2.2), for the VMM's cache: only
     * with SMMUEN == 1 (§4.2: "consumed but do not trigger a prefetch" otherwise), through the
     * configuration and TLB like a transaction, but a fault records nothing and stalls nothing
     * (§4.2) and no descriptor is written; bypass gives nothing.
     */
    @Override
    public IotlbEntry speculate(int streamId, int substreamId, long iova, DmaAccess access) {
        if (!CR0_SMMUEN.isSet(regs.get(CR0ACK)) || serviceFailure) {
            return null;
        }
        return translations.prefetch(regs.get(STRTAB_BASE), regs.get(STRTAB_BASE_CFG), streamId, substreamId, iova,
                access);
    }

    static EventRecord withStall(EventRecord e, int stag) {
        return new EventRecord(e.type(), e.streamId(), e.ssv(), e.substreamId(), stag, true, e.rnw(), e.ind(),
                e.pnu(), e.s2(), e.faultClass(), e.inputAddr(), e.ipa(), e.reason());
    }

    static DmaResult identity(long iova) {
        return new DmaResult.Translated(new IotlbEntry(iova & ~0xfffL, iova & ~0xfffL, 0xfff, Perm.ALL));
    }

    /**
     * SMMUEN == 0 with GBPA.ABORT == 0: every transaction bypasses, whatever its address (IHI 0070
     * §3.2, §6.3.14 SMMU_GBPA), so the answer is one entry over the whole input space, not a 4 KiB
     * page: the VMM caches it once (a CR0 or GBPA write invalidates the VMM's cache, §6.3.9).
     */
    static DmaResult gbpaBypass() {
        return new DmaResult.Translated(new IotlbEntry(0, 0, -1L, Perm.ALL));
    }

    /**
     * An STE (or S1DSS) bypass of both stages: the identity up to the OAS, beyond which the bypass
     * raises F_ADDR_SIZE (§3.4, TranslationPath.bypass), as one entry of that extent; CMD_CFGI_STE
     * invalidates the StreamID's whole range in the VMM's cache (Smmuv3Commands).
     */
    static DmaResult steBypass(int oasBits) {
        return new DmaResult.Translated(new IotlbEntry(0, 0, (1L << oasBits) - 1, Perm.ALL));
    }

    // ------------------------------------------------------------------------------------------
    // ATS and PRI (IHI 0070 §3.9)

    /**
     * A PCIe ATS Translation Request from endpoint {@code streamId} (§3.9.1.2). Not allowed (SMMU
     * disabled, STE.EATS == 0, STE bypass or abort) gives F_BAD_ATS_TREQ and UR (§7.3.6); a broken
     * configuration gives UR without an event; a translation fault gives a no-access completion.
     * Never stalls, never records translation faults.
     */
    public AtsResponse atsTranslate(int streamId, int substreamId, long address, DmaAccess access) {
        return atsTranslate(streamId, substreamId, address, access.write(), access.instruction(), access.privileged());
    }

    /**
     * {@link #atsTranslate(int, int, long, DmaAccess)} with the request's PCIe fields (§13.7):
     * {@code write} is NW == 0, {@code exe} and {@code priv} the PASID prefix's Execute_Requested and
     * Privileged_Mode_Requested (a request may ask for write and Exe together, which a
     * {@link DmaAccess} cannot express).
     */
    public AtsResponse atsTranslate(int streamId, int substreamId, long address, boolean write, boolean exe,
            boolean priv) {
        if (!profile.ats()) {
            return AtsResponse.unsupported();
        }
        if (serviceFailure) {
            return AtsResponse.completerAbort(); // §12.3: in SFM PCIe requests are answered CA
        }
        return translations.ats(regs.get(CR0ACK), regs.get(STRTAB_BASE), regs.get(STRTAB_BASE_CFG), streamId,
                substreamId, address, write, exe, priv, evtq);
    }

    /**
     * An ATS Translated transaction (the address is already a PA, §3.9.1). With CR0.ATSCHK == 0 it
     * bypasses the SMMU. With ATSCHK == 1 (§5.2 STE.V, STE.Config, STE.EATS; §7.3.8): an invalid
     * STE or Config abort terminates it silently; bypass, or an effective EATS other than full ATS,
     * gives F_TRANSL_FORBIDDEN. SMMUEN == 0 always gives F_TRANSL_FORBIDDEN.
     */
    public DmaResult translatedTransaction(int streamId, long address, DmaAccess access) {
        if (serviceFailure) {
            return new DmaResult.Aborted("SFM");
        }
        long ack = regs.get(CR0ACK);
        boolean forbidden = !CR0_SMMUEN.isSet(ack);
        if (!forbidden && CR0_ATSCHK.isSet(ack)) {
            Ste ste = translations.steFor(regs.get(STRTAB_BASE), regs.get(STRTAB_BASE_CFG), streamId);
            if (ste == null || ste.abort()) {
                return new DmaResult.Aborted("ATSCHK: invalid STE or Config abort");
            }
            forbidden = ste.eats() != 0b01 || ste.config() == Ste.CONFIG_BYPASS;
        }
        if (forbidden) {
            evtq.record(new EventRecord(EventType.F_TRANSL_FORBIDDEN, streamId, false, 0, 0, false, !access.write(),
                    false, false, false, 0, address, 0, 0));
            return new DmaResult.Aborted("F_TRANSL_FORBIDDEN");
        }
        return identity(address);
    }

    /** A PRI Page Request from an endpoint (§8): queued on the PRI queue, or discarded. */
    public boolean pageRequest(PageRequest req) {
        if (!profile.pri() || serviceFailure) {
            return false;
        }
        return priq.enqueue(req);
    }

    /**
     * A speculative page request hint from a client device (§7.3.19 E_PAGE_REQUEST): recorded in
     * the Event queue for software to page in {@code spanPages} 4KB pages at {@code address}; no
     * response is owed. {@code perms} is {@link EventRecord#pageRequestHint}'s low 6 bits. Returns
     * whether it was recorded (SMMUEN == 1 and a writable queue).
     */
    public boolean pageRequestHint(int streamId, int substreamId, long address, int spanPages, int perms) {
        if (!CR0_SMMUEN.isSet(regs.get(CR0ACK)) || serviceFailure) {
            return false;
        }
        boolean ssv = substreamId != NO_SUBSTREAM;
        return evtq.record(new EventRecord(EventType.E_PAGE_REQUEST, streamId, ssv, ssv ? substreamId : 0, 0, false,
                false, false, false, false, 0, address, 0, EventRecord.pageRequestHint(spanPages, perms)));
    }

    /** An unsupported upstream transaction (§7.3.2 F_UUT), with an IMPLEMENTATION DEFINED reason. */
    public DmaResult unsupportedTransaction(int streamId, int substreamId, long address, DmaAccess access, int reason) {
        if (serviceFailure) {
            return new DmaResult.Aborted("SFM");
        }
        boolean ssv = substreamId != NO_SUBSTREAM;
        evtq.record(new EventRecord(EventType.F_UUT, streamId, ssv, ssv ? substreamId : 0, 0, false, !access.write(),
                access.instruction(), access.privileged(), false, 0, address, 0, reason & 0xffff));
        return new DmaResult.Aborted("F_UUT");
    }

    // ------------------------------------------------------------------------------------------
    // Global errors the VMM or the user report (IHI 0070 §6.3 SMMU_GERROR)

    /**
     * The VMM found neither memory nor a device at the address of an MSI this SMMU sent through
     * {@link DmaHost#msi(long, int, MsiSource)} (docs/protocol.md IOMMU_MSI_ABORTED): activates the
     * source's MSI_*_ABT_ERR (§6.3 SMMU_GERROR) and raises the GERROR interrupt, except for
     * MSI_GERROR_ABT_ERR, which raises none (§7.5.1, {@link Interrupts#raiseGerror}). A second abort
     * while the error is active changes nothing. {@code address} and {@code data} identify the write
     * for logs; the model does not compare them with the IRQ_CFG registers, which software may have
     * reprogrammed since. Returns the GERROR bit's name, or {@code null} when none applies
     * ({@link MsiSource#OTHER}, or a profile without MSIs).
     */
    public String msiAborted(long address, int data, MsiSource source) {
        dev.iommuemu.field.Field bit = irq.msiAborted(source);
        return bit == null ? null : bit.name();
    }

    /**
     * Enters Service Failure Mode (§12.3; §6.3 SMMU_GERROR.SFM_ERR), which hardware enters when its
     * internal consistency is lost, injected here so that drivers can exercise their recovery:
     * GERROR.SFM_ERR is activated (and its interrupt raised); from then on "traffic through the
     * SMMU has stopped" and it "has stopped processing commands and recording events" (§6.3): every
     * transaction is terminated without an event, ATS Translation Requests complete with CA ("it
     * responds to PCIe requests as CA", §12.3), PRI Page Requests are discarded, held stalls are
     * terminated, no queue is accessed (a CMD_SYNC never completes). Registers stay accessible (as
     * §12.3 recommends); acknowledging SFM_ERR through GERRORN does not leave the mode: only a reset
     * does ({@link #reset}; §12.3: recovery "must include system reset"). Returns whether the mode
     * was entered now ({@code false} if already in it).
     */
    public boolean enterServiceFailureMode() {
        if (serviceFailure) {
            return false;
        }
        serviceFailure = true;
        // Translations the VMM cached would otherwise keep working: every one is dropped.
        host.invalidate(IotlbInvalidation.all());
        host.configurationChanged();
        for (StallTable.Stalled s : stalls.drain()) {
            endpoints.stallResolved(s.streamId(), s.stag(), false);
        }
        pendingStallRecords.clear();
        irq.raiseGerror(GERROR_SFM_ERR);
        return true;
    }

    /**
     * The walk recipe (docs/protocol.md §4.8, version 12) of {@code streamId}'s transactions without
     * a substream, from the configuration the SMMU would use for one now (its configuration cache:
     * what the last such transaction fetched), when a VMM walking the stage 1 tables itself gets
     * exactly what this SMMU would: SMMU_CR0.SMMUEN == 1 and no service failure mode (§12.3); not
     * strict (its detector must see every translation); a cached, valid STE with Config == stage 1
     * only (§5.2 STE.Config 0b101) and STRW == NS-EL1 (§5.2 STRW); CD 0 for non-substream traffic
     * (§5.2 S1CDMax == 0, or S1DSS == 0b10); the cached CD valid with AA64 == 1, TG0 == 4 KiB,
     * EPD0 == 0, ENDI == 0, HA == HD == 0, no DS (§5.4), an effective IPS of at most 48 bits. The
     * caller decides the transactions are unprivileged (this model has no STE.PRIVCFG override,
     * IDR1.ATTR_PERMS_OVR == 0: a request's own privilege applies). Empty otherwise.
     */
    public Optional<WalkRecipe> walkRecipe(int streamId) {
        if (serviceFailure || options.strict() || !CR0_SMMUEN.isSet(regs.get(CR0ACK))) {
            return Optional.empty();
        }
        StreamConfig sc = configCache.peekSte(streamId);
        if (sc == null || !sc.ste().valid() || sc.ste().config() != Ste.CONFIG_S1 || sc.s2() != null
                || sc.ste().strw() != Ste.STRW_NSEL1) {
            return Optional.empty();
        }
        Ste ste = sc.ste();
        // the CD a transaction without a substream uses (TranslationPath.translate, §5.2 S1DSS)
        if (ste.s1cdMax(profile.ssidBits()) != 0 && ste.s1dss() != Ste.S1DSS_SUBSTREAM0) {
            return Optional.empty();
        }
        ContextConfig cc = configCache.peekCd(streamId, 0);
        Cd cd = cc == null ? null : cc.cd();
        // §5.4 CD.HA/HD: either bit set (even the reserved {HD, HA} = 0b10) leaves the walk to the daemon
        if (cd == null || !cd.valid() || !cd.is(Cd.AA64) || cd.is(Cd.HA) || cd.is(Cd.HD)) {
            return Optional.empty();
        }
        Stage1Config s1 = cc.s1();
        Stage1Config.Region r = s1.tt0();
        int oas = Math.min(s1.ipsBits(), profile.oasBits());
        if (r == null || r.disabled() || r.granule() != Granule.G4K || s1.bigEndian() || s1.ha()
                || s1.hd() || s1.ds() || s1.el2() || oas > WalkRecipe.MAX_OAS
                || r.tsz() < 16 || r.tsz() > 48 || (r.ttb() >>> oas) != 0) {
            return Optional.empty();
        }
        return Optional.of(WalkRecipe.of(r.ttb(), r.tsz(), oas));
    }

    /**
     * The VMM's command-queue hand-off (docs/protocol.md §4.12): the commands it consumed itself
     * ({@code count} commands of two words in {@code words}) executed as this SMMU's queue would
     * have (CommandQueue#vmmConsumed: TLB and configuration cache invalidations, the VMM's cached
     * translations; no CMD_SYNC signalled again, IHI 0070 §4.7.3), then SMMU_CMDQ_PROD and
     * SMMU_CMDQ_CONS set to the VMM's values (§6.3.26, §6.3.27). Rejected commands are skipped and
     * counted in the answer; nothing throws.
     */
    public CommandQueue.VmmBatch applyVmmConsumed(long[] words, int count, int prod, int cons) {
        return cmdq.vmmConsumed(words, count, prod, cons);
    }

    /** What the VMM's command-queue hand-off needs from this SMMU now (docs/protocol.md §4.12). */
    public record CommandHandOffState(boolean ok, long cmdqBase, int prod, int cons, boolean msi, boolean ril, int oasBits) {}

    /**
     * The command queue's state for the VMM's hand-off (docs/protocol.md §4.12). {@code ok} only
     * while the queue consumes (SMMU_CR0ACK.CMDQEN = 1, GERROR.CMDQ_ERR inactive: IHI 0070 §6.3.9,
     * §7.1), stage 1 is implemented (SMMU_IDR0.S1P, §6.3.1: the TLBI_NH_* the VMM handles), the SMMU
     * is not in service failure mode (§12.3: no queue is consumed) and the profile is not strict
     * (its coherency detector must see every invalidation when it happens). MSI is SMMU_IDR0.MSI,
     * RIL SMMU_IDR3.RIL (§4.4.1.1 range invalidations), the OAS SMMU_IDR5.OAS in bits.
     */
    public CommandHandOffState commandHandOffState() {
        CommandQueue.HandOff q = cmdq.handOff();
        boolean ok = q.consuming() && profile.s1() && !serviceFailure && !options.strict();
        return new CommandHandOffState(ok, q.base(), q.prod(), q.cons(), profile.msi(), profile.ril(), profile.oasBits());
    }

    /** Whether the SMMU is in service failure mode ({@link #enterServiceFailureMode}). */
    public boolean serviceFailureMode() {
        return serviceFailure;
    }

    // ------------------------------------------------------------------------------------------
    // Device state (docs/device-state.md): live migration and daemon restart

    /**
     * The architectural state now (IHI 0070 §6 registers, held stalls and their waiting records,
     * service failure mode), for {@link #restoreState} on another instance. The caches are not in it
     * ({@link Smmuv3State}: §3.21 lets them be evicted at any time).
     */
    public Smmuv3State saveState() {
        List<Smmuv3State.HeldStall> held = new ArrayList<>();
        for (StallTable.Stalled s : stalls.held()) {
            held.add(new Smmuv3State.HeldStall(s.streamId(), s.ssid(), s.stag(), s.iova(), s.access()));
        }
        return new Smmuv3State(
                new Smmuv3State.ProfileId(profile.name(), profile.idr0(), profile.idr1(), profile.idr2(),
                        profile.idr3(), profile.idr4(), profile.idr5(), profile.iidr(), profile.aidr()),
                new Smmuv3State.Controls(regs.get(CR0), regs.get(CR0ACK), regs.get(CR1), regs.get(CR2),
                        regs.get(GBPA), regs.get(IRQ_CTRL), regs.get(IRQ_CTRLACK)),
                new Smmuv3State.GlobalErrors(regs.get(GERROR), regs.get(GERRORN)),
                irqConfig(GERROR_IRQ_CFG0, GERROR_IRQ_CFG1, GERROR_IRQ_CFG2),
                irqConfig(EVENTQ_IRQ_CFG0, EVENTQ_IRQ_CFG1, EVENTQ_IRQ_CFG2),
                irqConfig(PRIQ_IRQ_CFG0, PRIQ_IRQ_CFG1, PRIQ_IRQ_CFG2),
                new Smmuv3State.StreamTableBase(regs.get(STRTAB_BASE), regs.get(STRTAB_BASE_CFG)),
                queue(CMDQ_BASE, CMDQ_PROD, CMDQ_CONS),
                queue(EVENTQ_BASE, EVENTQ_PROD, EVENTQ_CONS),
                queue(PRIQ_BASE, PRIQ_PROD, PRIQ_CONS),
                held, stalls.stagCursor(), new ArrayList<>(pendingStallRecords), serviceFailure);
    }

    private Smmuv3State.IrqConfig irqConfig(Register cfg0, Register cfg1, Register cfg2) {
        return new Smmuv3State.IrqConfig(regs.get(cfg0), regs.get(cfg1), regs.get(cfg2));
    }

    private Smmuv3State.QueueRegs queue(Register base, Register prod, Register cons) {
        return new Smmuv3State.QueueRegs(regs.get(base), regs.get(prod), regs.get(cons));
    }

    /**
     * Replaces this SMMU's state with {@code state}, saved by {@link #saveState()} on an SMMU of the
     * same profile. The state is checked whole first ({@link StateCheck}); a refused state changes
     * nothing. The caches start empty, as after CMD_CFGI_ALL and CMD_TLBI_NSNH_ALL (IHI 0070 §3.21:
     * cached structures may be evicted at any time), and the VMM is told to drop every translation
     * it cached. Nothing is signalled: no interrupt, no command consumed, no event written; the
     * stalled transactions are held again, and the endpoints that issued them must still be
     * waiting for their resolution ({@link EndpointPort#stallResolved}).
     *
     * @throws StateRefusedException with a sentence, when the state is another profile's or one
     *     this model could not have produced
     */
    public void restoreState(Smmuv3State state) {
        String why = StateCheck.refusal(state, profile);
        if (why != null) {
            throw new StateRefusedException(why);
        }
        if (stalls.size() > 0) {
            // each held transaction waits for CMD_RESUME / CMD_STALL_TERM (IHI 0070 §3.12.2): a restore would drop them
            throw new StateRefusedException("this SMMU holds " + stalls.size() + " stalled transaction(s) that restoring a state"
                    + " would drop; restore into an SMMU that has not stalled, or after a reset");
        }
        // Nothing below can fail: the swap is complete or (above) not begun.
        reset(); // registers, ID registers, caches, stalls and held records as at power-on
        for (java.util.Map.Entry<Register, Long> e : StateCheck.registers(state).entrySet()) {
            regs.set(e.getKey(), e.getValue());
        }
        List<StallTable.Stalled> held = new ArrayList<>();
        for (Smmuv3State.HeldStall h : state.stalls()) {
            held.add(new StallTable.Stalled(h.streamId(), h.substreamId(), h.stag(), h.iova(), h.access()));
        }
        stalls.restore(held, state.stagCursor());
        pendingStallRecords.addAll(state.pendingStallRecords());
        serviceFailure = state.serviceFailure();
        host.invalidate(IotlbInvalidation.all());
    }

    // ------------------------------------------------------------------------------------------
    // Strict mode

    private void violation(CoherencyViolation v) {
        violationCount++;
        if (violations.size() == MAX_VIOLATIONS) {
            violations.removeFirst();
        }
        violations.addLast(v);
        listener.found(v);
    }

    /**
     * Where strict mode hands each finding as it is made (in the call that made it), besides
     * keeping it for {@link #coherencyViolations()}; {@link ViolationListener#NONE} by default.
     */
    public void setViolationListener(ViolationListener l) {
        listener = l == null ? ViolationListener.NONE : l;
    }

    /** The most recent coherency violations strict mode found (oldest first). */
    public List<CoherencyViolation> coherencyViolations() {
        return new ArrayList<>(violations);
    }

    /** How many coherency violations strict mode found since construction. */
    public long coherencyViolationCount() {
        return violationCount;
    }

    // ------------------------------------------------------------------------------------------
    // Introspection for the control API and tests

    /** Commands consumed, event records written and lost, stalled transactions held, cache use. */
    public Stats stats() {
        TlbStats t = tlb.stats();
        return new Stats(cmdq.consumed(), evtq.written(), evtq.lost(), stalls.size(), configCache.size(), t.size(),
                t.hits(), t.misses(), violationCount);
    }

    public record Stats(long commands, long events, long eventsLost, int stalled, int configCacheEntries,
            int tlbEntries, long tlbHits, long tlbMisses, long coherencyViolations) {}

    GuestMemory memory() {
        return mem;
    }

    /** Diagnostics decoded from guest memory now (not from the caches), under the current stream table. */
    public dev.iommuemu.smmuv3.inspect.Inspector.Fetched inspectSte(int streamId) {
        return new dev.iommuemu.smmuv3.inspect.Inspector(mem, profile).ste(regs.get(STRTAB_BASE),
                regs.get(STRTAB_BASE_CFG), streamId);
    }

    public dev.iommuemu.smmuv3.inspect.Inspector.Fetched inspectCd(int streamId, int substreamId) {
        return new dev.iommuemu.smmuv3.inspect.Inspector(mem, profile).cd(regs.get(STRTAB_BASE),
                regs.get(STRTAB_BASE_CFG), streamId, substreamId);
    }

    /**
     * Diagnostics: the transaction {@code streamId}/{@code substreamId} at {@code iova} explained
     * as the SMMU would handle it now (SMMUEN, GBPA, the STE and CD through the configuration cache,
     * the TLB, the walk), with nothing changed that the guest can observe: no event recorded, no
     * stall held, no cache filled or counted, no descriptor written.
     */
    public dev.iommuemu.smmuv3.inspect.WalkExplanation explain(int streamId, int substreamId, long iova,
            DmaAccess access) {
        return Explainer.explain(path, regs.get(CR0ACK), regs.get(GBPA), regs.get(STRTAB_BASE),
                regs.get(STRTAB_BASE_CFG), streamId, substreamId, iova, access);
    }

    /**
     * The memory attributes (Arm ARM D8.6: type, Cacheability, Shareability; stage 1 from CD.MAIR,
     * stage 2 MemAttr read as STE.S2FWB says, combined for nested) of the translation the
     * transaction would get now, from {@link #explain} (a TLB hit gives the attributes its entry
     * was filled with); {@code null} when no table walk translates it (abort, bypass, a fault,
     * SMMUEN == 0).
     */
    public dev.iommuemu.pagetable.MemoryAttributes memoryAttributes(int streamId, int substreamId, long iova,
            DmaAccess access) {
        return explain(streamId, substreamId, iova, access).attributes();
    }
}
