#!/usr/bin/env bash
# Checks that the C++ sources are formatted by clang-format (.clang-format at the root).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "clang-format-check: clang-format is not installed (apt-get install clang-format); skipped" >&2
  exit 0
fi
clang-format --dry-run --Werror native/*.cc native/*/*.cc native/*/*.h native/*/*.cu native/*/*/*.cc native/*/*/*.cu
echo "clang-format-check: all native sources are formatted"
