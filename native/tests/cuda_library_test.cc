// The CUDA plugin's library kernels (matmul, conv2d and its two backwards, rnn_forward,
// rnn_backward) in the host emulation (deepnode_cuda_emu.so, over the fake cuBLAS and
// cuDNN) against the cpu kernels, which the other tests check against naive loops: the
// same buffers and attributes through the plugin's C interface must give the same values
// and the same error codes. Skipped when the emulation was not built (no nvcc).
// Usage: cuda_library_test [path/to/deepnode_cuda_emu.so]
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>

#include "cpu/kernels.h"
#include "cuda/plugin_api.h"
#include "rnn_attrs.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

const DeepnodeCudaApi* api = nullptr;

void expectOk(int rc, const DeepnodeCudaError& error, const std::string& what) {
  check(rc == 0, what + ": " + error.code + " " + error.message);
}

std::vector<DeepnodeCudaAttr> toAttrs(const KernelCall& call) {
  std::vector<DeepnodeCudaAttr> attrs;
  for (const auto& [name, value] : call.attrs) {
    DeepnodeCudaAttr a{};
    a.name = name.c_str();
    a.kind = value.kind == AttrValue::Kind::Number   ? DEEPNODE_CUDA_ATTR_NUMBER
             : value.kind == AttrValue::Kind::Bool   ? DEEPNODE_CUDA_ATTR_BOOL
             : value.kind == AttrValue::Kind::String ? DEEPNODE_CUDA_ATTR_STRING
                                                     : DEEPNODE_CUDA_ATTR_LIST;
    a.number = value.kind == AttrValue::Kind::Bool ? (value.boolean ? 1 : 0) : value.number;
    a.string = value.string.c_str();
    a.list = value.list.data();
    a.listSize = static_cast<int64_t>(value.list.size());
    attrs.push_back(a);
  }
  return attrs;
}

// Runs `call` in the plugin: its buffers are copied to device memory and every buffer is
// copied back afterwards. Returns the error code ("" on success).
std::string runPlugin(KernelCall& call) {
  DeepnodeCudaError error{};
  std::vector<DeepnodeCudaBuffer> device;
  for (const Buffer& b : call.buffers) {
    DeepnodeCudaBuffer d{nullptr, b.size, static_cast<int>(b.dtype)};
    size_t bytes = static_cast<size_t>(b.size) * dtypeSize(b.dtype);
    if (b.data != nullptr) {
      expectOk(api->alloc(0, bytes > 0 ? bytes : 1, -1, &d.data, &error), error, "alloc");
      expectOk(api->copyToDevice(0, d.data, b.data, bytes, &error), error, "copyToDevice");
    }
    device.push_back(d);
  }
  std::vector<DeepnodeCudaAttr> attrs = toAttrs(call);
  int rc = api->run(0, call.op.c_str(), device.data(), static_cast<int>(device.size()), attrs.data(),
                    static_cast<int>(attrs.size()), &error);
  std::string code = rc == 0 ? "" : error.code;
  for (size_t i = 0; i < device.size(); ++i) {
    if (device[i].data == nullptr) continue;
    size_t bytes = static_cast<size_t>(call.buffers[i].size) * dtypeSize(call.buffers[i].dtype);
    expectOk(api->copyToHost(0, call.buffers[i].data, device[i].data, bytes, &error), error, "copyToHost");
    expectOk(api->release(0, device[i].data, &error), error, "release");
  }
  return code;
}

// Host copies of a call's float buffers, so the cpu and the plugin each get their own.
struct Copies {
  std::vector<std::vector<float>> floats;
  std::vector<std::vector<int32_t>> ints;
  KernelCall call;
};

