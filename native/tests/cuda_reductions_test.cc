// The CUDA plugin's reduction family (native/cuda/kernels: reduce, softmax, losses,
// indexing, embedding, normalisation, CTC) in its host emulation, against the cpu kernels
// on the same inputs. It reaches what the conformance suite's small cases do not: rows long
// enough for the chunked two-pass reductions, NaN among many values, integer wrapping, and
// the errors found through device flags, whose codes and messages must be the cpu's.
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cpu/kernels.h"
#include "cuda/kernels.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

// One kernel argument: its dtype and values (stored as double), or absent.
struct Arg {
  DType dtype = DType::Float32;
  std::vector<double> values;
  bool absent = false;
};

Arg floats(int64_t n, double lo = -3, double hi = 3) {
  Arg a;
  for (float v : randomFloats(n, static_cast<float>(lo), static_cast<float>(hi))) a.values.push_back(v);
  return a;
}

Arg integers(int64_t n, int lo, int hi, DType dtype = DType::Int32) {
  Arg a{dtype, {}, false};
  for (int32_t v : randomInts(n, lo, hi)) a.values.push_back(v);
  return a;
}

Arg zeros(int64_t n, DType dtype = DType::Float32) {
  return Arg{dtype, std::vector<double>(static_cast<size_t>(n), 0.0), false};
}

Arg absent() {
  return Arg{DType::Float32, {}, true};
}

// Typed storage for the args; both backends get their own copy.
struct Storage {
  std::vector<std::vector<unsigned char>> bytes;
  std::vector<Buffer> buffers;
};

template <typename T>
void store(unsigned char* at, double value) {
  T v = static_cast<T>(value);
  std::memcpy(at, &v, sizeof v);
}

Storage materialise(const std::vector<Arg>& args) {
  Storage s;
  s.bytes.reserve(args.size());
  for (const Arg& a : args) {
    const size_t size = dtypeSize(a.dtype);
    s.bytes.emplace_back(a.values.size() * size + 8);
    unsigned char* base = s.bytes.back().data();
    for (size_t i = 0; i < a.values.size(); ++i) {
      switch (a.dtype) {
        case DType::Float32: store<float>(base + i * size, a.values[i]); break;
        case DType::Float64: store<double>(base + i * size, a.values[i]); break;
        case DType::Int32: store<int32_t>(base + i * size, a.values[i]); break;
        case DType::UInt8: store<uint8_t>(base + i * size, a.values[i]); break;
        case DType::Int8: store<int8_t>(base + i * size, a.values[i]); break;
      }
    }
    Buffer b;
    b.data = a.absent ? nullptr : base;
    b.size = static_cast<int64_t>(a.values.size());
    b.dtype = a.dtype;
    s.buffers.push_back(b);
  }
  return s;
}

std::vector<double> valuesOf(const Buffer& b) {
  std::vector<double> v;
  for (int64_t i = 0; i < b.size; ++i) {
    switch (b.dtype) {
      case DType::Float32: v.push_back(b.as<float>()[i]); break;
      case DType::Float64: v.push_back(b.as<double>()[i]); break;
      case DType::Int32: v.push_back(b.as<int32_t>()[i]); break;
      case DType::UInt8: v.push_back(b.as<uint8_t>()[i]); break;
      case DType::Int8: v.push_back(b.as<int8_t>()[i]); break;
    }
  }
  return v;
}

using Attrs = std::vector<std::pair<std::string, AttrValue>>;

const std::map<std::string, KernelFn> cpuKernels = {
    {"reduce", cpu::reduce},
    {"arg_reduce", cpu::argReduce},
    {"softmax", cpu::softmax},
    {"softmax_backward", cpu::softmaxBackward},
    {"masked_softmax", cpu::maskedSoftmax},
    {"gather", cpu::gather},
    {"scatter_add", cpu::scatterAdd},
    {"nll_loss", cpu::nllLoss},
    {"nll_loss_backward", cpu::nllLossBackward},
    {"embedding", cpu::embedding},
    {"embedding_backward", cpu::embeddingBackward},
    {"batch_norm", cpu::batchNorm},
    {"batch_norm_backward", cpu::batchNormBackward},
    {"layer_norm", cpu::layerNorm},
    {"layer_norm_backward", cpu::layerNormBackward},
    {"ctc_loss", cpu::ctcLoss},
    {"ctc_loss_backward", cpu::ctcLossBackward},
};

std::string errorOf(KernelFn fn, KernelCall call) {
  try {
    fn(call);
  } catch (const KernelError& e) {
    return e.code + ": " + e.what();
  }
  return "";
}

