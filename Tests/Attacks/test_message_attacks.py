"""Attacks in the gRPC layer: lying length prefixes, bodies too large to
buffer, malformed framing and undecodable messages."""
import struct
import time

from hostile import (GET_PRODUCT, INTERNAL, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, H2Client, get_product_request,
                     grpc_message)

STATUS_WITHIN_S = 1.0
RESET_AFTER_STATUS_WITHIN_S = 1.0
# The slow body: how much the attacker may get in before the server stops it.
SLOW_BODY_DECLARED = 100 * 1000 * 1000
SLOW_BODY_STOP_BEFORE = 4 << 20


def test_length_prefix_4gib(hostile):
    """10 GetProduct calls whose message prefix announces 0xFFFFFFFF bytes,
    followed by body bytes that keep coming. Expected: RESOURCE_EXHAUSTED
    within STATUS_WITHIN_S, then RST_STREAM, because the server will not
    read the rest of a body it refused."""
    server = hostile.server()
    port = server.port
    with hostile.attack("4 GiB length prefix", server, duration=4.0) as run:
        client = hostile.track(H2Client(port))
        client.poll(0.2)
        started = {}
        for _ in range(10):
            stream_id = client.start(GET_PRODUCT)
            client.send(stream_id, struct.pack(">BI", 0, 0xFFFFFFFF) + bytes(16 << 10))
            started[stream_id] = time.monotonic()
        sent = {stream_id: 0 for stream_id in started}
        filler = bytes(16 << 10)
        while run.active() and not client.closed:
            for stream_id in started:
                if stream_id not in client.resets and client.window(stream_id) > 0:
                    sent[stream_id] += client.send(stream_id, filler)
            client.poll(0.02)
            if all(s in client.resets for s in started):
                break
        for stream_id, at in started.items():
            status = client.grpc_status(stream_id)
            status_took = client.status_at.get(stream_id, float("inf")) - at
            reset_took = client.reset_at.get(stream_id, float("inf")) - client.status_at.get(stream_id, float("inf"))
            run.expect(status is not None and status[0] == RESOURCE_EXHAUSTED and status_took <= STATUS_WITHIN_S,
                       f"stream {stream_id}: a 4 GiB length prefix got {status} after {status_took:.2f} s, not RESOURCE_EXHAUSTED "
                       f"within {STATUS_WITHIN_S} s")
            run.expect(stream_id in client.resets and reset_took <= RESET_AFTER_STATUS_WITHIN_S,
                       f"stream {stream_id}: no RST_STREAM within {RESET_AFTER_STATUS_WITHIN_S} s after the status while the "
                       f"client kept sending ({sent[stream_id] >> 10} KiB more went in)")
        run.note(f"body bytes sent after the prefixes: {sum(sent.values()) >> 10} KiB")


def test_slow_100mb_body(hostile):
    """A GetProduct request declaring a 100 MB body (content-length and the
    message prefix) sent slowly, 64 KiB every 50 ms. Expected:
    RESOURCE_EXHAUSTED, and the server stops the stream with RST_STREAM
    before the attacker got SLOW_BODY_STOP_BEFORE bytes in."""
    server = hostile.server()
    port = server.port
    with hostile.attack("slow 100 MB body", server, duration=6.0) as run:
        client = hostile.track(H2Client(port))
        client.poll(0.2)
        stream_id = client.start(GET_PRODUCT, metadata=[("content-length", str(SLOW_BODY_DECLARED))])
        sent = client.send(stream_id, grpc_message(b"", length=SLOW_BODY_DECLARED - 5))
        piece = bytes(64 << 10)
        reset_after = None
        while run.active() and not client.closed and sent < 2 * SLOW_BODY_STOP_BEFORE:
            if stream_id in client.resets:
                reset_after = sent
                break
            sent += client.send(stream_id, piece)
            client.poll(0.05)
        status = client.grpc_status(stream_id)
        run.note(f"{sent >> 10} KiB sent; status {status}; reset {client.resets.get(stream_id)} after {reset_after} bytes")
        run.expect(status is not None and status[0] == RESOURCE_EXHAUSTED,
                   f"a request declaring {SLOW_BODY_DECLARED} bytes got {status}, not RESOURCE_EXHAUSTED")
        run.expect(reset_after is not None and reset_after < SLOW_BODY_STOP_BEFORE,
                   f"the server did not reset the stream before {SLOW_BODY_STOP_BEFORE >> 20} MiB of the slow body were sent "
                   f"({sent >> 20} MiB went in, reset: {client.resets.get(stream_id)})")


MALFORMED_FRAMING = {
    "truncated prefix": b"\x00\x00\x00",
    "prefix longer than the body": b"\x00" + struct.pack(">I", 100) + b"abc",
    "compressed flag without grpc-encoding": b"\x01" + struct.pack(">I", 0),
    "compressed flag on a message": b"\x01" + struct.pack(">I", 3) + b"abc",
}


def test_malformed_grpc_framing(hostile):
    """Bodies that break gRPC's length-prefixed framing, over and over on 4
    connections: each call ends with INTERNAL and a message saying why."""
    server = hostile.server()
    port = server.port
    with hostile.attack("malformed gRPC framing", server, duration=3.0) as run:
        clients = [hostile.track(H2Client(port)) for _ in range(4)]
        wrong = []
        calls = 0
        while run.active():
            for client in clients:
                for name, body in MALFORMED_FRAMING.items():
                    stream_id = client.start(GET_PRODUCT)
                    client.send(stream_id, body, end_stream=True)
                    client.wait(lambda: client.grpc_status(stream_id) is not None or stream_id in client.resets, 1.0)
                    status = client.grpc_status(stream_id)
                    calls += 1
                    if status is None or status[0] != INTERNAL or not status[1]:
                        wrong.append(f"{name}: {status or client.resets.get(stream_id)}")
        run.note(f"{calls} calls")
        run.expect(calls and not wrong, f"{len(wrong)} of {calls} malformed bodies did not get INTERNAL with a message: {wrong[:4]}")


INVALID_PROTOBUF = {
    "bad tag": b"\xff\xff\xff",
    "truncated string": b"\x0a\x10abc",
    "truncated varint": b"\x0a\xff",
    "invalid wire type": b"\x0f",
    "invalid UTF-8 in a string": b"\x0a\x02\xc3\x28",
}


def test_invalid_protobuf(hostile):
    """GetProduct requests whose message is not a valid GetProductRequest:
    INVALID_ARGUMENT or INTERNAL with a message, never a crash or a hang."""
    server = hostile.server()
    port = server.port
    with hostile.attack("invalid protobuf", server, duration=3.0) as run:
        clients = [hostile.track(H2Client(port)) for _ in range(4)]
        wrong = []
        calls = 0
        while run.active():
            for client in clients:
                for name, payload in INVALID_PROTOBUF.items():
                    status = client.unary(GET_PRODUCT, payload, timeout=1.0)
                    calls += 1
                    if status is None or status[0] not in (INVALID_ARGUMENT, INTERNAL) or not status[1]:
                        wrong.append(f"{name}: {status}")
        run.note(f"{calls} calls")
        run.expect(calls and not wrong, f"{len(wrong)} of {calls} invalid messages did not get INVALID_ARGUMENT or INTERNAL with a "
                                        f"message: {wrong[:4]}")
