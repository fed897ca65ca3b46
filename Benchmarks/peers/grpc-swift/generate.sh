#!/usr/bin/env bash
# Generates the peer's Swift code from the repository's proto/ with protoc
# (Debian's protobuf-compiler) and two plugins built here, in release, from
# the pinned packages: protoc-gen-swift (swift-protobuf) for the messages and
# protoc-gen-grpc-swift-2 (grpc-swift-protobuf) for the server stubs.
#
# Output: Sources/CatalogPeer/Generated/ (not committed). The plugins are
# built once into .build-codegen/ (again when Package.swift changes); files
# whose content did not change are left alone, so a later `swift build` has
# nothing to recompile. Cheap enough to run before every build.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
protos="$root/proto"
out="$here/Sources/CatalogPeer/Generated"
scratch="$here/.build-codegen"
include=${PROTOC_INCLUDE:-/usr/include}   # google/protobuf/*.proto

command -v protoc >/dev/null || { echo "generate.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -f "$include/google/protobuf/timestamp.proto" ] \
    || { echo "generate.sh: no well-known types in $include (set PROTOC_INCLUDE)" >&2; exit 1; }

# The plugins are dependency products of this package, built in a scratch
# folder of their own so the peer's .build is not touched.
bin="$scratch/release"
stamp="$scratch/plugins.stamp"
want=$(sha256sum "$here/Package.swift" | cut -d' ' -f1)
if [ ! -x "$bin/protoc-gen-swift" ] || [ ! -x "$bin/protoc-gen-grpc-swift-2" ] \
    || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    for product in protoc-gen-swift protoc-gen-grpc-swift-2; do
        swift build -c release --package-path "$here" --scratch-path "$scratch" --product "$product"
    done
    echo "$want" > "$stamp"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# One Swift module holds everything, so no module mappings are needed; the
# well-known types come from SwiftProtobuf itself.
protoc -I "$protos" -I "$include" \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --swift_out="$tmp" --swift_opt=Visibility=Internal --swift_opt=FileNaming=PathToUnderscores \
    platform/catalog/v1/catalog_service.proto platform/common/v1/common.proto google/rpc/status.proto
protoc -I "$protos" -I "$include" \
    --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
    --grpc-swift-2_out="$tmp" \
    --grpc-swift-2_opt=Visibility=Internal,Server=true,Client=false,FileNaming=PathToUnderscores \
    platform/catalog/v1/catalog_service.proto

mkdir -p "$out"
for file in "$out"/*; do   # drop files no longer generated
    [ -e "$file" ] && [ ! -e "$tmp/$(basename "$file")" ] && rm -f "$file"
done
changed=0
for file in "$tmp"/*; do
    if ! cmp -s "$file" "$out/$(basename "$file")"; then
        cp "$file" "$out/"
        changed=$((changed + 1))
    fi
done
echo "generate.sh: $(ls "$tmp" | wc -l) files in ${out#"$root"/}, $changed changed"
