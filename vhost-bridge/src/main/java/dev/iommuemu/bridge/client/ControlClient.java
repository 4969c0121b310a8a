package dev.iommuemu.bridge.client;

import com.google.protobuf.ByteString;
import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.AddMemoryRequest;
import dev.iommuemu.proto.v1.CloseSessionRequest;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.ControlResponse;
import dev.iommuemu.proto.v1.CountersRequest;
import dev.iommuemu.proto.v1.CreateSessionRequest;
import dev.iommuemu.proto.v1.DecodeCdRequest;
import dev.iommuemu.proto.v1.DecodeSteRequest;
import dev.iommuemu.proto.v1.Decoded;
import dev.iommuemu.proto.v1.Event;
import dev.iommuemu.proto.v1.NestingInfoRequest;
import dev.iommuemu.proto.v1.NestingInfoResponse;
import dev.iommuemu.proto.v1.ReadMemoryRequest;
import dev.iommuemu.proto.v1.ReadRegisterRequest;
import dev.iommuemu.proto.v1.RegistersRequest;
import dev.iommuemu.proto.v1.RegistersResponse;
import dev.iommuemu.proto.v1.SessionInfo;
import dev.iommuemu.proto.v1.StatusRequest;
import dev.iommuemu.proto.v1.StatusResponse;
import dev.iommuemu.proto.v1.SubscribeEventsRequest;
import dev.iommuemu.proto.v1.TranslateRequest;
import dev.iommuemu.proto.v1.TranslateResponse;
import dev.iommuemu.proto.v1.WalkRequest;
import dev.iommuemu.proto.v1.WalkResponse;
import dev.iommuemu.proto.v1.WriteMemoryRequest;
import dev.iommuemu.proto.v1.WriteRegisterRequest;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Predicate;

/**
 * The Java client of the control API (control.proto): one connection, requests answered in order.
 * Sessions it creates live as long as the connection. Not thread-safe: one caller at a time.
 * Needs no file descriptors, so it uses Java's own unix-domain channels.
 */
public final class ControlClient implements AutoCloseable {
    private final SocketChannel channel;
    private final InputStream in;
    private final OutputStream out;
    private long nextId = 1;

    private ControlClient(SocketChannel channel) {
        this.channel = channel;
        this.in = new BufferedInputStream(Channels.newInputStream(channel));
        this.out = new BufferedOutputStream(Channels.newOutputStream(channel));
    }

