package dev.iommuemu.bridge.device.smmuv3;

import dev.iommuemu.bridge.device.BridgedDevice;
import dev.iommuemu.bridge.device.DeviceContext;
import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.Diagnostics;
import dev.iommuemu.bridge.device.EndpointHost;
import dev.iommuemu.bridge.device.PropertyRefusedException;
import dev.iommuemu.bridge.device.VmmProperties;
import dev.iommuemu.bridge.state.DeviceStateCodec;
import dev.iommuemu.bridge.state.Smmuv3StateCodec;
import dev.iommuemu.proto.devstate.v1.DeviceState;
import dev.iommuemu.smmuv3.state.Smmuv3State;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.domain.Errno;
import dev.iommuemu.domain.HostSmmu;
import dev.iommuemu.domain.IommuCore;
import dev.iommuemu.domain.Result;
import dev.iommuemu.iommufd.HwInfo;
import dev.iommuemu.iommufd.Iommufd;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.dma.IotlbEntry;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.field.Field;
import dev.iommuemu.field.Layout;
import dev.iommuemu.field.Register;
import dev.iommuemu.smmuv3.Smmuv3;
import dev.iommuemu.smmuv3.ats.AtsResponse;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.inspect.Inspector;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.logging.Logger;

/**
 * The SMMUv3 model (IHI 0070) behind the daemon's device seam: MMIO of register pages 0 and 1
 * (0x20000 bytes, §6.1), translation, the four wired interrupt lines (§3.18), ATS translation
 * requests and PRI page requests from endpoints (§3.9, §3.10), and the endpoint-facing replies
 * (CMD_PRI_RESP, CMD_ATC_INV) on the back-end channel.
 */
public final class Smmuv3Bridge implements BridgedDevice {
    private static final Logger LOG = Logger.getLogger(Smmuv3Bridge.class.getName());
    /** The wired lines, in the order the VMM numbers them in IOMMU_SET_IRQ_FD (docs/protocol.md §4.1). */
    public static final List<String> IRQ_LINES = List.of("evtq", "priq", "cmd-sync", "gerror");

    private final String profile;
    private final Smmuv3 smmu;
    private final GuestMemory memory;
    private Iommufd iommufd;
    /** The PCI bus QEMU put this SMMU on (arm-smmuv3 primary-bus / bus_num), or null: informational. */
    private final VmmProperties.PciBus pciBus;
    /** The StreamIDs that have a device (IOMMU_SET_ENDPOINTS), or null when the VMM never said. */
    private Set<Integer> endpoints;

    Smmuv3Bridge(String profile, Smmuv3 smmu, GuestMemory memory) {
        this(profile, smmu, memory, null);
    }

    Smmuv3Bridge(String profile, Smmuv3 smmu, GuestMemory memory, VmmProperties.PciBus pciBus) {
        this.profile = profile;
        this.smmu = smmu;
        this.memory = memory;
        this.pciBus = pciBus;
    }

    /** The PCI bus numbers the VMM gave (arm-smmuv3 primary-bus), or null. */
    public VmmProperties.PciBus pciBus() {
        return pciBus;
    }

    /** The StreamIDs the VMM said have devices, or null. */
    public Set<Integer> endpoints() {
        return endpoints;
    }

    /**
     * The StreamIDs of the VMM's devices behind this SMMU (PCI requester IDs, bus << 8 | devfn).
     * The architecture has no notion of a StreamID without a device (a transaction names its
     * StreamID, IHI 0070 §3.2), so the set is recorded for tools and logs; a StreamID beyond
     * SMMU_IDR1.SIDSIZE (§6.3.2) is refused, since no transaction could carry it.
     */
    @Override
    public void setEndpoints(Set<Integer> present) {
        int bits = smmu.profile().sidBits();
        for (int sid : present) {
            if (bits < 32 && Integer.toUnsignedLong(sid) >= 1L << bits) {
                throw new IllegalArgumentException(String.format("StreamID 0x%x is beyond the %d StreamID bits of SMMU_IDR1.SIDSIZE", sid, bits));
            }
        }
        endpoints = Set.copyOf(present);
        LOG.fine(() -> "smmuv3: " + present.size() + " StreamIDs have devices");
    }

