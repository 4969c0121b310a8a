package dev.iommuemu.bridge.control;

import dev.iommuemu.bridge.device.DeviceFactory;
import dev.iommuemu.bridge.device.Diagnostics;
import dev.iommuemu.bridge.memory.MappedRegion;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.Protocol;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.session.SessionRegistry;
import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.field.Field;
import dev.iommuemu.field.Register;
import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.ControlResponse;
import dev.iommuemu.proto.v1.CountersResponse;
import dev.iommuemu.proto.v1.Decoded;
import dev.iommuemu.proto.v1.Empty;
import dev.iommuemu.proto.v1.Error;
import dev.iommuemu.proto.v1.Fault;
import dev.iommuemu.proto.v1.IommufdResponse;
import dev.iommuemu.proto.v1.FieldValue;
import dev.iommuemu.proto.v1.MemoryData;
import dev.iommuemu.proto.v1.MemoryRegion;
import dev.iommuemu.proto.v1.ModelInfo;
import dev.iommuemu.proto.v1.NamedRegister;
import dev.iommuemu.proto.v1.NestingInfoResponse;
import dev.iommuemu.proto.v1.RegisterValue;
import dev.iommuemu.proto.v1.RegistersResponse;
import dev.iommuemu.proto.v1.SessionInfo;
import dev.iommuemu.proto.v1.Stalled;
import dev.iommuemu.proto.v1.StatusResponse;
import dev.iommuemu.proto.v1.TranslateRequest;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.Translated;
import dev.iommuemu.proto.v1.WalkResponse;
import dev.iommuemu.smmuv3.inspect.WalkExplanation;
import com.google.protobuf.ByteString;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;
import dev.iommuemu.dma.DmaAccess;
import java.util.Set;

/**
 * Answers control-API requests (proto/src/main/protobuf/iommuemu/v1/control.proto) against the
 * session registry. Transport-free: {@link ControlServer} reads and writes the messages. Sessions a
 * control connection creates are recorded in {@code owned} so that the connection's end closes them.
 */
public final class ControlService {
    private static final Logger LOG = Logger.getLogger(ControlService.class.getName());
    public static final String VERSION = "0.1.0";
    static final int MAX_MEMORY_IO = 1 << 20;

    private final SessionRegistry registry;
    private final String vmmSocket;

    public ControlService(SessionRegistry registry, String vmmSocket) {
        this.registry = registry;
        this.vmmSocket = vmmSocket;
    }

    public SessionRegistry registry() {
        return registry;
    }

