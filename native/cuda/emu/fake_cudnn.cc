// The host emulation's cuDNN: the legacy convolution API the plugin uses, written from
// the documented semantics: descriptor objects that store what was set, NCHW float32
// cross-correlation with padding, stride, dilation and groups, and output = alpha *
// result + beta * output (the output not read when beta is 0). The heuristics offer three
// algorithms, largest workspace first (8 MiB, 256 bytes, none), so the plugin's workspace
// handling and its fallback when a workspace does not fit are exercised; a call given less
// workspace than the size query reported fails with BAD_PARAM, as do descriptors that
// disagree. The first algorithm stands for a tensor-core one: with the descriptor's math
// type left at the default it is reported with TENSOR_OP math, and, as cuDNN documents,
// it runs only with the math type it was reported with set on the descriptor (BAD_PARAM
// otherwise). It refuses grouped convolutions with NOT_SUPPORTED_SHAPE, one of cuDNN 9's
// graded "not supported" codes, so the plugin moves on to the next candidate. Sums are in
// double.
#include <cstring>
#include <vector>

#include "../nvlibs.h"
#include "fake_nvlibs.h"

namespace deepnode::cuda::nv {

struct CudnnContext {
  cudaStream_t stream = nullptr;
};

struct CudnnTensorStruct {
  bool set = false;
  CudnnTensorFormat format = CudnnTensorFormat::Nchw;
  CudnnDataType dataType = CudnnDataType::Float;
  int n = 0, c = 0, h = 0, w = 0;
};

struct CudnnFilterStruct {
  bool set = false;
  CudnnDataType dataType = CudnnDataType::Float;
  CudnnTensorFormat format = CudnnTensorFormat::Nchw;
  int k = 0, c = 0, h = 0, w = 0;
};

struct CudnnConvolutionStruct {
  bool set = false;
  int padH = 0, padW = 0, strideH = 1, strideW = 1, dilationH = 1, dilationW = 1;
  CudnnConvolutionMode mode = CudnnConvolutionMode::CrossCorrelation;
  CudnnDataType computeType = CudnnDataType::Float;
  int groups = 1;
  CudnnMathType math = CudnnMathType::Default;
};

}  // namespace deepnode::cuda::nv

