#!/usr/bin/env bash
# Runs the whole platform on this machine: every service with embedded
# storage under ./data and demo data, on the standard ports. Ctrl-C (or
# SIGTERM) stops them gracefully.
#
#   MERIDIAN_CONFIGURATION=debug scripts/run-platform.sh   # faster build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

./scripts/install-dependencies.sh
configuration=${MERIDIAN_CONFIGURATION:-release}
swift build -c "$configuration"
bin=$(swift build -c "$configuration" --show-bin-path)

mkdir -p data logs
pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop INT TERM EXIT

start() {
  local name=$1; shift
  "$bin/$name" --data-dir "data/$name" --demo-data "$@" > "logs/$name.log" 2>&1 &
  pids+=($!)
}

start catalog
start feature-store
start inference
start experimentation
start personalization

# Wait until every service's gRPC health check says SERVING (the catalog
# seeds 10,000 demo products on its first start; a debug build takes a while).
echo "waiting for every service to be SERVING..."
for _ in $(seq 1 600); do
  "$bin/platform" health > /dev/null 2>&1 && break
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a service exited; see ./logs"; exit 1; }
  done
  sleep 0.5
done
"$bin/platform" health || { echo "not every service is SERVING; see ./logs"; exit 1; }

cat <<TABLE

Meridian is running (logs in ./logs, data in ./data):
  catalog          grpc 127.0.0.1:7101   admin http://127.0.0.1:8101/metrics
  feature-store    grpc 127.0.0.1:7102   admin http://127.0.0.1:8102/metrics
  inference        grpc 127.0.0.1:7103   admin http://127.0.0.1:8103/metrics
  experimentation  grpc 127.0.0.1:7104   admin http://127.0.0.1:8104/metrics
  personalization  grpc 127.0.0.1:7105   admin http://127.0.0.1:8105/metrics
Every service serves grpc.health.v1 and server reflection (try grpcurl -plaintext 127.0.0.1:7101 list).
Demo data: tenant "demo" with 10,000 products, users u1..u1000, the ranker
model (versions 1 and 2) and the ranker-v2 experiment splitting users between them.

TABLE

# A short demo: the item features follow the catalog's feed, so wait until
# a recommendation is no longer degraded, then show a few.
for _ in $(seq 1 120); do
  answer=$("$bin/platform" recommend --user u1 --count 1 2>&1 || true)
  if grep -q "^recommendation" <<<"$answer" && ! grep -q "degraded:" <<<"$answer"; then break; fi
  sleep 0.5
done
echo "== demo: platform recommend --user u42 --count 5"
"$bin/platform" recommend --user u42 --count 5 || true
echo
echo "== demo: platform recommend --user u7 --count 5 --category home/kitchen --max-price 60"
"$bin/platform" recommend --user u7 --count 5 --category home/kitchen --max-price 60 || true
echo
echo "== demo: platform assign --user u42; platform assign --user u7"
"$bin/platform" assign --user u42 || true
"$bin/platform" assign --user u7 || true
echo
echo "Try: $bin/platform --help   (recommend, rank, catalog get/list, features get, assign, health)"
echo "Press Ctrl-C to stop."
wait
