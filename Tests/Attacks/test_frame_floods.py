"""Attacks with control and stream frames: floods from clients that never
read, rapid reset, ping strikes, and a client that keeps talking after the
server's fatal GOAWAY."""
import time

from hostile import (CANCEL, ENHANCE_YOUR_CALM, FRAME_SIZE_ERROR, GET_PRODUCT, PREFACE, SETTINGS_INITIAL_WINDOW_SIZE,
                     SETTINGS_MAX_FRAME_SIZE, UNAVAILABLE, RawConnection, continuation, data, error_name,
                     frame_header, get_product_request, grpc_message, headers, ping, poll_all, request_block,
                     rst_stream, settings, window_update)

FLOOD_CONNECTIONS = 20
FLOOD_PHASE_S = 2.5
SMALL_RCVBUF = 4096
# A flooding connection counts as stopped by the server when nothing more
# of it was taken in this long (the server stopped reading it).
STALLED_AFTER_S = 1.0
RAPID_RESET_WITHIN_S = 5.0
PING_STRIKE_WITHIN_S = 5.0
ZOMBIE_CLOSE_WITHIN_S = 2.0


def test_non_reading_floods(hostile):
    """20 connections with a 4 KiB receive buffer flood PING frames as fast
    as they can and never read a byte; then 20 more flood SETTINGS; then 20
    more WINDOW_UPDATE. Every PING and SETTINGS needs an answer the client
    never reads, so the server must either close such a connection or stop
    reading it, never queue answers without bound. WINDOW_UPDATE needs no
    answer: that phase only checks the server stays responsive."""
    server = hostile.server()
    port = server.port
    floods = [
        ("PING", b"".join(ping(i.to_bytes(8, "big")) for i in range(1000))),
        ("SETTINGS", settings([(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)]) * 1000),
        ("WINDOW_UPDATE", window_update(0, 1) * 1000),
    ]
    with hostile.attack("non-reading floods", server, duration=3 * FLOOD_PHASE_S + 1) as run:
        for name, chunk in floods:
            phase_start = time.time()
            connections = [hostile.track(RawConnection(port, rcvbuf=SMALL_RCVBUF)) for _ in range(FLOOD_CONNECTIONS)]
            for connection in connections:
                connection.push(PREFACE + settings())
            phase_end = time.monotonic() + FLOOD_PHASE_S
            while run.active() and time.monotonic() < phase_end:
                idle = True
                for connection in connections:
                    if not connection.outbox and not connection.closed:
                        connection.push(chunk)
                    if connection.pump() > 0:
                        idle = False
                if idle:
                    time.sleep(0.002)
            now = time.monotonic()
            sent = sum(c.bytes_sent for c in connections) / (1 << 20)
            closed = sum(c.closed for c in connections)
            stalled = sum(not c.closed and now - c.progress_at >= STALLED_AFTER_S for c in connections)
            run.note(f"{name}: {sent:.0f} MiB taken in, {closed} closed, {stalled} stalled; "
                     f"good client's slowest call {run.good_latency_max(phase_start)} ms")
            if name != "WINDOW_UPDATE":
                still = FLOOD_CONNECTIONS - closed - stalled
                run.expect(still == 0, f"{name} flood: the server still read {still} of {FLOOD_CONNECTIONS} connections that never "
                                       f"read its answers after {FLOOD_PHASE_S} s ({sent:.0f} MiB taken in; {closed} closed, "
                                       f"{stalled} stalled): it queues the answers without bound")
            for connection in connections:
                connection.close()


def test_rapid_reset(hostile):
    """HEADERS, the request message and RST_STREAM(CANCEL), for stream after
    stream, thousands a second on one connection (CVE-2023-44487). Expected:
    GOAWAY(ENHANCE_YOUR_CALM) or the connection closed within
    RAPID_RESET_WITHIN_S."""
    server = hostile.server()
    port = server.port
    block = request_block(GET_PRODUCT, port)
    body = grpc_message(get_product_request("sku-attack-1"))
    with hostile.attack("rapid reset", server, duration=RAPID_RESET_WITHIN_S + 1) as run:
        attacker = hostile.track(RawConnection(port))
        attacker.handshake()
        started = time.monotonic()
        stream_id = 1
        while run.active() and not attacker.closed and not (attacker.goaway and attacker.goaway[1] == ENHANCE_YOUR_CALM):
            if len(attacker.outbox) < (1 << 16):
                batch = bytearray()
                for _ in range(100):
                    batch += headers(stream_id, block) + data(stream_id, body, end_stream=True) + rst_stream(stream_id, CANCEL)
                    stream_id += 2
                attacker.push(batch)
            if attacker.pump() == 0:
                attacker.poll(0.001)
            else:
                attacker.poll(0)
        streams = (stream_id - 1) // 2
        rate = streams / max(time.monotonic() - started, 1e-3)
        ended = attacker.closed_at or (attacker.goaway_at if attacker.goaway and attacker.goaway[1] == ENHANCE_YOUR_CALM else None)
        took = (ended or float("inf")) - started
        run.note(f"{streams} streams reset at {rate:.0f}/s; {attacker.describe()} after {took:.2f} s")
        run.expect(took <= RAPID_RESET_WITHIN_S,
                   f"rapid reset ({streams} streams opened and reset at {rate:.0f}/s) got neither GOAWAY(ENHANCE_YOUR_CALM) nor a "
                   f"close within {RAPID_RESET_WITHIN_S} s: {attacker.describe()}")


