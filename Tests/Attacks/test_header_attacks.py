"""Attacks on header processing: an HPACK bomb, CONTINUATION floods, and
slowloris (the preface, or a request's headers, trickled a byte a second)."""
import time

from hostile import (CONTINUATION, FIRST_DYNAMIC_INDEX, GET_PRODUCT, PREFACE, RawConnection, continuation, error_name,
                     headers, indexed, literal, poll_all, request_block, settings)

# Header block sizes the attacks use: every frame stays under the default
# SETTINGS_MAX_FRAME_SIZE of 16 KiB, so only the decoded size is hostile.
BOMB_VALUE = "b" * 4000  # 4038 bytes in the dynamic table: it fits the default 4 KiB table
REFERENCES_PER_FRAME = 16000  # one byte each, 4000 bytes decoded each: 64 MB per frame

# How soon the server must stop header-block attacks: a bomb is over
# SETTINGS_MAX_HEADER_LIST_SIZE at its first CONTINUATION frame.
BOMB_STOP_WITHIN_S = 1.0
STOP_WITHIN_S = 3.0
HANDSHAKE_TIMEOUT_S = 2
HANDSHAKE_SLACK_S = 1.5


def test_hpack_bomb(hostile):
    """One 4 KB header inserted into the dynamic table, then referenced
    thousands of times (one byte each): in complete header blocks on several
    streams of one connection, and in never-ending header blocks held open
    with CONTINUATION frames on three more. Expected: the server bounds the
    decoded header list (SETTINGS_MAX_HEADER_LIST_SIZE) and stops every bomb
    stream (RST_STREAM, an error answer, or GOAWAY/close) within
    BOMB_STOP_WITHIN_S, without its memory or CPU following the decoded
    size (the good client's latency bound)."""
    server = hostile.server()
    port = server.port
    prefix = request_block(GET_PRODUCT, port)
    insert = literal("x-bomb", BOMB_VALUE, index=True)
    references = indexed(FIRST_DYNAMIC_INDEX) * REFERENCES_PER_FRAME
    with hostile.attack("HPACK bomb", server, duration=5.0) as run:
        streamer = hostile.track(RawConnection(port))
        streamer.handshake()
        bombs = [1, 3, 5, 7, 9, 11]
        for index, stream_id in enumerate(bombs):
            streamer.push(headers(stream_id, prefix + (insert if index == 0 else b"") + indexed(FIRST_DYNAMIC_INDEX), end_headers=False))
            for n in range(4):
                streamer.push(continuation(stream_id, references, end_headers=n == 3))
        holders = [hostile.track(RawConnection(port)) for _ in range(3)]
        for holder in holders:
            holder.handshake()
            holder.push(headers(1, prefix + insert, end_headers=False))
        started = time.monotonic()
        stopped_at = {}  # ("stream", id) or ("holder", index) -> when the server stopped it
        targets = [("stream", stream_id) for stream_id in bombs] + [("holder", index) for index in range(len(holders))]

        def stopped(target):
            kind, key = target
            return streamer.stream_stopped(key) if kind == "stream" else holders[key].stream_stopped(1)

        while run.active():
            streamer.pump()
            for holder in holders:
                if not holder.outbox and not holder.closed:
                    holder.push(continuation(1, references))
                holder.pump()
            poll_all([streamer, *holders], 0.01)
            now = time.monotonic()
            for target in targets:
                if target not in stopped_at and stopped(target):
                    stopped_at[target] = now
            # Keep pressing for a while after the last one stopped: the
            # server must not resume decoding what it refused.
            if len(stopped_at) == len(targets) and run.elapsed() > 2.0:
                break
        for stream_id in bombs:
            status = streamer.grpc_status(stream_id)
            took = stopped_at.get(("stream", stream_id), float("inf")) - started
            run.expect(took <= BOMB_STOP_WITHIN_S and (status is None or status[0] != 0),
                       f"bomb stream {stream_id} (64,000 references to a 4 KB header) was not stopped within {BOMB_STOP_WITHIN_S} s "
                       f"(reset: {streamer.resets.get(stream_id)}, status: {status}, connection: {streamer.describe()})")
        for index, holder in enumerate(holders):
            took = stopped_at.get(("holder", index), float("inf")) - started
            run.expect(took <= BOMB_STOP_WITHIN_S,
                       f"a header block held open with {holder.bytes_sent // REFERENCES_PER_FRAME} frames of references was not "
                       f"stopped within {BOMB_STOP_WITHIN_S} s (connection: {holder.describe()})")
        run.note(f"stopped after (s): {sorted(round(t - started, 2) for t in stopped_at.values())}; streams: resets "
                 f"{ {s: error_name(c) for s, c in streamer.resets.items()} }, {streamer.describe()}; holders: "
                 f"{[(error_name(h.resets[1]) if 1 in h.resets else '', h.describe(), h.bytes_sent >> 20) for h in holders]}")