    public static ControlClient connect(Path socket) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.connect(UnixDomainSocketAddress.of(socket));
        } catch (IOException e) {
            ch.close();
            throw new IOException("cannot connect to the control socket " + socket + ": " + e.getMessage(), e);
        }
        return new ControlClient(ch);
    }

    /** Sends one request (the id is filled in) and returns the response, or throws its error. */
    public ControlResponse call(ControlRequest.Builder req) throws IOException, ControlException {
        long id = nextId++;
        req.setId(id).build().writeDelimitedTo(out);
        out.flush();
        ControlResponse r = ControlResponse.parseDelimitedFrom(in);
        if (r == null) {
            throw new IOException("the daemon closed the control connection");
        }
        if (r.getId() != id) {
            throw new IOException("response " + r.getId() + " to request " + id);
        }
        if (r.hasError()) {
            throw new ControlException(r.getError().getErrno(), r.getError().getMessage());
        }
        return r;
    }

    public StatusResponse status() throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setStatus(StatusRequest.getDefaultInstance())).getStatus();
    }

    /** A session of this connection (closed with it); empty model/profile = the daemon's default. */
    public SessionInfo createSession(String model, String profile) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setCreateSession(CreateSessionRequest.newBuilder().setModel(model).setProfile(profile))).getSession();
    }

    public void closeSession(long session) throws IOException, ControlException {
        call(ControlRequest.newBuilder().setCloseSession(CloseSessionRequest.newBuilder().setSession(session)));
    }

    /** Guest RAM the daemon allocates for a session of this connection. */
    public SessionInfo addMemory(long session, long gpa, long size) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setAddMemory(AddMemoryRequest.newBuilder().setSession(session).setGuestPhysAddr(gpa).setSize(size))).getSession();
    }

    public byte[] readMemory(long session, long gpa, int length) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setReadMemory(ReadMemoryRequest.newBuilder().setSession(session).setAddress(gpa).setLength(length))).getMemory().getData().toByteArray();
    }

    public void writeMemory(long session, long gpa, byte[] data) throws IOException, ControlException {
        call(ControlRequest.newBuilder().setWriteMemory(WriteMemoryRequest.newBuilder().setSession(session).setAddress(gpa).setData(ByteString.copyFrom(data))));
    }

    public long readRegister(long session, long offset, int size) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setReadRegister(ReadRegisterRequest.newBuilder().setSession(session).setOffset(offset).setSize(size))).getRegisterValue().getValue();
    }

    public void writeRegister(long session, long offset, int size, long value) throws IOException, ControlException {
        call(ControlRequest.newBuilder().setWriteRegister(WriteRegisterRequest.newBuilder().setSession(session).setOffset(offset).setSize(size).setValue(value)));
    }

    public RegistersResponse registers(long session) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setRegisters(RegistersRequest.newBuilder().setSession(session))).getRegisters();
    }

    public static Access access(boolean write, boolean exec, boolean privileged) {
        return Access.newBuilder().setWrite(write).setInstruction(exec).setPrivileged(privileged).build();
    }

    /** {@code substream} < 0: none. */
    public TranslateResponse translate(long session, int streamId, int substream, long iova, Access access) throws IOException, ControlException {
        TranslateRequest.Builder b = TranslateRequest.newBuilder().setSession(session).setStreamId(streamId).setIova(iova).setAccess(access);
        if (substream >= 0) {
            b.setSubstreamId(substream);
        }
        return call(ControlRequest.newBuilder().setTranslate(b)).getTranslate();
    }

    public Decoded decodeSte(long session, int streamId) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setDecodeSte(DecodeSteRequest.newBuilder().setSession(session).setStreamId(streamId))).getDecoded();
    }

    public Decoded decodeCd(long session, int streamId, int substreamId) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setDecodeCd(DecodeCdRequest.newBuilder().setSession(session).setStreamId(streamId).setSubstreamId(substreamId))).getDecoded();
    }

    public WalkResponse walk(long session, int streamId, int substream, long iova, Access access) throws IOException, ControlException {
        WalkRequest.Builder b = WalkRequest.newBuilder().setSession(session).setStreamId(streamId).setIova(iova).setAccess(access);
        if (substream >= 0) {
            b.setSubstreamId(substream);
        }
        return call(ControlRequest.newBuilder().setWalk(b)).getWalk();
    }

    public NestingInfoResponse nestingInfo(long session) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setNestingInfo(NestingInfoRequest.newBuilder().setSession(session))).getNestingInfo();
    }

    /**
     * One iommufd call on the session's nesting host (control.proto IommufdRequest); a refused
     * call comes back as {@code IommufdResponse.errno}, not as an exception.
     */
    public dev.iommuemu.proto.v1.IommufdResponse iommufd(long session, dev.iommuemu.proto.v1.IommufdRequest.Builder req)
            throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setIommufd(req.setSession(session))).getIommufd();
    }

    /** The session's strict-mode findings (control.proto Violations). */
    public dev.iommuemu.proto.v1.ViolationsResponse violations(long session) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setViolations(dev.iommuemu.proto.v1.ViolationsRequest.newBuilder()
                .setSession(session))).getViolations();
    }

    /** Counters of a session, or the daemon's totals for session 0. */
    public Map<String, Long> counters(long session) throws IOException, ControlException {
        return call(ControlRequest.newBuilder().setCounters(CountersRequest.newBuilder().setSession(session))).getCounters().getCountersMap();
    }

    /**
     * Streams events (of one session, or all for 0) to {@code sink} until it returns false or the
     * connection ends. The connection carries nothing else afterwards.
     */
    public void followEvents(long session, Predicate<Event> sink) throws IOException, ControlException {
        followEvents(session, () -> {}, sink);
    }

    /**
     * As {@link #followEvents(long, Predicate)}, running {@code subscribed} once the daemon has
     * confirmed the subscription (its empty first response): events from then on are delivered.
     */
    public void followEvents(long session, Runnable subscribed, Predicate<Event> sink) throws IOException, ControlException {
        call(ControlRequest.newBuilder().setSubscribeEvents(SubscribeEventsRequest.newBuilder().setSession(session)));
        subscribed.run();
        while (true) {
            ControlResponse r = ControlResponse.parseDelimitedFrom(in);
            if (r == null || !r.hasEvent() || !sink.test(r.getEvent())) {
                return;
            }
        }
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
