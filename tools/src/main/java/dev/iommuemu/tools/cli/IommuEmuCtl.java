package dev.iommuemu.tools.cli;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.bridge.client.ControlException;
import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.Decoded;
import dev.iommuemu.proto.v1.FieldValue;
import dev.iommuemu.proto.v1.MemoryRegion;
import dev.iommuemu.proto.v1.ModelInfo;
import dev.iommuemu.proto.v1.NamedRegister;
import dev.iommuemu.proto.v1.SessionInfo;
import dev.iommuemu.proto.v1.StatusResponse;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.WalkResponse;
import dev.iommuemu.proto.v1.WalkStep;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code iommu-emu-ctl}: inspects and drives a running daemon over its control socket
 * (control.proto). Every command prints plain text; errors print the daemon's errno and reason.
 */
public final class IommuEmuCtl {
    static final String USAGE = """
            Usage: iommu-emu-ctl [--control PATH] [--session ID] COMMAND [ARGS]

            Commands:
              status                      daemon, models and sessions
              counters                    counters of the session (or daemon totals with --session 0 and several sessions)
              registers                   every declared register of the model, decoded
              read-reg OFFSET [SIZE]      one MMIO read (SIZE 1, 2, 4, 8; default 4)
              write-reg OFFSET VALUE [SIZE]
              ste SID                     the stream table entry of SID, decoded
              cd SID SSID                 the context descriptor of SID/SSID, decoded
              walk SID IOVA [ACCESS]      the translation of IOVA explained level by level
              translate SID IOVA [ACCESS] translate one access
              mem ADDR LEN                hex dump of guest memory
              nesting                     nesting info the model reports
              events [--follow] [--count N]
                                          stream events (faults, interrupts, invalidations, ...) as they happen
            ACCESS options: --write, --exec, --priv, --ssid N (default: unprivileged data read, no substream).
            Numbers may be decimal or 0x-hex. The control socket defaults to $IOMMU_EMU_CONTROL, else
            ${XDG_RUNTIME_DIR:-/tmp}/iommu-emu-control.sock; --session defaults to the only session.
            """;

    private final PrintStream out;
    private final PrintStream err;

    IommuEmuCtl(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    public static void main(String[] args) {
        System.exit(new IommuEmuCtl(System.out, System.err).run(args, System.getenv()));
    }

    static long num(String s) {
        String t = s.replace("_", "");
        return t.startsWith("0x") || t.startsWith("0X") ? Long.parseUnsignedLong(t.substring(2), 16) : Long.parseLong(t);
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    int run(String[] args, Map<String, String> env) {
        String control = env.getOrDefault("IOMMU_EMU_CONTROL", "");
        if (control.isEmpty()) {
            String rt = env.getOrDefault("XDG_RUNTIME_DIR", "");
            control = (rt.isEmpty() ? "/tmp" : rt) + "/iommu-emu-control.sock";
        }
        long session = 0;
        List<String> rest = new ArrayList<>();
        boolean write = false;
        boolean exec = false;
        boolean priv = false;
        boolean follow = false;
        int ssid = -1;
        long count = Long.MAX_VALUE;
        try {
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "-h", "--help" -> {
                        out.print(USAGE);
                        return 0;
                    }
                    case "--control" -> control = args[++i];
                    case "--session" -> session = num(args[++i]);
                    case "--write" -> write = true;
                    case "--exec" -> exec = true;
                    case "--priv" -> priv = true;
                    case "--ssid" -> ssid = (int) num(args[++i]);
                    case "--follow" -> follow = true;
                    case "--count" -> count = num(args[++i]);
                    default -> {
                        if (args[i].startsWith("--")) {
                            err.println("iommu-emu-ctl: unknown option " + args[i] + " (see --help)");
                            return 2;
                        }
                        rest.add(args[i]);
                    }
                }
            }
        } catch (ArrayIndexOutOfBoundsException | NumberFormatException e) {
            err.println("iommu-emu-ctl: bad arguments (see --help): " + e.getMessage());
            return 2;
        }
        if (rest.isEmpty()) {
            err.print(USAGE);
            return 2;
        }
        Access access = ControlClient.access(write, exec, priv);
        String cmd = rest.get(0);
        try (ControlClient c = ControlClient.connect(Path.of(control))) {
            switch (cmd) {
                case "status" -> status(c.status());
                case "counters" -> new TreeMap<>(c.counters(session)).forEach((k, v) -> out.printf("%-20s %d%n", k, v));
                case "registers" -> registers(c.registers(session).getRegistersList());
                case "read-reg" -> {
                    int size = rest.size() > 2 ? (int) num(rest.get(2)) : 4;
                    out.printf("%s: %s%n", hex(num(rest.get(1))), hex(c.readRegister(session, num(rest.get(1)), size)));
                }
                case "write-reg" -> {
                    int size = rest.size() > 3 ? (int) num(rest.get(3)) : 4;
                    c.writeRegister(session, num(rest.get(1)), size, num(rest.get(2)));
                    out.printf("%s <- %s%n", hex(num(rest.get(1))), hex(num(rest.get(2))));
                }
                case "ste" -> decoded(c.decodeSte(session, (int) num(rest.get(1))));
                case "cd" -> decoded(c.decodeCd(session, (int) num(rest.get(1)), (int) num(rest.get(2))));
                case "walk" -> walk((int) num(rest.get(1)), ssid, num(rest.get(2)), access, c.walk(session, (int) num(rest.get(1)), ssid, num(rest.get(2)), access));
                case "translate" -> out.println(describe(num(rest.get(2)), c.translate(session, (int) num(rest.get(1)), ssid, num(rest.get(2)), access)));
                case "mem" -> dump(num(rest.get(1)), c.readMemory(session, num(rest.get(1)), (int) num(rest.get(2))));
                case "nesting" -> {
                    List<FieldValue> f = c.nestingInfo(session).getFieldsList();
                    if (f.isEmpty()) {
                        out.println("no nesting info (the model has no stage 2 to nest under)");
                    }
                    f.forEach(this::field);
                }
                case "events" -> {
                    long[] left = {count};
                    if (!follow) {
                        err.println("(streaming: events have no history; --follow is implied)");
                    }
                    c.followEvents(session, () -> {
                        err.println("(subscribed: following events)");
                        err.flush();
                    }, e -> {
                        out.printf("%s session=%d %s %s%n", Instant.ofEpochMilli(e.getTimeMillis()), e.getSession(), e.getKind(), e.getDetail());
                        out.flush();
                        return --left[0] > 0;
                    });
                }
                default -> {
                    err.println("iommu-emu-ctl: unknown command " + cmd + " (see --help)");
                    return 2;
                }
            }
            return 0;
        } catch (IndexOutOfBoundsException | NumberFormatException e) {
            err.println("iommu-emu-ctl: " + cmd + ": missing or bad argument (see --help)");
            return 2;
        } catch (ControlException e) {
            err.println("iommu-emu-ctl: " + cmd + ": " + e.getMessage());
            return 1;
        } catch (IOException e) {
            err.println("iommu-emu-ctl: " + e.getMessage());
            return 1;
        }
    }

