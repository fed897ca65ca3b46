"""The well-behaved client that runs beside every attack, in a process of its
own (so the attacker's Python threads never delay it): gRPC's own Python
implementation (grpcio) calling grpc.health.v1.Health/Check and the catalog's
GetProduct with a 1 s deadline every 100 ms.

grpcio cannot choose its source address, so it connects through a small
relay in this process whose upstream sockets are bound to --source
(127.0.0.2): the server sees the good client as a different peer from the
attacker at 127.0.0.1, so per-peer limits never apply to it.

Protocol on stdout, one JSON object a line: {"event": "ready"} after the
warm-up calls succeeded, then {"event": "call", ...} for each call; when
stdin closes it makes one last health check on a brand-new channel
({"event": "final", ...}) and exits.
"""
import argparse
import json
import socket
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hostile import GET_PRODUCT, TENANT, get_product_request, pb_bytes

CREATE_PRODUCT = "/platform.catalog.v1.CatalogService/CreateProduct"


class Relay:
    """127.0.0.1:<ephemeral> -> the server, each upstream socket bound to
    the source address."""

    def __init__(self, server, source):
        self.server = server
        self.source = source
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            downstream, _ = self.listener.accept()
            try:
                upstream = socket.create_connection(self.server, timeout=5, source_address=(self.source, 0))
                upstream.settimeout(None)
            except OSError:
                downstream.close()
                continue
            for sock in (downstream, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream), daemon=True).start()

    @staticmethod
    def _pump(source, target):
        try:
            while True:
                chunk = source.recv(1 << 16)
                if not chunk:
                    break
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def channel_to(relay):
    return grpc.insecure_channel(f"127.0.0.1:{relay.port}", options=[
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 500),
        ("grpc.enable_retries", 0),
    ])


def emit(record):
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.2")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--deadline", type=float, default=1.0)
    parser.add_argument("--product-id", default="sku-attack-1")
    args = parser.parse_args()

    relay = Relay(("127.0.0.1", args.port), args.source)
    channel = channel_to(relay)
    health = health_pb2_grpc.HealthStub(channel)
    metadata = (("x-tenant-id", TENANT),)
    get_product = channel.unary_unary(GET_PRODUCT, request_serializer=None, response_deserializer=None)
    create_product = channel.unary_unary(CREATE_PRODUCT, request_serializer=None, response_deserializer=None)

    def call(kind):
        started = time.monotonic()
        try:
            if kind == "health":
                response = health.Check(health_pb2.HealthCheckRequest(), timeout=args.deadline)
                ok = response.status == health_pb2.HealthCheckResponse.SERVING
                code = "OK" if ok else f"status {response.status}"
            else:
                get_product(get_product_request(args.product_id), timeout=args.deadline, metadata=metadata)
                ok, code = True, "OK"
        except grpc.RpcError as error:
            ok, code = False, f"{error.code().name}: {error.details()}"
        return {"kind": kind, "ok": ok, "code": code, "latency": time.monotonic() - started, "t": time.time()}

    # Warm-up: the product GetProduct reads, then a few calls of each kind.
    product = pb_bytes(1, args.product_id) + pb_bytes(2, "Attack target") + pb_bytes(7, pb_bytes(1, "EUR") + b"\x10\x0a")
    request = pb_bytes(1, args.product_id) + pb_bytes(2, product)
    deadline = time.monotonic() + 20
    while True:
        try:
            create_product(request, timeout=2, metadata=metadata)
            break
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.ALREADY_EXISTS:
                break
            if time.monotonic() > deadline:
                emit({"event": "error", "message": f"CreateProduct: {error.code().name}: {error.details()}"})
                return 1
            time.sleep(0.1)
    warm = [call(kind) for kind in ("health", "get", "health", "get", "health", "get")]
    if not all(record["ok"] for record in warm):
        emit({"event": "error", "message": f"warm-up calls failed: {warm}"})
        return 1
    emit({"event": "ready"})

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop.set()), daemon=True).start()
    next_at = time.monotonic()
    while not stop.is_set():
        for kind in ("health", "get"):
            emit({"event": "call", **call(kind)})
        next_at += args.interval
        stop.wait(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic() - args.interval)

    fresh = channel_to(relay)
    started = time.monotonic()
    try:
        response = health_pb2_grpc.HealthStub(fresh).Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        final = {"ok": response.status == health_pb2.HealthCheckResponse.SERVING, "code": "OK"}
    except grpc.RpcError as error:
        final = {"ok": False, "code": f"{error.code().name}: {error.details()}"}
    emit({"event": "final", "kind": "health", "latency": time.monotonic() - started, **final})
    fresh.close()
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
