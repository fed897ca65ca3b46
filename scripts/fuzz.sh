#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of Tests/Fuzz (see its README.md).
#
#   scripts/fuzz.sh                  builds the fuzzers
#   scripts/fuzz.sh --ci             builds, replays every input under
#                                    Tests/Fuzz/Regressions, then runs each
#                                    target for FUZZ_SECONDS (default 20) s
#                                    from its seed corpus
#   scripts/fuzz.sh TARGET SECONDS   builds, then runs one target that long;
#                                    what it finds is kept in
#                                    Tests/Fuzz/.build-fuzz/corpus/TARGET
#
# Exits non-zero when a target crashes, traps, leaks (where checked), runs
# out of memory or hangs, and prints the path of the input that did it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
package="$root/Tests/Fuzz"
scratch="$package/.build-fuzz"
targets=(FuzzDeframer FuzzWireFormat FuzzProtobuf FuzzServerConnection)

# Swift's own crash backtracer and AddressSanitizer's handlers get in each
# other's way (the backtracer can hang); libFuzzer prints the stack.
export SWIFT_BACKTRACE=enable=no

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  echo "targets: ${targets[*]}" >&2
  exit 2
}

build() {
  local started=$SECONDS
  echo "building the fuzzers (Tests/Fuzz, scratch path Tests/Fuzz/.build-fuzz)"
  # Debug, so @testable import reaches the runtime's internals. No index
  # store and only line tables for debug info: a sixth less CPU, and stack
  # traces keep their file:line.
  local status=0
  swift build --package-path "$package" --scratch-path "$scratch" --disable-index-store \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -gline-tables-only 2>&1 \
    | { grep -v -e "Cannot export local symbol" -e "^\[[0-9]*/[0-9]*\]" || true; } || status=$?
  [ "$status" -eq 0 ] || { echo "error: building the fuzzers failed" >&2; exit 1; }
  bin=$(swift build --package-path "$package" --scratch-path "$scratch" --show-bin-path)
  echo "built in $((SECONDS - started)) s"
}

# What each target needs beyond the defaults.
options_for() {
  case "$1" in
    FuzzServerConnection) echo "-max_len=16384" ;;
    *) echo "" ;;
  esac
}

is_target() {
  local t
  for t in "${targets[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}

# Runs libFuzzer; on failure prints the end of its log and the reproducer.
run() {
  local target=$1 log=$2
  shift 2
  local status=0 leaks=1
  # -detect_leaks=0 covers the fuzzing loop; LeakSanitizer's check at exit
  # is ASan's own.
  [[ "$(options_for "$target")" == *-detect_leaks=0* ]] && leaks=0
  # shellcheck disable=SC2046
  ASAN_OPTIONS="detect_leaks=$leaks${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    "$bin/$target" $(options_for "$target") -rss_limit_mb=2048 -timeout=10 "$@" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "error: $target failed (exit $status); the end of $log:" >&2
    tail -n 60 "$log" >&2
    local unit
    unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    if [ -n "$unit" ]; then
      echo "reproducer: $unit" >&2
      echo "replay it:  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=$leaks $bin/$target $(options_for "$target") $unit" >&2
    fi
    return 1
  fi
}

# Replays the committed inputs that once crashed a target.
replay_regressions() {
  local target=$1 files=()
  [ -d "$package/Regressions/$target" ] || return 0
  while IFS= read -r -d '' file; do files+=("$file"); done \
    < <(find "$package/Regressions/$target" -type f -print0 | sort -z)
  [ "${#files[@]}" -gt 0 ] || return 0
  run "$target" "$scratch/logs/$target-regressions.log" "${files[@]}"
  echo "$target: ${#files[@]} regression input(s) pass"
}

# Fuzzes one target for `seconds` from its seed corpus and what earlier
# runs found; new inputs go to .build-fuzz/corpus/TARGET, never to the
# committed corpus.
fuzz() {
  local target=$1 seconds=$2
  local corpus="$scratch/corpus/$target" artifacts="$scratch/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  # A long run of the connection target goes in slices of a minute, each a
  # fresh process: its connections' timers and tasks outlive an input a while.
  local slice=$seconds left=$seconds runs=0 stats=""
  [ "$target" = FuzzServerConnection ] && [ "$seconds" -gt 60 ] && slice=60
  while [ "$left" -gt 0 ]; do
    local this=$((left < slice ? left : slice))
    run "$target" "$scratch/logs/$target.log" -max_total_time="$this" -print_final_stats=1 \
      -artifact_prefix="$artifacts" "$corpus" "$package/Corpus/$target"
    runs=$((runs + $(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/logs/$target.log" | tail -n 1)))
    stats=$(grep -E "^#[0-9]+" "$scratch/logs/$target.log" | tail -n 1 | grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [^ ]+" || true)
    left=$((left - this))
  done
  echo "$target: ${seconds} s, ${runs} runs, ${stats:-no coverage line}"
}

case "${1:-}" in
  "")
    build
    ;;
  --ci)
    build
    mkdir -p "$scratch/logs"
    for target in "${targets[@]}"; do replay_regressions "$target"; done
    for target in "${targets[@]}"; do fuzz "$target" "${FUZZ_SECONDS:-20}"; done
    ;;
  -h|--help)
    usage
    ;;
  *)
    [ $# -eq 2 ] && is_target "$1" && [[ "$2" =~ ^[0-9]+$ ]] || usage
    build
    mkdir -p "$scratch/logs"
    replay_regressions "$1"
    fuzz "$1" "$2"
    ;;
esac