Copies copyOf(const KernelCall& original) {
  Copies c;
  c.call = original;
  c.floats.resize(original.buffers.size());
  c.ints.resize(original.buffers.size());
  for (size_t i = 0; i < original.buffers.size(); ++i) {
    const Buffer& b = original.buffers[i];
    if (b.data == nullptr) continue;
    if (b.dtype == DType::Int32) {
      c.ints[i].assign(b.as<int32_t>(), b.as<int32_t>() + b.size);
      c.call.buffers[i].data = c.ints[i].data();
    } else {
      c.floats[i].assign(b.as<float>(), b.as<float>() + b.size);
      c.call.buffers[i].data = c.floats[i].data();
    }
  }
  return c;
}

// Runs the cpu kernel and the plugin on copies of `call`; compares every float buffer
// (outputs and inputs alike, so an input written by mistake shows) and the error code.
void compare(KernelFn cpuKernel, const KernelCall& call, const std::string& what, double tol = 2e-5) {
  Copies cpu = copyOf(call), cuda = copyOf(call);
  std::string cpuCode = codeOf(cpuKernel, cpu.call);
  std::string cudaCode = runPlugin(cuda.call);
  check(cpuCode == cudaCode, what + ": cpu error '" + cpuCode + "', cuda error '" + cudaCode + "'");
  if (!cpuCode.empty()) return;
  for (size_t i = 0; i < call.buffers.size(); ++i) {
    if (call.buffers[i].data == nullptr || call.buffers[i].dtype != DType::Float32) continue;
    allClose(cuda.floats[i], cpu.floats[i], tol, tol, what + " buffer " + std::to_string(i));
  }
}

void testMatmul() {
  struct M {
    int64_t batch, batchA, batchB, m, n, k;
    bool transA, transB;
    double alpha, beta;
  };
  const M cases[] = {{1, 1, 1, 3, 4, 5, false, false, 1, 0},  {2, 2, 2, 5, 3, 7, true, false, 1, 0},
                     {3, 1, 3, 4, 6, 2, false, true, 0.5, 0}, {2, 2, 1, 3, 3, 3, true, true, 1, 0.25},
                     {2, 2, 2, 4, 5, 0, false, true, 1, 0},   {1, 1, 1, 17, 9, 33, false, false, 2, 1}};
  for (const M& c : cases) {
    std::vector<float> out = randomFloats(c.batch * c.m * c.n), a = randomFloats(c.batchA * c.m * c.k);
    std::vector<float> b = randomFloats(c.batchB * c.k * c.n);
    KernelCall call = makeCall("matmul", {buf(out), buf(a), buf(b)},
                               {{"batch", num(c.batch)},
                                {"batchA", num(c.batchA)},
                                {"batchB", num(c.batchB)},
                                {"m", num(c.m)},
                                {"n", num(c.n)},
                                {"k", num(c.k)},
                                {"transA", flag(c.transA)},
                                {"transB", flag(c.transB)},
                                {"alpha", num(c.alpha)},
                                {"beta", num(c.beta)}});
    compare(cpu::matmul, call,
            "matmul m" + std::to_string(c.m) + " n" + std::to_string(c.n) + " k" + std::to_string(c.k) +
                (c.transA ? " tA" : "") + (c.transB ? " tB" : ""));
  }
  std::vector<float> out(6), a(6), b(5);
  KernelCall bad =
      makeCall("matmul", {buf(out), buf(a), buf(b)}, {{"batch", num(1)}, {"m", num(2)}, {"n", num(3)}, {"k", num(3)}});
  compare(cpu::matmul, bad, "matmul with a short b");
}

struct Conv {
  int64_t n, cIn, h, w, cOut, kH, kW, stride, pad, dilation, groups;
};

std::vector<std::pair<std::string, AttrValue>> convAttrs(const Conv& c) {
  return {{"n", num(c.n)},       {"cIn", num(c.cIn)},        {"h", num(c.h)},
          {"w", num(c.w)},       {"cOut", num(c.cOut)},      {"kH", num(c.kH)},
          {"kW", num(c.kW)},     {"strideH", num(c.stride)}, {"strideW", num(c.stride)},
          {"padH", num(c.pad)},  {"padW", num(c.pad + 1)},   {"dilationH", num(c.dilation)},
          {"dilationW", num(1)}, {"groups", num(c.groups)}};
}

