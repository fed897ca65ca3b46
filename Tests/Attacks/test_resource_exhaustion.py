"""Attacks on the server's capacity: streams, calls in flight, buffered
request bytes, connections (idle, silent, and too many from one peer)."""
import collections
import time

from hostile import (GET_PRODUCT, HEALTH_CHECK, OK, PREFACE, REFUSED_STREAM, PROTOCOL_ERROR, SETTINGS_MAX_CONCURRENT_STREAMS,
                     UNAVAILABLE, H2Client, RawConnection, data, error_name, get_product_request, grpc_message, headers,
                     poll_all, request_block, settings)

HANDSHAKE_TIMEOUT_S = 2
HANDSHAKE_SLACK_S = 1.5


def push_all(connections, run=None, timeout=5.0):
    """Sends every connection's outbox without ever blocking on one."""
    deadline = time.monotonic() + timeout
    while any(c.outbox and not c.closed for c in connections) and time.monotonic() < deadline:
        if not sum(c.pump() for c in connections):
            poll_all(connections, 0.005)
        else:
            poll_all(connections, 0)


def test_stream_count_exhaustion(hostile):
    """20 connections each open the advertised SETTINGS_MAX_CONCURRENT_STREAMS
    calls and hold them (no END_STREAM); once they have been held for a
    while, 5 of the connections try 10 streams more. Expected: the limit is
    advertised, the good client is not disturbed while 2,000 calls are held,
    and the streams over the limit are refused (RST_STREAM REFUSED_STREAM or
    PROTOCOL_ERROR, or the connection ended with GOAWAY)."""
    server = hostile.server()
    port = server.port
    block = request_block(GET_PRODUCT, port)
    with hostile.attack("stream-count exhaustion", server, duration=5.0) as run:
        connections = [hostile.track(RawConnection(port)) for _ in range(20)]
        for connection in connections:
            connection.push(PREFACE + settings())
        push_all(connections)
        for connection in connections:
            connection.wait(lambda c=connection: c.got_settings, 2.0)
        advertised = connections[0].server_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS)
        run.expect(advertised is not None and advertised <= 1000,
                   f"the server advertises SETTINGS_MAX_CONCURRENT_STREAMS {advertised}: no bound on streams per connection")
        limit = min(advertised or 100, 1000)
        for connection in connections:
            for index in range(limit):
                connection.push(headers(1 + 2 * index, block))
        push_all(connections)
        while run.remaining() > 1.5:
            poll_all(connections, 0.1)
        held = sum(1 for c in connections for index in range(limit) if not c.stream_stopped(1 + 2 * index))
        run.note(f"{held} of {limit * len(connections)} calls held over {len(connections)} connections for "
                 f"{run.elapsed():.1f} s")
        pushers = connections[:5]
        extra = [1 + 2 * (limit + index) for index in range(10)]
        for connection in pushers:
            for stream_id in extra:
                connection.push(headers(stream_id, block))
        push_all(pushers)
        while run.active():
            poll_all(connections, 0.1)
        refused, how = 0, set()
        for connection in pushers:
            for stream_id in extra:
                code = connection.resets.get(stream_id)
                status = connection.grpc_status(stream_id)
                if code in (REFUSED_STREAM, PROTOCOL_ERROR) or (connection.goaway and connection.goaway[1] != 0):
                    refused += 1
                    how.add(error_name(code) if code is not None else connection.describe())
                elif status is not None and status[0] != 0:
                    refused += 1
                    how.add(f"status {status[0]}")
        run.note(f"{refused} of {10 * len(pushers)} streams over the limit refused ({sorted(how)})")
        run.expect(refused == 10 * len(pushers),
                   f"only {refused} of {10 * len(pushers)} streams opened beyond SETTINGS_MAX_CONCURRENT_STREAMS {limit} were refused")


