#!/usr/bin/env bash
# Generates the code (generate.sh) and builds the peer in release:
# .build/release/CatalogPeer.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/generate.sh"
swift build -c release --package-path "$here" --product CatalogPeer "$@"
