#!/usr/bin/env bash
# Recommend end to end: all five services (release build, demo data,
# embedded storage) pinned to core 0, rpcload to core 1, open loop at RATE
# calls/s (default 500) for DURATION seconds, RUNS times; prints the median
# run and the mean time per pipeline step from personalization's metrics.
# Each Recommend asks for 50 results from 500 candidates.
#
# SERVICE_CPUS=0-1 lets the services use both cores (rpcload then shares
# core 1 with them: at 500 calls/s it needs a few percent of it).
#
#   scripts/benchmark-personalization.sh            # RATE=500 RUNS=3 DURATION=10 SERVICE_CPUS=0
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-dependencies.sh >/dev/null
runs=${RUNS:-3}
duration=${DURATION:-10}
rate=${RATE:-500}
service_cpus=${SERVICE_CPUS:-0}
swift build -c release >&2
bin=$(swift build -c release --show-bin-path)
make -s -C Benchmarks/rpcload >&2
rpcload="$root/Benchmarks/rpcload/build/rpcload"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. "$root/scripts/lib/benchmark.sh"

addresses=(--catalog-address 127.0.0.1:7601 --feature-store-address 127.0.0.1:7602
           --inference-address 127.0.0.1:7603 --experimentation-address 127.0.0.1:7604)
start() {
  local name=$1 port=$2; shift 2
  taskset -c "$service_cpus" "$bin/$name" --host 127.0.0.1 --port "$port" --admin-port $((port + 100)) --data-dir "$work/$name" \
    --demo-data --log-level warning "$@" > "$work/$name.log" 2>&1 &
}
start catalog 7601
start feature-store 7602 --catalog-address 127.0.0.1:7601
start inference 7603 --model-repository deploy/models
start experimentation 7604
start personalization 7605 "${addresses[@]}"
endpoints=(--catalog 127.0.0.1:7601 --feature-store 127.0.0.1:7602 --inference 127.0.0.1:7603
           --experimentation 127.0.0.1:7604 --personalization 127.0.0.1:7605)
platform() { "$bin/platform" "$1" "${endpoints[@]}" "${@:2}"; }
for _ in $(seq 1 300); do platform health >/dev/null 2>&1 && break; sleep 0.5; done
platform health >&2
# Item features follow the catalog's feed: wait until the last demo product
# has them, then until answers are complete.
for _ in $(seq 1 600); do
  platform features get --entity item_id=sku-09999 catalog_items:price 2>/dev/null | grep -q "present.*doubleVal" && break
  sleep 0.5
done
for _ in $(seq 1 300); do
  answer=$(platform recommend --user u1 --count 1 2>&1 || true)
  if grep -q "^recommendation" <<<"$answer" && ! grep -q "degraded:" <<<"$answer"; then break; fi
  sleep 0.5
done

metrics() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:7705/metrics").read().decode())' > "$1"; }
echo "Recommend (50 of 500 candidates), open loop $rate/s, ${duration}s x $runs runs, services on cores $service_cpus, rpcload on core 1"
metrics "$work/before.txt"
result=$(measure_rpcload 127.0.0.1:7605 -c 4 --rate "$rate" Benchmarks/rpcload/mixes/personalization-recommend.mix)
metrics "$work/after.txt"
read -r ok p50 p99 errors <<<"$result"
echo "median run: $ok ok/s, p50 $p50, p99 $p99, errors $errors"
python3 - "$work/before.txt" "$work/after.txt" <<'PY'
import re, sys
def read(path):
    values = {}
    for line in open(path):
        m = re.match(r'(personalization_(?:step|dependency)_seconds)_(sum|count)\{([^}]*)\} ([0-9.eE+-]+)', line)
        if m:
            values[(m.group(1), m.group(3), m.group(2))] = float(m.group(4))
    return values
before, after = read(sys.argv[1]), read(sys.argv[2])
rows = []
for (name, labels, kind), value in sorted(after.items()):
    if kind != "sum":
        continue
    count = after.get((name, labels, "count"), 0) - before.get((name, labels, "count"), 0)
    total = value - before.get((name, labels, "sum"), 0)
    if count > 0:
        rows.append((name.replace("personalization_", "").replace("_seconds", ""), labels, total / count * 1000, int(count)))
print("mean time per step (all runs):")
for name, labels, ms, count in rows:
    print(f"  {name:10} {labels:45} {ms:7.2f} ms  ({count} calls)")
PY
grep -h "personalization_degraded_total" "$work/after.txt" | grep -v "^#" || echo "no degraded answers"
