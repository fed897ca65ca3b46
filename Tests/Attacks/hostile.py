"""The attacker's tools: HTTP/2 frames crafted by hand (struct.pack for frame
headers, a small HPACK literal encoder for blocks) where a hostile client
needs traffic that h2 refuses to produce, a raw connection that reads the
server's frames back (GOAWAY, RST_STREAM, responses decoded with hpack), and a
well-behaved client on the h2 library for the calls that must follow the
protocol (flow control included).

Everything here only ever connects to 127.0.0.1, from 127.0.0.1 or
127.0.0.2."""
import select
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x6, 0x7, 0x8, 0xB
ERROR_NAMES = {0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
               0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
               0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
               0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED"}

SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6

GET_PRODUCT = "/platform.catalog.v1.CatalogService/GetProduct"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
TENANT = "attack"

# gRPC status codes the tests name.
OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE = 0, 3, 8, 13, 14


def error_name(code):
    return ERROR_NAMES.get(code, hex(code))


# -- frames -------------------------------------------------------------------

def frame(kind, flags, stream_id, payload=b""):
    """One frame, header packed by hand: nothing checks the length, the flags
    or the stream id, which is the point."""
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream_id & 0x7FFFFFFF) + payload


def frame_header(length, kind, flags, stream_id):
    """A frame header announcing `length` bytes, for frames whose payload is
    sent separately (or never)."""
    return struct.pack(">I", length)[1:] + struct.pack(">BBI", kind, flags, stream_id & 0x7FFFFFFF)


