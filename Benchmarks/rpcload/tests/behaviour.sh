#!/usr/bin/env bash
# rpcload against tests/fake_server.c: every way a call can fail is counted
# as the right kind of error (and never as throughput), good calls are
# counted, latency and pacing are measured right, and the exit status says
# whether anything failed. Run by `make check`; prints "N passed, N failed".
#   tests/behaviour.sh BUILD_DIR
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
rpcload="$build/rpcload"
work=$(mktemp -d)
"$build/fake-server" 0 > "$work/server.out" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do grep -q listening "$work/server.out" && break; sleep 0.1; done
target="127.0.0.1:$(awk '{print $3}' "$work/server.out")"

passed=0 failed=0
unary=/grpc.testing.TestService/UnaryCall
streaming=/grpc.testing.TestService/StreamingOutputCall

# run NAME EXPECTED_EXIT PYTHON_CONDITION rpcload-args...: the condition
# sees the JSON report as `r` and the error rows as `errors`.
run() {
  local name=$1 expected=$2 condition=$3
  shift 3
  "$rpcload" -q -t "$target" --json "$work/r.json" "$@" > "$work/out.txt" 2>&1
  local status=$?
  if [ "$status" -ne "$expected" ]; then
    echo "FAILED $name: exit status $status, expected $expected"; sed 's/^/    /' "$work/out.txt"
    failed=$((failed + 1)); return
  fi
  if [ "$condition" = "-" ] || python3 - "$work/r.json" "$condition" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errors = {(e["kind"], e["name"]): e for e in r["errors"]["by_kind"]}
total = r["total"]
ok = eval(sys.argv[2])
if not ok:
    print(json.dumps({"total": total, "errors": r["errors"]}, indent=1))
sys.exit(0 if ok else 1)
PY
  then passed=$((passed + 1))
  else echo "FAILED $name: $condition"; failed=$((failed + 1))
  fi
}

# A failed call must be an error of its kind and nothing else.
only() {  # kind name -> condition
  echo "total['ok'] == 0 and total['errors'] > 0 and list(errors) == [('$1', '$2')] and total['latency_us']['count'] == 0"
}

run "good calls" 0 "total['ok'] > 100 and total['errors'] == 0 and r['errors']['total'] == 0" \
  --method $unary -d 0.5
run "grpc-status 5 in a trailers-only response" 1 "$(only grpc-status NOT_FOUND) and errors[('grpc-status', 'NOT_FOUND')]['example'] == 'fake failure'" \
  --method $unary -H 'x-fake: status:5' -d 0.3
run "grpc-status 12" 1 "$(only grpc-status UNIMPLEMENTED)" --method $unary -H 'x-fake: status:12' -d 0.3
run "HTTP 503" 1 "$(only http-status 'http 503')" --method $unary -H 'x-fake: http:503' -d 0.3
run "RST_STREAM" 1 "$(only rst-stream INTERNAL_ERROR)" --method $unary -H 'x-fake: rst' -d 0.3
run "undecodable message" 1 "$(only decode-error decode-error)" --method $unary -H 'x-fake: garbage' -d 0.3
run "undecodable message, --no-decode" 0 "total['ok'] > 50 and total['errors'] == 0 and abs(total['messages'] - total['ok']) <= 2" \
  --method $unary -H 'x-fake: garbage' -d 0.3 --no-decode
run "truncated message, --no-decode" 1 "$(only protocol 'truncated message')" --method $unary -H 'x-fake: truncated' -d 0.3 --no-decode
run "no grpc-status" 1 "$(only protocol 'missing grpc-status')" --method $unary -H 'x-fake: no-status' -d 0.3
run "two messages for a unary call" 1 "$(only protocol 'message count')" --method $unary -H 'x-fake: two' -d 0.3
run "compressed message" 1 "$(only protocol framing)" --method $unary -H 'x-fake: compressed' -d 0.3
run "truncated message" 1 "$(only protocol 'truncated message')" --method $unary -H 'x-fake: truncated' -d 0.3
run "wrong content-type" 1 "$(only protocol content-type)" --method $unary -H 'x-fake: text' -d 0.3
run "a stream of 100 messages" 0 "total['ok'] > 10 and abs(total['messages'] / total['ok'] - 100) < 5 and r['methods'][0]['server_streaming']" \
  --method $streaming -H 'x-fake: stream:100' -d 0.5
run "two messages on a streaming method" 0 "total['ok'] > 10 and total['errors'] == 0" \
  --method $streaming -H 'x-fake: two' -d 0.3
run "latency of a 20 ms server" 0 "19000 <= total['latency_us']['p50'] <= 23000 and 40 <= total['ok'] <= 52" \
  --method $unary -H 'x-fake: delay:20' -d 1
run "warm-up calls are not measured" 0 "18 <= total['ok'] <= 26 and total['calls_started'] == total['ok']" \
  --method $unary -H 'x-fake: delay:20' -w 0.5 -d 0.5
run "open loop keeps its rate" 0 "abs(total['ok'] / r['measured_s'] - 2000) < 40 and r['open_loop']['unsent'] == 0" \
  --method $unary -r 2000 -c 2 -d 1
# 100/s offered, 50/s served (one stream, 20 ms each): calls queue, and
# latency from their due time grows to about half the run (~0.5 s), where a
# closed-loop-style measurement would still say 20 ms.
run "open loop counts queueing (no coordinated omission)" 0 "total['latency_us']['p99'] > 400000 and total['latency_us']['p50'] > 150000" \
  --method $unary -H 'x-fake: delay:20' -r 100 -c 1 -m 1 -d 1
run "busy polling keeps the rate" 0 "abs(total['ok'] / r['measured_s'] - 2000) < 40 and r['open_loop']['unsent'] == 0" \
  --method $unary -r 2000 -c 2 -d 1 --busy-poll
run "busy polling counts queueing too" 0 "total['latency_us']['p99'] > 400000 and total['latency_us']['p50'] > 150000" \
  --method $unary -H 'x-fake: delay:20' -r 100 -c 1 -m 1 -d 1 --busy-poll
run "unfinished calls are cancelled and counted" 1 "$(only unfinished unfinished)" \
  --method $unary -H 'x-fake: delay:3000' -d 0.2 --drain 0.2
printf '3 %s\n1 /grpc.testing.TestService/EmptyCall\n' "$unary" > "$work/weights.mix"
run "weights choose the calls" 0 "abs(r['methods'][0]['calls_started'] / max(1, r['methods'][1]['calls_started']) - 3) < 0.4" \
  -d 0.5 "$work/weights.mix"
printf '@metadata x-fake: status:9\n1 %s\n' "$unary" > "$work/metadata.mix"
run "@metadata in a mix, overridden by -H" 0 "total['errors'] == 0" -H 'x-fake: ok' -d 0.2 "$work/metadata.mix"
run "@metadata in a mix" 1 "$(only grpc-status FAILED_PRECONDITION)" -d 0.2 "$work/metadata.mix"
run "text request encoded by protoc" 0 "total['ok'] > 0" --method $unary --text 'response_size: 32 payload { body: "abc" }' -d 0.2
run "a request that is not text format" 2 - --method $unary --text 'no_such_field: 1' -d 0.2
run "an unknown method" 2 - --method /grpc.testing.TestService/NoSuchCall -d 0.2
"$rpcload" -q -t 127.0.0.1:1 --method $unary -d 0.2 > /dev/null 2>&1
if [ $? -eq 2 ]; then passed=$((passed + 1)); else echo "FAILED nothing listening: exit status not 2"; failed=$((failed + 1)); fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