namespace deepnode::cuda::emu {
namespace {

using namespace nv;

// The fake's algorithms in every direction, in the heuristics' order: number 2 (the
// "tensor-core" one) with a large workspace, number 1 with a small one, number 0 with none.
constexpr int kTensorCoreAlgo = 2;
constexpr int kHeuristicsOrder[] = {2, 1, 0};

size_t workspaceOf(int algo) {
  return algo == 2 ? size_t(8) << 20 : algo == 1 ? 256 : 0;
}

// The math type the heuristics report for `algo` on a descriptor set to `math`.
CudnnMathType reportedMath(int algo, CudnnMathType math) {
  return algo == kTensorCoreAlgo && math == CudnnMathType::Default ? CudnnMathType::TensorOp : math;
}

CudnnStatus fakeCreate(CudnnHandle* handle) {
  if (handle == nullptr) return CudnnStatus::BadParam;
  *handle = new CudnnContext();
  return CudnnStatus::Success;
}

CudnnStatus fakeDestroy(CudnnHandle handle) {
  delete handle;
  return CudnnStatus::Success;
}

CudnnStatus fakeSetStream(CudnnHandle handle, cudaStream_t stream) {
  if (handle == nullptr) return CudnnStatus::BadParam;
  handle->stream = stream;
  return CudnnStatus::Success;
}

const char* fakeGetErrorString(CudnnStatus status) {
  switch (status) {
    case CudnnStatus::Success: return "CUDNN_STATUS_SUCCESS";
    case CudnnStatus::BadParam: return "CUDNN_STATUS_BAD_PARAM";
    case CudnnStatus::NotSupported: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CudnnStatus::NotSupportedShape: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

template <typename T>
CudnnStatus fakeCreateDescriptor(T** desc) {
  if (desc == nullptr) return CudnnStatus::BadParam;
  *desc = new T();
  return CudnnStatus::Success;
}

template <typename T>
CudnnStatus fakeDestroyDescriptor(T* desc) {
  delete desc;
  return CudnnStatus::Success;
}

bool positive(int n, int c, int h, int w) {
  return n > 0 && c > 0 && h > 0 && w > 0;
}

CudnnStatus fakeSetTensor4d(CudnnTensorDescriptor desc, CudnnTensorFormat format, CudnnDataType dataType, int n, int c,
                            int h, int w) {
  if (desc == nullptr || !positive(n, c, h, w)) return CudnnStatus::BadParam;
  *desc = {true, format, dataType, n, c, h, w};
  return CudnnStatus::Success;
}

CudnnStatus fakeSetFilter4d(CudnnFilterDescriptor desc, CudnnDataType dataType, CudnnTensorFormat format, int k, int c,
                            int h, int w) {
  if (desc == nullptr || !positive(k, c, h, w)) return CudnnStatus::BadParam;
  *desc = {true, dataType, format, k, c, h, w};
  return CudnnStatus::Success;
}

CudnnStatus fakeSetConvolution2d(CudnnConvolutionDescriptor desc, int padH, int padW, int strideH, int strideW,
                                 int dilationH, int dilationW, CudnnConvolutionMode mode, CudnnDataType computeType) {
  bool steps = strideH >= 1 && strideW >= 1 && dilationH >= 1 && dilationW >= 1;
  if (desc == nullptr || padH < 0 || padW < 0 || !steps) return CudnnStatus::BadParam;
  desc->set = true;
  desc->padH = padH, desc->padW = padW, desc->strideH = strideH, desc->strideW = strideW;
  desc->dilationH = dilationH, desc->dilationW = dilationW, desc->mode = mode, desc->computeType = computeType;
  return CudnnStatus::Success;
}

CudnnStatus fakeSetGroupCount(CudnnConvolutionDescriptor desc, int groups) {
  if (desc == nullptr || groups < 1) return CudnnStatus::BadParam;
  desc->groups = groups;
  return CudnnStatus::Success;
}

CudnnStatus fakeSetMathType(CudnnConvolutionDescriptor desc, CudnnMathType math) {
  if (desc == nullptr || static_cast<int>(math) < 0 || static_cast<int>(math) > 3) return CudnnStatus::BadParam;
  desc->math = math;
  return CudnnStatus::Success;
}

// One convolution as the descriptors describe it, once they agree with each other.
struct Problem {
  const CudnnTensorStruct* x;
  const CudnnFilterStruct* w;
  const CudnnConvolutionStruct* conv;
  const CudnnTensorStruct* y;
};

int outputDim(int in, int pad, int kernel, int dilation, int stride) {
  int span = dilation * (kernel - 1) + 1;
  return in + 2 * pad < span ? 0 : (in + 2 * pad - span) / stride + 1;
}

bool isFloatNchw(CudnnDataType type, CudnnTensorFormat format) {
  return type == CudnnDataType::Float && format == CudnnTensorFormat::Nchw;
}

CudnnStatus validate(const Problem& p) {
  if (p.x == nullptr || p.w == nullptr || p.conv == nullptr || p.y == nullptr) return CudnnStatus::BadParam;
  if (!p.x->set || !p.w->set || !p.conv->set || !p.y->set) return CudnnStatus::BadParam;
  if (!isFloatNchw(p.x->dataType, p.x->format) || !isFloatNchw(p.y->dataType, p.y->format) ||
      !isFloatNchw(p.w->dataType, p.w->format) || p.conv->computeType != CudnnDataType::Float) {
    return CudnnStatus::NotSupported;
  }
  if (p.conv->mode != CudnnConvolutionMode::CrossCorrelation) return CudnnStatus::NotSupported;
  const int groups = p.conv->groups;
  if (p.x->c != p.w->c * groups || p.w->k % groups != 0) return CudnnStatus::BadParam;
  int oH = outputDim(p.x->h, p.conv->padH, p.w->h, p.conv->dilationH, p.conv->strideH);
  int oW = outputDim(p.x->w, p.conv->padW, p.w->w, p.conv->dilationW, p.conv->strideW);
  bool outputOk = p.y->n == p.x->n && p.y->c == p.w->k && p.y->h == oH && p.y->w == oW;
  return outputOk ? CudnnStatus::Success : CudnnStatus::BadParam;
}

// Calls f(xIndex, wIndex, yIndex) for every multiply-add of the convolution.
template <typename F>
void forEachTap(const Problem& p, F&& f) {
  const CudnnTensorStruct &x = *p.x, &y = *p.y;
  const CudnnFilterStruct& w = *p.w;
  const CudnnConvolutionStruct& cv = *p.conv;
  const long long outPerGroup = w.k / cv.groups;
  for (long long n = 0; n < y.n; ++n) {
    for (long long oc = 0; oc < y.c; ++oc) {
      const long long firstIn = (oc / outPerGroup) * w.c;
      for (long long oy = 0; oy < y.h; ++oy) {
        for (long long ox = 0; ox < y.w; ++ox) {
          const long long yIndex = ((n * y.c + oc) * y.h + oy) * y.w + ox;
          for (long long ic = 0; ic < w.c; ++ic) {
            for (long long ki = 0; ki < w.h; ++ki) {
              const long long iy = oy * cv.strideH - cv.padH + ki * cv.dilationH;
              if (iy < 0 || iy >= x.h) continue;
              for (long long kj = 0; kj < w.w; ++kj) {
                const long long ix = ox * cv.strideW - cv.padW + kj * cv.dilationW;
                if (ix < 0 || ix >= x.w) continue;
                f(((n * x.c + firstIn + ic) * x.h + iy) * x.w + ix, ((oc * w.c + ic) * w.h + ki) * w.w + kj, yIndex);
              }
            }
          }
        }
      }
    }
  }
}

// out = alpha * sums + beta * out, with out not read when beta is 0.
void blend(const std::vector<double>& sums, const void* alpha, const void* beta, void* out) {
  const double a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  float* o = static_cast<float*>(out);
  for (size_t i = 0; i < sums.size(); ++i) o[i] = static_cast<float>(a * sums[i] + (b == 0 ? 0.0 : b * o[i]));
}

long long tensorSize(const CudnnTensorStruct& t) {
  return 1LL * t.n * t.c * t.h * t.w;
}

long long filterSize(const CudnnFilterStruct& f) {
  return 1LL * f.k * f.c * f.h * f.w;
}

// The checks every convolution call makes before touching memory.
CudnnStatus prepare(CudnnHandle handle, const Problem& p, int algo, int algoCount, const void* alpha, const void* beta,
                    const void* workSpace, size_t workSpaceBytes) {
  if (handle == nullptr || alpha == nullptr || beta == nullptr) return CudnnStatus::BadParam;
  CudnnStatus status = validate(p);
  if (status != CudnnStatus::Success) return status;
  if (algo < 0 || algo >= algoCount) return CudnnStatus::BadParam;
  if (algo == kTensorCoreAlgo && p.conv->math == CudnnMathType::Default) return CudnnStatus::BadParam;
  if (algo == kTensorCoreAlgo && p.conv->groups > 1) return CudnnStatus::NotSupportedShape;
  size_t needed = workspaceOf(algo);
  if (workSpaceBytes < needed || (needed > 0 && workSpace == nullptr)) return CudnnStatus::BadParam;
  return CudnnStatus::Success;
}

template <typename Perf, typename Algo>
CudnnStatus fakeHeuristics(CudnnHandle handle, const Problem& p, int requested, int* returned, Perf* results) {
  if (handle == nullptr || returned == nullptr || results == nullptr || requested < 1) return CudnnStatus::BadParam;
  CudnnStatus status = validate(p);
  if (status != CudnnStatus::Success) return status;
  const int count = static_cast<int>(sizeof kHeuristicsOrder / sizeof kHeuristicsOrder[0]);
  *returned = requested < count ? requested : count;
  for (int i = 0; i < *returned; ++i) {
    const int algo = kHeuristicsOrder[i];
    results[i] = {static_cast<Algo>(algo),
                  CudnnStatus::Success,
                  -1.0f,
                  workspaceOf(algo),
                  CudnnDeterminism::Deterministic,
                  reportedMath(algo, p.conv->math),
                  {0, 0, 0}};
  }
  return CudnnStatus::Success;
}

template <typename Algo>
CudnnStatus fakeWorkspaceSize(CudnnHandle handle, const Problem& p, Algo algo, size_t* bytes) {
  if (handle == nullptr || bytes == nullptr) return CudnnStatus::BadParam;
  CudnnStatus status = validate(p);
  if (status != CudnnStatus::Success) return status;
  *bytes = workspaceOf(static_cast<int>(algo));
  return CudnnStatus::Success;
}

CudnnStatus fakeForwardAlgorithm(CudnnHandle handle, CudnnTensorDescriptor xDesc, CudnnFilterDescriptor wDesc,
                                 CudnnConvolutionDescriptor convDesc, CudnnTensorDescriptor yDesc, int requested,
                                 int* returned, CudnnConvolutionFwdAlgoPerf* results) {
  return fakeHeuristics<CudnnConvolutionFwdAlgoPerf, CudnnConvolutionFwdAlgo>(handle, {xDesc, wDesc, convDesc, yDesc},
                                                                              requested, returned, results);
}

CudnnStatus fakeForwardWorkspace(CudnnHandle handle, CudnnTensorDescriptor xDesc, CudnnFilterDescriptor wDesc,
                                 CudnnConvolutionDescriptor convDesc, CudnnTensorDescriptor yDesc,
                                 CudnnConvolutionFwdAlgo algo, size_t* bytes) {
  return fakeWorkspaceSize(handle, {xDesc, wDesc, convDesc, yDesc}, algo, bytes);
}

CudnnStatus fakeForward(CudnnHandle handle, const void* alpha, CudnnTensorDescriptor xDesc, const void* x,
                        CudnnFilterDescriptor wDesc, const void* w, CudnnConvolutionDescriptor convDesc,
                        CudnnConvolutionFwdAlgo algo, void* workSpace, size_t workSpaceBytes, const void* beta,
                        CudnnTensorDescriptor yDesc, void* y) {
  const Problem p{xDesc, wDesc, convDesc, yDesc};
  const int algoCount = static_cast<int>(CudnnConvolutionFwdAlgo::Count);
  CudnnStatus status = prepare(handle, p, static_cast<int>(algo), algoCount, alpha, beta, workSpace, workSpaceBytes);
  if (status != CudnnStatus::Success) return status;
  const float *xs = static_cast<const float*>(x), *ws = static_cast<const float*>(w);
  std::vector<double> sums(tensorSize(*yDesc), 0.0);
  forEachTap(p, [&](long long xi, long long wi, long long yi) { sums[yi] += static_cast<double>(xs[xi]) * ws[wi]; });
  blend(sums, alpha, beta, y);
  return CudnnStatus::Success;
}

CudnnStatus fakeBackwardDataAlgorithm(CudnnHandle handle, CudnnFilterDescriptor wDesc, CudnnTensorDescriptor dyDesc,
                                      CudnnConvolutionDescriptor convDesc, CudnnTensorDescriptor dxDesc, int requested,
                                      int* returned, CudnnConvolutionBwdDataAlgoPerf* results) {
  return fakeHeuristics<CudnnConvolutionBwdDataAlgoPerf, CudnnConvolutionBwdDataAlgo>(
      handle, {dxDesc, wDesc, convDesc, dyDesc}, requested, returned, results);
}

CudnnStatus fakeBackwardDataWorkspace(CudnnHandle handle, CudnnFilterDescriptor wDesc, CudnnTensorDescriptor dyDesc,
                                      CudnnConvolutionDescriptor convDesc, CudnnTensorDescriptor dxDesc,
                                      CudnnConvolutionBwdDataAlgo algo, size_t* bytes) {
  return fakeWorkspaceSize(handle, {dxDesc, wDesc, convDesc, dyDesc}, algo, bytes);
}

CudnnStatus fakeBackwardData(CudnnHandle handle, const void* alpha, CudnnFilterDescriptor wDesc, const void* w,
                             CudnnTensorDescriptor dyDesc, const void* dy, CudnnConvolutionDescriptor convDesc,
                             CudnnConvolutionBwdDataAlgo algo, void* workSpace, size_t workSpaceBytes, const void* beta,
                             CudnnTensorDescriptor dxDesc, void* dx) {
  const Problem p{dxDesc, wDesc, convDesc, dyDesc};
  const int algoCount = static_cast<int>(CudnnConvolutionBwdDataAlgo::Count);
  CudnnStatus status = prepare(handle, p, static_cast<int>(algo), algoCount, alpha, beta, workSpace, workSpaceBytes);
  if (status != CudnnStatus::Success) return status;
  const float *ws = static_cast<const float*>(w), *dys = static_cast<const float*>(dy);
  std::vector<double> sums(tensorSize(*dxDesc), 0.0);
  forEachTap(p, [&](long long xi, long long wi, long long yi) { sums[xi] += static_cast<double>(dys[yi]) * ws[wi]; });
  blend(sums, alpha, beta, dx);
  return CudnnStatus::Success;
}

CudnnStatus fakeBackwardFilterAlgorithm(CudnnHandle handle, CudnnTensorDescriptor xDesc, CudnnTensorDescriptor dyDesc,
                                        CudnnConvolutionDescriptor convDesc, CudnnFilterDescriptor dwDesc,
                                        int requested, int* returned, CudnnConvolutionBwdFilterAlgoPerf* results) {
  return fakeHeuristics<CudnnConvolutionBwdFilterAlgoPerf, CudnnConvolutionBwdFilterAlgo>(
      handle, {xDesc, dwDesc, convDesc, dyDesc}, requested, returned, results);
}

CudnnStatus fakeBackwardFilterWorkspace(CudnnHandle handle, CudnnTensorDescriptor xDesc, CudnnTensorDescriptor dyDesc,
                                        CudnnConvolutionDescriptor convDesc, CudnnFilterDescriptor dwDesc,
                                        CudnnConvolutionBwdFilterAlgo algo, size_t* bytes) {
  return fakeWorkspaceSize(handle, {xDesc, dwDesc, convDesc, dyDesc}, algo, bytes);
}

CudnnStatus fakeBackwardFilter(CudnnHandle handle, const void* alpha, CudnnTensorDescriptor xDesc, const void* x,
                               CudnnTensorDescriptor dyDesc, const void* dy, CudnnConvolutionDescriptor convDesc,
                               CudnnConvolutionBwdFilterAlgo algo, void* workSpace, size_t workSpaceBytes,
                               const void* beta, CudnnFilterDescriptor dwDesc, void* dw) {
  const Problem p{xDesc, dwDesc, convDesc, dyDesc};
  const int algoCount = static_cast<int>(CudnnConvolutionBwdFilterAlgo::Count);
  CudnnStatus status = prepare(handle, p, static_cast<int>(algo), algoCount, alpha, beta, workSpace, workSpaceBytes);
  if (status != CudnnStatus::Success) return status;
  const float *xs = static_cast<const float*>(x), *dys = static_cast<const float*>(dy);
  std::vector<double> sums(filterSize(*dwDesc), 0.0);
  forEachTap(p, [&](long long xi, long long wi, long long yi) { sums[wi] += static_cast<double>(dys[yi]) * xs[xi]; });
  blend(sums, alpha, beta, dw);
  return CudnnStatus::Success;
}

const FakeEntry kEntries[] = {
    {kCudnnCreate, entry<CudnnCreateFn>(fakeCreate)},
    {kCudnnDestroy, entry<CudnnDestroyFn>(fakeDestroy)},
    {kCudnnSetStream, entry<CudnnSetStreamFn>(fakeSetStream)},
    {kCudnnGetErrorString, entry<CudnnGetErrorStringFn>(fakeGetErrorString)},
    {kCudnnCreateTensorDescriptor, entry<CudnnCreateTensorDescriptorFn>(fakeCreateDescriptor<CudnnTensorStruct>)},
    {kCudnnDestroyTensorDescriptor, entry<CudnnDestroyTensorDescriptorFn>(fakeDestroyDescriptor<CudnnTensorStruct>)},
    {kCudnnSetTensor4dDescriptor, entry<CudnnSetTensor4dDescriptorFn>(fakeSetTensor4d)},
    {kCudnnCreateFilterDescriptor, entry<CudnnCreateFilterDescriptorFn>(fakeCreateDescriptor<CudnnFilterStruct>)},
    {kCudnnDestroyFilterDescriptor, entry<CudnnDestroyFilterDescriptorFn>(fakeDestroyDescriptor<CudnnFilterStruct>)},
    {kCudnnSetFilter4dDescriptor, entry<CudnnSetFilter4dDescriptorFn>(fakeSetFilter4d)},
    {kCudnnCreateConvolutionDescriptor,
     entry<CudnnCreateConvolutionDescriptorFn>(fakeCreateDescriptor<CudnnConvolutionStruct>)},
    {kCudnnDestroyConvolutionDescriptor,
     entry<CudnnDestroyConvolutionDescriptorFn>(fakeDestroyDescriptor<CudnnConvolutionStruct>)},
    {kCudnnSetConvolution2dDescriptor, entry<CudnnSetConvolution2dDescriptorFn>(fakeSetConvolution2d)},
    {kCudnnSetConvolutionGroupCount, entry<CudnnSetConvolutionGroupCountFn>(fakeSetGroupCount)},
    {kCudnnSetConvolutionMathType, entry<CudnnSetConvolutionMathTypeFn>(fakeSetMathType)},
    {kCudnnGetConvolutionForwardAlgorithm, entry<CudnnGetConvolutionForwardAlgorithmFn>(fakeForwardAlgorithm)},
    {kCudnnGetConvolutionForwardWorkspaceSize, entry<CudnnGetConvolutionForwardWorkspaceSizeFn>(fakeForwardWorkspace)},
    {kCudnnConvolutionForward, entry<CudnnConvolutionForwardFn>(fakeForward)},
    {kCudnnGetConvolutionBackwardDataAlgorithm,
     entry<CudnnGetConvolutionBackwardDataAlgorithmFn>(fakeBackwardDataAlgorithm)},
    {kCudnnGetConvolutionBackwardDataWorkspaceSize,
     entry<CudnnGetConvolutionBackwardDataWorkspaceSizeFn>(fakeBackwardDataWorkspace)},
    {kCudnnConvolutionBackwardData, entry<CudnnConvolutionBackwardDataFn>(fakeBackwardData)},
    {kCudnnGetConvolutionBackwardFilterAlgorithm,
     entry<CudnnGetConvolutionBackwardFilterAlgorithmFn>(fakeBackwardFilterAlgorithm)},
    {kCudnnGetConvolutionBackwardFilterWorkspaceSize,
     entry<CudnnGetConvolutionBackwardFilterWorkspaceSizeFn>(fakeBackwardFilterWorkspace)},
    {kCudnnConvolutionBackwardFilter, entry<CudnnConvolutionBackwardFilterFn>(fakeBackwardFilter)},
};

}  // namespace

void* fakeCudnnSymbol(const char* name) {
  return findEntry(kEntries, name);
}

}  // namespace deepnode::cuda::emu
