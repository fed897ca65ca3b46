#!/usr/bin/env bash
# Runs every test:
#   1. generated code matches proto/ (and the check notices a stale proto),
#   2. the Swift suite: runtime tests over loopback sockets, every service
#      started from its real buildService, contract tests,
#   3. interop with gRPC's own Python implementation, both directions,
#   4. hostile HTTP/2 clients against the catalog (Tests/Attacks),
#   5. the feature store against Feast itself (differential test),
#   6. the inference service through Triton's own client (tritonclient),
#   7. a short libFuzzer run of each of the runtime's fuzz targets (Tests/Fuzz).
# Installs what it needs first (Debian packages, a Python virtualenv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

./scripts/install-dependencies.sh

echo "== generated code is current"
./scripts/generate-code.sh --check
stale=$(mktemp -d)
trap 'rm -rf "$stale"' EXIT
cp -r proto "$stale/proto"
printf '\n// A message added without regenerating.\nmessage CodegenCheckProbe {}\n' >> "$stale/proto/platform/common/v1/common.proto"
if MERIDIAN_PROTO_DIR="$stale/proto" ./scripts/generate-code.sh --check >/dev/null 2>&1; then
  echo "error: the codegen check did not notice a proto change" >&2
  exit 1
fi
echo "codegen check passes on proto/ and fails on a changed proto, as it should"

echo "== proto/ is backward compatible with the last release (buf's WIRE and WIRE_JSON rules)"
compat_python="$(./scripts/python-env.sh interop)/bin/python"
"$compat_python" scripts/check-proto-compatibility.py
"$compat_python" scripts/check-proto-compatibility.py --self-test

echo "== rpcload's protobuf-c code is current"
rpcload_check=$(mktemp -d)
trap 'rm -rf "$stale" "$rpcload_check"' EXIT
cp -r Benchmarks/rpcload "$rpcload_check/rpcload"
PROTO_ROOT="$root/proto" "$rpcload_check/rpcload/tools/generate.sh"
if ! diff -r Benchmarks/rpcload/generated "$rpcload_check/rpcload/generated" >/dev/null; then
  echo "error: Benchmarks/rpcload/generated is stale; run make -C Benchmarks/rpcload generate" >&2
  exit 1
fi

echo "== swift build"
swift build --build-tests

echo "== rpcload (libnghttp2 + protobuf-c) smoke test: one second against the catalog and the inference service"
make -s -C Benchmarks/rpcload check
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The catalog seeds 10,000 demo products before it listens: give a debug build time.
wait_for() { for _ in $(seq 1 1800); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "error: nothing listens on port $1" >&2; return 1; }
catalog_port=$(free_port)
.build/debug/catalog --host 127.0.0.1 --port "$catalog_port" --admin-port 0 --data-dir "$rpcload_check/catalog" --demo-data --log-level warning &
catalog_pid=$!
inference_port=$(free_port)
.build/debug/inference --host 127.0.0.1 --port "$inference_port" --admin-port 0 --model-repository deploy/models --log-level warning &
inference_pid=$!
smoke=0
wait_for "$catalog_port" || smoke=1
wait_for "$inference_port" || smoke=1
scripts/rpcload-smoke.sh "127.0.0.1:$catalog_port" Benchmarks/rpcload/mixes/catalog-get.mix || smoke=1
scripts/rpcload-smoke.sh "127.0.0.1:$inference_port" Benchmarks/rpcload/mixes/inference-ranker.mix || smoke=1
kill "$catalog_pid" "$inference_pid"
wait "$catalog_pid" "$inference_pid" || true
[ "$smoke" -eq 0 ]

echo "== interop tests: gRPC's Python implementation against ours, and ours against it"
venv=$(./scripts/python-env.sh)
"$venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Interop/python

echo "== attack suite: hostile HTTP/2 clients against the catalog"
attacks_venv=$(./scripts/python-env.sh attacks)
"$attacks_venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Attacks

echo "== feature store against Feast (same views, rows and lookups)"
feast_venv=$(./scripts/python-env.sh feast)
"$feast_venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Contract/feast

echo "== inference through tritonclient (Triton's Python client)"
inference_venv=$(./scripts/python-env.sh inference)
"$inference_venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Contract/triton

echo "== fuzzing: the runtime's parsers under libFuzzer, a short bounded run per target (Tests/Fuzz)"
scripts/fuzz.sh --ci

echo "== swift tests"
scripts/with-test-postgres.sh swift test --skip-build