    /**
     * Makes this SMMU the physical IOMMU of a modelled host (docs/nesting.md): the host driver takes
     * it over with its structures in {@code [carveBase, carveBase + carveSize)} of the session's
     * memory. Once per instance; the carve-out must be guest memory already.
     */
    @Override
    public Iommufd openIommufd(long carveBase, long carveSize, int streamTableLog2) {
        if (iommufd != null) {
            throw new IllegalArgumentException("the host is already open on this SMMU");
        }
        HostSmmu host = new HostSmmu(smmu, memory, carveBase, carveSize, streamTableLog2);
        iommufd = new Iommufd(new IommuCore(host, IommuCore.Options.DEFAULT));
        return iommufd;
    }

    @Override
    public Iommufd iommufd() {
        return iommufd;
    }

    /**
     * The model's walk recipe (Smmuv3#walkRecipe: stage 1 only, never "+strict"), except while
     * this SMMU is a modelled host's physical IOMMU (docs/nesting.md): then its STEs are the host
     * driver's, nested under a guest's, and the VMM asks for every translation.
     */
    @Override
    public java.util.Optional<dev.iommuemu.pagetable.WalkRecipe> walkRecipe(int endpoint) {
        return iommufd != null ? java.util.Optional.empty() : smmu.walkRecipe(endpoint);
    }

    /**
     * The command queue's state for the VMM's hand-off (docs/protocol.md §4.12; Smmuv3#commandHandOffState),
     * never {@code ok} while this SMMU is a modelled host's physical IOMMU (docs/nesting.md: its queue
     * is the host driver's). The sync line is "cmd-sync" of {@link #IRQ_LINES} (IHI 0070 §3.18).
     */
    @Override
    public java.util.Optional<CommandQueueState> commandQueueState() {
        Smmuv3.CommandHandOffState s = smmu.commandHandOffState();
        int features = (s.msi() ? dev.iommuemu.bridge.fastpath.CommandHandOff.FEATURE_MSI : 0)
                | (s.ril() ? dev.iommuemu.bridge.fastpath.CommandHandOff.FEATURE_RIL : 0);
        return java.util.Optional.of(new CommandQueueState(s.ok() && iommufd == null, s.cmdqBase(), s.prod(), s.cons(),
                features, s.oasBits(), IRQ_LINES.indexOf(dev.iommuemu.smmuv3.irq.Interrupts.CMD_SYNC)));
    }

    /** The VMM's consumed commands into the model (Smmuv3#applyVmmConsumed, docs/protocol.md §4.12). */
    @Override
    public int applyVmmCommands(long[] words, int count, int prod, int cons) {
        return smmu.applyVmmConsumed(words, count, prod, cons).rejected();
    }

    /** The model behind the seam (for tests). */
    public Smmuv3 smmu() {
        return smmu;
    }

    @Override
    public String model() {
        return Factory.NAME;
    }

    @Override
    public String profile() {
        return profile;
    }

    @Override
    public IommuModel iommu() {
        return smmu;
    }

    @Override
    public long mmioSize() {
        return 0x20000;
    }

    @Override
    public long mmioRead(long offset, int size) {
        return smmu.mmioRead(offset, size);
    }

    @Override
    public void mmioWrite(long offset, int size, long value) {
        smmu.mmioWrite(offset, size, value);
    }

    /**
     * The registers Linux's arm-smmu-v3 driver polls or reads on hot paths: CMDQ_CONS while it waits
     * for a CMD_SYNC (IHI 0070 §4.7.3, no MSI), the queues' PROD/CONS, GERROR/GERRORN, the CR0ACK and
     * IRQ_CTRLACK handshakes and GBPA.Update (§6.3), and the ID registers. SMMUv3 register reads have
     * no side effects (§6.2).
     */
    private static final List<dev.iommuemu.bridge.device.MirroredRegister> MIRRORED = java.util.stream.Stream.of(
                    Smmuv3Regs.IDR0, Smmuv3Regs.IDR1, Smmuv3Regs.IDR2, Smmuv3Regs.IDR3, Smmuv3Regs.IDR4, Smmuv3Regs.IDR5,
                    Smmuv3Regs.IIDR, Smmuv3Regs.AIDR, Smmuv3Regs.CR0, Smmuv3Regs.CR0ACK, Smmuv3Regs.GBPA, Smmuv3Regs.IRQ_CTRL,
                    Smmuv3Regs.IRQ_CTRLACK, Smmuv3Regs.GERROR, Smmuv3Regs.GERRORN, Smmuv3Regs.CMDQ_PROD, Smmuv3Regs.CMDQ_CONS,
                    Smmuv3Regs.EVENTQ_PROD, Smmuv3Regs.EVENTQ_CONS, Smmuv3Regs.PRIQ_PROD, Smmuv3Regs.PRIQ_CONS)
            .map(r -> new dev.iommuemu.bridge.device.MirroredRegister(r.offset(), r.size()))
            .toList();

