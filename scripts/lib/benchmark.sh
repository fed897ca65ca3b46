# Shared by the benchmark scripts (sourced): h2load runs and their report.
# Needs $runs, $duration and $work.

measure() {  # url, clients, streams, extra h2load args... -> "req/s p50 p99 failed" (median run by req/s)
  local url=$1 clients=$2 streams=$3; shift 3
  local results=()
  for _ in $(seq 1 "$runs"); do
    rm -f "$work/latency.tsv"  # h2load appends to its log
    out=$(taskset -c 1 h2load -D "$duration" --warm-up-time=2 -c "$clients" -m "$streams" -t 1 \
      --log-file="$work/latency.tsv" "$@" "$url" 2>&1)
    rps=$(echo "$out" | awk '/^finished in/ {gsub(",", "", $4); print $4}')
    errors=$(echo "$out" | awk '/^requests:/ {print $10+$12+$14}')
    # Per-request latencies (third column, microseconds) give the percentiles.
    percentiles=$(sort -n -k3,3 "$work/latency.tsv" | awk '{ v[NR] = $3 } END {
      if (NR == 0) { print "- -"; exit }
      printf "%dus %dus\n", v[int(NR * 0.50) + 1], v[int(NR * 0.99) + 1] }')
    results+=("$rps $percentiles $errors")
  done
  printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}

report() {  # name, shape, "req/s p50 p99 failed [steal]"
  read -r rps p50 p99 errors steal <<<"$3"
  printf '%-28s %-8s %12s %10s %10s %8s %s\n' "$1" "$2" "$rps" "$p50" "$p99" "$errors" "${steal:+ (core 0 stolen ${steal})}"
}

# Time the hypervisor ran something else instead of core 0 (/proc/stat's
# steal column), in ms: on this VM a few ms of it in one piece holds up
# every call due meanwhile, so open-loop tails are read with it.
core0_steal_ms() { awk '/^cpu0 / {print $9 * 10}' /proc/stat; }


wait_for_port() {  # port: waits until something accepts connections on it
  for _ in $(seq 1 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# rpcload (Benchmarks/rpcload) instead of h2load: every response's
# grpc-status checked and its body decoded; open loop evenly paced with
# latency from each call's scheduled time. Needs $rpcload.
measure_rpcload() {  # target, rpcload args... -> "ok/s p50 p99 errors steal" (median run by p99)
  local target=$1; shift
  local results=() before
  for _ in $(seq 1 "$runs"); do
    before=$(core0_steal_ms)
    taskset -c 1 "$rpcload" --quiet -t "$target" -w 2 -d "$duration" --json "$work/rpcload.json" "$@" >/dev/null 2>&1 || true
    results+=("$(python3 -c '
import json, sys
total = json.load(open(sys.argv[1]))["total"]
latency = total["latency_us"]
print("%.0f %.0fus %.0fus %d" % (total["ok_per_s"], latency["p50"], latency["p99"], total["errors"]))' "$work/rpcload.json") $(( $(core0_steal_ms) - before ))ms")
  done
  printf '%s\n' "${results[@]}" | sort -k3,3n | sed -n "$(( (runs + 1) / 2 ))p"
}