def settings(entries=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", key, value) for key, value in entries))


def ping(data=b"\0" * 8, ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def window_update(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def rst_stream(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def headers(stream_id, block, end_headers=True, end_stream=False):
    return frame(HEADERS, (END_HEADERS if end_headers else 0) | (END_STREAM if end_stream else 0), stream_id, block)


def continuation(stream_id, block, end_headers=False):
    return frame(CONTINUATION, END_HEADERS if end_headers else 0, stream_id, block)


def data(stream_id, payload, end_stream=False):
    return frame(DATA, END_STREAM if end_stream else 0, stream_id, payload)


def grpc_message(payload, compressed=False, length=None):
    """gRPC's length-prefixed message; `length` may lie about the payload."""
    return struct.pack(">BI", 1 if compressed else 0, len(payload) if length is None else length) + payload


# -- HPACK, by hand -----------------------------------------------------------

def hpack_int(value, prefix_bits, first_byte_flags=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(text):
    raw = text.encode() if isinstance(text, str) else bytes(text)
    return hpack_int(len(raw), 7) + raw


def literal(name, value, index=False):
    """A literal header field with a literal name: with incremental indexing
    (it enters the server's dynamic table) or without (the block can be
    replayed any number of times)."""
    return (b"\x40" if index else b"\x00") + hpack_string(name) + hpack_string(value)


def indexed(index):
    return hpack_int(index, 7, 0x80)


FIRST_DYNAMIC_INDEX = 62


def request_fields(path, port, metadata=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"), ("te", "trailers"), ("x-tenant-id", TENANT), *metadata]


def request_block(path, port, metadata=()):
    """A gRPC request's header block of literals without indexing: it
    changes no HPACK state, so one encoding serves every stream."""
    return b"".join(literal(name, value) for name, value in request_fields(path, port, metadata))


# -- protobuf, by hand (the few messages the tests send) ----------------------

def pb_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_bytes(field, payload):
    payload = payload.encode() if isinstance(payload, str) else payload
    return pb_varint(field << 3 | 2) + pb_varint(len(payload)) + payload


def get_product_request(product_id):
    return pb_bytes(1, product_id)


# -- a raw connection ---------------------------------------------------------

class Frame:
    __slots__ = ("kind", "flags", "stream_id", "payload")

    def __init__(self, kind, flags, stream_id, payload):
        self.kind, self.flags, self.stream_id, self.payload = kind, flags, stream_id, payload


class RawConnection:
    """A socket that speaks HTTP/2 only as far as the attacker wants: it
    sends whatever bytes it is given, and parses what the server sends back
    (GOAWAY, RST_STREAM, SETTINGS, response headers and trailers)."""

    def __init__(self, port, source="127.0.0.1", rcvbuf=None, sndbuf=None, timeout=5.0, connect=True):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        if connect:
            self.sock.connect(("127.0.0.1", port))
        # Non-blocking from here on: Python's timeout sockets wait out their
        # timeout even on MSG_DONTWAIT; every wait below is explicit.
        self.sock.setblocking(False)
        self.opened_at = time.monotonic()
        self.inbound = bytearray()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.pending_block = None  # (stream id, flags, bytes) while a header block continues
        self.closed = False
        self.closed_at = None
        self.goaway = None  # (last stream id, error code, debug data)
        self.goaway_at = None
        self.resets = {}  # stream id -> error code
        self.responses = {}  # stream id -> [header lists]
        self.data_bytes = {}  # stream id -> DATA bytes received
        self.ended = set()  # streams the server ended (END_STREAM)
        self.server_settings = {}
        self.got_settings = False
        self.auto_ack = True  # acknowledge the server's SETTINGS and PINGs
        self.ping_acks = 0
        self.bytes_sent = 0
        self.outbox = bytearray()
        self.progress_at = self.opened_at

    # -- sending --

    def send(self, payload, timeout=5.0):
        """Queues `payload` behind anything not yet sent and sends it all,
        reading meanwhile (a server that stops reading until its own
        writes drain must not deadlock the attacker). False when the
        server has gone, or the bytes did not all go within `timeout`."""
        self.push(payload)
        deadline = time.monotonic() + timeout
        while self.outbox and not self.closed:
            if self.pump() == 0 and not self.closed:
                if time.monotonic() > deadline:
                    return False
                poller = select.poll()
                poller.register(self.sock, select.POLLOUT | select.POLLIN)
                poller.poll(50)
                self.read_available(flush=False)
        return not self.closed

    def send_some(self, payload):
        """Non-blocking: sends what the socket takes now; returns the count
        (0 when the buffers are full), or -1 once the server has gone."""
        if self.closed:
            return -1
        try:
            n = self.sock.send(payload, socket.MSG_DONTWAIT)
            self.bytes_sent += n
            return n
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self._mark_closed()
            return -1

    def handshake(self, entries=((SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20),), wait=True, timeout=5.0):
        """Preface and SETTINGS; with `wait`, reads until the server's own
        SETTINGS arrived (and acknowledges it)."""
        self.send(PREFACE + settings(entries))
        if wait:
            self.wait(lambda: self.got_settings, timeout)
        return self.got_settings

    # -- receiving --

    def _mark_closed(self):
        if not self.closed:
            self.closed = True
            self.closed_at = time.monotonic()

    def fileno(self):
        return self.sock.fileno()

    def poll(self, timeout=0.0):
        """Reads what has arrived (waiting up to `timeout` for the first
        bytes) and processes every complete frame. Returns the frames."""
        if self.closed:
            return []
        if timeout > 0:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            if not poller.poll(timeout * 1000):
                return []
        return self.read_available()

    def read_available(self, flush=True):
        while not self.closed:
            try:
                chunk = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._mark_closed()
                break
            if not chunk:
                self._mark_closed()
                break
            self.inbound += chunk
            if len(chunk) < (1 << 16):
                break
        frames = self._parse()
        if flush:
            self.pump()  # the acknowledgements _parse queued
        return frames

    # -- a non-blocking outbox, for attackers that must never block --

    def push(self, payload):
        self.outbox += payload

    def pump(self):
        """Sends what the socket takes of the outbox now; returns the count."""
        if not self.outbox or self.closed:
            return 0
        n = self.send_some(self.outbox)
        if n > 0:
            del self.outbox[:n]
            self.progress_at = time.monotonic()
        return max(n, 0)

    def _parse(self):
        frames = []
        while len(self.inbound) >= 9:
            length = int.from_bytes(self.inbound[0:3], "big")
            if len(self.inbound) < 9 + length:
                break
            kind, flags, stream_id = self.inbound[3], self.inbound[4], int.from_bytes(self.inbound[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.inbound[9:9 + length])
            del self.inbound[:9 + length]
            received = Frame(kind, flags, stream_id, payload)
            self._process(received)
            frames.append(received)
        return frames

    def _process(self, f):
        if f.kind == SETTINGS and not f.flags & ACK:
            for offset in range(0, len(f.payload) - 5, 6):
                key, value = struct.unpack(">HI", f.payload[offset:offset + 6])
                self.server_settings[key] = value
            self.got_settings = True
            if self.auto_ack:
                self.push(settings(ack=True))
        elif f.kind == PING:
            if f.flags & ACK:
                self.ping_acks += 1
            elif self.auto_ack:
                self.push(ping(f.payload, ack=True))
        elif f.kind == GOAWAY:
            last, code = struct.unpack(">II", f.payload[:8])
            if self.goaway is None:
                self.goaway_at = time.monotonic()
            self.goaway = (last & 0x7FFFFFFF, code, f.payload[8:])
        elif f.kind == RST_STREAM:
            self.resets[f.stream_id] = struct.unpack(">I", f.payload[:4])[0]
        elif f.kind == HEADERS:
            block = f.payload
            if f.flags & PADDED:
                pad = block[0]
                block = block[1:len(block) - pad]
            if f.flags & PRIORITY_FLAG:
                block = block[5:]
            if f.flags & END_HEADERS:
                self._headers(f.stream_id, f.flags, block)
            else:
                self.pending_block = (f.stream_id, f.flags, bytearray(block))
        elif f.kind == CONTINUATION and self.pending_block:
            stream_id, flags, block = self.pending_block
            block += f.payload
            if f.flags & END_HEADERS:
                self.pending_block = None
                self._headers(stream_id, flags, bytes(block))
        elif f.kind == DATA:
            self.data_bytes[f.stream_id] = self.data_bytes.get(f.stream_id, 0) + len(f.payload)
            if f.flags & END_STREAM:
                self.ended.add(f.stream_id)

    def _headers(self, stream_id, flags, block):
        fields = [(name.decode(), value.decode(errors="replace")) for name, value in self.decoder.decode(block, raw=True)]
        self.responses.setdefault(stream_id, []).append(fields)
        if flags & END_STREAM:
            self.ended.add(stream_id)

    def wait(self, predicate, timeout):
        """Reads until `predicate()` holds, the server closes, or `timeout`."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return predicate()
            self.poll(min(left, 0.1))
        return True

    def wait_closed(self, timeout):
        """Reads (and discards) until the server closes the socket."""
        return self.wait(lambda: self.closed, timeout)

    @property
    def terminated(self):
        """The server ended the connection: an error GOAWAY, or closed."""
        return self.closed or (self.goaway is not None and self.goaway[1] != NO_ERROR)

    def grpc_status(self, stream_id):
        """(status, message) from the stream's trailers, or None."""
        for fields in reversed(self.responses.get(stream_id, [])):
            found = dict(fields)
            if "grpc-status" in found:
                return int(found["grpc-status"]), found.get("grpc-message", "")
        return None

    def stream_stopped(self, stream_id):
        """The server is done with the stream: reset it, ended it, or went."""
        return stream_id in self.resets or stream_id in self.ended or self.terminated

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self._mark_closed()

    def describe(self):
        parts = []
        if self.goaway:
            parts.append(f"GOAWAY {error_name(self.goaway[1])} {self.goaway[2]!r}")
        if self.closed:
            parts.append("closed")
        return ", ".join(parts) or "open"


def poll_all(connections, timeout):
    """Reads from whichever of `connections` has something, waiting up to
    `timeout` for the first (epoll: any number of sockets)."""
    live = {c.fileno(): c for c in connections if not c.closed}
    if not live:
        time.sleep(min(timeout, 0.05))
        return
    poller = select.epoll()
    try:
        for fd in live:
            poller.register(fd, select.EPOLLIN)
        ready = poller.poll(max(timeout, 0))
    finally:
        poller.close()
    for fd, _ in ready:
        live[fd].read_available()


# -- a well-behaved client on the h2 library ----------------------------------

class H2Client:
    """An ordinary HTTP/2 gRPC client on hyper-h2 (flow control, settings and
    pings handled by h2), for calls that must follow the protocol."""

    def __init__(self, port, source="127.0.0.1", timeout=5.0, window=1 << 20):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window, h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.conn.initiate_connection()
        self.closed = False
        self.goaway = None
        self.headers = {}  # stream id -> [header lists]
        self.resets = {}  # stream id -> error code
        self.ended = set()
        self.reset_at = {}
        self.status_at = {}
        self.outbox = bytearray()
        self._flush()

    def _flush(self, timeout=5.0):
        """Sends what h2 has queued without blocking on the socket, reading
        while the server does not take more (so neither side can wait for
        the other forever); gives up after `timeout`, keeping the rest."""
        self.outbox += self.conn.data_to_send()
        deadline = time.monotonic() + timeout
        while self.outbox and not self.closed:
            try:
                n = self.sock.send(self.outbox, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self.closed = True
                return
            del self.outbox[:n]
            if n == 0:
                if time.monotonic() > deadline:
                    return
                poller = select.poll()
                poller.register(self.sock, select.POLLIN | select.POLLOUT)
                if any(event & select.POLLIN for _, event in poller.poll(50)):
                    self._receive()

    def start(self, path, metadata=(), end_stream=False):
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, request_fields(path, self.port, metadata), end_stream=end_stream)
        self._flush()
        return stream_id

    def window(self, stream_id):
        try:
            return self.conn.local_flow_control_window(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError, KeyError):
            return 0

    def send(self, stream_id, payload, end_stream=False):
        """Sends `payload` as far as flow control allows now; returns the
        bytes sent (h2 never oversteps the window)."""
        sent = 0
        limit = self.conn.max_outbound_frame_size
        try:
            while sent < len(payload):
                room = min(self.window(stream_id), limit, len(payload) - sent)
                if room <= 0:
                    break
                last = end_stream and sent + room == len(payload)
                self.conn.send_data(stream_id, payload[sent:sent + room], end_stream=last)
                sent += room
            if end_stream and not payload:
                self.conn.end_stream(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self._flush()
        return sent

    def _receive(self):
        """Reads what has arrived (without waiting) and hands it to h2."""
        try:
            chunk = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return []
        try:
            events = self.conn.receive_data(chunk)
        except h2.exceptions.ProtocolError:
            self.closed = True
            return []
        now = time.monotonic()
        for event in events:
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                fields = [(n if isinstance(n, str) else n.decode(), v if isinstance(v, str) else v.decode()) for n, v in event.headers]
                self.headers.setdefault(event.stream_id, []).append(fields)
                if any(n == "grpc-status" for n, _ in fields):
                    self.status_at.setdefault(event.stream_id, now)
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.resets[event.stream_id] = event.error_code
                self.reset_at.setdefault(event.stream_id, now)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = (event.last_stream_id, event.error_code, event.additional_data)
        self.outbox += self.conn.data_to_send()
        return events

    def poll(self, timeout=0.0):
        """Waits up to `timeout` for the server, then handles what came."""
        if self.closed:
            return []
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        if not poller.poll(max(timeout, 0) * 1000):
            self._flush(0)
            return []
        events = self._receive()
        self._flush()
        return events

    def wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return predicate()
            self.poll(min(left, 0.1))
        return True

    def grpc_status(self, stream_id):
        for fields in reversed(self.headers.get(stream_id, [])):
            found = dict(fields)
            if "grpc-status" in found:
                return int(found["grpc-status"]), found.get("grpc-message", "")
        return None

    def unary(self, path, request, timeout=2.0, metadata=()):
        """One unary call: (grpc status, message), or None when no status
        arrived in time."""
        stream_id = self.start(path, metadata)
        body = grpc_message(request)
        self.send(stream_id, body, end_stream=True)
        self.wait(lambda: self.grpc_status(stream_id) is not None or stream_id in self.resets, timeout)
        return self.grpc_status(stream_id)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True