    @Override
    public List<dev.iommuemu.bridge.device.MirroredRegister> mirroredRegisters() {
        return MIRRORED;
    }

    @Override
    public List<String> irqLines() {
        return IRQ_LINES;
    }

    /**
     * An ATS Translation Request (IHI 0070 §3.9.1). A successful completion becomes a translation
     * of its size with the granted permissions (none granted: an entry without permissions, the
     * PCIe "no access" completion); Unsupported Request and Completer Abort become aborts named
     * "UR" and "CA".
     */
    @Override
    public DmaResult atsTranslate(int streamId, int substreamId, long iova, DmaAccess access) {
        return atsTranslate(streamId, substreamId, iova, access.write(), access.instruction(), access.privileged());
    }

    /** The request's PCIe fields: NW == 0 ({@code write}) and Exe may come together (IHI 0070 §13.7). */
    @Override
    public DmaResult atsTranslate(int streamId, int substreamId, long iova, boolean write, boolean exe, boolean privileged) {
        if (!smmu.profile().ats()) {
            // SMMU_IDR0.ATS == 0 (IHI 0070 §6.3.1): no ATS at all, ENOSYS (docs/protocol.md §4.4)
            throw new UnsupportedOperationException("smmuv3 profile " + profile + " has no ATS (SMMU_IDR0.ATS == 0)");
        }
        AtsResponse r = smmu.atsTranslate(streamId, substreamId, iova, write, exe, privileged);
        return switch (r.status()) {
            case UR -> new DmaResult.Aborted("UR");
            case CA -> new DmaResult.Aborted("CA");
            case SUCCESS -> {
                long mask = r.size() - 1;
                int perm = 0;
                int priv = r.priv() ? 3 : 0; // Perm's privileged bits sit 3 above the unprivileged ones
                if (r.read()) {
                    perm |= Perm.UR << priv;
                }
                if (r.write()) {
                    perm |= Perm.UW << priv;
                }
                if (r.exec()) {
                    perm |= Perm.UX << priv;
                }
                yield new DmaResult.Translated(new IotlbEntry(iova & ~mask, r.translatedAddress() & ~mask, mask, perm));
            }
        };
    }

    /** A PCIe Page Request or Stop PASID marker to the PRI queue (IHI 0070 §3.10, §8: L/W/R = 0b100 for Stop). */
    @Override
    public void pageRequest(PageRequest request) {
        if (!smmu.profile().pri()) {
            // SMMU_IDR0.PRI == 0 (IHI 0070 §6.3.1): no PRI queue, ENOSYS (docs/protocol.md §4.4)
            throw new UnsupportedOperationException("smmuv3 profile " + profile + " has no PRI (SMMU_IDR0.PRI == 0)");
        }
        boolean stop = request.stop();
        smmu.pageRequest(new dev.iommuemu.smmuv3.priq.PageRequest(request.streamId(), request.substreamId(),
                request.address(), request.groupIndex(), request.last() || stop, request.read() && !stop,
                request.write() && !stop, request.exec(), request.priv()));
    }

    /** IOMMU_MSI_ABORTED: the source's MSI_*_ABT_ERR in SMMU_GERROR (IHI 0070 §6.3 SMMU_GERROR). */
    @Override
    public String msiAborted(long address, int data, dev.iommuemu.dma.MsiSource source) {
        return smmu.msiAborted(address, data, source);
    }