// Runs op on both backends; every buffer must agree afterwards (or both must fail alike).
// Returns the cpu's error, "" when it succeeded.
std::string same(const std::string& what, const std::string& op, const std::vector<Arg>& args, const Attrs& attrs,
                 double rtol = 1e-5, double atol = 1e-6) {
  Storage onCpu = materialise(args), onCuda = materialise(args);
  const std::string cpuError = errorOf(cpuKernels.at(op), makeCall(op, onCpu.buffers, attrs));
  const std::string cudaError = errorOf(cuda::kernelTable().at(op), makeCall(op, onCuda.buffers, attrs));
  check(cpuError == cudaError, what + ": cpu error '" + cpuError + "', cuda error '" + cudaError + "'");
  if (!cpuError.empty()) return cpuError;
  for (size_t k = 0; k < args.size(); ++k) {
    if (args[k].absent) continue;
    allClose(valuesOf(onCuda.buffers[k]), valuesOf(onCpu.buffers[k]), rtol, atol,
             what + " buffer " + std::to_string(k));
  }
  return "";
}

void expectError(const std::string& error, const std::string& code, const std::string& what) {
  check(error.rfind(code, 0) == 0, what + ": expected " + code + ", got '" + error + "'");
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void testReduce() {
  struct Case {
    std::vector<int64_t> shape, axes;
    int64_t outputs;
  };
  const std::vector<Case> cases = {{{200000}, {0}, 1},           {{3, 30000}, {1}, 3},      {{30000, 3}, {0}, 3},
                                   {{5, 4000, 6}, {0, 2}, 4000}, {{2, 3, 4, 5}, {1, 3}, 8}, {{4, 5}, {}, 20}};
  for (const Case& c : cases) {
    const int64_t n = product(c.shape);
    const std::string shape = shapeString(c.shape) + " over " + shapeString(c.axes);
    for (const char* op : {"sum", "mean", "max", "min", "prod"}) {
      const Attrs attrs = {{"op", str(op)}, {"shape", list(c.shape)}, {"axes", list(c.axes)}};
      const bool prod = std::string(op) == "prod", extremum = op[1] == 'a' || op[1] == 'i';
      Arg x = prod ? floats(n, 0.9999, 1.0001) : floats(n);
      if (n > 1000 && extremum) x.values[n / 2] = NAN;  // max and min propagate it
      same(std::string(op) + " float32 " + shape, "reduce", {zeros(c.outputs), x}, attrs, prod ? 1e-4 : 1e-5);
      if (std::string(op) == "mean") continue;
      same(std::string(op) + " int32 " + shape, "reduce",
           {zeros(c.outputs, DType::Int32), integers(n, -2000000000, 2000000000)}, attrs);
    }
    const Attrs sum = {{"op", str("sum")}, {"shape", list(c.shape)}, {"axes", list(c.axes)}};
    same("sum uint8 " + shape, "reduce", {zeros(c.outputs, DType::Int32), integers(n, 0, 255, DType::UInt8)}, sum);
    const Attrs max = {{"op", str("max")}, {"shape", list(c.shape)}, {"axes", list(c.axes)}};
    same("max uint8 " + shape, "reduce", {zeros(c.outputs, DType::UInt8), integers(n, 0, 255, DType::UInt8)}, max);
  }
  const Attrs empty = {
      {"op", str("max")}, {"shape", list(std::vector<int64_t>{0, 3})}, {"axes", list(std::vector<int64_t>{0})}};
  expectError(same("max over an empty axis", "reduce", {zeros(3), zeros(0)}, empty), "ERR_VALUE", "empty max");
}

void testArgReduce() {
  for (const char* op : {"argmax", "argmin"}) {
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{50000}, {2, 20000, 3}}) {
      const int64_t n = product(shape), outputs = n / shape[shape.size() == 1 ? 0 : 1];
      const Attrs attrs = {{"op", str(op)}, {"shape", list(shape)}, {"axis", num(shape.size() == 1 ? 0 : 1)}};
      Arg ties = integers(n, -2, 2);
      ties.dtype = DType::Float32;
      same(std::string(op) + " ties " + shapeString(shape), "arg_reduce", {zeros(outputs, DType::Int32), ties}, attrs);
      ties.values[n - 7] = NAN;
      ties.values[n / 3] = NAN;
      same(std::string(op) + " NaN " + shapeString(shape), "arg_reduce", {zeros(outputs, DType::Int32), ties}, attrs);
      same(std::string(op) + " int8 " + shapeString(shape), "arg_reduce",
           {zeros(outputs, DType::Int32), integers(n, -100, 100, DType::Int8)}, attrs);
    }
  }
}

