#!/usr/bin/env bash
# Our runtime side by side with the gRPC servers a user would otherwise pick,
# all serving the catalog's GetProduct and WatchProducts from the same
# products, plus the loopback floor (TCP ping-pong, nghttpd + h2load):
#   Meridian runtime from memory (Benchmarks/CatalogPeer), the real catalog
#   service on SQLite, gRPC C++ (callback API), grpc-swift-2, grpcio sync
#   and grpc.aio (Benchmarks/peers/).
# Builds everything in release mode, then Benchmarks/compare.py alternates
# the servers round by round, pins each to core 0 and rpcload to core 1, and
# writes the medians, spreads and ratios to Benchmarks/RESULTS.md (raw runs
# in Benchmarks/results.json).
#
#   scripts/benchmark-peers.sh                 # RUNS=3 DURATION=5 WARMUP=2, all servers (~15 min)
#   SERVERS=meridian-memory,grpc-cpp RUNS=1 scripts/benchmark-peers.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-dependencies.sh >/dev/null
extra=()
command -v nghttpd >/dev/null || extra+=(nghttp2-server)
command -v grpc_cpp_plugin >/dev/null || extra+=(libgrpc++-dev protobuf-compiler-grpc)
if ((${#extra[@]})); then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${extra[@]}" >&2
fi

echo "building (release)..." >&2
swift build -c release --product catalog-peer >&2
swift build -c release --product catalog >&2
bin=$(swift build -c release --show-bin-path)
make -s -C Benchmarks/rpcload >&2
make -s -C Benchmarks/floor >&2
make -s -C Benchmarks/peers/cpp >&2
Benchmarks/peers/grpc-swift/build.sh >&2
venv=$(./scripts/python-env.sh)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" Benchmarks/peers/python/catalog_peer.py --export "$work/products.binpb"

servers=${SERVERS:-meridian-memory,meridian-catalog,grpc-cpp,grpc-swift-2,grpcio-sync,grpcio-aio,nghttpd,tcp-pingpong}
"$venv/bin/python" Benchmarks/compare.py \
  --rpcload Benchmarks/rpcload/build/rpcload --pingpong Benchmarks/floor/build/tcp-pingpong \
  --catalog-peer "$bin/catalog-peer" --catalog "$bin/catalog" \
  --cpp-peer Benchmarks/peers/cpp/build/catalog-peer \
  --swift-peer Benchmarks/peers/grpc-swift/.build/release/CatalogPeer \
  --python "$venv/bin/python" --products-file "$work/products.binpb" \
  --servers "$servers" --runs "${RUNS:-3}" --duration "${DURATION:-5}" --warmup "${WARMUP:-2}"
