#!/bin/sh
# Builds and runs every standalone kernel test (each compares a kernel with naive loops).
set -e
cd "$(dirname "$0")/../.."
out=build/native-tests
sh native/tests/build.sh "$out"
for test in gemm_test conv_test elementwise_test reduce_test index_test rnn_test norm_test embedding_test ctc_test cuda_library_test; do
  echo "== $test"
  "$out/$test"
done
