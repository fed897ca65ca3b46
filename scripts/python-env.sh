#!/usr/bin/env bash
# Creates (once) the virtualenv the interop tests use, with gRPC's own
# Python implementation and the tools that generate its stubs. Prints its path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.build-python"
requirements=(grpcio==1.* grpcio-tools==1.* grpcio-health-checking==1.* grpcio-reflection==1.* protobuf pytest)
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c "import grpc, grpc_tools, grpc_health, grpc_reflection, pytest" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "${requirements[@]}" >&2
fi
echo "$venv"
