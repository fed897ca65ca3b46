#!/usr/bin/env bash
# Runs every test:
#   1. generated code matches proto/ (and the check notices a stale proto),
#   2. the Swift suite: runtime tests over loopback sockets, every service
#      started from its real buildService, contract tests,
#   3. interop with gRPC's own Python implementation, both directions,
#   4. the feature store against Feast itself (differential test).
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

echo "== swift build"
swift build --build-tests

echo "== interop tests: gRPC's Python implementation against ours, and ours against it"
venv=$(./scripts/python-env.sh)
"$venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Interop/python

echo "== feature store against Feast (same views, rows and lookups)"
feast_venv=$(./scripts/python-env.sh feast)
"$feast_venv/bin/python" -m pytest -q -p no:cacheprovider Tests/Contract/feast

echo "== swift tests"
scripts/with-test-postgres.sh swift test --skip-build