    /** Service failure mode (IHI 0070 §6.3 SMMU_GERROR.SFM_ERR), injected by the control API. */
    @Override
    public boolean injectServiceFailure() {
        return smmu.enterServiceFailureMode();
    }

    @Override
    public void reset() {
        smmu.reset();
        iommufd = null; // the modelled host's state lived in the SMMU it just lost
    }

    /**
     * The SMMU's architectural state (docs/device-state.md): registers, held stalls and their waiting
     * event records, service failure mode, in a DeviceState of format version 1. A modelled nesting
     * host open on this SMMU ({@link #openIommufd}) is not part of it.
     */
    @Override
    public byte[] saveState() {
        if (iommufd != null) {
            // its vIOMMUs, vDEVICEs and queues would be lost: refuse rather than save half (docs/device-state.md)
            throw new dev.iommuemu.bridge.state.DeviceStateBusyException("this session has a modelled nesting host open on its SMMU (docs/nesting.md),"
                    + " whose iommufd objects a device state does not carry yet; it cannot be saved until the host is closed");
        }
        // the restart journal asks after every request (docs/protocol.md §4.10): an unchanged state
        // (most translations) is not encoded again
        dev.iommuemu.smmuv3.state.Smmuv3State s = smmu.saveState();
        if (!s.equals(savedState)) {
            savedBlob = DeviceStateCodec.encode(Smmuv3StateCodec.envelope(s));
            savedState = s;
        }
        return savedBlob;
    }

    /** The last state saved and its blob (callers do not modify a blob). */
    private dev.iommuemu.smmuv3.state.Smmuv3State savedState;
    private byte[] savedBlob;

    /** An SMMUv3 state's largest size: registers, 65536 held stalls and their waiting records (~40 bytes each). */
    static final int MAX_STATE_BYTES = 4 << 20;

    /**
     * Loads a state {@link #saveState()} produced, into this session's SMMU (under the session's
     * lock, as every call). The SMMU must be quiescent as the restored state needs it: it holds no
     * stalled transaction of its own (an endpoint waits for each one's CMD_RESUME, which a load
     * would drop: IHI 0070 §3.12.2) and no modelled nesting host is open on it (its structures live
     * in the SMMU being replaced). The blob is checked whole (envelope, then {@link
     * Smmuv3#restoreState}'s check of the state) before anything changes.
     *
     * @throws IllegalArgumentException with a sentence when the blob or the session is refused
     */
    @Override
    public void loadState(byte[] blob) {
        if (blob.length > MAX_STATE_BYTES) {
            // refused before parsing: millions of tiny repeated entries would be parsed into the heap first
            throw new IllegalArgumentException("the device state is " + blob.length + " bytes, more than an SMMUv3's can be ("
                    + MAX_STATE_BYTES + " bytes: registers and at most 65536 stalls); it is not an SMMUv3 device state");
        }
        DeviceState d = DeviceStateCodec.decode(blob, Factory.NAME);
        Smmuv3State s = Smmuv3StateCodec.fromProto(d);
        int held = smmu.stats().stalled();
        if (held > 0) {
            throw new dev.iommuemu.bridge.state.DeviceStateBusyException("this session's SMMU holds " + held + " stalled transaction"
                    + (held == 1 ? "" : "s") + " that loading a device state would drop; load it into a session"
                    + " that has not run DMA, or after a reset");
        }
        if (iommufd != null) {
            throw new dev.iommuemu.bridge.state.DeviceStateBusyException("this session has a modelled nesting host open on its SMMU, which a"
                    + " device state does not carry; load it into a session without one, or after a reset");
        }
        smmu.restoreState(s);
    }

    @Override
    public Map<String, Long> counters() {
        Smmuv3.Stats s = smmu.stats();
        Map<String, Long> m = new LinkedHashMap<>();
        m.put("commands", s.commands());
        m.put("events", s.events());
        m.put("events_lost", s.eventsLost());
        m.put("stalled", (long) s.stalled());
        m.put("config_cache_entries", (long) s.configCacheEntries());
        m.put("tlb_entries", (long) s.tlbEntries());
        m.put("tlb_hits", s.tlbHits());
        m.put("tlb_misses", s.tlbMisses());
        m.put("coherency_violations", s.coherencyViolations());
        return m;
    }

