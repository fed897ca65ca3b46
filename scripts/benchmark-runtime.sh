#!/usr/bin/env bash
# Runtime and catalog benchmark. Release builds; the server pinned to core 0
# and h2load to core 1; 1x1, 1x16 and 4x16 (connections x streams):
#   - the interop test service (grpc.testing.TestService/UnaryCall, 32 bytes)
#   - the real catalog on SQLite with the 10k-product demo catalog:
#     GetProduct and BatchGetProducts(100), and GetProduct open loop at
#     25k calls/s evenly paced by rpcload (the issue's latency target)
#   - nghttpd serving a small file: the ceiling, plain HTTP/2 on libnghttp2
#     with no gRPC or Swift above it.
# Each point is the median of RUNS runs of DURATION seconds. h2load counts
# HTTP 200 as success whatever grpc-status says; the interop and catalog
# tests check statuses, this measures speed.
#
#   scripts/benchmark-runtime.sh            # RUNS=3 DURATION=10
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-dependencies.sh >/dev/null
command -v nghttpd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-server >/dev/null

runs=${RUNS:-3}
duration=${DURATION:-10}
swift build -c release --product interop-server >&2
swift build -c release --product catalog >&2
bin=$(swift build -c release --show-bin-path)
make -s -C Benchmarks/rpcload >&2
rpcload="$root/Benchmarks/rpcload/build/rpcload"
work=$(mktemp -d)
. "$root/scripts/lib/benchmark.sh"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# SimpleRequest{response_size: 32, payload: {body: 32 zero bytes}}, gRPC-framed.
python3 - "$work/request.bin" <<'PY'
import struct, sys
body = b"\x00" * 32
payload = b"\x1a" + bytes([len(body)]) + body            # Payload.body = 3
message = b"\x10\x20" + b"\x1a" + bytes([len(payload)]) + payload  # response_size = 2, payload = 3
open(sys.argv[1], "wb").write(b"\x00" + struct.pack(">I", len(message)) + message)
PY

port=7990
taskset -c 0 "$bin/interop-server" --port $port > "$work/server.log" 2>&1 &
for _ in $(seq 1 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done

grpc_args=(-H "content-type: application/grpc" -H "te: trailers" -d "$work/request.bin")
echo "# runtime benchmark: median of $runs x ${duration}s; server on core 0, h2load on core 1"
printf '%-28s %-8s %12s %10s %10s %8s\n' server load "req/s" p50 p99 failed
for shape in "1 1" "1 16" "4 16"; do
  set -- $shape
  report "meridian (interop-server)" "$1x$2" "$(measure "http://127.0.0.1:$port/grpc.testing.TestService/UnaryCall" "$1" "$2" "${grpc_args[@]}")"
done
kill %1 2>/dev/null || true

# The catalog: GetProductRequest{product_id: "sku-04242"} and a
# BatchGetProductsRequest of 100 ids, against the demo tenant.
python3 - "$work" <<'PY'
import struct, sys
def frame(message): return b"\x00" + struct.pack(">I", len(message)) + message
def string_field(number, value):
    data = value.encode()
    return bytes([number << 3 | 2, len(data)]) + data
open(sys.argv[1] + "/get.bin", "wb").write(frame(string_field(1, "sku-04242")))
open(sys.argv[1] + "/batch.bin", "wb").write(frame(b"".join(string_field(1, "sku-%05d" % (i * 97)) for i in range(100))))
PY
taskset -c 0 "$bin/catalog" --port 7992 --admin-port 0 --host 127.0.0.1 --data-dir "$work/catalog" --demo-data --log-level warning > "$work/catalog.log" 2>&1 &
catalog_pid=$!
wait_for_port 7992
catalog_args=(-H "content-type: application/grpc" -H "te: trailers" -H "x-tenant-id: demo")
for shape in "1 1" "1 16" "4 16"; do
  set -- $shape
  report "catalog GetProduct" "$1x$2" "$(measure "http://127.0.0.1:7992/platform.catalog.v1.CatalogService/GetProduct" "$1" "$2" "${catalog_args[@]}" -d "$work/get.bin")"
done
# Open loop at the target rate, 25k/s over 4 connections: rpcload paces
# calls evenly and measures from each call's scheduled time (h2load's rate
# mode fires its clients in bursts on one timer, overstating latency).
tail -c +6 "$work/get.bin" > "$work/get.message"
report "catalog GetProduct (rpcload)" "25k/s" "$(measure_rpcload 127.0.0.1:7992 --rate 25000 -c 4 -H "x-tenant-id: demo" \
  --method /platform.catalog.v1.CatalogService/GetProduct --data "$work/get.message")"
for shape in "1 1" "4 16"; do
  set -- $shape
  report "catalog BatchGet(100)" "$1x$2" "$(measure "http://127.0.0.1:7992/platform.catalog.v1.CatalogService/BatchGetProducts" "$1" "$2" "${catalog_args[@]}" -d "$work/batch.bin")"
done
kill $catalog_pid 2>/dev/null || true

if command -v nghttpd >/dev/null; then
  mkdir -p "$work/www" && head -c 32 /dev/zero > "$work/www/file"
  taskset -c 0 nghttpd --no-tls -d "$work/www" 7991 >/dev/null 2>&1 &
  sleep 0.5
  for shape in "1 1" "1 16" "4 16"; do
    set -- $shape
    report "nghttpd (ceiling)" "$1x$2" "$(measure "http://127.0.0.1:7991/file" "$1" "$2")"
  done
fi