def test_continuation_flood(hostile):
    """HEADERS without END_HEADERS, then CONTINUATION frames without end:
    empty ones on one connection, 16 KB ones (each a new literal header) on
    another. Expected: the server closes both connections within
    STOP_WITHIN_S."""
    server = hostile.server()
    port = server.port
    with hostile.attack("CONTINUATION flood", server, duration=5.0) as run:
        small, large = hostile.track(RawConnection(port), RawConnection(port))
        for connection in (small, large):
            connection.handshake()
            connection.push(headers(1, request_block(GET_PRODUCT, port), end_headers=False))
        empty = continuation(1, b"") * 256
        counter = 0
        started = time.monotonic()
        while run.active() and not (small.closed and large.closed):
            if not small.outbox and not small.closed:
                small.push(empty)
            if not large.outbox and not large.closed:
                counter += 1
                large.push(continuation(1, literal(f"x-flood-{counter}", "v" * 16000)))
            small.pump()
            large.pump()
            poll_all([small, large], 0.002)
        for label, connection in (("empty", small), ("16 KB", large)):
            frames = connection.bytes_sent // (9 if connection is small else 16030)
            took = (connection.closed_at or float("inf")) - started
            run.expect(took <= STOP_WITHIN_S,
                       f"the connection sending endless {label} CONTINUATION frames (~{frames} sent) was not closed within "
                       f"{STOP_WITHIN_S} s: {connection.describe()}")
            if connection.closed:
                run.note(f"{label}: closed after {took:.2f} s ({connection.describe()})")


def test_slowloris(hostile):
    """(a) 20 connections trickle the connection preface a byte a second;
    (b) 20 connections send a request's header block a byte a second
    (HEADERS without END_HEADERS, then one CONTINUATION a second). With
    --handshake-timeout 2, every one must be closed (or its stream reset)
    within the timeout plus HANDSHAKE_SLACK_S."""
    server = hostile.server(handshake_timeout=HANDSHAKE_TIMEOUT_S)
    port = server.port
    bound = HANDSHAKE_TIMEOUT_S + HANDSHAKE_SLACK_S
    block = request_block(GET_PRODUCT, port, [(f"x-slow-{i}", "v" * 8) for i in range(20)])
    with hostile.attack("slowloris", server, duration=6.0) as run:
        prefaces = [hostile.track(RawConnection(port)) for _ in range(20)]
        requests = [hostile.track(RawConnection(port)) for _ in range(20)]
        for connection in requests:
            connection.send(PREFACE + settings())
        poll_all(requests, 0.2)
        for connection in requests:
            connection.wait(lambda c=connection: c.got_settings, 2.0)
        headers_at = time.monotonic()
        for connection in requests:
            connection.send(headers(1, block[:1], end_headers=False))
        request_stopped_at = {}
        offset = 0
        next_tick = time.monotonic()
        while run.active():
            if time.monotonic() >= next_tick:
                for connection in prefaces:
                    if not connection.closed and offset < len(PREFACE):
                        connection.send(PREFACE[offset:offset + 1])
                for connection in requests:
                    if not connection.stream_stopped(1) and offset + 1 < len(block):
                        connection.send(continuation(1, block[offset + 1:offset + 2]))
                offset += 1
                next_tick += 1.0
            poll_all(prefaces + requests, 0.05)
            for index, connection in enumerate(requests):
                if index not in request_stopped_at and connection.stream_stopped(1):
                    request_stopped_at[index] = time.monotonic()
            if all(c.closed for c in prefaces) and len(request_stopped_at) == len(requests):
                break
        late = sorted(round((c.closed_at or float("inf")) - c.opened_at, 2) for c in prefaces)
        late = [took for took in late if took > bound]
        run.expect(not late, f"{len(late)} of 20 connections trickling the preface (1 byte/s) were not closed within {bound} s "
                             f"(handshake timeout {HANDSHAKE_TIMEOUT_S} s): {late[:3]}")
        slow = [index for index in range(len(requests)) if request_stopped_at.get(index, float("inf")) - headers_at > bound]
        run.expect(not slow, f"{len(slow)} of 20 requests whose headers trickle in (1 byte/s) were neither reset nor closed "
                             f"within {bound} s of their HEADERS frame: {requests[slow[0]].describe() if slow else ''}")
        if request_stopped_at:
            run.note(f"requests stopped after {min(request_stopped_at.values()) - headers_at:.1f}-"
                     f"{max(request_stopped_at.values()) - headers_at:.1f} s")
