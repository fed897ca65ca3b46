#!/usr/bin/env bash
# Installs what building, running and testing Meridian needs on Debian or
# Ubuntu, only when it is missing. Safe to run again.
set -euo pipefail

packages=(
  pkg-config
  libnghttp2-dev          # HTTP/2 engine of the RPC runtime
  protobuf-compiler       # protoc, for code generation
  libprotobuf-dev         # google/protobuf/*.proto, the well-known types protoc imports
  libprotobuf-c-dev       # second protobuf implementation (benchmark and conformance tools)
  protobuf-c-compiler
  nghttp2-client          # h2load, for benchmarks
  python3-venv
  libsqlite3-dev          # embedded storage (GRDB)
  postgresql              # PostgreSQL storage; tests start throwaway clusters
  libxgboost-dev          # inference: XGBoost models through its C API
  libopenblas-dev         # inference: matrix products of the ONNX executor (CBLAS)
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v swift >/dev/null; then
  echo "error: Swift 6.3 is required (https://www.swift.org/install/)" >&2
  exit 1
fi