void testConv() {
  const Conv cases[] = {{2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1},
                        {1, 4, 9, 8, 6, 3, 2, 2, 0, 2, 2},
                        {3, 2, 5, 5, 2, 1, 1, 1, 0, 1, 1},
                        {2, 6, 6, 7, 3, 2, 3, 2, 1, 1, 3},
                        {0, 2, 4, 4, 2, 3, 3, 1, 1, 1, 1}};
  for (const Conv& c : cases) {
    int64_t oH = (c.h + 2 * c.pad - c.dilation * (c.kH - 1) - 1) / c.stride + 1;
    int64_t oW = (c.w + 2 * (c.pad + 1) - (c.kW - 1) - 1) / c.stride + 1;
    std::vector<float> x = randomFloats(c.n * c.cIn * c.h * c.w),
                       weight = randomFloats(c.cOut * c.cIn / c.groups * c.kH * c.kW);
    std::vector<float> out = randomFloats(c.n * c.cOut * oH * oW), bias = randomFloats(c.cOut);
    std::vector<float> gradOut = randomFloats(out.size()), gradX = randomFloats(x.size());
    std::vector<float> gradWeight = randomFloats(weight.size());
    std::string what = "conv n" + std::to_string(c.n) + " groups " + std::to_string(c.groups);
    compare(cpu::conv2d, makeCall("conv2d", {buf(out), buf(x), buf(weight), buf(bias)}, convAttrs(c)), what, 1e-4);
    compare(cpu::conv2d, makeCall("conv2d", {buf(out), buf(x), buf(weight)}, convAttrs(c)), what + " no bias", 1e-4);
    compare(cpu::conv2dBackwardData,
            makeCall("conv2d_backward_data", {buf(gradX), buf(gradOut), buf(weight)}, convAttrs(c)),
            what + " backward data", 1e-4);
    compare(cpu::conv2dBackwardWeight,
            makeCall("conv2d_backward_weight", {buf(gradWeight), buf(gradOut), buf(x)}, convAttrs(c)),
            what + " backward weight", 1e-4);
  }
  Conv bad{1, 3, 5, 5, 4, 3, 3, 1, 0, 1, 2};  // 3 channels in 2 groups
  std::vector<float> x(75), weight(4 * 3 * 9), out(4 * 9);
  compare(cpu::conv2d, makeCall("conv2d", {buf(out), buf(x), buf(weight)}, convAttrs(bad)), "conv bad groups");
}

struct Rnn {
  std::string mode;
  int64_t steps, batch, hidden;
  bool reverse, bias;
  std::vector<int32_t> lengths;
  int64_t slots;
};

