#!/usr/bin/env bash
# Creates (once) a virtualenv the Python tests use, and prints its path.
#   scripts/python-env.sh          gRPC's Python implementation and its stub generator (interop tests)
#   scripts/python-env.sh feast    Feast itself, for the feature store's differential test
#   scripts/python-env.sh inference  tritonclient, and the reference runtimes behind the inference fixtures
#   scripts/python-env.sh mlserver   Seldon's MLServer with its XGBoost runtime, the inference benchmark's peer
#   scripts/python-env.sh attacks    hyper-h2 and grpcio, for the hostile HTTP/2 clients of Tests/Attacks
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
  inference)
    venv="$root/.build-python-inference"
    requirements=("tritonclient[grpc]==2.*" xgboost==1.7.* scikit-learn numpy onnx onnxruntime skl2onnx pytest)
    probe="import tritonclient.grpc, xgboost, sklearn, numpy, onnx, onnxruntime, skl2onnx, pytest"
    ;;
  mlserver)
    venv="$root/.build-python-mlserver"
    requirements=(mlserver==1.* mlserver-xgboost==1.* "xgboost<3")
    probe="import mlserver, mlserver_xgboost, xgboost"
    ;;
  attacks)
    venv="$root/.build-python-attacks"
    requirements=(h2==4.* grpcio==1.* grpcio-health-checking==1.* protobuf pytest)
    probe="import h2, hpack, grpc, grpc_health, pytest"
    ;;
  *) echo "usage: $0 [interop|feast|inference|mlserver|attacks]" >&2; exit 2 ;;
esac
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c "$probe" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "${requirements[@]}" >&2
fi
echo "$venv"