    /** One request, one response; every failure becomes an {@link Error} with an errno. */
    public ControlResponse handle(ControlRequest req, Set<Long> owned) {
        ControlResponse.Builder r = ControlResponse.newBuilder().setId(req.getId());
        try {
            switch (req.getRequestCase()) {
                case STATUS -> r.setStatus(status());
                case CREATE_SESSION -> {
                    DeviceFactory f = null;
                    if (!req.getCreateSession().getModel().isEmpty()) {
                        f = registry.devices().get(req.getCreateSession().getModel());
                        if (f == null) {
                            throw ProtocolException.refused(ProtocolException.EINVAL, "no model '" + req.getCreateSession().getModel() + "' (have " + registry.devices().models() + ")");
                        }
                    }
                    String profile = req.getCreateSession().getProfile();
                    if (f != null && !profile.isEmpty() && !f.profiles().contains(profile)) {
                        throw ProtocolException.refused(ProtocolException.EINVAL, "model " + f.model() + " has no profile '" + profile + "'");
                    }
                    DeviceSession s;
                    try {
                        s = registry.open("control", f, profile);
                    } catch (IllegalArgumentException e) {
                        throw ProtocolException.refused(ProtocolException.EINVAL, e.getMessage());
                    }
                    owned.add(s.id());
                    r.setSession(info(s));
                }
                case CLOSE_SESSION -> {
                    DeviceSession s = session(req.getCloseSession().getSession());
                    if (!owned.remove(s.id())) {
                        throw ProtocolException.refused(ProtocolException.EPERM, "session " + s.id() + " belongs to " + s.origin() + ", not to this connection");
                    }
                    registry.close(s);
                    r.setEmpty(Empty.getDefaultInstance());
                }
                case ADD_MEMORY -> {
                    DeviceSession s = session(req.getAddMemory().getSession());
                    if (!owned.contains(s.id())) {
                        throw ProtocolException.refused(ProtocolException.EPERM, "memory can only be added to sessions this connection created (a VMM shares its own)");
                    }
                    long size = req.getAddMemory().getSize();
                    if (size <= 0 || size > (64L << 30)) {
                        throw ProtocolException.refused(ProtocolException.EINVAL, "region size must be 1 byte .. 64 GiB");
                    }
                    s.allocateRegion(req.getAddMemory().getGuestPhysAddr(), size);
                    r.setSession(info(s));
                }
                case READ_MEMORY -> {
                    DeviceSession s = session(req.getReadMemory().getSession());
                    int len = req.getReadMemory().getLength();
                    if (len < 0 || len > MAX_MEMORY_IO) {
                        throw ProtocolException.refused(ProtocolException.EINVAL, "read length must be at most " + MAX_MEMORY_IO);
                    }
                    byte[] b = s.readMemory(req.getReadMemory().getAddress(), len);
                    r.setMemory(MemoryData.newBuilder().setAddress(req.getReadMemory().getAddress()).setData(ByteString.copyFrom(b)));
                }
                case WRITE_MEMORY -> {
                    DeviceSession s = session(req.getWriteMemory().getSession());
                    if (req.getWriteMemory().getData().size() > MAX_MEMORY_IO) {
                        throw ProtocolException.refused(ProtocolException.EINVAL, "write length must be at most " + MAX_MEMORY_IO);
                    }
                    s.writeMemory(req.getWriteMemory().getAddress(), req.getWriteMemory().getData().toByteArray());
                    r.setEmpty(Empty.getDefaultInstance());
                }
                case READ_REGISTER -> {
                    var q = req.getReadRegister();
                    DeviceSession s = session(q.getSession());
                    int size = q.getSize() == 0 ? 4 : q.getSize();
                    long v = s.mmioRead(q.getOffset(), size);
                    r.setRegisterValue(RegisterValue.newBuilder().setOffset(q.getOffset()).setSize(size).setValue(v));
                }
                case WRITE_REGISTER -> {
                    var q = req.getWriteRegister();
                    DeviceSession s = session(q.getSession());
                    int size = q.getSize() == 0 ? 4 : q.getSize();
                    s.mmioWrite(q.getOffset(), size, q.getValue());
                    r.setRegisterValue(RegisterValue.newBuilder().setOffset(q.getOffset()).setSize(size).setValue(q.getValue()));
                }
                case REGISTERS -> r.setRegisters(registers(session(req.getRegisters().getSession())));
                case TRANSLATE -> r.setTranslate(diagnose(session(req.getTranslate().getSession()), req.getTranslate()));
                case DECODE_STE -> {
                    Diagnostics d = diagnostics(session(req.getDecodeSte().getSession()));
                    r.setDecoded(decoded(session(req.getDecodeSte().getSession()), () -> d.ste(req.getDecodeSte().getStreamId())));
                }
                case DECODE_CD -> {
                    var q = req.getDecodeCd();
                    DeviceSession s = session(q.getSession());
                    Diagnostics d = diagnostics(s);
                    r.setDecoded(decoded(s, () -> d.cd(q.getStreamId(), q.getSubstreamId())));
                }
                case WALK -> r.setWalk(walk(req.getWalk()));
                case NESTING_INFO -> {
                    DeviceSession s = session(req.getNestingInfo().getSession());
                    Diagnostics d = diagnostics(s);
                    List<Diagnostics.FieldValue> fields = s.withDevice(x -> d.nestingInfo());
                    if (fields.isEmpty()) {
                        // Nothing to nest (no stage 2, or a model without nesting): an error, never
                        // a silent stage 1 fall-back (iommufd's IOMMU_GET_HW_INFO gives ENODEV).
                        throw ProtocolException.refused(ProtocolException.ENODEV, "no nesting: the " + s.model()
                                + " profile " + s.profile() + " has no stage 2 to nest under");
                    }
                    NestingInfoResponse.Builder b = NestingInfoResponse.newBuilder();
                    fields.forEach(f -> b.addFields(field(f)));
                    r.setNestingInfo(b);
                }
                case IOMMUFD -> {
                    DeviceSession s = session(req.getIommufd().getSession());
                    IommufdResponse ir = s.withDevice(x -> IommufdService.handle(x, req.getIommufd()));
                    r.setIommufd(ir);
                }
                case VIOLATIONS -> r.setViolations(violations(session(req.getViolations().getSession())));
                case COUNTERS -> {
                    long id = req.getCounters().getSession();
                    CountersResponse.Builder b = CountersResponse.newBuilder();
                    if (id == 0) {
                        registry.totals().snapshot().forEach(b::putCounters);
                    } else {
                        session(id).allCounters().forEach(b::putCounters);
                    }
                    r.setCounters(b);
                }
                case INJECT -> {
                    var q = req.getInject();
                    DeviceSession s = session(q.getSession());
                    switch (q.getWhatCase()) {
                        case PAGE_REQUEST -> {
                            var pr = q.getPageRequest();
                            var acc = access(pr.getAccess());
                            // PCIe r6.0 §10.4.1 fields; a malformed combination is refused (EINVAL) by the session
                            s.pageRequest(new dev.iommuemu.bridge.device.BridgedDevice.PageRequest(pr.getStreamId(),
                                    pr.hasSubstreamId() ? pr.getSubstreamId() : dev.iommuemu.dma.IommuModel.NO_SUBSTREAM,
                                    pr.getAddress(), pr.getGroupIndex(), pr.hasRead() ? pr.getRead() : !acc.write() && !pr.getStop(), acc.write(),
                                    acc.instruction(), acc.privileged(), pr.getLast() || pr.getStop(), pr.getStop()));
                            r.setEmpty(Empty.getDefaultInstance());
                        }
                        // an endpoint's access, translated as DMA: the model records the fault its configuration calls for
                        case FAULT -> r.setTranslate(translate(s, q.getFault()));
                        case SERVICE_FAILURE -> {
                            s.injectServiceFailure();
                            r.setEmpty(Empty.getDefaultInstance());
                        }
                        default -> throw ProtocolException.refused(ProtocolException.EINVAL,
                                "Inject needs a page_request, a fault or a service_failure");
                    }
                }
                case RECORD -> r.setRecording(record(req.getRecord()));
                case SUBSCRIBE_EVENTS -> throw ProtocolException.refused(ProtocolException.EINVAL, "SubscribeEvents is handled by the server");
                default -> throw ProtocolException.refused(ProtocolException.ENOSYS, "empty or unknown request");
            }
        } catch (ProtocolException e) {
            r.clearResponse();
            r.setError(Error.newBuilder().setErrno(e.errno()).setMessage(e.getMessage() == null ? "" : e.getMessage()));
        } catch (DeviceSession.Failed e) {
            // §4.12: the session failed (its VMM kept the command-queue lock) and is closing
            r.clearResponse();
            r.setError(Error.newBuilder().setErrno(ProtocolException.ENODEV).setMessage(e.getMessage()
                    + "; the session is closing"));
        } catch (RuntimeException e) {
            // A model bug must not take the control connection down with it; the details go to the
            // daemon's log, the client gets a sentence (no Java exception text).
            LOG.log(Level.SEVERE, "control request " + req.getRequestCase() + " failed inside the daemon", e);
            r.clearResponse();
            r.setError(Error.newBuilder().setErrno(ProtocolException.EIO).setMessage("the daemon failed to handle "
                    + req.getRequestCase().name().toLowerCase(java.util.Locale.ROOT)
                    + " (an internal error, logged by the daemon with its details); please report it"));
        }
        return r.build();
    }

