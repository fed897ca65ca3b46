#!/usr/bin/env bash
# Regenerates every Swift file derived from proto/:
#   messages       protoc-gen-swift (swift-protobuf, pinned in Shared/Codegen)
#   service stubs  protoc-gen-meridian-rpc (Shared/Codegen)
# The plugins build in their own scratch folder (.build-codegen) so the main
# build never compiles them.
#
#   scripts/generate-code.sh          rewrite the generated files
#   scripts/generate-code.sh --check  fail (listing the differences) if the
#                                     committed files are not what proto/ gives
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

check=false
[ "${1:-}" = "--check" ] && check=true
# Tests point this at a modified copy of proto/ to prove --check notices.
proto_dir=${MERIDIAN_PROTO_DIR:-proto}

scratch="$root/.build-codegen"
for product in protoc-gen-swift protoc-gen-meridian-rpc; do
  swift build --package-path Shared/Codegen --scratch-path "$scratch" -c release --product "$product" >&2
done
bin="$scratch/release"

# Which Swift module each group of proto files is generated into.
declare -A module_dirs=(
  [StandardProtos]="Shared/StandardProtos/Generated"
  [Contracts]="Shared/Contracts/Generated"
  [InteropTesting]="Tests/Interop/InteropTesting/Generated"
  [ONNXExecutor]="Services/Inference/ONNX/Generated"
)
declare -A module_protos=(
  [StandardProtos]="google/rpc grpc/health grpc/reflection"
  [Contracts]="platform inference"
  [InteropTesting]="grpc/testing"
  [ONNXExecutor]="onnx"
)

# Module mappings let generated code import the module holding a dependency.
mappings=$(mktemp)
out=$(mktemp -d)
trap 'rm -rf "$mappings" "$out"' EXIT
for module in "${!module_protos[@]}"; do
  for dir in ${module_protos[$module]}; do
    [ -d "$proto_dir/$dir" ] || continue
    while IFS= read -r file; do
      printf 'mapping { module_name: "%s" proto_file_path: "%s" }\n' "$module" "${file#"$proto_dir"/}" >> "$mappings"
    done < <(find "$proto_dir/$dir" -name '*.proto' | sort)
  done
done

options="Visibility=Public,FileNaming=PathToUnderscores,ProtoPathModuleMappings=$mappings"
for module in "${!module_protos[@]}"; do
  files=()
  for dir in ${module_protos[$module]}; do
    [ -d "$proto_dir/$dir" ] && while IFS= read -r file; do files+=("${file#"$proto_dir"/}"); done < <(find "$proto_dir/$dir" -name '*.proto' | sort)
  done
  ((${#files[@]})) || continue
  mkdir -p "$out/$module"
  protoc -I "$proto_dir" \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" --swift_out="$options:$out/$module" \
    --plugin=protoc-gen-meridian-rpc="$bin/protoc-gen-meridian-rpc" --meridian-rpc_out="$options:$out/$module" \
    "${files[@]}"
done

status=0
for module in "${!module_dirs[@]}"; do
  target="${module_dirs[$module]}"
  [ -d "$out/$module" ] || continue
  if $check; then
    if ! diff -r -q "$out/$module" "$target" >/dev/null 2>&1; then
      echo "generated code in $target is out of date with proto/:" >&2
      diff -r -q "$out/$module" "$target" >&2 || true
      status=1
    fi
  else
    rm -rf "$target"
    mkdir -p "$(dirname "$target")"
    cp -r "$out/$module" "$target"
    echo "generated $(find "$target" -name '*.swift' | wc -l) files in $target"
  fi
done
if $check && [ $status -ne 0 ]; then
  echo "run scripts/generate-code.sh and commit the result" >&2
fi
exit $status
