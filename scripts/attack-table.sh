#!/usr/bin/env bash
# Runs the attack suite (Tests/Attacks: hostile HTTP/2 clients against the
# catalog) against the binaries in MERIDIAN_BIN_DIR (default .build/release)
# and writes its table to Benchmarks/ATTACKS.md, replacing what was there:
# per attack the server's peak RSS growth, the good client's p99 latency and
# failed calls, and whether the attack's expectations held.
#   MERIDIAN_BIN_DIR=.build/debug scripts/attack-table.sh
# Extra arguments go to pytest (for example -k rapid_reset). Exits with
# pytest's status after writing the table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin_dir=${MERIDIAN_BIN_DIR:-.build/release}
if [ ! -x "$bin_dir/catalog" ]; then
  echo "error: $bin_dir/catalog is missing; build it first (swift build -c release --product catalog)" >&2
  exit 1
fi
venv=$(./scripts/python-env.sh attacks)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
started=$(date +%s)
MERIDIAN_BIN_DIR="$bin_dir" "$venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Attacks \
  --attack-results "$results" "$@" || status=$?
elapsed=$(( $(date +%s) - started ))
"$venv/bin/python" - "$results" "$bin_dir" "$elapsed" > Benchmarks/ATTACKS.md <<'EOF'
import json, subprocess, sys, datetime, os

results, bin_dir, elapsed = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    report = json.load(open(results))
except (OSError, ValueError):
    report = {"rows": [], "unsupported_flags": []}
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip():
    commit += " (with uncommitted changes in the work tree)"
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
print("# Attack suite")
print()
print("Hostile HTTP/2 clients against the catalog (`Tests/Attacks`, written by "
      "`scripts/attack-table.sh`). Each attack runs beside a well-behaved grpcio "
      "client (health check and GetProduct every 100 ms, 1 s deadline, from "
      "127.0.0.2); growth is the catalog's peak VmRSS over its baseline after warm-up.")
print()
print(f"- date: {datetime.date.today().isoformat()}")
print(f"- commit: {commit}")
print(f"- binaries: {bin_dir}")
print(f"- machine: nproc {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}, {cpu}")
print(f"- suite wall time: {elapsed} s")
print()
print("| attack | peak RSS growth (MiB) | good-client p99 ms | failures | result |")
print("| --- | --- | --- | --- | --- |")
for row in report["rows"]:
    result = row["result"]
    if row.get("reason"):
        result += ": " + row["reason"].replace("|", "/")[:200]
    cells = [row["attack"], row.get("peak_rss_growth_mib"), row.get("good_p99_ms"), row.get("failures"), result]
    print("| " + " | ".join("" if cell is None else str(cell) for cell in cells) + " |")
notes = [(row["attack"], note) for row in report["rows"] for note in row.get("notes") or []]
if notes:
    print()
    print("What the server did:")
    print()
    for attack, note in notes:
        print(f"- {attack}: {note}")
if report.get("unsupported_flags"):
    print()
    print(f"This catalog did not take {', '.join(report['unsupported_flags'])}: those limits were passed only as "
          "CATALOG_* environment variables.")
EOF
echo "wrote Benchmarks/ATTACKS.md"
exit "$status"
