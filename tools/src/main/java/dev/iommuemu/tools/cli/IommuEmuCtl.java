package dev.iommuemu.tools.cli;

import com.google.protobuf.Message;
import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.client.ControlException;
import dev.iommuemu.bridge.client.Errno;
import dev.iommuemu.bridge.control.ControlService;
import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.CountersRequest;
import dev.iommuemu.proto.v1.CountersResponse;
import dev.iommuemu.proto.v1.CreateSessionRequest;
import dev.iommuemu.proto.v1.Decoded;
import dev.iommuemu.proto.v1.DecodeCdRequest;
import dev.iommuemu.proto.v1.DecodeSteRequest;
import dev.iommuemu.proto.v1.FieldValue;
import dev.iommuemu.proto.v1.Finding;
import dev.iommuemu.proto.v1.MemoryData;
import dev.iommuemu.proto.v1.MemoryRegion;
import dev.iommuemu.proto.v1.ModelInfo;
import dev.iommuemu.proto.v1.NamedRegister;
import dev.iommuemu.proto.v1.NestingInfoRequest;
import dev.iommuemu.proto.v1.NestingInfoResponse;
import dev.iommuemu.proto.v1.ReadMemoryRequest;
import dev.iommuemu.proto.v1.ReadRegisterRequest;
import dev.iommuemu.proto.v1.RegisterValue;
import dev.iommuemu.proto.v1.RegistersRequest;
import dev.iommuemu.proto.v1.RegistersResponse;
import dev.iommuemu.proto.v1.SessionInfo;
import dev.iommuemu.proto.v1.StatusRequest;
import dev.iommuemu.proto.v1.StatusResponse;
import dev.iommuemu.proto.v1.TranslateRequest;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.ViolationsRequest;
import dev.iommuemu.proto.v1.ViolationsResponse;
import dev.iommuemu.proto.v1.WalkRequest;
import dev.iommuemu.proto.v1.WalkResponse;
import dev.iommuemu.proto.v1.WriteRegisterRequest;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ScopeType;

/**
 * {@code iommu-emu-ctl}: inspects and drives a running daemon over its control socket
 * (control.proto). Every command prints text a person reads, or with {@code --json} the
 * response message in protobuf's JSON mapping (field names as in control.proto). Errors are
 * sentences: the daemon's reason with its errno's name, or what to do about a bad option.
 */
@Command(name = "iommu-emu-ctl", mixinStandardHelpOptions = true, scope = ScopeType.INHERIT, versionProvider = IommuEmuCtl.Version.class,
        sortOptions = false, usageHelpWidth = 100,
        description = "Inspects and drives a running iommu-emu daemon over its control socket (docs/daemon.md).",
        footer = {"", "Numbers may be decimal or 0x-hex (underscores allowed). The control socket defaults to "
                + "$$IOMMU_EMU_CONTROL, else $${XDG_RUNTIME_DIR:-/tmp}/iommu-emu-control.sock; --session 0 (the default) "
                + "means the only session. Bash/zsh completion: source <(iommu-emu-ctl generate-completion)."},
        subcommands = {CommandLine.HelpCommand.class, picocli.AutoComplete.GenerateCompletion.class})
public final class IommuEmuCtl implements Callable<Integer> {
    private final PrintStream out;
    private final PrintStream err;
    private String defaultControl = "/tmp/iommu-emu-control.sock";

    @Option(names = "--control", paramLabel = "PATH", scope = ScopeType.INHERIT,
            description = "the daemon's control socket")
    Path control;

    @Option(names = "--session", paramLabel = "ID", scope = ScopeType.INHERIT, converter = Numbers.U64.class,
            description = "the session (0: the only one)")
    long session;

    @Option(names = "--json", scope = ScopeType.INHERIT,
            description = "print the response as JSON (protobuf's JSON mapping of control.proto, one object per line)")
    boolean json;