void testRnnCase(const Rnn& c) {
  const int64_t G = c.mode == "lstm" ? 4 : c.mode == "gru" ? 3 : 1, W = c.mode == "lstm" ? 6 : c.mode == "gru" ? 5 : 1;
  const int64_t T = c.steps, N = c.batch, H = c.hidden, states = c.slots * N * H;
  const bool lstm = c.mode == "lstm";
  std::vector<float> output = randomFloats(T * N * c.slots * H), hN = randomFloats(states), cN = randomFloats(states);
  std::vector<float> ws = randomFloats(T * N * W * H), xProj = randomFloats(T * N * G * H, -1, 1);
  std::vector<float> wHh = randomFloats(G * H * H, -0.5, 0.5), bHh = randomFloats(G * H, -0.5, 0.5);
  std::vector<float> h0 = randomFloats(states, -1, 1), c0 = randomFloats(states, -1, 1);
  std::vector<int32_t> lengths = c.lengths;
  auto opt = [](std::vector<float>& v, bool present) { return present ? buf(v) : nullBuffer(); };
  Buffer lengthsBuf = lengths.empty() ? nullBuffer() : buf(lengths);
  KernelCall forward = makeCall("rnn_forward",
                                {buf(output), buf(hN), opt(cN, lstm), buf(ws), buf(xProj), buf(wHh), opt(bHh, c.bias),
                                 buf(h0), opt(c0, lstm), lengthsBuf},
                                rnnAttrsOf(c));
  std::string what = c.mode + " T" + std::to_string(T) + " N" + std::to_string(N) + (c.reverse ? " reverse" : "");
  compare(cpu::rnnForward, forward, what + " forward", 1e-4);
  // The backward from the cpu forward's workspace, so both backwards read the same one.
  Copies done = copyOf(forward);
  if (!codeOf(cpu::rnnForward, done.call).empty()) return;
  std::vector<float> savedWs = done.floats[3];
  std::vector<float> gradXProj = randomFloats(xProj.size()), gradWHh = randomFloats(wHh.size());
  std::vector<float> gradBHh = randomFloats(bHh.size()), gradH0 = randomFloats(states), gradC0 = randomFloats(states);
  std::vector<float> gradOutput = randomFloats(output.size()), gradHN = randomFloats(states);
  std::vector<float> gradCN = randomFloats(states);
  KernelCall backward = makeCall("rnn_backward",
                                 {buf(gradXProj), buf(gradWHh), opt(gradBHh, c.bias), buf(gradH0), opt(gradC0, lstm),
                                  opt(gradOutput, T % 2 == 0 || !lstm), opt(gradHN, T != 3), opt(gradCN, lstm),
                                  buf(savedWs), buf(wHh), buf(h0), opt(c0, lstm), lengthsBuf},
                                 rnnAttrsOf(c));
  compare(cpu::rnnBackward, backward, what + " backward", 2e-4);
}

void testRnn() {
  const Rnn cases[] = {{"rnn_tanh", 4, 3, 5, false, true, {}, 1},    {"rnn_relu", 3, 2, 4, true, false, {3, 1}, 2},
                       {"lstm", 5, 3, 6, false, true, {5, 2, 4}, 1}, {"lstm", 3, 2, 3, true, true, {}, 2},
                       {"gru", 4, 3, 4, false, true, {1, 4, 0}, 1},  {"gru", 5, 2, 7, true, false, {2, 5}, 2},
                       {"lstm", 0, 2, 3, false, true, {}, 1},        {"gru", 2, 0, 3, false, true, {}, 1},
                       {"lstm", 40, 9, 3, true, true, {}, 1}};  // 360 rows: two chunks of the bias sum
  for (const Rnn& c : cases) testRnnCase(c);
  Rnn bad{"lstm", 3, 2, 3, false, true, {1, 4}, 1};  // a length past the steps
  testRnnCase(bad);
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("DEEPNODE_CUDA_PLUGIN");
  std::string path = argc > 1 ? argv[1] : env != nullptr ? env : "build/Release/deepnode_cuda_emu.so";
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr && access(path.c_str(), F_OK) != 0) {
    std::printf("cuda_library_test: skipped, no host emulation plugin at %s\n", path.c_str());
    return 0;
  }
  if (handle == nullptr) {
    std::printf("FAIL cannot load %s: %s\n", path.c_str(), dlerror());
    return 1;
  }
  auto entry = reinterpret_cast<DeepnodeCudaApiFn>(dlsym(handle, DEEPNODE_CUDA_API_SYMBOL));
  if (entry == nullptr || (api = entry()) == nullptr || api->abiVersion != DEEPNODE_CUDA_ABI_VERSION) {
    std::printf("FAIL %s has no usable %s\n", path.c_str(), DEEPNODE_CUDA_API_SYMBOL);
    return 1;
  }
  testMatmul();
  testConv();
  testRnn();
  return finish("cuda_library_test");
}