void testSoftmax() {
  for (const std::vector<int64_t>& e : {std::vector<int64_t>{1, 50000, 1}, {2, 20000, 3}, {40, 7, 5}}) {
    const int64_t n = product(e);
    for (bool log : {false, true}) {
      const Attrs attrs = {{"outer", num(e[0])}, {"dim", num(e[1])}, {"inner", num(e[2])}, {"log", flag(log)}};
      const std::string what = std::string(log ? "log-softmax " : "softmax ") + shapeString(e);
      Arg x = floats(n, -40, 40);
      x.values[1] = -INFINITY;
      same(what, "softmax", {zeros(n), x}, attrs, 1e-5, 1e-7);
      same(what + " backward", "softmax_backward", {zeros(n), floats(n), floats(n, 0, 1e-3)}, attrs, 1e-5, 1e-7);
    }
  }
  for (int64_t cols : {9, 30000}) {
    const int64_t rows = 3;
    Arg mask = floats(rows * cols, -2, 2);
    for (int64_t j = 0; j < cols; ++j) mask.values[cols + j] = -INFINITY;  // row 1 is fully masked
    mask.values[5] = -INFINITY;
    const Attrs attrs = {{"rows", num(rows)}, {"cols", num(cols)}, {"scale", num(0.125)}};
    same("masked_softmax cols " + std::to_string(cols), "masked_softmax",
         {zeros(rows * cols), floats(rows * cols, -50, 50), mask}, attrs, 1e-5, 1e-7);
  }
}

void testIndexing() {
  const int64_t outer = 3, dim = 5, inner = 4, indexDim = 600, n = outer * indexDim * inner;
  const Attrs attrs = {{"outer", num(outer)}, {"dim", num(dim)}, {"inner", num(inner)}, {"indexDim", num(indexDim)}};
  Arg index = integers(n, 0, dim - 1);
  same("scatter_add float32 duplicates", "scatter_add", {floats(outer * dim * inner), index, floats(n)}, attrs);
  same("scatter_add int32 wraps", "scatter_add",
       {integers(outer * dim * inner, -2000000000, 2000000000), index, integers(n, -2000000000, 2000000000)}, attrs);
  Arg x = integers(outer * dim * inner, -100, 100, DType::Int8);
  same("gather int8", "gather", {zeros(n, DType::Int8), x, index}, attrs);
  index.values[n - 1] = -1;
  index.values[777] = dim;  // the first bad index is the one reported
  expectError(same("gather bad index", "gather", {zeros(n, DType::Int8), x, index}, attrs), "ERR_INDEX", "gather");
  expectError(same("scatter_add bad index", "scatter_add", {floats(outer * dim * inner), index, floats(n)}, attrs),
              "ERR_INDEX", "scatter_add");

  const int64_t rows = 7, width = 3, count = 5000;
  const Attrs table = {
      {"numEmbeddings", num(rows)}, {"dim", num(width)}, {"count", num(count)}, {"paddingIdx", num(2)}};
  Arg indices = integers(count, 0, rows - 1);
  same("embedding", "embedding", {zeros(count * width), floats(rows * width), indices}, table);
  same("embedding_backward", "embedding_backward", {floats(rows * width), floats(count * width), indices}, table, 1e-5,
       1e-5);
  indices.values[4321] = rows;
  expectError(same("embedding bad index", "embedding", {zeros(count * width), floats(rows * width), indices}, table),
              "ERR_INDEX", "embedding");
}

void testNllLoss() {
  const int64_t n = 6000, c = 4, inner = 3;
  for (const char* reduction : {"none", "sum", "mean"}) {
    const Attrs attrs = {
        {"n", num(n)}, {"c", num(c)}, {"inner", num(inner)}, {"reduction", str(reduction)}, {"ignoreIndex", num(1)}};
    const int64_t outputs = std::string(reduction) == "none" ? n * inner : 1;
    Arg targets = integers(n * inner, 0, c - 1);
    Arg logProbs = floats(n * c * inner, -5, 0), weight = floats(c, 0.1, 1);
    same(std::string("nll_loss ") + reduction, "nll_loss", {zeros(outputs), logProbs, targets, weight}, attrs);
    same(std::string("nll_loss_backward ") + reduction, "nll_loss_backward",
         {floats(n * c * inner), floats(outputs), targets, weight}, attrs, 1e-5, 1e-9);
    targets.values[9999] = c;
    targets.values[12000] = -3;
    expectError(same("nll_loss bad target", "nll_loss", {zeros(outputs), logProbs, targets, absent()}, attrs),
                "ERR_INDEX", "nll_loss");
  }
}