def test_in_flight_exhaustion(hostile):
    """With --max-in-flight-calls 300, 4 connections open 100 calls each and
    hold them. Expected: the limit holds (at least 100 of the 400 refused
    with UNAVAILABLE), health checks are still answered (never starved by
    the limit), and a well-behaved fresh connection's GetProduct is still
    admitted (each connection gets a fair share)."""
    server = hostile.server(max_in_flight_calls=300)
    port = server.port
    block = request_block(GET_PRODUCT, port)
    with hostile.attack("in-flight exhaustion", server, duration=5.0) as run:
        connections = [hostile.track(RawConnection(port)) for _ in range(4)]
        for connection in connections:
            connection.handshake()
            for index in range(100):
                connection.push(headers(1 + 2 * index, block))
        push_all(connections)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            poll_all(connections, 0.05)
        refused = sum(1 for c in connections for index in range(100) if (c.grpc_status(1 + 2 * index) or (None,))[0] == UNAVAILABLE)
        # Fair shares may admit a connection's first calls beyond the
        # server-wide limit; the attack only has to reach the limit for the
        # checks below to mean something.
        run.note(f"{400 - refused} of 400 held calls admitted, {refused} refused with UNAVAILABLE")
        run.expect(refused > 0, "all 400 calls held open were admitted under --max-in-flight-calls 300: the limit was never reached")
        fresh_results = []
        while run.remaining() > 1.0:
            fresh = hostile.track(H2Client(port, source="127.0.0.2"))
            health = fresh.unary(HEALTH_CHECK, b"", timeout=1.0)
            product = fresh.unary(GET_PRODUCT, get_product_request("sku-attack-1"), timeout=1.0)
            fresh_results.append((health, product))
            fresh.close()
            poll_all(connections, 0.3)
        bad = [(h, p) for h, p in fresh_results if (h or (None,))[0] != OK or (p or (None,))[0] != OK]
        run.expect(fresh_results and not bad,
                   f"{len(bad)} of {len(fresh_results)} fresh connections could not call while 400 calls were held: "
                   f"health {bad[0][0] if bad else None}, GetProduct {bad[0][1] if bad else None}")


def test_partial_messages(hostile):
    """3 connections x 100 streams, each sending 3.9 MiB of a 4 MiB request
    message and then stopping. The server may fail the calls with
    RESOURCE_EXHAUSTED or stop opening the flow-control window; either way
    its memory must stay within the bound."""
    server = hostile.server()
    port = server.port
    declared = 4 << 20
    partial = int(3.9 * (1 << 20))
    chunk = bytes(1 << 14)
    with hostile.attack("partial messages", server, duration=8.0) as run:
        clients = [hostile.track(H2Client(port)) for _ in range(3)]
        remaining = {}
        for client in clients:
            client.poll(0.2)
            for _ in range(100):
                stream_id = client.start(GET_PRODUCT)
                client.send(stream_id, grpc_message(b"", length=declared))
                remaining[(client, stream_id)] = partial
        sent = 0
        while run.active() and any(remaining.values()):
            progress = 0
            for (client, stream_id), left in remaining.items():
                if left and not client.closed and stream_id not in client.resets and client.grpc_status(stream_id) is None:
                    n = client.send(stream_id, chunk[:min(left, len(chunk))])
                    remaining[(client, stream_id)] = left - n
                    progress += n
            sent += progress
            for client in clients:
                client.poll(0 if progress else 0.01)
        while run.active() and run.elapsed() < 6.0:
            for client in clients:
                client.poll(0.05)
        fates = collections.Counter()
        for client, stream_id in remaining:
            status = client.grpc_status(stream_id)
            if status is not None:
                fates[f"status {status[0]}"] += 1
            elif stream_id in client.resets:
                fates[f"reset {error_name(client.resets[stream_id])}"] += 1
            else:
                fates["open"] += 1
        complete = sum(1 for left in remaining.values() if left == 0)
        run.note(f"{sent / (1 << 20):.0f} MiB of partial messages sent; {complete} of 300 streams got all 3.9 MiB in; "
                 f"streams: {dict(fates)}; {status_example(clients)}")