    /**
     * Strict mode's findings ({@link Smmuv3#setViolationListener}): each stale STE, CD or TLB entry
     * once, and conflicts, with the command that would have removed it. Only with "+strict".
     */
    @Override
    public boolean reportFindings(java.util.function.Consumer<dev.iommuemu.bridge.device.Finding> sink) {
        if (!smmu.options().strict()) {
            return false;
        }
        smmu.setViolationListener(v -> sink.accept(new dev.iommuemu.bridge.device.Finding(v.kind().name(), v.streamId(),
                v.ssid(), v.address(), v.stale(), v.inMemory(), v.remedy(), v.detail())));
        return true;
    }

    @Override
    public Diagnostics diagnostics() {
        return new Diagnostics() {
            @Override
            public Decoded ste(int streamId) {
                return decoded(smmu.inspectSte(streamId));
            }

            @Override
            public Decoded cd(int streamId, int substreamId) {
                return decoded(smmu.inspectCd(streamId, substreamId));
            }

            @Override
            public dev.iommuemu.smmuv3.inspect.WalkExplanation walk(int streamId, int substreamId, long iova,
                    DmaAccess access) {
                return smmu.explain(streamId, substreamId, iova, access);
            }

            @Override
            public List<Register> registers() {
                return Smmuv3Regs.ALL;
            }

            /** struct iommu_hw_info_arm_smmuv3's fields; empty (ENODEV) without stage 2. */
            @Override
            public List<FieldValue> nestingInfo() {
                Result<HwInfo> r = HwInfo.of(smmu.profile());
                List<FieldValue> out = new ArrayList<>();
                if (r.isOk()) {
                    for (HwInfo.Entry e : r.get().entries()) {
                        out.add(new FieldValue(e.name(), e.bits(), e.value()));
                    }
                }
                return out;
            }
        };
    }

    private static Diagnostics.Decoded decoded(Inspector.Fetched f) {
        List<Diagnostics.FieldValue> fields = new ArrayList<>();
        Layout layout = f.layout();
        if (layout != null && f.words() != null && f.words().length > 0) { // no words: the structure was not read
            for (Field fd : layout.fields()) {
                int lsb = fd.word() * 64 + fd.lsb();
                String bits = fd.width() == 1 ? "[" + lsb + "]" : "[" + (lsb + fd.width() - 1) + ":" + lsb + "]";
                fields.add(new Diagnostics.FieldValue(fd.name(), bits, fd.get(f.words())));
            }
        }
        return new Diagnostics.Decoded(f.name(), f.address(), f.words(), fields, f.error());
    }

    /**
     * Where the SMMU's wired lines go (IHI 0070 §3.18): to the VMM's eventfds (IOMMU_SET_IRQ_FD),
     * except that while a modelled host is open on this SMMU (docs/nesting.md) the Event and PRI
     * queue lines it enabled are wired to that host's interrupt handler ({@link HostSmmu#interrupt});
     * its threaded half runs when the session's current call returns (DeviceSession).
     */
    private static final class IrqWiring {
        Smmuv3Bridge bridge;

        /** The VMM's host, with the lines a modelled host enabled going to it instead. */
        dev.iommuemu.dma.DmaHost host(dev.iommuemu.dma.DmaHost vmm) {
            return dev.iommuemu.dma.DmaHost.tapIrqs(vmm, line -> {
                Iommufd f = bridge == null ? null : bridge.iommufd;
                return f != null && f.core().host().interrupt(line);
            });
        }
    }

    /** The endpoint side of the model, carried to the VMM on the back-end channel. */
    private static EndpointPort port(EndpointHost host) {
        return new EndpointPort() {
            @Override
            public void priResponse(int streamId, int ssid, int prgIndex, int response) {
                host.pageResponse(streamId, ssid, prgIndex, response);
            }

            @Override
            public void atcInvalidate(int streamId, int ssid, long addr, long size, boolean global) {
                // CMD_ATC_INV.G (IHI 0070 §4.5.1): every PASID's entries; IOMMU_ATC_INVALIDATE's flag G.
                host.atcInvalidate(streamId, ssid, addr, size, global);
            }

            @Override
            public void stallResolved(int streamId, int stag, boolean retry) {
                // The VMM holds the access that IOMMU_TRANSLATE answered "stalled" until this (docs/protocol.md §4.3).
                LOG.fine(() -> "stall " + streamId + "/" + stag + (retry ? " resumed" : " terminated"));
                host.stallResolved(streamId, stag, retry);
            }
        };
    }

