#!/usr/bin/env bash
# Inference benchmark, side by side with Seldon's MLServer (PyPI mlserver +
# mlserver-xgboost), which speaks the same Open Inference Protocol over gRPC,
# serving the same model: the demo ranker's version 2 (XGBoost, 60 trees,
# deploy/models/ranker/2/model.ubj).
#   - ModelInfer with 1 row and with 100 rows, closed loop 1x1 and 4x16;
#   - load from rpcload (libnghttp2 + protobuf-c): every response's
#     grpc-status checked and its body decoded, errors never counted as
#     throughput;
#   - both servers pinned to core 0 (MLServer with parallel_workers 0, so
#     inference runs in its one process), rpcload to core 1; servers
#     alternate point by point; medians of RUNS runs of DURATION seconds;
#   - service overhead at 1x1: our ModelStatistics' time per request (from
#     the moment its headers are read off the connection to the response
#     built, as Triton counts) minus the model's compute time, next to what
#     the client sees (its p50 minus the model's time).
# Both sides run without response cache and dynamic batching, which
# MLServer also leaves off by default.
#
#   scripts/benchmark-inference.sh       # RUNS=3 DURATION=10
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-dependencies.sh >/dev/null
runs=${RUNS:-3}
duration=${DURATION:-10}
swift build -c release --product inference >&2
bin=$(swift build -c release --show-bin-path)
make -s -C Benchmarks/rpcload >&2
rpcload="$root/Benchmarks/rpcload/build/rpcload"
mlserver_venv=$(./scripts/python-env.sh mlserver)
inference_venv=$(./scripts/python-env.sh inference)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. "$root/scripts/lib/benchmark.sh"

ours=7993 theirs_grpc=7994
mkdir -p "$work/ours/ranker/1" "$work/mlserver/ranker"
cp deploy/models/ranker/2/model.ubj "$work/ours/ranker/1/model.ubj"
cp deploy/models/ranker/2/model.ubj "$work/mlserver/ranker/model.ubj"
cat > "$work/ours/ranker/config.pbtxt" <<'EOF'
name: "ranker"
backend: "xgboost"
max_batch_size: 1000
default_model_filename: "model.ubj"
input [ { name: "features" data_type: TYPE_FP32 dims: [ 5 ] } ]
output [ { name: "score" data_type: TYPE_FP32 dims: [ 1 ] } ]
EOF
cat > "$work/mlserver/settings.json" <<EOF
{"http_port": 7995, "grpc_port": $theirs_grpc, "metrics_port": 7996, "parallel_workers": 0, "debug": false}
EOF
cat > "$work/mlserver/ranker/model-settings.json" <<'EOF'
{"name": "ranker", "implementation": "mlserver_xgboost.XGBoostModel", "parameters": {"uri": "./model.ubj"}}
EOF

# The same requests for both: 1 and 100 rows of plausible features, raw FP32.
python3 - "$work" <<'PY'
import random, struct, sys
random.seed(7)
def row():
    return [random.randint(0, 40), random.uniform(0, 3000), random.uniform(5, 500), random.choice([0.0, 1.0]), random.randint(0, 200)]
def escape(data):
    return "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else "\\%03o" % b for b in data)
for rows in (1, 100):
    values = [v for _ in range(rows) for v in row()]
    raw = struct.pack("<%df" % len(values), *values)
    with open(f"{sys.argv[1]}/rows{rows}.mix", "w") as mix:
        mix.write(f'1 /inference.GRPCInferenceService/ModelInfer model_name: "ranker" '
                  f'inputs {{ name: "features" datatype: "FP32" shape: [{rows}, 5] }} raw_input_contents: "{escape(raw)}"\n')
PY

ours_admin=7992
taskset -c 0 "$bin/inference" --host 127.0.0.1 --port $ours --admin-port $ours_admin --model-repository "$work/ours" --log-level warning > "$work/ours.log" 2>&1 &
(cd "$work/mlserver" && exec taskset -c 0 "$mlserver_venv/bin/mlserver" start . > "$work/mlserver.log" 2>&1) &
wait_for_port $ours
wait_for_port $theirs_grpc
# MLServer opens its port before the model is ready: wait until a call succeeds.
for _ in $(seq 1 100); do
  "$rpcload" --quiet -t 127.0.0.1:$theirs_grpc -d 0.2 "$work/rows1.mix" >/dev/null 2>&1 && break
  sleep 0.5
