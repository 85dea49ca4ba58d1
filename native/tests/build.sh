#!/bin/sh
# Builds the standalone kernel tests without CMake: per-ISA files get their -m flags, and
# registry.cc/addon.cc stay out (they need every kernel and Node). Usage: native/tests/build.sh [outdir]
set -e
cd "$(dirname "$0")/../.."
out=${1:-build/native-tests}
mkdir -p "$out"
flags="-O3 -std=c++17 -fno-math-errno -fno-trapping-math -Wno-psabi -Wall -Wextra -Wno-unused-parameter -Inative"
g++ $flags -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -c native/cpu/gemm_avx512.cc -o "$out/gemm_avx512.o"
g++ $flags -mavx2 -mfma -c native/cpu/gemm_avx2.cc -o "$out/gemm_avx2.o"
common="native/cpu/gemm.cc native/core/threadpool.cc native/core/kernel.cc native/core/cpu_features.cc"
common="$common $out/gemm_avx512.o $out/gemm_avx2.o"
g++ $flags native/tests/gemm_test.cc $common -lpthread -o "$out/gemm_test"
if [ -f native/tests/conv_test.cc ]; then
  g++ $flags native/tests/conv_test.cc native/cpu/conv.cc native/cpu/pool.cc native/cpu/matmul.cc $common \
    -lpthread -o "$out/conv_test"
fi
g++ $flags native/tests/elementwise_test.cc native/cpu/creation.cc native/cpu/elementwise.cc $common -lpthread \
  -o "$out/elementwise_test"
g++ $flags native/tests/reduce_test.cc native/cpu/reduce.cc $common -lpthread -o "$out/reduce_test"
g++ $flags native/tests/index_test.cc native/cpu/index.cc native/cpu/optim.cc $common -lpthread -o "$out/index_test"
g++ $flags native/tests/rnn_test.cc native/cpu/rnn.cc $common -lpthread -o "$out/rnn_test"
g++ $flags native/tests/norm_test.cc native/cpu/norm.cc $common -lpthread -o "$out/norm_test"
g++ $flags native/tests/embedding_test.cc native/cpu/embedding.cc $common -lpthread -o "$out/embedding_test"
g++ $flags native/tests/ctc_test.cc native/cpu/ctc.cc $common -lpthread -o "$out/ctc_test"
g++ $flags native/tests/cuda_library_test.cc native/cpu/matmul.cc native/cpu/conv.cc \
  native/cpu/rnn.cc $common -lpthread -ldl -o "$out/cuda_library_test"