    private void status(StatusResponse s) {
        out.printf("iommu-emu %s, protocol version %d%n", s.getVersion(), s.getProtocolVersion());
        out.printf("vmm socket: %s%n", s.getVmmSocket());
        out.printf("default model: %s%s%n", s.getDefaultModel(), s.getDefaultProfile().isEmpty() ? "" : " profile " + s.getDefaultProfile());
        for (ModelInfo m : s.getModelsList()) {
            out.printf("model %s (protocol %d): profiles %s%n", m.getName(), m.getProtocolNumber(), String.join(", ", m.getProfilesList()));
        }
        out.printf("%d session(s)%n", s.getSessionsCount());
        for (SessionInfo i : s.getSessionsList()) {
            StringBuilder mem = new StringBuilder();
            for (MemoryRegion r : i.getRegionsList()) {
                mem.append(' ').append(hex(r.getGuestPhysAddr())).append('+').append(hex(r.getSize()));
            }
            out.printf("  session %d: %s, model %s profile %s, mmio %s, memory:%s%n", i.getId(), i.getOrigin(), i.getModel(), i.getProfile(),
                    hex(i.getMmioSize()), mem.length() == 0 ? " none" : mem);
        }
    }

    private void field(FieldValue f) {
        out.printf("  %-16s %-9s %s%n", f.getName(), f.getBits(), hex(f.getValue()));
    }

    private void registers(List<NamedRegister> regs) {
        if (regs.isEmpty()) {
            out.println("the model declares no registers");
        }
        for (NamedRegister r : regs) {
            out.printf("%-20s @%-7s = %s%n", r.getName(), hex(r.getOffset()), hex(r.getValue()));
            r.getFieldsList().stream().filter(f -> f.getValue() != 0).forEach(this::field);
        }
    }

    private void decoded(Decoded d) {
        out.printf("%s at %s%n", d.getName(), hex(d.getAddress()));
        if (!d.getError().isEmpty()) {
            out.println("  error: " + d.getError());
        }
        for (int i = 0; i < d.getWordsCount(); i++) {
            out.printf("  word %d: 0x%016x%n", i, d.getWords(i));
        }
        d.getFieldsList().forEach(this::field);
    }

    static String accessName(Access a) {
        return (a.getPrivileged() ? "privileged " : "") + (a.getWrite() ? "write" : a.getInstruction() ? "exec" : "read");
    }

    static String describe(long iova, TranslateResponse t) {
        return switch (t.getResultCase()) {
            case TRANSLATED -> String.format("%s -> 0x%x (mask 0x%x, perm %s%s%s)", hex(iova), t.getTranslated().getOutputAddress(),
                    t.getTranslated().getAddressMask(), t.getTranslated().getRead() ? "r" : "-", t.getTranslated().getWrite() ? "w" : "-",
                    t.getTranslated().getExecute() ? "x" : "-");
            case FAULT -> String.format("%s -> fault %s", hex(iova), t.getFault().getType());
            case STALLED -> String.format("%s -> stalled (stag %d)", hex(iova), t.getStalled().getStag());
            default -> hex(iova) + " -> no result";
        };
    }

    private void walk(int sid, int ssid, long iova, Access a, WalkResponse w) {
        out.printf("walk of %s for stream %d%s, %s%n", hex(iova), sid, ssid >= 0 ? " substream " + ssid : "", accessName(a));
        for (WalkStep s : w.getStepsList()) {
            out.printf("  stage %d level %d: table %s, descriptor at %s = 0x%016x: %s%n", s.getStage(), s.getLevel(), hex(s.getTableAddress()),
                    hex(s.getDescriptorAddress()), s.getDescriptorValue(), s.getOutcome());
        }
        out.println("result: " + describe(iova, w.getResult()));
    }

    private void dump(long addr, byte[] b) {
        for (int i = 0; i < b.length; i += 16) {
            StringBuilder sb = new StringBuilder(String.format("%016x:", addr + i));
            for (int j = i; j < Math.min(b.length, i + 16); j++) {
                sb.append(String.format(" %02x", b[j] & 0xff));
            }
            out.println(sb);
        }
    }
}