    /** A session's strict-mode findings (SessionFindings), the most recent last. */
    private static dev.iommuemu.proto.v1.ViolationsResponse violations(DeviceSession s) {
        var f = s.findings();
        var b = dev.iommuemu.proto.v1.ViolationsResponse.newBuilder().setStrict(f.enabled()).setTotal(f.total())
                .putAllByKind(f.byKind());
        f.recent().forEach(x -> b.addFindings(finding(x)));
        return b.build();
    }

    /** The protobuf form of a finding (control.proto Finding). */
    public static dev.iommuemu.proto.v1.Finding finding(dev.iommuemu.bridge.device.Finding x) {
        var b = dev.iommuemu.proto.v1.Finding.newBuilder().setKind(x.kind()).setStreamId(x.streamId())
                .setAddress(x.address()).setStale(x.stale()).setInMemory(x.inMemory()).setRemedy(x.remedy())
                .setDetail(x.detail());
        if (x.ssid() >= 0) {
            b.setSsid(x.ssid());
        }
        return b.build();
    }

    /** RecordRequest (docs/recording.md): start or stop recording a session. */
    private dev.iommuemu.proto.v1.RecordingStatus record(dev.iommuemu.proto.v1.RecordRequest q) throws ProtocolException {
        DeviceSession s = session(q.getSession());
        dev.iommuemu.bridge.recording.SessionRecording.Status st;
        if (q.getStop()) {
            st = s.stopRecording();
        } else {
            if (q.getPath().isEmpty()) {
                throw ProtocolException.refused(ProtocolException.EINVAL, "Record needs the path of the file to write (or stop)");
            }
            if (!java.nio.file.Path.of(q.getPath()).isAbsolute()) {
                throw ProtocolException.refused(ProtocolException.EINVAL, "Record's path " + q.getPath() + " is relative: give an "
                        + "absolute path (the daemon writes the file, from its own working directory)");
            }
            st = s.startRecording(java.nio.file.Path.of(q.getPath()), q.getMaxBytes() != 0 ? q.getMaxBytes() : registry.recording().maxBytes());
        }
        return dev.iommuemu.proto.v1.RecordingStatus.newBuilder().setPath(st.path().toString()).setOperations(st.operations())
                .setBytes(st.bytes()).setActive(st.active()).setStopped(st.stopped()).build();
    }

