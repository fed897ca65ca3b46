#!/usr/bin/env bash
# Experimentation benchmark. Release builds; the server pinned to core 0 and
# h2load to core 1 (scripts/lib/benchmark.sh):
#   - GetAssignments for one unit against the 50 running experiments of
#     Benchmarks/AssignmentBenchmark (plain, targeted, partial coverage,
#     namespaced), closed loop at 1x1, 1x16, 4x16 (h2load), then open loop
#     at 20k requests/s evenly paced over 4 connections (rpcload, latency
#     from each call's scheduled time, grpc-status and framing checked; not
#     decoded, as decoding 3.5 KB answers would cost the load core more than
#     the server spends on them), once with rpcload sleeping on a timer
#     between calls and once busy-polling (--busy-poll: on this VM waking the
#     idle load core costs ~85 us a call, which the timer-paced line counts as
#     server latency), each with the time core 0 was stolen during its run;
#     the busy-polling runs alternate with the same load on the catalog's
#     cached GetProduct, this VM's floor for such a tail;
#   - whether issue 8's target (at least 20k/s, p99 < 1 ms) is met closed
#     loop at 1x16 and offered 20k/s busy-polling (the median run);
#   - the raw assignment function in one thread (assignments per second).
# Each point is the median of RUNS runs of DURATION seconds.
#
#   scripts/benchmark-experimentation.sh      # RUNS=3 DURATION=10
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-dependencies.sh >/dev/null

runs=${RUNS:-3}
duration=${DURATION:-10}
swift build -c release --product experimentation >&2
swift build -c release --product assignment-benchmark >&2
swift build -c release --product catalog >&2
bin=$(swift build -c release --show-bin-path)
make -s -C Benchmarks/rpcload >&2
rpcload="$root/Benchmarks/rpcload/build/rpcload"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
. "$root/scripts/lib/benchmark.sh"

port=7994
floor_port=7993
taskset -c 0 "$bin/experimentation" --port $port --admin-port 0 --host 127.0.0.1 --data-dir "$work/data" --log-level warning > "$work/server.log" 2>&1 &
server=$!
wait_for_port $port
"$bin/assignment-benchmark" --print-experiments > "$work/experiments.jsonl"
"$bin/experimentation" apply --tenant bench --address 127.0.0.1:$port "$work/experiments.jsonl" >&2

# GetAssignmentsRequest{attributes: {id, country, plan, app_version}}, every running experiment.
python3 - "$work/assign.bin" <<'PY'
import struct, sys
def varint(n):
    out = b""
    while True:
        byte = n & 0x7F; n >>= 7
        if n: out += bytes([byte | 0x80])
        else: return out + bytes([byte])
def field(number, data): return varint(number << 3 | 2) + varint(len(data)) + data
def string_value(text): return field(3, text.encode())          # Value.string_value
attributes = {"id": "user-4242", "country": "DE", "plan": "pro", "app_version": "3.7.1"}
struct_ = b"".join(field(1, field(1, k.encode()) + field(2, string_value(v))) for k, v in attributes.items())
message = field(1, struct_)                                       # GetAssignmentsRequest.attributes
open(sys.argv[1], "wb").write(b"\x00" + struct.pack(">I", len(message)) + message)
PY

args=(-H "content-type: application/grpc" -H "te: trailers" -H "x-tenant-id: bench" -d "$work/assign.bin")
url="http://127.0.0.1:$port/platform.experimentation.v1.ExperimentationService/GetAssignments"
echo "# experimentation benchmark: median of $runs x ${duration}s; server on core 0, h2load on core 1"
printf '%-28s %-8s %12s %10s %10s %8s\n' server load "req/s" p50 p99 failed
closed=()
for shape in "1 1" "1 16" "4 16"; do
  set -- $shape
  closed+=("$(measure "$url" "$1" "$2" "${args[@]}")")
  report "GetAssignments (50 exps)" "$1x$2" "${closed[-1]}"
done
tail -c +6 "$work/assign.bin" > "$work/assign.message"  # without the gRPC frame prefix
assign=(-c 4 --rate 20000 --no-decode -H "x-tenant-id: bench" \
  --method /platform.experimentation.v1.ExperimentationService/GetAssignments --data "$work/assign.message")
report "GetAssignments (50 exps)" "20k/s timer" "$(measure_rpcload 127.0.0.1:$port "${assign[@]}")"
# Busy-polling, run by run alternately with the machine's floor: the
# catalog's GetProduct answered from its cache (about half the work per
# call at 4x16) at the same rate from the same client, started now and idle
# until then. When the hypervisor steals core 0 in pieces of milliseconds,
# both tails move together.
taskset -c 0 "$bin/catalog" --port $floor_port --admin-port 0 --host 127.0.0.1 --data-dir "$work/catalog" --demo-data --log-level warning > "$work/catalog.log" 2>&1 &
catalog=$!
wait_for_port $floor_port
ours=() floor=()
for _ in $(seq 1 "$runs"); do
  ours+=("$(runs=1 measure_rpcload 127.0.0.1:$port "${assign[@]}" --busy-poll)")
  floor+=("$(runs=1 measure_rpcload 127.0.0.1:$floor_port -c 4 --rate 20000 --busy-poll "$root/Benchmarks/rpcload/mixes/catalog-get.mix")")
done
median_by_p99() { printf '%s\n' "$@" | sort -k3,3n | sed -n "$(( ($# + 1) / 2 ))p"; }
open_loop=$(median_by_p99 "${ours[@]}")
report "GetAssignments (50 exps)" "20k/s busy-poll" "$open_loop"
report "floor: catalog GetProduct" "20k/s busy-poll" "$(median_by_p99 "${floor[@]}")"
for i in "${!ours[@]}"; do
  read -r _ _ ours_p99 _ ours_steal <<<"${ours[$i]}"; read -r _ _ floor_p99 _ floor_steal <<<"${floor[$i]}"
  echo "#   run $((i + 1)): p99 $ours_p99 (core 0 stolen $ours_steal), floor $floor_p99 (stolen $floor_steal)"
done
# Issue 8's target, at least 20k/s with p99 under 1 ms, read both ways:
# closed loop at 1x16, and offered 20k/s evenly paced (the median run).
verdict() {  # label, "rate p50 p99 errors ..."
  read -r rate _ p99 errors _ <<<"$2"
  local met=no
  awk -v r="${rate%%.*}" -v p="${p99%us}" -v e="$errors" 'BEGIN { exit !(r >= 19900 && p < 1000 && e == 0) }' && met=yes
  echo "#   target 20k/s, p99 < 1 ms, $1: $met (${rate%%.*}/s, p99 $p99)"
}
verdict "closed loop 1x16" "${closed[1]}"
verdict "offered 20k/s, busy-polling" "$open_loop"
kill "$server" "$catalog" 2>/dev/null || true
wait "$server" "$catalog" 2>/dev/null || true

echo "# raw assignment function, one thread on core 0"
taskset -c 0 "$bin/assignment-benchmark" 200000 "$runs"
