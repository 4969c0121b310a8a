"""Python client of the iommu-emu control API (proto/src/main/protobuf/iommuemu/v1/control.proto).

Built from the same .proto files as the Java client, to show the API is language-neutral:

    protoc -I proto/src/main/protobuf --python_out=GEN \
        iommuemu/v1/translation.proto iommuemu/v1/control.proto
    PYTHONPATH=GEN:proto/src/main/python /usr/bin/python3 -c 'import iommuemu_client'

Needs Debian's python3-protobuf (and protobuf-compiler for protoc), i.e. Debian's interpreter
/usr/bin/python3: another python3 first on PATH (pyenv, a venv) lacks Debian's modules unless it
has its own protobuf package of a version matching protoc's. Framing: each message is
preceded by its length as a base-128 varint (protobuf's delimited form), as the daemon expects.
"""

import socket

from iommuemu.v1 import control_pb2, translation_pb2


class ControlError(Exception):
    """A request the daemon refused: errno and message from control.proto's Error."""

    def __init__(self, errno, message):
        super().__init__("%s (errno %d)" % (message, errno))
        self.errno = errno


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class ControlClient:
    """One control connection; sessions it creates are closed when it closes."""

    def __init__(self, path):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._file = self._sock.makefile("rb")
        self._next = 1

    def close(self):
        self._file.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, req):
        data = req.SerializeToString()
        self._sock.sendall(_varint(len(data)) + data)

    def _recv(self):
        shift = 0
        length = 0
        while True:
            b = self._file.read(1)
            if not b:
                return None
            length |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                break
            shift += 7
        data = self._file.read(length)
        if len(data) != length:
            return None
        resp = control_pb2.ControlResponse()
        resp.ParseFromString(data)
        return resp

    def call(self, field, message):
        """Sends a ControlRequest with its oneof `field` set to `message`; returns the response."""
        req = control_pb2.ControlRequest(id=self._next)
        self._next += 1
        getattr(req, field).CopyFrom(message)
        self._send(req)
        resp = self._recv()
        if resp is None:
            raise ConnectionError("the daemon closed the control connection")
        if resp.id != req.id:
            raise ConnectionError("response %d to request %d" % (resp.id, req.id))
        if resp.HasField("error"):
            raise ControlError(resp.error.errno, resp.error.message)
        return resp

    @staticmethod
    def access(write=False, execute=False, privileged=False):
        return translation_pb2.Access(write=write, instruction=execute, privileged=privileged)

    def status(self):
        return self.call("status", control_pb2.StatusRequest()).status

    def create_session(self, model="", profile=""):
        return self.call("create_session", control_pb2.CreateSessionRequest(model=model, profile=profile)).session

    def close_session(self, session):
        self.call("close_session", control_pb2.CloseSessionRequest(session=session))

    def add_memory(self, session, gpa, size):
        return self.call("add_memory", control_pb2.AddMemoryRequest(session=session, guest_phys_addr=gpa, size=size)).session

    def read_memory(self, session, address, length):
        return self.call("read_memory", control_pb2.ReadMemoryRequest(session=session, address=address, length=length)).memory.data

    def write_memory(self, session, address, data):
        self.call("write_memory", control_pb2.WriteMemoryRequest(session=session, address=address, data=data))

    def read_register(self, session, offset, size=4):
        return self.call("read_register", control_pb2.ReadRegisterRequest(session=session, offset=offset, size=size)).register_value.value

    def write_register(self, session, offset, value, size=4):
        self.call("write_register", control_pb2.WriteRegisterRequest(session=session, offset=offset, size=size, value=value))

    def translate(self, session, stream_id, iova, access=None, substream_id=None):
        req = translation_pb2.TranslateRequest(session=session, stream_id=stream_id, iova=iova,
                                               access=access or self.access())
        if substream_id is not None:
            req.substream_id = substream_id
        return self.call("translate", req).translate

    def inject_fault(self, session, stream_id, iova, access=None, substream_id=None):
        """The access made as an endpoint's DMA: the model records what its configuration calls for
        (Translate and Walk are diagnostics that record nothing)."""
        req = translation_pb2.TranslateRequest(session=session, stream_id=stream_id, iova=iova,
                                               access=access or self.access())
        if substream_id is not None:
            req.substream_id = substream_id
        return self.call("inject", control_pb2.InjectRequest(session=session, fault=req)).translate

    def walk(self, session, stream_id, iova, access=None, substream_id=None):
        req = control_pb2.WalkRequest(session=session, stream_id=stream_id, iova=iova, access=access or self.access())
        if substream_id is not None:
            req.substream_id = substream_id
        return self.call("walk", req).walk

    def counters(self, session=0):
        return dict(self.call("counters", control_pb2.CountersRequest(session=session)).counters.counters)

    def follow_events(self, session=0):
        """Subscribes (at once) and returns an iterator of Event messages as they happen; the
        connection carries nothing else afterwards."""
        self.call("subscribe_events", control_pb2.SubscribeEventsRequest(session=session))
        return self._events()

    def _events(self):
        while True:
            resp = self._recv()
            if resp is None or not resp.HasField("event"):
                return
            yield resp.event