    IommuEmuCtl(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    public static void main(String[] args) {
        System.exit(new IommuEmuCtl(System.out, System.err).run(args, System.getenv()));
    }

    /** The daemon's version as the ctl knows it (they ship together). */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"iommu-emu-ctl " + ControlService.VERSION};
        }
    }

    /** Parses, runs one command, returns the exit status: 0 done, 1 the command failed, 2 bad usage. */
    int run(String[] args, Map<String, String> env) {
        String c = env.getOrDefault("IOMMU_EMU_CONTROL", "");
        if (c.isEmpty()) {
            String rt = env.getOrDefault("XDG_RUNTIME_DIR", "");
            c = (rt.isEmpty() ? "/tmp" : rt) + "/iommu-emu-control.sock";
        }
        defaultControl = c;
        CommandLine cl = new CommandLine(this);
        cl.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
        cl.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("iommu-emu-ctl: " + ex.getMessage() + " (see iommu-emu-ctl "
                    + (ex.getCommandLine() == cl ? "" : ex.getCommandLine().getCommandName() + " ") + "--help)");
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            String name = cmd.getCommandName();
            if (ex instanceof ControlException ce) {
                err.println("iommu-emu-ctl: " + name + ": " + ce.getMessage());
            } else if (ex instanceof IOException io) {
                err.println("iommu-emu-ctl: " + name + ": " + io.getMessage());
            } else {
                throw ex;
            }
            return 1;
        });
        this.cl = cl;
        return cl.execute(args);
    }

    private CommandLine cl;

    /** No command given: the usage, and status 2. */
    @Override
    public Integer call() {
        err.println("iommu-emu-ctl: no command given; the commands are:");
        cl.usage(err);
        return 2;
    }

    private Path socket() {
        return control != null ? control : Path.of(defaultControl);
    }

    /** Connects, with a sentence saying what to do when there is no daemon. */
    private ControlClient connect() throws IOException {
        Path p = socket();
        if (!Files.exists(p)) {
            throw new IOException("no control socket at " + p + ": " + Errno.describe(2)
                    + "; start the daemon (bin/iommu-emu --control " + p + ") or name its socket with --control PATH");
        }
        try {
            return ControlClient.connect(p);
        } catch (IOException e) {
            throw new IOException(e.getMessage() + "; is the daemon running? (bin/iommu-emu --control " + p + ")");
        }
    }

    private ControlResponseHolder call(ControlRequest.Builder req) throws IOException, ControlException {
        try (ControlClient c = connect()) {
            return new ControlResponseHolder(c.call(req));
        }
    }

    private record ControlResponseHolder(dev.iommuemu.proto.v1.ControlResponse r) {}

    private void json(Message m) {
        out.println(Json.print(m));
    }

    // ---- commands

    @Command(name = "status", description = "the daemon, its models and its sessions")
    int status() throws Exception {
        StatusResponse s = call(ControlRequest.newBuilder().setStatus(StatusRequest.getDefaultInstance())).r().getStatus();
        if (json) {
            json(s);
            return 0;
        }
        out.printf("iommu-emu %s, protocol version %d%n", s.getVersion(), s.getProtocolVersion());
        out.printf("vmm socket: %s%n", s.getVmmSocket());
        out.printf("default model: %s%s%n", s.getDefaultModel(), s.getDefaultProfile().isEmpty() ? "" : " profile " + s.getDefaultProfile());
        for (ModelInfo m : s.getModelsList()) {
            out.printf("model %s (protocol %d): profiles %s%n", m.getName(), m.getProtocolNumber(), String.join(", ", m.getProfilesList()));
        }
        out.printf("%d session(s)%n", s.getSessionsCount());
        for (SessionInfo i : s.getSessionsList()) {
            out.printf("  session %d: %s%n", i.getId(), describe(i));
        }
        return 0;
    }

    private static String describe(SessionInfo i) {
        StringBuilder mem = new StringBuilder();
        for (MemoryRegion r : i.getRegionsList()) {
            mem.append(' ').append(Numbers.hex(r.getGuestPhysAddr())).append('+').append(Numbers.hex(r.getSize()));
        }
        return String.format("%s, model %s profile %s, mmio %s, memory:%s", i.getOrigin(), i.getModel(), i.getProfile(),
                Numbers.hex(i.getMmioSize()), mem.length() == 0 ? " none" : mem);
    }

    @Command(name = "counters", description = "the counters of --session ID, or the daemon's totals without --session")
    int counters() throws Exception {
        CountersResponse r = call(ControlRequest.newBuilder().setCounters(CountersRequest.newBuilder().setSession(session)))
                .r().getCounters();
        if (json) {
            json(r);
            return 0;
        }
        new TreeMap<>(r.getCountersMap()).forEach((k, v) -> out.printf("%-20s %d%n", k, v));
        return 0;
    }

    @Command(name = "registers", description = "every register the model declares, read and decoded")
    int registers() throws Exception {
        RegistersResponse r = call(ControlRequest.newBuilder().setRegisters(RegistersRequest.newBuilder().setSession(session)))
                .r().getRegisters();
        if (json) {
            json(r);
            return 0;
        }
        if (r.getRegistersCount() == 0) {
            out.println("the model declares no registers");
        }
        for (NamedRegister reg : r.getRegistersList()) {
            out.printf("%-20s @%-7s = %s%n", reg.getName(), Numbers.hex(reg.getOffset()), Numbers.hex(reg.getValue()));
            reg.getFieldsList().stream().filter(f -> f.getValue() != 0).forEach(this::field);
        }
        return 0;
    }

    @Command(name = "read-reg", description = "one MMIO read")
    int readReg(@Parameters(paramLabel = "OFFSET", converter = Numbers.U64.class) long offset,
            @Parameters(paramLabel = "SIZE", arity = "0..1", defaultValue = "4", converter = Numbers.Size.class,
                    description = "1, 2, 4 or 8 bytes (default 4)") int size) throws Exception {
        RegisterValue v = call(ControlRequest.newBuilder().setReadRegister(ReadRegisterRequest.newBuilder()
                .setSession(session).setOffset(offset).setSize(size))).r().getRegisterValue();
        if (json) {
            json(v);
        } else {
            out.printf("%s: %s%n", Numbers.hex(offset), Numbers.hex(v.getValue()));
        }
        return 0;
    }

    @Command(name = "write-reg", description = "one MMIO write")
    int writeReg(@Parameters(paramLabel = "OFFSET", converter = Numbers.U64.class) long offset,
            @Parameters(paramLabel = "VALUE", converter = Numbers.U64.class) long value,
            @Parameters(paramLabel = "SIZE", arity = "0..1", defaultValue = "4", converter = Numbers.Size.class,
                    description = "1, 2, 4 or 8 bytes (default 4)") int size) throws Exception {
        RegisterValue v = call(ControlRequest.newBuilder().setWriteRegister(WriteRegisterRequest.newBuilder()
                .setSession(session).setOffset(offset).setSize(size).setValue(value))).r().getRegisterValue();
        if (json) {
            json(v);
        } else {
            out.printf("%s <- %s%n", Numbers.hex(offset), Numbers.hex(value));
        }
        return 0;
    }

    @Command(name = "inject", description = "make an IMPLEMENTATION DEFINED error happen in --session ID: "
            + "sfm (SMMUv3 service failure mode: GERROR.SFM_ERR; traffic terminated and queues stopped until reset)")
    int inject(@Parameters(paramLabel = "WHAT", description = "sfm") String what) throws Exception {
        if (!what.equals("sfm")) {
            err.println("iommu-emu-ctl: inject: '" + what + "' cannot be injected; the choices are: sfm");
            return 2;
        }
        call(ControlRequest.newBuilder().setInject(dev.iommuemu.proto.v1.InjectRequest.newBuilder().setSession(session)
                .setServiceFailure(dev.iommuemu.proto.v1.ServiceFailure.getDefaultInstance())));
        out.println("service failure mode: SMMU_GERROR.SFM_ERR is active; transactions are terminated and the queues "
                + "stopped until the SMMU is reset");
        return 0;
    }

    @Command(name = "ste", description = "the stream table entry of SID, decoded from guest memory")
    int ste(@Parameters(paramLabel = "SID", converter = Numbers.U32.class, description = "StreamID") int sid) throws Exception {
        return decoded(call(ControlRequest.newBuilder().setDecodeSte(DecodeSteRequest.newBuilder().setSession(session)
                .setStreamId(sid))).r().getDecoded());
    }

    @Command(name = "cd", description = "the context descriptor of SID/SSID, decoded from guest memory")
    int cd(@Parameters(paramLabel = "SID", converter = Numbers.U32.class, description = "StreamID") int sid,
            @Parameters(paramLabel = "SSID", converter = Numbers.U32.class, description = "SubstreamID") int ssid)
            throws Exception {
        return decoded(call(ControlRequest.newBuilder().setDecodeCd(DecodeCdRequest.newBuilder().setSession(session)
                .setStreamId(sid).setSubstreamId(ssid))).r().getDecoded());
    }

    private int decoded(Decoded d) {
        if (json) {
            json(d);
            return 0;
        }
        out.printf("%s at %s%n", d.getName(), d.getAddress() == -1L ? "(not read)" : Numbers.hex(d.getAddress()));
        if (!d.getError().isEmpty()) {
            out.println("  error: " + d.getError());
        }
        for (int i = 0; i < d.getWordsCount(); i++) {
            out.printf("  word %d: 0x%016x%n", i, d.getWords(i));
        }
        d.getFieldsList().forEach(this::field);
        return 0;
    }

    private void field(FieldValue f) {
        out.printf("  %-16s %-9s %s%n", f.getName(), f.getBits(), Numbers.hex(f.getValue()));
    }

    /** The attributes of one access, shared by walk and translate. */
    static final class AccessOptions {
        @Option(names = "--write", description = "a write (default: a read)")
        boolean write;
        @Option(names = "--exec", description = "an instruction fetch")
        boolean exec;
        @Option(names = "--priv", description = "privileged (default: unprivileged)")
        boolean priv;
        @Option(names = "--ssid", paramLabel = "N", converter = Numbers.U32.class,
                description = "the SubstreamID (PASID); default: none")
        Integer ssid;

        Access access() {
            return ControlClient.access(write, exec, priv);
        }
    }

    @Command(name = "walk", description = "why IOVA translates or faults: the state that decided, the table walk "
            + "level by level, the fault and the event record the SMMU would write. Changes nothing the guest sees.")
    int walk(@Parameters(paramLabel = "SID", converter = Numbers.U32.class, description = "StreamID") int sid,
            @Parameters(paramLabel = "IOVA", converter = Numbers.U64.class) long iova, @Mixin AccessOptions a)
            throws Exception {
        WalkRequest.Builder q = WalkRequest.newBuilder().setSession(session).setStreamId(sid).setIova(iova).setAccess(a.access());
        if (a.ssid != null) {
            q.setSubstreamId(a.ssid);
        }
        WalkResponse w = call(ControlRequest.newBuilder().setWalk(q)).r().getWalk();
        if (json) {
            json(w);
        } else {
            out.print(WalkText.walk(sid, a.ssid, iova, a.access(), w));
        }
        return 0;
    }

    @Command(name = "translate", description = "what one access gets now (a diagnostic: nothing is recorded)")
    int translate(@Parameters(paramLabel = "SID", converter = Numbers.U32.class, description = "StreamID or endpoint ID") int sid,
            @Parameters(paramLabel = "IOVA", converter = Numbers.U64.class) long iova, @Mixin AccessOptions a)
            throws Exception {
        TranslateRequest.Builder q = TranslateRequest.newBuilder().setSession(session).setStreamId(sid).setIova(iova)
                .setAccess(a.access());
        if (a.ssid != null) {
            q.setSubstreamId(a.ssid);
        }
        TranslateResponse t = call(ControlRequest.newBuilder().setTranslate(q)).r().getTranslate();
        if (json) {
            json(t);
        } else {
            out.println(WalkText.result(iova, t));
            out.print(WalkText.attributes(t));
        }
        return 0;
    }

    @Command(name = "mem", description = "hex dump of guest memory")
    int mem(@Parameters(paramLabel = "ADDR", converter = Numbers.U64.class) long addr,
            @Parameters(paramLabel = "LEN", converter = Numbers.U32.class, description = "bytes, at most 1 MiB") int len)
            throws Exception {
        MemoryData m = call(ControlRequest.newBuilder().setReadMemory(ReadMemoryRequest.newBuilder().setSession(session)
                .setAddress(addr).setLength(len))).r().getMemory();
        if (json) {
            json(m);
            return 0;
        }
        byte[] b = m.getData().toByteArray();
        for (int i = 0; i < b.length; i += 16) {
            StringBuilder sb = new StringBuilder(String.format("%016x:", addr + i));
            for (int j = i; j < Math.min(b.length, i + 16); j++) {
                sb.append(String.format(" %02x", b[j] & 0xff));
            }
            out.println(sb);
        }
        return 0;
    }

    @Command(name = "nesting", description = "the nesting info the model reports (iommufd's IOMMU_GET_HW_INFO)")
    int nesting() throws Exception {
        NestingInfoResponse r = call(ControlRequest.newBuilder().setNestingInfo(NestingInfoRequest.newBuilder()
                .setSession(session))).r().getNestingInfo();
        if (json) {
            json(r);
            return 0;
        }
        r.getFieldsList().forEach(this::field);
        return 0;
    }

    @Command(name = "events", description = "stream events (faults, interrupts, invalidations, ...) as they happen; "
            + "events have no history")
    int events(@Option(names = "--follow", description = "keep following (the default: events are a stream)") boolean follow,
            @Option(names = "--count", paramLabel = "N", converter = Numbers.U64.class,
                    description = "stop after N events") Long count) throws Exception {
        long[] left = {count == null ? Long.MAX_VALUE : count};
        try (ControlClient c = connect()) {
            c.followEvents(session, () -> {
                // on stderr: stdout carries only events (guest-tests/boot/run.sh waits for this line)
                err.println("(subscribed: following events)");
                err.flush();
            }, e -> {
                if (json) {
                    json(e);
                } else {
                    out.printf("%s session=%d %s %s%n", Instant.ofEpochMilli(e.getTimeMillis()), e.getSession(), e.getKind(), e.getDetail());
                }
                out.flush();
                return --left[0] > 0;
            });
        }
        return 0;
    }

    @Command(name = "violations", description = "strict mode's findings in the session (a \"+strict\" profile): each "
            + "stale STE, CD or TLB entry once, with the invalidation that would have removed it; the last 256 are kept")
    int violations() throws Exception {
        ViolationsResponse r = call(ControlRequest.newBuilder().setViolations(ViolationsRequest.newBuilder()
                .setSession(session))).r().getViolations();
        if (json) {
            json(r);
            return 0;
        }
        if (!r.getStrict() && r.getTotal() == 0) {
            out.println("the session is not in strict mode: findings are made with a \"+strict\" profile "
                    + "(e.g. bin/iommu-emu --profile default+strict)");
            return 0;
        }
        StringBuilder kinds = new StringBuilder();
        new TreeMap<>(r.getByKindMap()).forEach((k, v) -> kinds.append(kinds.length() == 0 ? " (" : ", ").append(v).append(' ').append(k));
        out.printf("%d finding%s%s%s%n", r.getTotal(), r.getTotal() == 1 ? "" : "s", kinds.length() == 0 ? "" : kinds + ")",
                r.getTotal() > r.getFindingsCount() ? "; the last " + r.getFindingsCount() + " follow" : "");
        for (Finding f : r.getFindingsList()) {
            out.println(f.getDetail());
        }
        return 0;
    }

    @Command(name = "create-session", description = "create a protobuf-only session (a VMM-less IOMMU: docs/daemon.md) "
            + "with guest memory, print it, and hold it until stdin ends or the command is interrupted; "
            + "other commands reach it with --session ID while it is held")
    int createSession(@Option(names = "--model", paramLabel = "NAME", defaultValue = "",
            description = "smmuv3, virtio-iommu, identity (default: the daemon's)") String model,
            @Option(names = "--profile", paramLabel = "NAME", defaultValue = "", description = "the model's profile") String profile,
            @Option(names = "--memory", paramLabel = "SIZE[@GPA]", split = ",",
                    description = "guest RAM the daemon allocates, e.g. 16M@0 (K, M, G suffixes; GPA default 0)") List<String> memory,
            @Option(names = "--no-hold", description = "close the session at once (it only proves the request)") boolean noHold)
            throws Exception {
        try (ControlClient c = connect()) {
            SessionInfo s = c.call(ControlRequest.newBuilder().setCreateSession(CreateSessionRequest.newBuilder()
                    .setModel(model).setProfile(profile))).getSession();
            if (memory != null) {
                for (String m : memory) {
                    long[] r = Numbers.region(m);
                    s = c.addMemory(s.getId(), r[1], r[0]);
                }
            }
            if (json) {
                json(s);
            } else {
                out.printf("session %d: %s%n", s.getId(), describe(s));
                if (!noHold) {
                    out.println("(held: the session closes when this command ends; end it with Ctrl-D or Ctrl-C)");
                }
            }
            out.flush();
            if (!noHold) {
                holdUntilEof(System.in);
            }
        }
        return 0;
    }

    @Command(name = "record", description = "start recording --session ID's IOMMU traffic to FILE, which the daemon writes "
            + "(docs/recording.md), or stop it with --stop")
    int record(@Parameters(paramLabel = "FILE", arity = "0..1", description = "the recording to write (made absolute here)") Path file,
            @Option(names = "--stop", description = "stop the session's recording") boolean stop,
            @Option(names = "--max-mib", paramLabel = "N", defaultValue = "0",
                    description = "stop at N MiB of file (default: the daemon's --record-max-mib)") long maxMib) throws Exception {
        if (stop == (file != null)) {
            err.println("iommu-emu-ctl: record: give either FILE or --stop (see iommu-emu-ctl record --help)");
            return 2;
        }
        dev.iommuemu.proto.v1.RecordRequest.Builder q = dev.iommuemu.proto.v1.RecordRequest.newBuilder().setSession(session).setStop(stop)
                .setMaxBytes(maxMib << 20);
        if (file != null) {
            q.setPath(file.toAbsolutePath().toString());
        }
        dev.iommuemu.proto.v1.RecordingStatus r = call(ControlRequest.newBuilder().setRecord(q)).r().getRecording();
        if (json) {
            json(r);
        } else if (r.getActive()) {
            out.printf("recording to %s%n", r.getPath());
        } else {
            out.printf("recording to %s ended: %d operations, %d bytes%n", r.getPath(), r.getOperations(), r.getBytes());
        }
        return 0;
    }

    @Command(name = "replay", description = "run a recording (iommu-emu --record, docs/recording.md) against a fresh model "
            + "of this build and report the first divergence; needs no daemon. Exit status 0: identical, 1: it diverges")
    int replay(@Parameters(paramLabel = "FILE", description = "the recording") Path file) throws Exception {
        dev.iommuemu.bridge.recording.Replay.Outcome o = dev.iommuemu.bridge.recording.Replay.run(file,
                dev.iommuemu.bridge.device.DeviceRegistry.discover());
        out.println(o.sentence());
        return o.identical() ? 0 : 1;
    }

    private static void holdUntilEof(InputStream in) throws IOException {
        byte[] b = new byte[256];
        while (in.read(b) >= 0) {
            // the session lives as long as this connection
        }
    }
}