void testBatchNorm() {
  for (const std::vector<int64_t>& e : {std::vector<int64_t>{64, 3, 300}, {20000, 2, 1}, {2, 5, 9}}) {
    const int64_t total = product(e), c = e[1];
    for (bool training : {true, false}) {
      const Attrs attrs = {
          {"n", num(e[0])}, {"c", num(c)}, {"inner", num(e[2])}, {"training", flag(training)}, {"eps", num(1e-5)}};
      const std::string what = "batch_norm " + shapeString(e) + (training ? " training" : " eval");
      Arg x = floats(total, 90, 110), weight = floats(c), bias = floats(c);
      same(what, "batch_norm", {zeros(total), floats(c, 99, 101), floats(c, 0.5, 2), x, weight, bias}, attrs, 1e-4,
           1e-4);
      same(what + " backward", "batch_norm_backward",
           {zeros(total), zeros(c), zeros(c), floats(total), x, floats(c, 99, 101), floats(c, 20, 40), weight}, attrs,
           1e-4, 1e-4);
    }
  }
}

void testLayerNorm() {
  for (const std::vector<int64_t>& e : {std::vector<int64_t>{3, 30000}, {20000, 4}, {0, 5}}) {
    const int64_t rows = e[0], size = e[1], total = rows * size;
    const Attrs attrs = {{"rows", num(rows)}, {"normSize", num(size)}, {"eps", num(1e-5)}};
    const std::string what = "layer_norm " + shapeString(e);
    Arg x = floats(total, 40, 60), weight = floats(size), mean = floats(rows, 49, 51), rstd = floats(rows, 0.3, 0.4);
    same(what, "layer_norm", {zeros(total), zeros(rows), zeros(rows), x, weight, floats(size)}, attrs, 1e-4, 1e-4);
    same(what + " backward", "layer_norm_backward",
         {zeros(total), zeros(size), zeros(size), floats(total), x, mean, rstd, weight}, attrs, 1e-4, 1e-3);
  }
}

void testCtc() {
  const int64_t steps = 30, batch = 3, classes = 6, maxTarget = 5, width = 2 * maxTarget + 1;
  const Arg targets{DType::Int32, {1, 2, 2, 3, 5, 4, 4, 4, 4, 4, 1, 0, 0, 0, 0}, false};
  const Arg inputLengths{DType::Int32, {30, 8, 17}, false}, targetLengths{DType::Int32, {5, 5, 1}, false};
  const Arg logProbs = floats(steps * batch * classes, -4, -0.2);
  for (bool zeroInfinity : {false, true}) {
    const Attrs attrs = {{"steps", num(steps)},         {"batch", num(batch)}, {"classes", num(classes)},
                         {"maxTarget", num(maxTarget)}, {"blank", num(0)},     {"zeroInfinity", flag(zeroInfinity)}};
    const std::vector<Arg> inputs = {logProbs, targets, inputLengths, targetLengths};
    std::vector<Arg> forward = {zeros(batch), zeros(batch * steps * width, DType::Float64)};
    forward.insert(forward.end(), inputs.begin(), inputs.end());
    same("ctc_loss", "ctc_loss", forward, attrs, 1e-6, 1e-6);
    Storage s = materialise(forward);  // the cpu's loss and alpha feed both backwards
    KernelCall call = makeCall("ctc_loss", s.buffers, attrs);
    cpu::ctcLoss(call);
    Arg loss{DType::Float32, valuesOf(s.buffers[0]), false}, alpha{DType::Float64, valuesOf(s.buffers[1]), false};
    std::vector<Arg> backward = {zeros(steps * batch * classes), floats(batch, 0.5, 2)};
    backward.insert(backward.end(), inputs.begin(), inputs.end());
    backward.push_back(alpha);
    backward.push_back(loss);
    same(std::string("ctc_loss_backward zeroInfinity=") + (zeroInfinity ? "true" : "false"), "ctc_loss_backward",
         backward, attrs, 1e-5, 1e-6);
    forward[3].values[6] = 0;  // sample 1 holds the blank
    expectError(same("ctc_loss blank target", "ctc_loss", forward, attrs), "ERR_INDEX", "ctc_loss");
  }
}

}  // namespace

int main() {
  testReduce();
  testArgReduce();
  testSoftmax();
  testIndexing();
  testNllLoss();
  testBatchNorm();
  testLayerNorm();
  testCtc();
  return finish("cuda_reductions_test");
}
