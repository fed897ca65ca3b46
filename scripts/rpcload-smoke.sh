#!/usr/bin/env bash
# Smoke test over real gRPC: one second of closed-loop load with rpcload
# (Benchmarks/rpcload, built here with make when missing or stale), passing
# only when calls were made and every one of them answered grpc-status 0
# with a response protobuf-c could decode.
#
#   scripts/rpcload-smoke.sh HOST:PORT MIXFILE [more rpcload options]
#   scripts/rpcload-smoke.sh 127.0.0.1:7101 Benchmarks/rpcload/mixes/catalog-get.mix
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 HOST:PORT MIXFILE [rpcload options...]" >&2
  exit 2
fi
target=$1 mix=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
make -s -C "$root/Benchmarks/rpcload" >&2
rpcload="$root/Benchmarks/rpcload/build/rpcload"

json=$(mktemp)
trap 'rm -f "$json"' EXIT
# rpcload exits 1 when any call failed (any grpc-status but 0, HTTP or
# stream errors, undecodable responses, lost connections) and 2 when it
# could not start (bad mix, nothing listening).
status=0
"$rpcload" --quiet --target "$target" --duration 1 --json "$json" "$@" "$mix" || status=$?
if [ "$status" -ne 0 ]; then
  echo "rpcload-smoke: FAILED against $target with $mix (rpcload exit status $status)" >&2
  exit 1
fi
# Zero failures out of zero calls is no pass.
ok=$(sed -n 's/^  "total": {"calls_started": [0-9]*, "ok": \([0-9]*\),.*/\1/p' "$json")
if [ -z "$ok" ] || [ "$ok" -eq 0 ]; then
  echo "rpcload-smoke: FAILED against $target with $mix: no call completed" >&2
  exit 1
fi
echo "rpcload-smoke: ok, $ok calls against $target, all grpc-status 0"