    /** The session {@code id} names; 0 = the only one. */
    public DeviceSession session(long id) throws ProtocolException {
        if (id == 0) {
            List<DeviceSession> all = registry.list();
            if (all.size() != 1) {
                throw ProtocolException.refused(ProtocolException.EINVAL, "session 0 means the only session, but there are " + all.size() + "; name one");
            }
            return all.get(0);
        }
        DeviceSession s = registry.get(id);
        if (s == null) {
            throw ProtocolException.refused(ProtocolException.ENOENT, "no session " + id);
        }
        return s;
    }

    private StatusResponse status() throws ProtocolException {
        StatusResponse.Builder b = StatusResponse.newBuilder().setVersion(VERSION).setProtocolVersion(Protocol.VERSION)
                .setVmmSocket(vmmSocket == null ? "" : vmmSocket)
                .setDefaultModel(registry.defaultModel().model()).setDefaultProfile(registry.defaultProfile());
        for (String m : registry.devices().models()) {
            DeviceFactory f = registry.devices().get(m);
            b.addModels(ModelInfo.newBuilder().setName(m).setProtocolNumber(f.modelNumber()).addAllProfiles(f.profiles()));
        }
        for (DeviceSession s : registry.list()) {
            try {
                b.addSessions(info(s));
            } catch (ProtocolException e) {
                // closed while we listed it
            }
        }
        return b.build();
    }

    static SessionInfo info(DeviceSession s) throws ProtocolException {
        SessionInfo.Builder b = SessionInfo.newBuilder().setId(s.id()).setOrigin(s.origin());
        s.withDevice(d -> {
            b.setModel(d.model()).setProfile(d.profile()).setMmioSize(d.mmioSize()).addAllIrqLines(d.irqLines());
            return null;
        });
        for (MappedRegion m : s.regions()) {
            b.addRegions(MemoryRegion.newBuilder().setGuestPhysAddr(m.base()).setSize(m.size()));
        }
        return b.build();
    }

    static DmaAccess access(Access a) {
        return new DmaAccess(a.getWrite(), a.getInstruction(), a.getPrivileged());
    }

    static int accessBits(Access a) {
        return (a.getWrite() ? Payloads.ACCESS_WRITE : 0) | (a.getInstruction() ? Payloads.ACCESS_EXEC : 0) | (a.getPrivileged() ? Payloads.ACCESS_PRIV : 0);
    }

    /** The access made as an endpoint's (Inject): the model records the fault its configuration calls for. */
    static TranslateResponse translate(DeviceSession s, TranslateRequest q) throws ProtocolException {
        int ssid = q.hasSubstreamId() ? q.getSubstreamId() : Payloads.NO_SUBSTREAM;
        Payloads.TranslateReply rep = s.translate(new Payloads.TranslateRequest(q.getStreamId(), ssid, q.getIova(), accessBits(q.getAccess())));
        Payloads.TranslateResult res = rep.result();
        TranslateResponse.Builder b = TranslateResponse.newBuilder();
        switch (res.status()) {
            case Payloads.TRANSLATED -> {
                int p = res.perm();
                boolean priv = q.getAccess().getPrivileged();
                b.setTranslated(Translated.newBuilder().setOutputAddress(res.output()).setAddressMask(res.addrMask()).setPerm(p)
                        .setRead((p & (priv ? Perm.PR : Perm.UR)) != 0).setWrite((p & (priv ? Perm.PW : Perm.UW)) != 0)
                        .setExecute((p & (priv ? Perm.PX : Perm.UX)) != 0));
            }
            case Payloads.STALLED -> b.setStalled(Stalled.newBuilder().setStreamId(q.getStreamId()).setStag(res.stag()));
            default -> b.setFault(Fault.newBuilder().setType(rep.reason()).setInputAddress(q.getIova()));
        }
        return b.build();
    }