def test_ping_strikes(hostile):
    """A client that sends PINGs continuously (20 a second) while no call
    and no data flows must get GOAWAY(ENHANCE_YOUR_CALM) with debug data
    "too_many_pings", as gRPC servers do, within PING_STRIKE_WITHIN_S."""
    server = hostile.server()
    port = server.port
    with hostile.attack("ping strikes", server, duration=PING_STRIKE_WITHIN_S + 0.5) as run:
        attacker = hostile.track(RawConnection(port))
        attacker.handshake()
        started = time.monotonic()
        pings = 0
        while run.active() and attacker.goaway is None and not attacker.closed:
            pings += 1
            attacker.send(ping(pings.to_bytes(8, "big")))
            attacker.poll(0.05)
        took = (attacker.goaway_at or float("inf")) - started
        run.note(f"{pings} pings, {attacker.ping_acks} acknowledged; {attacker.describe()}")
        run.expect(attacker.goaway is not None and attacker.goaway[1] == ENHANCE_YOUR_CALM and attacker.goaway[2] == b"too_many_pings"
                   and took <= PING_STRIKE_WITHIN_S,
                   f"{pings} pings in {time.monotonic() - started:.1f} s without data got no GOAWAY(ENHANCE_YOUR_CALM, "
                   f"\"too_many_pings\"): {attacker.describe()}, {attacker.ping_acks} pings acknowledged")


def test_zombie_after_fatal_goaway(hostile):
    """30 calls open, then a DATA frame longer than SETTINGS_MAX_FRAME_SIZE
    (a connection error, FRAME_SIZE_ERROR), then more CONTINUATION and DATA
    frames as if nothing happened. Expected: the server closes the socket
    within ZOMBIE_CLOSE_WITHIN_S of the bad frame, and the 30 calls'
    permits are freed: with --max-in-flight-calls 40, a fresh connection
    can then open 30 calls again without any being refused."""
    server = hostile.server(max_in_flight_calls=40)
    port = server.port
    block = request_block(GET_PRODUCT, port)
    with hostile.attack("zombie after fatal GOAWAY", server, duration=6.0) as run:
        zombie = hostile.track(RawConnection(port))
        zombie.handshake()
        opened = list(range(1, 61, 2))
        for stream_id in opened:
            zombie.push(headers(stream_id, block))
        while zombie.outbox and not zombie.closed:
            zombie.pump()
            zombie.poll(0.01)
        zombie.poll(0.5)
        refused = [s for s in opened if (zombie.grpc_status(s) or (None,))[0] == UNAVAILABLE]
        run.expect(not refused, f"{len(refused)} of 30 calls were refused before the attack (limit 40)")
        max_frame = zombie.server_settings.get(SETTINGS_MAX_FRAME_SIZE, 16384)
        oversized = max_frame + 1
        zombie.send(frame_header(oversized, 0, 0, 1) + b"\0" * oversized)
        bad_frame_at = time.monotonic()
        junk = 0
        while run.active() and not zombie.closed and time.monotonic() - bad_frame_at < ZOMBIE_CLOSE_WITHIN_S + 1.5:
            junk += 1
            zombie.send(continuation(1, b"\x00\x01a\x01b") + data(3, b"\0" * 1000))
            zombie.poll(0.05)
        took = (zombie.closed_at or float("inf")) - bad_frame_at
        run.note(f"after the oversized frame: {zombie.describe()} after {took:.2f} s; {junk} junk frame pairs sent")
        run.expect(zombie.goaway is not None and zombie.goaway[1] == FRAME_SIZE_ERROR,
                   f"no GOAWAY(FRAME_SIZE_ERROR) for a {oversized}-byte DATA frame (max {max_frame}): {zombie.describe()}")
        run.expect(took <= ZOMBIE_CLOSE_WITHIN_S,
                   f"the server did not close the connection within {ZOMBIE_CLOSE_WITHIN_S} s of its fatal GOAWAY while the client "
                   f"kept sending, with 30 calls open: {zombie.describe()}")
        zombie.close()
        time.sleep(0.2)
        fresh = hostile.track(RawConnection(port))
        fresh.handshake()
        for stream_id in opened:
            fresh.push(headers(stream_id, block))
        while fresh.outbox and not fresh.closed:
            fresh.pump()
            fresh.poll(0.01)
        fresh.poll(0.5)
        fresh.wait(lambda: False, 0.5)
        refused = [s for s in opened if (fresh.grpc_status(s) or (None,))[0] == UNAVAILABLE]
        run.expect(not refused and not fresh.terminated,
                   f"after the zombie connection, {len(refused)} of 30 new calls were refused as over the in-flight limit of 40: "
                   f"the zombie's permits were not freed ({fresh.describe()})")
