#!/usr/bin/env bash
# Checks the plugin's own cuBLAS declarations (native/cuda/nvlibs.h) against NVIDIA's real
# cuBLAS, on a machine with no GPU. Debian's non-free archive ships cuBLAS 11.8: its headers in
# nvidia-cuda-dev, its libraries in libcublas11 and libcublaslt11. This script fetches those
# three packages with apt into a folder of its own (the system's apt setup is left alone) and:
#   1. compiles nvlibs_check_cublas.cc against the real headers (the compile-time check CMake
#      builds where the headers are installed);
#   2. looks up every cuBLAS and cuBLASLt entry point nvlibs.h names in the real libraries;
#   3. where the plugin is built (build/Release/deepnode_cuda.so), has its probe open the real
#      libraries and read their version through our declaration of cublasGetProperty.
# The plugin looks for cuBLAS 13's file names; cuBLAS 11 exports the same entry points, so the
# probe is pointed at links under those names. cuDNN is not in Debian's archive (only a script
# that downloads it), so its declarations are checked on the GPU machine (scripts/gpu-check.sh).
#
# Usage: scripts/check-nvlibs.sh [work-folder]   (default: a new temporary folder)
# Exit status: 0 when every check passed, 1 when one failed, 3 when the packages could not be
# fetched (nothing was checked).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work/debs" "$work/root" "$work/apt/lists/partial" "$work/apt/cache/archives/partial"

cat >"$work/apt/sources.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm non-free
EOF
apt_options=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o "APT::Sandbox::User=root")
packages=(nvidia-cuda-dev libcublas11 libcublaslt11)

fetch() {
  apt-get "${apt_options[@]}" -qq update &&
    (cd "$work/debs" && apt-get "${apt_options[@]}" -qq download "${packages[@]}")
}
if ! ls "$work"/debs/nvidia-cuda-dev_*.deb >/dev/null 2>&1 && ! fetch >"$work/fetch.log" 2>&1; then
  echo "check-nvlibs: could not fetch ${packages[*]} from Debian's non-free archive; nothing was checked"
  tail -3 "$work/fetch.log"
  exit 3
fi

# Only the cuBLAS headers of the toolkit package (it is large: about a minute to unpack), and
# the two libraries.
include="$work/root/usr/include"
libs="$work/root/usr/lib/x86_64-linux-gnu"
if [ ! -f "$include/cublas_v2.h" ]; then
  dpkg-deb --fsys-tarfile "$work"/debs/nvidia-cuda-dev_*.deb |
    tar -x -C "$work/root" --wildcards './usr/include/cublas*'
fi
dpkg-deb -x "$work"/debs/libcublas11_*.deb "$work/root"
dpkg-deb -x "$work"/debs/libcublaslt11_*.deb "$work/root"
version=$(sed -n 's/^#define CUBLAS_VER_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' "$include/cublas_api.h" | paste -sd.)
# The CUDA runtime's headers (cuBLAS's include driver_types.h), beside the real nvcc.
cuda_include=${CUDA_HOME:-/usr/local/cuda}/include
[ -f "$cuda_include/driver_types.h" ] || cuda_include=$(dirname "$(readlink -f "$(command -v nvcc)")")/../include
failed=0

if c++ -std=c++17 -fsyntax-only -I native/cuda -I "$include" -I "$cuda_include" native/cuda/nvlibs_check_cublas.cc; then
  echo "check-nvlibs: nvlibs.h matches the cuBLAS $version headers"
else
  echo "check-nvlibs: nvlibs.h does NOT match the cuBLAS $version headers (errors above)"
  failed=1
fi

# The names nvlibs.h gives cuBLAS's and cuBLASLt's entry points (kCublas... = "name").
names=$(sed -n 's/.*constexpr const char\* kCublas[A-Za-z]* = "\([A-Za-z_0-9]*\)".*/\1/p' native/cuda/nvlibs.h)
exported=$(nm -D --defined-only "$libs/libcublas.so.11" "$libs/libcublasLt.so.11" | awk '{sub(/@.*/, "", $3); print $3}')
missing=0
for name in $names; do
  if ! grep -qx "$name" <<<"$exported"; then
    echo "check-nvlibs: cuBLAS $version exports no $name"
    missing=1
  fi
done
if [ "$missing" = 0 ]; then
  echo "check-nvlibs: cuBLAS $version exports all $(wc -w <<<"$names") entry points nvlibs.h names"
else
  failed=1
fi

if [ -f build/Release/deepnode_cuda.so ] && [ -f dist/lib/index.js ]; then
  mkdir -p "$work/probe"
  ln -sf "$libs/libcublas.so.11" "$work/probe/libcublas.so.13"
  ln -sf "$libs/libcublasLt.so.11" "$work/probe/libcublasLt.so.13"
  ln -sf "$libs/libcublasLt.so.11" "$work/probe/libcublasLt.so.11"
  found=$(DEEPNODE_CUDA_LIBRARY_PATH="$work/probe" DEEPNODE_CUDA_PLUGIN="$PWD/build/Release/deepnode_cuda.so" \
    node -e 'import("./dist/lib/index.js").then(({ cuda }) => {
      const libs = cuda.status().libraries ?? [];
      console.log(libs.filter((l) => l.name.startsWith("cublas")).map((l) => `${l.name} ${l.version}`).join(", "));
    })')
  if [ "$found" = "cublasLt $version, cublas $version" ]; then
    echo "check-nvlibs: the plugin's probe opened the real libraries and read their versions: $found"
  else
    echo "check-nvlibs: the plugin's probe read '$found', expected cublasLt and cublas $version"
    failed=1
  fi
else
  echo "check-nvlibs: the plugin or dist/ is not built; the probe was not tried"
fi
exit "$failed"
