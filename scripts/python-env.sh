#!/usr/bin/env bash
# Creates (once) a virtualenv the Python tests use, and prints its path.
#   scripts/python-env.sh          gRPC's Python implementation and its stub generator (interop tests)
#   scripts/python-env.sh feast    Feast itself, for the feature store's differential test
# Feast pins its own protobuf, so it gets a virtualenv of its own.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-interop}" in
  interop)
    venv="$root/.build-python"
    requirements=(grpcio==1.* grpcio-tools==1.* grpcio-health-checking==1.* grpcio-reflection==1.* protobuf pytest)
    probe="import grpc, grpc_tools, grpc_health, grpc_reflection, pytest"
    ;;
  feast)
    venv="$root/.build-python-feast"
    requirements=(feast==0.67.* grpcio==1.* pytest)
    probe="import feast, grpc, pytest"
    ;;
  *) echo "usage: $0 [interop|feast]" >&2; exit 2 ;;
esac
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c "$probe" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "${requirements[@]}" >&2
fi
echo "$venv"
