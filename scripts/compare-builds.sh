#!/usr/bin/env bash
# Relative cost per call of two builds of one service, measured side by side:
# both servers pinned to core 0, each driven closed loop (h2load, 4x16) from
# core 1 at the same time. The scheduler splits core 0 between them, so the
# ratio of their rates is the ratio of their costs per call, and the
# machine's noise (which moves single runs on this VM by up to 2x) hits both
# alike. Two copies of the same build measure 0.98-0.99: differences below
# about 3% are not resolved.
#
#   scripts/compare-builds.sh OLD_BINARY NEW_BINARY DATA_DIR METHOD_PATH REQUEST_FILE [SERVER_ARGS...]
#
# DATA_DIR is copied for each server; REQUEST_FILE is a gRPC-framed request
# body (what `h2load -d` sends). Environment: ROUNDS (3), DURATION (6),
# TENANT (bench), CLIENTS and STREAMS (4 and 16: connections and calls in
# flight on each; at 1x1 the servers barely compete and the ratio is one of
# latencies). Example:
#   scripts/compare-builds.sh /tmp/experimentation-old .build/release/experimentation \
#     /tmp/xp/data /platform.experimentation.v1.ExperimentationService/GetAssignments /tmp/xp/assign.bin
set -euo pipefail
[ $# -ge 5 ] || { sed -n '2,17p' "$0"; exit 2; }
old=$(realpath "$1"); new=$(realpath "$2"); data=$3; path=$4; request=$(realpath "$5"); shift 5
rounds=${ROUNDS:-3}; duration=${DURATION:-6}; tenant=${TENANT:-bench}; clients=${CLIENTS:-4}; streams=${STREAMS:-16}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/benchmark.sh"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r "$data" "$work/old-data"; cp -r "$data" "$work/new-data"
taskset -c 0 "$old" --port 7981 --admin-port 0 --host 127.0.0.1 --data-dir "$work/old-data" --log-level warning "$@" > "$work/old.log" 2>&1 &
taskset -c 0 "$new" --port 7982 --admin-port 0 --host 127.0.0.1 --data-dir "$work/new-data" --log-level warning "$@" > "$work/new.log" 2>&1 &
wait_for_port 7981; wait_for_port 7982
load() {  # port, output
  taskset -c 1 h2load -D "$duration" --warm-up-time=1 -c "$clients" -m "$streams" -t 1 -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "x-tenant-id: $tenant" -d "$request" "http://127.0.0.1:$1$path" > "$2" 2>&1
}
rate() { awk '/^finished/ {print $4}' "$1"; }
failed() { awk '/^requests:/ {print $10+$12+$14}' "$1"; }
echo "# side by side on core 0, ${clients}x${streams} each from core 1, ${duration}s rounds"
printf '%-8s %12s %12s %8s %8s\n' round old new ratio failed
for round in $(seq 1 "$rounds"); do
  load 7981 "$work/old.out" & first=$!
  load 7982 "$work/new.out" & second=$!
  wait "$first" "$second"
  printf '%-8s %12s %12s %8s %8s\n' "$round" "$(rate "$work/old.out")" "$(rate "$work/new.out")" \
    "$(python3 -c "print('%.3f' % ($(rate "$work/new.out") / $(rate "$work/old.out")))")" \
    "$(( $(failed "$work/old.out") + $(failed "$work/new.out") ))"
done