    private static Diagnostics diagnostics(DeviceSession s) throws ProtocolException {
        Diagnostics d = s.diagnostics();
        if (d == null) {
            throw ProtocolException.refused(ProtocolException.ENOSYS, "model " + s.model() + " offers no diagnostics");
        }
        return d;
    }

    private static FieldValue field(Diagnostics.FieldValue f) {
        return FieldValue.newBuilder().setName(f.name()).setBits(f.bits()).setValue(f.value()).build();
    }

    private static Decoded decoded(DeviceSession s, java.util.function.Supplier<Diagnostics.Decoded> what) throws ProtocolException {
        Diagnostics.Decoded d = s.withDevice(x -> what.get());
        Decoded.Builder b = Decoded.newBuilder().setName(d.name()).setAddress(d.address());
        for (long w : d.words()) {
            b.addWords(w);
        }
        d.fields().forEach(f -> b.addFields(field(f)));
        if (d.error() != null) {
            b.setError(d.error());
        }
        return b.build();
    }

    /**
     * Walk (control.proto): the access explained by the model, changing nothing the guest sees.
     */
    private WalkResponse walk(dev.iommuemu.proto.v1.WalkRequest q) throws ProtocolException {
        DeviceSession s = session(q.getSession());
        Diagnostics d = diagnostics(s);
        int ssid = q.hasSubstreamId() ? q.getSubstreamId() : dev.iommuemu.dma.IommuModel.NO_SUBSTREAM;
        WalkExplanation e = s.withDevice(x -> d.walk(q.getStreamId(), ssid, q.getIova(), access(q.getAccess())));
        if (e == null) {
            throw ProtocolException.refused(ProtocolException.ENOSYS, "model " + s.model() + " has no table walk to explain; Translate answers what it would do");
        }
        return WalkAnswers.walk(e, q.getIova(), q.getAccess());
    }

    /**
     * Translate (control.proto): what the access would get now, without the access happening: the
     * model's explanation where it has one, else its speculative translation (IommuModel#speculate,
     * which records nothing). Unlike {@link #translate}, no event, counter or cache changes.
     */
    static TranslateResponse diagnose(DeviceSession s, TranslateRequest q) throws ProtocolException {
        int ssid = q.hasSubstreamId() ? q.getSubstreamId() : dev.iommuemu.dma.IommuModel.NO_SUBSTREAM;
        Diagnostics d = s.diagnostics();
        DmaAccess a = access(q.getAccess());
        WalkExplanation e = d == null ? null : s.withDevice(x -> d.walk(q.getStreamId(), ssid, q.getIova(), a));
        if (e != null) {
            TranslateResponse t = WalkAnswers.walk(e, q.getIova(), q.getAccess()).getResult();
            return t;
        }
        dev.iommuemu.dma.IotlbEntry entry = s.withDevice(x -> x.iommu().speculate(q.getStreamId(), ssid, q.getIova(), a));
        if (entry != null && entry.covers(q.getIova()) && Perm.allows(entry.perm(), a)) {
            return WalkAnswers.translated(entry, q.getIova(), q.getAccess());
        }
        return TranslateResponse.newBuilder().setFault(Fault.newBuilder().setType(NO_TRANSLATION).setInputAddress(q.getIova())).build();
    }

    /** Translate's fault type for a model without walk diagnostics whose speculative translation gives nothing. */
    static final String NO_TRANSLATION = "NO_TRANSLATION";

    private static RegistersResponse registers(DeviceSession s) throws ProtocolException {
        Diagnostics d = s.diagnostics();
        List<Register> regs = d == null ? List.of() : s.withDevice(x -> d.registers());
        RegistersResponse.Builder b = RegistersResponse.newBuilder();
        for (Register reg : regs) {
            long v = s.mmioRead(reg.offset(), reg.size());
            NamedRegister.Builder nb = NamedRegister.newBuilder().setName(reg.name()).setOffset(reg.offset()).setSize(reg.size()).setValue(v);
            for (Field f : reg.fields()) {
                nb.addFields(FieldValue.newBuilder().setName(f.name()).setBits("[" + (f.lsb() + f.width() - 1) + ":" + f.lsb() + "]").setValue(f.get(v)));
            }
            b.addRegisters(nb);
        }
        return b.build();
    }

}