def status_example(clients):
    for client in clients:
        for stream_id in client.headers:
            status = client.grpc_status(stream_id)
            if status is not None:
                return f"e.g. {status}"
    return ""


def test_idle_connections(hostile):
    """500 connections complete the preface and then sit idle; 50 more
    connect and never send the preface. With --handshake-timeout 2 the 50
    silent ones must be closed within the timeout plus HANDSHAKE_SLACK_S;
    memory and the good client must not suffer from the 500 idle ones (the
    per-peer limit is raised so that all 500 stay)."""
    server = hostile.server(handshake_timeout=HANDSHAKE_TIMEOUT_S, max_connections_per_peer=1000)
    port = server.port
    bound = HANDSHAKE_TIMEOUT_S + HANDSHAKE_SLACK_S
    with hostile.attack("idle connections", server, duration=5.0) as run:
        silent = [hostile.track(RawConnection(port)) for _ in range(50)]
        idle = []
        for _ in range(500):
            connection = hostile.track(RawConnection(port))
            connection.send(PREFACE + settings())
            idle.append(connection)
        while run.active():
            poll_all(silent + idle, 0.1)
            if run.elapsed() > bound + 0.5 and all(c.closed for c in silent):
                break
        while run.active() and run.elapsed() < 4.0:
            poll_all(idle, 0.1)
        late = [c for c in silent if (c.closed_at or float("inf")) - c.opened_at > bound]
        closed_idle = sum(c.closed for c in idle)
        settled = sum(c.got_settings for c in idle)
        run.note(f"{settled} of 500 idle connections got the server's SETTINGS, {closed_idle} were closed; "
                 f"{50 - len(late)} of 50 silent ones closed in time")
        run.expect(not late, f"{len(late)} of 50 connections that never sent the preface were still open {bound} s after connecting "
                             f"(handshake timeout {HANDSHAKE_TIMEOUT_S} s)")


def test_max_connections_per_peer(hostile):
    """With --max-connections-per-peer 10, 25 connections from 127.0.0.1:
    the 15 over the limit get a GOAWAY or are closed, the 10 within it
    work, and 127.0.0.2 (the good client, and a fresh connection) still
    connects and calls."""
    server = hostile.server(max_connections_per_peer=10)
    port = server.port
    with hostile.attack("max connections per peer", server, duration=4.0) as run:
        connections = []
        for _ in range(25):
            connection = hostile.track(RawConnection(port))
            connection.send(PREFACE + settings())
            connections.append(connection)
            connection.poll(0.01)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            poll_all(connections, 0.05)
        refused = [c for c in connections if c.closed or c.goaway is not None]
        accepted = [c for c in connections if not (c.closed or c.goaway is not None)]
        run.note(f"{len(refused)} of 25 refused ({sorted({c.describe() for c in refused})[:3]})")
        run.expect(len(refused) >= 15, f"only {len(refused)} of 25 connections from one peer were refused under "
                                       f"--max-connections-per-peer 10")
        if accepted:
            probe = accepted[0]
            probe.send(headers(1, request_block(HEALTH_CHECK, port)) + data(1, grpc_message(b""), end_stream=True))
            probe.wait(lambda: probe.grpc_status(1) is not None, 2.0)
            run.expect((probe.grpc_status(1) or (None,))[0] == OK,
                       f"a connection within the per-peer limit could not call Health/Check: {probe.grpc_status(1)}, {probe.describe()}")
        fresh = hostile.track(H2Client(port, source="127.0.0.2"))
        status = fresh.unary(HEALTH_CHECK, b"", timeout=2.0)
        run.expect((status or (None,))[0] == OK, f"a fresh connection from 127.0.0.2 could not call Health/Check: {status}")
        while run.active():
            poll_all(connections, 0.1)
