#!/usr/bin/env bash
# Runs every test: generated code is current, the Swift test suite (unit,
# service and contract tests over loopback RPC), and interop tests against
# gRPC's own implementation. Installs what it needs first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

./scripts/install-dependencies.sh

echo "== generated code is current"
./scripts/generate-code.sh --check

echo "== swift tests"
swift build --build-tests
swift test --skip-build --parallel --num-workers 2 2>&1 | tee .build/swift-test.log | grep -vE '^\S+ (info|debug|trace|notice) ' || true
grep -qE "Test run with [0-9]+ tests? .*passed|Executed [0-9]+ tests?, with 0 failures" .build/swift-test.log
! grep -qE "Test run with .* failed|with [1-9][0-9]* failures?" .build/swift-test.log

echo "== interop tests (Python grpcio)"
venv=$(./scripts/python-env.sh)
swift build --product interop-server >/dev/null 2>&1 || true
"$venv/bin/python" -m pytest -q Tests/Interop
