// conv2d forward, backward-data and backward-weight on cuDNN, NCHW float32 with stride,
// padding, dilation and groups: the cpu kernel's attributes and checks (native/cpu/
// conv.cc), then one cuDNN call. Each direction's candidate algorithms are asked of cuDNN's
// heuristics once per shape and cached, in order, with their math types and workspace
// sizes; the workspace comes from the caching allocator, and a candidate whose workspace
// cannot be had gives way to one that needs less. Every output is overwritten (beta = 0),
// as the Backend contract says; the bias is added by a small kernel after the forward.
#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../../core/args/conv.h"
#include "../launch.h"
#include "../nvlibs_loader.h"
#include "library.h"

namespace deepnode::cuda {

namespace conv_detail {

using args::conv::ConvGeometry;
using args::conv::describe;
using args::conv::expectFloat;
using args::conv::inputSize;
using args::conv::outputSize;
using args::conv::readGeometry;
using args::conv::weightSize;

int dim(const KernelCall& call, int64_t value) {
  if (value > INT_MAX) call.fail("ERR_NOT_SUPPORTED", "size " + std::to_string(value) + " exceeds cuDNN's int sizes");
  return static_cast<int>(value);
}

// The four descriptors of one convolution, set from its geometry and destroyed with it.
class ConvDescriptors {
 public:
  ConvDescriptors(const KernelCall& call, const ConvGeometry& g) : api_(nv::cudnn()) {
    try {
      nv::check(api_.createTensorDescriptor(&x), nv::kCudnnCreateTensorDescriptor);
      nv::check(api_.createTensorDescriptor(&y), nv::kCudnnCreateTensorDescriptor);
      nv::check(api_.createFilterDescriptor(&w), nv::kCudnnCreateFilterDescriptor);
      nv::check(api_.createConvolutionDescriptor(&conv), nv::kCudnnCreateConvolutionDescriptor);
      set(call, g);
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~ConvDescriptors() { destroy(); }
  ConvDescriptors(const ConvDescriptors&) = delete;
  ConvDescriptors& operator=(const ConvDescriptors&) = delete;

  nv::CudnnTensorDescriptor x = nullptr, y = nullptr;
  nv::CudnnFilterDescriptor w = nullptr;
  nv::CudnnConvolutionDescriptor conv = nullptr;

 private:
  // Statuses are not checked: nothing useful can be done about a failure to free.
  void destroy() {
    if (x != nullptr) api_.destroyTensorDescriptor(x);
    if (y != nullptr) api_.destroyTensorDescriptor(y);
    if (w != nullptr) api_.destroyFilterDescriptor(w);
    if (conv != nullptr) api_.destroyConvolutionDescriptor(conv);
  }

  void set(const KernelCall& call, const ConvGeometry& g) {
    const auto nchw = nv::CudnnTensorFormat::Nchw;
    const auto f32 = nv::CudnnDataType::Float;
    nv::check(
        api_.setTensor4dDescriptor(x, nchw, f32, dim(call, g.n), dim(call, g.cIn), dim(call, g.h), dim(call, g.w)),
        nv::kCudnnSetTensor4dDescriptor);
    nv::check(
        api_.setTensor4dDescriptor(y, nchw, f32, dim(call, g.n), dim(call, g.cOut), dim(call, g.oH), dim(call, g.oW)),
        nv::kCudnnSetTensor4dDescriptor);
    nv::check(api_.setFilter4dDescriptor(w, f32, nchw, dim(call, g.cOut), dim(call, g.cInGroup()), dim(call, g.kH),
                                         dim(call, g.kW)),
              nv::kCudnnSetFilter4dDescriptor);
    nv::check(api_.setConvolution2dDescriptor(conv, dim(call, g.padH), dim(call, g.padW), dim(call, g.strideH),
                                              dim(call, g.strideW), dim(call, g.dilationH), dim(call, g.dilationW),
                                              nv::CudnnConvolutionMode::CrossCorrelation, f32),
              nv::kCudnnSetConvolution2dDescriptor);
    nv::check(api_.setConvolutionGroupCount(conv, dim(call, g.groups)), nv::kCudnnSetConvolutionGroupCount);
    // The heuristics are asked under the math type candidates will run with: FMA math (no
    // TF32) unless TF32 is allowed; each candidate's own is set before it runs.
    auto math = tf32Allowed() ? nv::CudnnMathType::Default : nv::CudnnMathType::Fma;
    nv::check(api_.setConvolutionMathType(conv, math), nv::kCudnnSetConvolutionMathType);
  }

  const nv::CudnnApi& api_;
};

// One of cuDNN's candidate algorithms for a shape: the math type it runs with and the
// workspace it needs with that math type.
struct Candidate {
  int algo;
  nv::CudnnMathType math;
  size_t workspace;
};

enum class Direction { Forward, BackwardData, BackwardFilter };

using ChoiceKey = std::array<int64_t, 17>;

ChoiceKey choiceKey(const ConvGeometry& g, Direction direction) {
  return {currentDevice(),
          static_cast<int64_t>(direction),
          g.n,
          g.cIn,
          g.h,
          g.w,
          g.cOut,
          g.kH,
          g.kW,
          g.strideH,
          g.strideW,
          g.padH,
          g.padW,
          g.dilationH,
          g.dilationW,
          g.groups,
          tf32Allowed() ? 1 : 0};
}

std::mutex choiceMutex;
std::map<ChoiceKey, std::vector<Candidate>> choices;

// The cached candidates for this shape, or `choose()`'s, remembered.
template <typename Choose>
// The entries are never erased, and a map's elements stay put, so the reference lasts.
const std::vector<Candidate>& cachedCandidates(const ConvGeometry& g, Direction direction, Choose&& choose) {
  const ChoiceKey key = choiceKey(g, direction);
  {
    std::lock_guard<std::mutex> lock(choiceMutex);
    auto it = choices.find(key);
    if (it != choices.end()) return it->second;
  }
  std::vector<Candidate> candidates = choose();
  std::lock_guard<std::mutex> lock(choiceMutex);
  return choices.emplace(key, std::move(candidates)).first->second;
}

// Workspace past this is left to candidates that need it when no other can run, so one
// convolution does not take gigabytes from the tensors' cache.
constexpr size_t kWorkspaceCap = size_t(1) << 30;

// The math type a candidate may run with, or false to drop it. Without TF32 allowed a
// float32 convolution runs with FMA math: cuDNN's default math lets Ampere and later GPUs
// use TF32 tensor cores, and a candidate that needs tensor-core math cannot run without.
// One that may convert to half precision (TENSOR_OP_MATH_ALLOW_CONVERSION) is always dropped.
bool allowedMath(nv::CudnnMathType reported, nv::CudnnMathType& math) {
  if (reported == nv::CudnnMathType::TensorOpAllowConversion) return false;
  if (tf32Allowed()) {
    math = reported;
    return true;
  }
  math = nv::CudnnMathType::Fma;
  return reported == nv::CudnnMathType::Default || reported == nv::CudnnMathType::Fma;
}

// The heuristics' usable candidates, best first but those past the cap last, each with the
// workspace it needs under its math type (set on the descriptor before asking, as cuDNN
// documents that an algorithm runs with the math type it was reported with).
template <typename Perf, typename Size>
std::vector<Candidate> usableCandidates(const ConvDescriptors& d, const Perf* perf, int returned, Size&& size) {
  std::vector<Candidate> within, past;
  for (int i = 0; i < returned; ++i) {
    Candidate c{static_cast<int>(perf[i].algo), nv::CudnnMathType::Fma, 0};
    if (perf[i].status != nv::CudnnStatus::Success || !allowedMath(perf[i].mathType, c.math)) continue;
    nv::check(nv::cudnn().setConvolutionMathType(d.conv, c.math), nv::kCudnnSetConvolutionMathType);
    if (size(c.algo, &c.workspace) != nv::CudnnStatus::Success) continue;
    (c.workspace <= kWorkspaceCap ? within : past).push_back(c);
  }
  within.insert(within.end(), past.begin(), past.end());
  return within;
}

constexpr int kMaxCandidates = 8;

std::vector<Candidate> chooseForward(const ConvDescriptors& d) {
  const nv::CudnnApi& api = nv::cudnn();
  nv::CudnnConvolutionFwdAlgoPerf perf[kMaxCandidates] = {};
  int returned = 0;
  nv::check(
      api.getConvolutionForwardAlgorithm(nv::cudnnHandle(), d.x, d.w, d.conv, d.y, kMaxCandidates, &returned, perf),
      nv::kCudnnGetConvolutionForwardAlgorithm);
  return usableCandidates(d, perf, returned, [&](int algo, size_t* bytes) {
    return api.getConvolutionForwardWorkspaceSize(nv::cudnnHandle(), d.x, d.w, d.conv, d.y,
                                                  static_cast<nv::CudnnConvolutionFwdAlgo>(algo), bytes);
  });
}

std::vector<Candidate> chooseBackwardData(const ConvDescriptors& d) {
  const nv::CudnnApi& api = nv::cudnn();
  nv::CudnnConvolutionBwdDataAlgoPerf perf[kMaxCandidates] = {};
  int returned = 0;
  nv::check(api.getConvolutionBackwardDataAlgorithm(nv::cudnnHandle(), d.w, d.y, d.conv, d.x, kMaxCandidates, &returned,
                                                    perf),
            nv::kCudnnGetConvolutionBackwardDataAlgorithm);
  return usableCandidates(d, perf, returned, [&](int algo, size_t* bytes) {
    return api.getConvolutionBackwardDataWorkspaceSize(nv::cudnnHandle(), d.w, d.y, d.conv, d.x,
                                                       static_cast<nv::CudnnConvolutionBwdDataAlgo>(algo), bytes);
  });
}

std::vector<Candidate> chooseBackwardFilter(const ConvDescriptors& d) {
  const nv::CudnnApi& api = nv::cudnn();
  nv::CudnnConvolutionBwdFilterAlgoPerf perf[kMaxCandidates] = {};
  int returned = 0;
  nv::check(api.getConvolutionBackwardFilterAlgorithm(nv::cudnnHandle(), d.x, d.y, d.conv, d.w, kMaxCandidates,
                                                      &returned, perf),
            nv::kCudnnGetConvolutionBackwardFilterAlgorithm);
  return usableCandidates(d, perf, returned, [&](int algo, size_t* bytes) {
    return api.getConvolutionBackwardFilterWorkspaceSize(nv::cudnnHandle(), d.x, d.y, d.conv, d.w,
                                                         static_cast<nv::CudnnConvolutionBwdFilterAlgo>(algo), bytes);
  });
}

// Scratch for a candidate's workspace (none when it needs none).
struct Workspace {
  explicit Workspace(size_t bytes) : scratch(bytes > 0 ? std::make_unique<Scratch>(bytes) : nullptr), bytes(bytes) {}
  void* data() const { return scratch == nullptr ? nullptr : scratch->as<void>(); }
  std::unique_ptr<Scratch> scratch;
  size_t bytes;
};

// Runs `run(algo, workspace)` with the first candidate whose workspace can be had: when a
// workspace cannot be allocated, the next candidate with a smaller one is tried, down to
// one that needs none; one cuDNN refuses (NOT_SUPPORTED) gives way to the next. Each
// candidate's math type is set on the descriptor first. Nothing is remembered of a
// failure: memory is short for a while, and the best candidate is tried again next time.
template <typename Run>
void runCandidates(const char* op, const ConvGeometry& g, const ConvDescriptors& d,
                   const std::vector<Candidate>& candidates, const char* call, Run&& run) {
  if (candidates.empty()) {
    throw KernelError("ERR_NOT_SUPPORTED", std::string(op) + ": cuDNN offers no algorithm for " + describe(g));
  }
  size_t below = SIZE_MAX;  // after a failed allocation, only smaller workspaces are tried
  std::unique_ptr<KernelError> outOfMemory;
  nv::CudnnStatus status = nv::CudnnStatus::NotSupported;
  for (const Candidate& c : candidates) {
    if (c.workspace >= below) continue;
    std::unique_ptr<Workspace> ws;
    try {
      ws = std::make_unique<Workspace>(c.workspace);
    } catch (const KernelError& e) {
      if (e.code != "ERR_OUT_OF_MEMORY") throw;
      outOfMemory = std::make_unique<KernelError>(e);
      below = c.workspace;
      continue;
    }
    nv::check(nv::cudnn().setConvolutionMathType(d.conv, c.math), nv::kCudnnSetConvolutionMathType);
    status = run(c.algo, *ws);
    if (!nv::isNotSupported(status)) return nv::check(status, call);
  }
  if (outOfMemory != nullptr) throw *outOfMemory;
  // The last status says why (a shape, a layout, a part of cuDNN that did not load...).
  const char* name = nv::cudnn().getErrorString(status);
  throw KernelError("ERR_NOT_SUPPORTED", std::string(op) + ": cuDNN refuses all " + std::to_string(candidates.size()) +
                                             " of its candidate algorithms (" + call + ") for " + describe(g) +
                                             ", the last with " + (name != nullptr ? name : "an unnamed status") +
                                             " (" + std::to_string(static_cast<int>(status)) + ")");
}

// out [n, cOut, pixels] += bias [cOut] broadcast over the batch and the pixels.
void addBias(float* out, const float* bias, int64_t size, int64_t cOut, int64_t pixels) {
  forEach("conv2d_bias", size, [=] DEEPNODE_HD(int64_t i) { out[i] += bias[(i / pixels) % cOut]; });
}

}  // namespace conv_detail

void conv2d(KernelCall& call) {
  using namespace conv_detail;
  ConvGeometry g = readGeometry(call);
  float* out = expectFloat(call, g, 0, "out", outputSize(g));
  const float* x = expectFloat(call, g, 1, "x", inputSize(g));
  const float* weight = expectFloat(call, g, 2, "weight", weightSize(g));
  const float* bias = call.hasBuffer(3) ? expectFloat(call, g, 3, "bias", g.cOut) : nullptr;
  if (g.n == 0) return;
  ConvDescriptors d(call, g);
  const auto candidates = cachedCandidates(g, Direction::Forward, [&] { return chooseForward(d); });
  const float one = 1.0f, zero = 0.0f;
  runCandidates("conv2d", g, d, candidates, nv::kCudnnConvolutionForward, [&](int algo, const Workspace& ws) {
    return nv::cudnn().convolutionForward(nv::cudnnHandle(), &one, d.x, x, d.w, weight, d.conv,
                                          static_cast<nv::CudnnConvolutionFwdAlgo>(algo), ws.data(), ws.bytes, &zero,
                                          d.y, out);
  });
  if (bias != nullptr) addBias(out, bias, outputSize(g), g.cOut, g.pixels());
}

void conv2dBackwardData(KernelCall& call) {
  using namespace conv_detail;
  ConvGeometry g = readGeometry(call);
  float* gradX = expectFloat(call, g, 0, "gradX", inputSize(g));
  const float* gradOut = expectFloat(call, g, 1, "gradOut", outputSize(g));
  const float* weight = expectFloat(call, g, 2, "weight", weightSize(g));
  if (g.n == 0) return;
  ConvDescriptors d(call, g);
  const auto candidates = cachedCandidates(g, Direction::BackwardData, [&] { return chooseBackwardData(d); });
  const float one = 1.0f, zero = 0.0f;
  runCandidates("conv2d_backward_data", g, d, candidates, nv::kCudnnConvolutionBackwardData,
                [&](int algo, const Workspace& ws) {
                  return nv::cudnn().convolutionBackwardData(nv::cudnnHandle(), &one, d.w, weight, d.y, gradOut, d.conv,
                                                             static_cast<nv::CudnnConvolutionBwdDataAlgo>(algo),
                                                             ws.data(), ws.bytes, &zero, d.x, gradX);
                });
}

void conv2dBackwardWeight(KernelCall& call) {
  using namespace conv_detail;
  ConvGeometry g = readGeometry(call);
  float* gradWeight = expectFloat(call, g, 0, "gradWeight", weightSize(g));
  const float* gradOut = expectFloat(call, g, 1, "gradOut", outputSize(g));
  const float* x = expectFloat(call, g, 2, "x", inputSize(g));
  if (g.n == 0) return fillZeroAsync(gradWeight, static_cast<size_t>(weightSize(g)) * sizeof(float));
  ConvDescriptors d(call, g);
  const auto candidates = cachedCandidates(g, Direction::BackwardFilter, [&] { return chooseBackwardFilter(d); });
  const float one = 1.0f, zero = 0.0f;
  runCandidates("conv2d_backward_weight", g, d, candidates, nv::kCudnnConvolutionBackwardFilter,
                [&](int algo, const Workspace& ws) {
                  return nv::cudnn().convolutionBackwardFilter(nv::cudnnHandle(), &one, d.x, x, d.y, gradOut, d.conv,
                                                               static_cast<nv::CudnnConvolutionBwdFilterAlgo>(algo),
                                                               ws.data(), ws.bytes, &zero, d.w, gradWeight);
                });
}

}  // namespace deepnode::cuda
