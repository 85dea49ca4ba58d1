#!/usr/bin/env bash
# The whole GPU check, run once on the GPU machine from the repository root after
# scripts/gpu-pack.sh packed Node and node_modules into .device/ here (see
# ../shared/DEVICE.md). It builds the addon and the CUDA plugin for one architecture
# against the cuBLAS and cuDNN of the machine's Python wheels, so the plugin's own
# declarations are checked against NVIDIA's headers; prints what the plugin finds; runs
# the cuda and binding suites (the cuda conformance suite runs once cuda is available),
# MNIST on the best device, the benchmarks beside PyTorch on the GPU, and the cuda suite again
# with uninitialised memory poisoned. Results go to
# $OUT (or ./gpu-check-out) and stdout: summary.txt, the bench JSON files and logs.tar.xz
# holding every log (the device runner brings back at most 8 files).
#
#   scripts/gpu-check.sh            DEEPNODE_CUDA_ARCHS=90 by default
#
# The whole check keeps within GPU_CHECK_SECONDS (default 540: the runner's limit is 600 a
# command): each step's timeout is cut to what is left, and a step that would get under 20
# seconds is skipped and says so, so the summary and the logs always come back.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
logs=$(mktemp -d)
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/summary.txt"; }
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-540}))
pack_logs() { tar -C "$logs" -cJf "$out/logs.tar.xz" . 2>/dev/null; }
trap pack_logs EXIT

# The seconds a step may take: `want`, or what is left before the deadline (less a margin
# for packing the logs); 0 when too little is left to start it.
budget() {
  local left=$((deadline - SECONDS - 15))
  if [ "$left" -lt 20 ]; then echo 0; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}
# Runs `name` with up to `want` seconds: timed_step NAME WANT COMMAND...
timed_step() {
  local name=$1 limit
  limit=$(budget "$2")
  shift 2
  if [ "$limit" = 0 ]; then
    log "$name: skipped, the check's time is spent"
    return 124
  fi
  timeout "$limit" "$@"
}

# Node and node_modules, unless this machine has them already.
if ! command -v node >/dev/null; then
  mkdir -p .device/bin
  xz -dc .device/node.xz >.device/bin/node && chmod +x .device/bin/node
  export PATH="$PWD/.device/bin:$PATH"
fi
[ -d node_modules ] || xz -dc .device/modules.tar.xz | tar -xf -
log "node $(node --version), $(nvcc --version | tail -1), $(nvidia-smi -L 2>/dev/null | head -1)"