done

run_point() {  # port mix connections streams -> "ok/s p50 p99 errors" (one run; servers alternate run by run)
  runs=1 measure_rpcload "127.0.0.1:$1" -c "$3" -m "$4" "$2"
}

# Time in our service outside the model, per 1-row request at 1x1, measured
# first, while MLServer (on the same core) is idle.
snapshot() {
  "$inference_venv/bin/python" - $ours <<'PY'
import sys
import tritonclient.grpc as triton
stats = triton.InferenceServerClient(f"127.0.0.1:{sys.argv[1]}").get_inference_statistics("ranker").model_stats[0].inference_stats
print(stats.success.count, stats.success.ns, stats.compute_infer.ns)
PY
}
# The medians come from the admin port's histograms of the same times.
histograms() {
  curl -s "http://127.0.0.1:$ours_admin/metrics" | grep -E '^inference_(request|compute)_duration_seconds_bucket\{.*model="ranker"' || true
}
histograms > "$work/histograms.before"
read -r count0 success0 compute0 <<<"$(snapshot)"
read -r _ client_p50 _ _ <<<"$(run_point $ours "$work/rows1.mix" 1 1)"
read -r count1 success1 compute1 <<<"$(snapshot)"
histograms > "$work/histograms.after"
medians=$(python3 - "$work/histograms.before" "$work/histograms.after" <<'PY'
import re, sys
def read(path):
    counts = {}
    for line in open(path):
        match = re.match(r'inference_(request|compute)_duration_seconds_bucket\{.*le="([^"]+)".*\} (\S+)', line)
        if match:
            counts[(match[1], float(match[2]))] = float(match[3])
    return counts
before, after = read(sys.argv[1]), read(sys.argv[2])
def median(kind):
    bounds = sorted(le for (k, le) in after if k == kind)
    cumulative = [(le, after[(kind, le)] - before.get((kind, le), 0)) for le in bounds]
    total = cumulative[-1][1] if cumulative else 0
    lower = 0.0
    for le, count in cumulative:
        if total and count >= total / 2:
            return "%g-%g us" % (lower * 1e6, le * 1e6)
        lower = le
    return "-"
print("service time p50 in %s, model time p50 in %s (histogram buckets)" % (median("request"), median("compute")))
PY
)
overhead=$(awk -v n=$((count1 - count0)) -v s=$((success1 - success0)) -v c=$((compute1 - compute0)) -v p50="${client_p50%us}" -v medians="$medians" 'BEGIN {
  printf "our service at 1x1, 1 row: the client sees p50 %d us; the service takes %.1f us a request (headers read to response built), %.1f us of it in the model\n", p50, s / n / 1000, c / n / 1000
  printf "overhead (client p50 - model time): %.1f us; inside the service: %.1f us (mean); %s\n", p50 - c / n / 1000, (s - c) / n / 1000, medians }')

declare -A samples
points=("rows1 1 1" "rows1 4 16" "rows100 1 1" "rows100 4 16")
for _ in $(seq 1 "$runs"); do
  for point in "${points[@]}"; do
    read -r mix connections streams <<<"$point"
    for server in ours mlserver; do
      port=$([ $server = ours ] && echo $ours || echo $theirs_grpc)
      samples["$server $point"]+="$(run_point "$port" "$work/$mix.mix" "$connections" "$streams");"
    done
  done
done

median() {  # "a b c d;..." -> the sample with the median throughput
  tr ';' '\n' <<<"$1" | sed '/^$/d' | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}

printf '%-28s %-8s %12s %10s %10s %8s\n' "server" "load" "RPC/s" "p50" "p99" "errors"
for point in "${points[@]}"; do
  read -r mix connections streams <<<"$point"
  for server in ours mlserver; do
    name=$([ $server = ours ] && echo "meridian inference" || echo "MLServer $("$mlserver_venv/bin/python" -c 'import mlserver; print(mlserver.__version__)')")
    report "$name ${mix#rows} rows" "${connections}x${streams}" "$(median "${samples["$server $point"]}")"
  done
done
echo "$overhead"
