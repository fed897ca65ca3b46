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

# Wait until every admin endpoint says ready.
for port in 8101 8102 8103 8104 8105; do
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && grep -q "200 OK" <&3) 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
done

cat <<TABLE
Meridian is running (logs in ./logs, data in ./data):
  catalog          grpc 127.0.0.1:7101   admin http://127.0.0.1:8101/metrics
  feature-store    grpc 127.0.0.1:7102   admin http://127.0.0.1:8102/metrics
  inference        grpc 127.0.0.1:7103   admin http://127.0.0.1:8103/metrics
  experimentation  grpc 127.0.0.1:7104   admin http://127.0.0.1:8104/metrics
  personalization  grpc 127.0.0.1:7105   admin http://127.0.0.1:8105/metrics
Every service serves grpc.health.v1 and server reflection (try grpcurl -plaintext 127.0.0.1:7101 list).
Press Ctrl-C to stop.
TABLE
wait