    /** The factory: profiles are {@link Smmuv3Profile#ALL}'s names; "+strict" appended enables strict mode. */
    public static final class Factory implements DeviceFactory {
        public static final String NAME = "smmuv3";

        @Override
        public String model() {
            return NAME;
        }

        @Override
        public int modelNumber() {
            return 1;
        }

        @Override
        public List<String> profiles() {
            List<String> names = new ArrayList<>();
            for (Smmuv3Profile p : Smmuv3Profile.ALL) {
                names.add(p.name());
            }
            for (Smmuv3Profile p : Smmuv3Profile.ALL) {
                names.add(p.name() + "+strict");
            }
            return names;
        }

        @Override
        public BridgedDevice create(String profile, DeviceContext context) {
            return create(profile, VmmProperties.NONE, context);
        }

        /**
         * The profile's SMMU with QEMU's arm-smmuv3 properties over it (docs/qemu-properties.md):
         * {@code stage} chooses which of SMMU_IDR0.S1P/S2P are advertised
         * ({@link Smmuv3Profile#withStages}); a stage the profile lacks is refused (EOPNOTSUPP) with
         * the profiles that have it. The PCI bus is recorded. virtio-iommu properties are refused (EINVAL).
         */
        @Override
        public BridgedDevice create(String profile, VmmProperties props, DeviceContext context) {
            if (props.hasVirtioIommu()) {
                throw new PropertyRefusedException(Errno.EINVAL.code,
                        props.bootBypass() != null ? "boot-bypass" : props.granule() != null ? "granule"
                                : props.awBits() != null ? "aw-bits" : props.unalignedMaps() != null ? "unaligned-maps" : "reserved-regions",
                        "virtio-iommu properties were sent for the daemon's arm-smmuv3 device; "
                        + "start the daemon with --model virtio-iommu for a virtio-iommu");
            }
            String name = profile.isEmpty() ? Smmuv3Profile.DEFAULT.name() : profile;
            boolean strict = name.endsWith("+strict");
            String base = strict ? name.substring(0, name.length() - "+strict".length()) : name;
            Smmuv3Profile p = null;
            for (Smmuv3Profile c : Smmuv3Profile.ALL) {
                if (c.name().equals(base)) {
                    p = c;
                }
            }
            if (p == null) {
                throw new IllegalArgumentException("smmuv3 has no profile " + profile + "; profiles: " + profiles());
            }
            VmmProperties.SmmuStage stage = props.stage();
            if (stage != null) {
                if ((stage.s1 && !p.s1()) || (stage.s2 && !p.s2())) {
                    List<String> have = new ArrayList<>();
                    for (Smmuv3Profile c : Smmuv3Profile.ALL) {
                        if ((!stage.s1 || c.s1()) && (!stage.s2 || c.s2())) {
                            have.add(c.name());
                        }
                    }
                    throw new PropertyRefusedException(Errno.EOPNOTSUPP.code, "stage",
                            "arm-smmuv3 stage=" + stage.qemuName + " needs " + (stage.s1 && stage.s2 ? "stage 1 and stage 2" : stage.s1 ? "stage 1" : "stage 2")
                            + " translation (SMMU_IDR0." + (stage.s1 && !p.s1() ? "S1P" : "S2P") + "), which the daemon's profile '" + base
                            + "' does not have; start the daemon with --profile " + String.join(", ", have) + ", or set stage= to what the profile has");
                }
                p = p.withStages(stage.s1, stage.s2);
            }
            IrqWiring wiring = new IrqWiring();
            Smmuv3 smmu = new Smmuv3(context.memory(), wiring.host(context.host()), p, port(context.endpoints()),
                    Smmuv3.Options.DEFAULT.withStrict(strict));
            Smmuv3Bridge bridge = new Smmuv3Bridge(name, smmu, context.memory(), props.pciBus());
            wiring.bridge = bridge;
            return bridge;
        }
    }
}