# NVIDIA's wheels: their include and lib folders, for the header check and the loader.
wheel_dirs() {
  python3 - "$1" <<'EOF' 2>/dev/null
import importlib, os, sys
for name in ("nvidia.cublas", "nvidia.cudnn", "nvidia.cu13"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    for root in module.__path__:
        path = os.path.join(root, sys.argv[1])
        if os.path.isdir(path):
            print(path)
EOF
}
includes=$(wheel_dirs include | paste -sd';' -)
libs=$(wheel_dirs lib | paste -sd':' -)
log "wheel include dirs: ${includes:-none}; lib dirs: ${libs:-none}"

export DEEPNODE_CUDA_ARCHS=${DEEPNODE_CUDA_ARCHS:-90}
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
rm -rf build
build() { npx cmake-js compile --out build --CDDEEPNODE_NVIDIA_INCLUDE_DIRS="$includes" "$@"; }
if build --CDDEEPNODE_NVLIBS_CHECK=ON >"$logs/build.log" 2>&1; then
  log "build: ok in ${SECONDS}s ($(grep -c 'checking nvlibs.h' "$logs/build.log") header check(s) compiled)"
else
  log "build: FAILED (the errors of build.log follow)"
  grep -E 'error|Error' "$logs/build.log" | head -30 | tee -a "$out/summary.txt"
  # A declaration that disagrees with NVIDIA's headers must not cost the rest of the check:
  # build again without the header check (the objects built so far are kept).
  if build --CDDEEPNODE_NVLIBS_CHECK=OFF >"$logs/build-unchecked.log" 2>&1; then
    log "build without the header check: ok in ${SECONDS}s"
  else
    log "build without the header check: FAILED"
    grep -E 'error|Error' "$logs/build-unchecked.log" | head -20 | tee -a "$out/summary.txt"
  fi
fi

node bin/deepnode.js info >"$logs/info.json" 2>&1
summarize='const i = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).cuda;
const libraries = i.libraries.map((l) => `${l.name} ${l.version ?? "missing"}`);
console.log(JSON.stringify({ available: i.available, reason: i.reason, devices: i.devices, libraries }));'
log "deepnode info: $(node -e "$summarize" "$logs/info.json" 2>&1)"

# The count line of a vitest log, and its first failures by name, so one run shows what to fix.
plain() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
counts() { plain "$1" | grep -E 'Tests ' | tail -1; }
failures() { plain "$1" | grep -E '^ *(FAIL|×)' | head -"$2" | tee -a "$out/summary.txt"; }

timed_step "cuda and binding suites" 240 npx vitest run test/backend-cuda.test.ts test/binding.test.ts \
  --reporter=dot >"$logs/tests.log" 2>&1
log "cuda and binding suites (exit $?, ${SECONDS}s): $(counts "$logs/tests.log")"
failures "$logs/tests.log" 40

device=$(node -e "import('./dist/lib/index.js').then(({cuda}) => console.log(cuda.isAvailable() ? 'cuda' : 'cpu'))")
# DEEPNODE_LOG=info adds the epoch's host waits and memory figures on cuda (Trainer).
DEEPNODE_LOG=info timed_step "mnist" 180 node bin/deepnode.js train mnist --epochs 1 --device "$device" \
  --no-progress --out "$(mktemp -d)/mnist.safetensors" >"$logs/mnist.log" 2>&1
log "mnist on $device (exit $?, ${SECONDS}s): $(grep '^epoch' "$logs/mnist.log" | tail -1)"
log "  $(grep 'host wait' "$logs/mnist.log" | tail -1)"

# The GPU benchmarks beside PyTorch on the same GPU (the quick plan keeps it to minutes).
if [ "$device" = cuda ]; then
  # Every case but the IMDB jobs (their reviews package is not sent to the GPU machine).
  cases="matmul,conv2d,maxPool2d,fwd+bwd,add [,Adam,MNIST,overhead"
  timed_step "bench" 240 node bin/deepnode.js bench --quick --backends cuda --peers torch-cuda --filter "$cases" \
    --json "$out/bench.json" --markdown "$logs/bench.md" >"$logs/bench.log" 2>&1
  log "bench (exit $?, ${SECONDS}s):"
  sed -n '/^case /,$p' "$logs/bench.log" | head -60 | tee -a "$out/summary.txt"
  # The sizes of the issue's goals, which --quick leaves out: GEMM 4096^3, ResNet convolutions.
  timed_step "bench, large cases" 150 node bin/deepnode.js bench --backends cuda --peers torch-cuda \
    --filter "matmul 4096,ResNet" --json "$out/bench-large.json" >"$logs/bench-large.log" 2>&1
  log "bench, large cases (exit $?, ${SECONDS}s):"
  sed -n '/^case /,$p' "$logs/bench-large.log" | head -30 | tee -a "$out/summary.txt"
fi
# The same cuda suite with every uninitialised output poisoned (0xFF): a kernel or library
# call that reads what it did not write fails here. Last, as the least needed: where time runs
# short it is the step skipped, not the benchmarks the issue's goals are measured by.
DEEPNODE_POISON_UNINIT=1 timed_step "cuda suite, poisoned" 120 npx vitest run test/backend-cuda.test.ts \
  --reporter=dot >"$logs/tests-poisoned.log" 2>&1
log "cuda suite, poisoned (exit $?, ${SECONDS}s): $(counts "$logs/tests-poisoned.log")"
failures "$logs/tests-poisoned.log" 10

log "done in ${SECONDS}s"
