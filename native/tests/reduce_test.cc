// Standalone checks of reduce.cc against naive loops: every op over random axis sets of
// random shapes (size-1 and empty dims included), accuracy of long float sums, NaN
// propagation, argmax/argmin ties and NaN, softmax forward/backward, and the error paths.
// Build: g++ -O3 -std=c++17 -Inative native/tests/reduce_test.cc native/core/{threadpool,kernel,
//        cpu_features}.cc native/cpu/reduce.cc -lpthread
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>

#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

// Naive reduction in double over the flagged axes; out in keepdim order.
std::vector<double> naiveReduce(const std::string& op, const std::vector<double>& x, const Shape& shape,
                                const std::vector<bool>& reduced) {
  Shape outShape = shape;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (reduced[d]) outShape[d] = 1;
  }
  int64_t outputs = numel(outShape), count = outputs ? numel(shape) / std::max<int64_t>(1, outputs) : 0;
  if (outputs && numel(shape) == 0) count = 0;
  double init = op == "prod" ? 1 : (op == "max" ? -INFINITY : (op == "min" ? INFINITY : 0));
  std::vector<double> acc(outputs, init);
  for (int64_t i = 0; i < numel(shape); ++i) {
    auto idx = unravel(shape, i);
    int64_t o = 0;
    for (size_t d = 0; d < shape.size(); ++d) o = o * outShape[d] + (reduced[d] ? 0 : idx[d]);
    double v = x[i];
    if (op == "sum" || op == "mean") acc[o] += v;
    if (op == "prod") acc[o] *= v;
    if (op == "max") acc[o] = std::isnan(v) || std::isnan(acc[o]) ? NAN : std::max(acc[o], v);
    if (op == "min") acc[o] = std::isnan(v) || std::isnan(acc[o]) ? NAN : std::min(acc[o], v);
  }
  if (op == "mean") {
    for (auto& a : acc) a /= static_cast<double>(count);
  }
  return acc;
}

std::vector<int64_t> randomAxes(const Shape& shape, std::vector<bool>& flags) {
  std::vector<int64_t> axes;
  flags.assign(shape.size(), false);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (randomInt(0, 1)) {
      axes.push_back(static_cast<int64_t>(d));
      flags[d] = true;
    }
  }
  std::shuffle(axes.begin(), axes.end(), rng());
  return axes;
}

void testReduceFloat(const Shape& shape, const std::vector<int64_t>& axes, const std::vector<bool>& flags) {
  int64_t n = numel(shape);
  std::vector<float> x = randomFloats(n, 0.5f, 1.5f);  // positive, so products stay in range
  std::vector<double> xd(x.begin(), x.end());
  for (const char* op : {"sum", "mean", "max", "min", "prod"}) {
    bool emptyAxis = false;
    for (size_t d = 0; d < shape.size(); ++d) emptyAxis |= flags[d] && shape[d] == 0;
    auto want = naiveReduce(op, xd, shape, flags);
    std::vector<float> out(want.size());
    std::string tag = std::string("reduce ") + op + " " + shapeString(shape) + " axes " + shapeString(axes);
    KernelCall call =
        makeCall("reduce", {buf(out), buf(x)}, {{"op", str(op)}, {"shape", list(shape)}, {"axes", list(axes)}});
    if (emptyAxis && (std::string(op) == "max" || std::string(op) == "min")) {
      check(codeOf(cpu::reduce, call) == "ERR_VALUE", tag + ": empty axis must fail");
      continue;
    }
    cpu::reduce(call);
    std::vector<double> wantF(want.begin(), want.end());
    for (auto& w : wantF) w = static_cast<float>(w);
    allClose(out, wantF, 2e-6, 0, tag);
  }
}

void testReduceInt(const Shape& shape, const std::vector<int64_t>& axes, const std::vector<bool>& flags) {
  int64_t n = numel(shape);
  std::vector<int32_t> x = randomInts(n, -1000, 1000);
  std::vector<uint8_t> xb(n);
  for (auto& v : xb) v = static_cast<uint8_t>(randomInt(0, 1));
  std::vector<double> xd(x.begin(), x.end()), xbd(xb.begin(), xb.end());
  bool emptyAxis = false;
  for (size_t d = 0; d < shape.size(); ++d) emptyAxis |= flags[d] && shape[d] == 0;
  for (const char* op : {"sum", "max", "min"}) {
    if (emptyAxis && std::string(op) != "sum") continue;
    auto want = naiveReduce(op, xd, shape, flags);
    std::vector<int32_t> out(want.size());
    KernelCall call =
        makeCall("reduce", {buf(out), buf(x)}, {{"op", str(op)}, {"shape", list(shape)}, {"axes", list(axes)}});
    cpu::reduce(call);
    allClose(out, want, 0, 0,
             std::string("reduce int32 ") + op + " " + shapeString(shape) + " axes " + shapeString(axes));
  }
  auto wantB = naiveReduce("sum", xbd, shape, flags);
  std::vector<int32_t> outB(wantB.size());
  KernelCall call =
      makeCall("reduce", {buf(outB), buf(xb)}, {{"op", str("sum")}, {"shape", list(shape)}, {"axes", list(axes)}});
  cpu::reduce(call);
  allClose(outB, wantB, 0, 0, "reduce bool sum " + shapeString(shape));
}

void testReduce() {
  for (int trial = 0; trial < 400; ++trial) {
    Shape shape(randomInt(0, 5));
    for (auto& d : shape) d = randomInt(randomInt(0, 25) == 0 ? 0 : 1, 6);
    std::vector<bool> flags;
    auto axes = randomAxes(shape, flags);
    testReduceFloat(shape, axes, flags);
    if (trial % 4 == 0) testReduceInt(shape, axes, flags);
  }
  // Shapes that reach the threaded and chunked paths.
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;
  };
  for (const Case& c : std::vector<Case>{{{300000}, {0}},
                                         {{3, 150001}, {1}},
                                         {{1000, 130}, {0}},
                                         {{8, 20, 33, 17}, {0, 2, 3}},
                                         {{500, 700}, {1}},
                                         {{2, 600, 700}, {0, 2}},
                                         {{40000, 3}, {0}},
                                         {{3, 4, 5}, {}},
                                         {{3, 4, 5}, {-1}}}) {
    std::vector<bool> flags(c.shape.size(), false);
    for (int64_t a : c.axes) flags[a < 0 ? a + c.shape.size() : a] = true;
    testReduceFloat(c.shape, c.axes, flags);
    testReduceInt(c.shape, c.axes, flags);
  }

  // A million values of 0.1 sum to 100000 within float rounding of the result.
  std::vector<float> tenths(1 << 20, 0.1f), s(1);
  KernelCall sum = makeCall("reduce", {buf(s), buf(tenths)},
                            {{"op", str("sum")}, {"shape", list(Shape{1 << 20})}, {"axes", list(std::vector<int>{0})}});
  cpu::reduce(sum);
  check(std::fabs(s[0] - (1 << 20) * static_cast<double>(0.1f)) <= 0.01, "sum of 1M values is accurate");

  std::vector<float> withNaN = {1, kNaN, 3, -kInf}, m(1);
  for (const char* op : {"max", "min", "sum"}) {
    KernelCall c = makeCall("reduce", {buf(m), buf(withNaN)},
                            {{"op", str(op)}, {"shape", list(Shape{4})}, {"axes", list(std::vector<int>{0})}});
    cpu::reduce(c);
    check(std::isnan(m[0]), std::string(op) + " propagates NaN");
  }
  std::vector<float> empty, e3(3);
  KernelCall mean = makeCall("reduce", {buf(e3), buf(empty)},
                             {{"op", str("mean")}, {"shape", list(Shape{3, 0})}, {"axes", list(std::vector<int>{1})}});
  cpu::reduce(mean);
  check(std::isnan(e3[0]), "mean over an empty axis is NaN");
  KernelCall prod = makeCall("reduce", {buf(e3), buf(empty)},
                             {{"op", str("prod")}, {"shape", list(Shape{3, 0})}, {"axes", list(std::vector<int>{1})}});
  cpu::reduce(prod);
  check(e3[2] == 1, "prod over an empty axis is 1");

  std::vector<float> x6(6), o2(2);
  auto bad = [&](std::vector<int> axes, const char* op, Shape shape) {
    return codeOf(cpu::reduce, makeCall("reduce", {buf(o2), buf(x6)},
                                        {{"op", str(op)}, {"shape", list(shape)}, {"axes", list(axes)}}));
  };
  check(bad({1}, "sum", {2, 3}) == "", "reduce ok");
  check(bad({2}, "sum", {2, 3}) == "ERR_VALUE", "axis out of range");
  check(bad({1, 1}, "sum", {2, 3}) == "ERR_VALUE", "duplicate axis");
  check(bad({1}, "median", {2, 3}) == "ERR_VALUE", "unknown op");
  check(bad({0}, "sum", {2, 3}) == "ERR_SHAPE", "out size");
  check(bad({1}, "sum", {2, 4}) == "ERR_SHAPE", "x size");
  std::vector<int32_t> xi(6), oi(2);
  check(codeOf(cpu::reduce,
               makeCall("reduce", {buf(oi), buf(xi)},
                        {{"op", str("mean")}, {"shape", list(Shape{2, 3})}, {"axes", list(std::vector<int>{1})}})) ==
            "ERR_DTYPE",
        "int32 mean");
}

// ---------------------------------------------------------------------------------------

void testArgReduce() {
  for (int trial = 0; trial < 200; ++trial) {
    Shape shape(randomInt(1, 4));
    for (auto& d : shape) d = randomInt(1, 6);
    int axis = randomInt(0, static_cast<int>(shape.size()) - 1);
    std::vector<float> x = randomFloats(numel(shape));
    for (auto& v : x) v = std::round(v);  // many ties
    if (trial % 5 == 0) x[randomInt(0, static_cast<int>(x.size()) - 1)] = kNaN;
    int64_t outer = 1, dim = shape[axis], inner = 1;
    for (int d = 0; d < axis; ++d) outer *= shape[d];
    for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
    for (const char* op : {"argmax", "argmin"}) {
      bool isMax = std::string(op) == "argmax";
      std::vector<int32_t> out(outer * inner), want(outer * inner);
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          int64_t best = 0;
          for (int64_t d = 1; d < dim; ++d) {
            float v = x[(o * dim + d) * inner + i], b = x[(o * dim + best) * inner + i];
            if (std::isnan(b)) break;
            if (std::isnan(v) || (isMax ? v > b : v < b)) best = d;
          }
          want[o * inner + i] = static_cast<int32_t>(best);
        }
      }
      KernelCall call =
          makeCall("arg_reduce", {buf(out), buf(x)}, {{"op", str(op)}, {"shape", list(shape)}, {"axis", num(axis)}});
      cpu::argReduce(call);
      allClose(out, want, 0, 0, std::string(op) + " " + shapeString(shape) + " axis " + std::to_string(axis));
    }
  }
  std::vector<float> x(0);
  std::vector<int32_t> out(3);
  check(codeOf(cpu::argReduce, makeCall("arg_reduce", {buf(out), buf(x)},
                                        {{"op", str("argmax")}, {"shape", list(Shape{3, 0})}, {"axis", num(1)}})) ==
            "ERR_VALUE",
        "argmax over an empty axis");
}

// ---------------------------------------------------------------------------------------

void naiveSoftmax(const std::vector<float>& x, int64_t outer, int64_t dim, int64_t inner, bool log,
                  std::vector<double>& y) {
  y.assign(x.size(), 0);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double m = -INFINITY, s = 0;
      for (int64_t d = 0; d < dim; ++d) m = std::max<double>(m, x[(o * dim + d) * inner + i]);
      for (int64_t d = 0; d < dim; ++d) s += std::exp(x[(o * dim + d) * inner + i] - m);
      for (int64_t d = 0; d < dim; ++d) {
        double v = x[(o * dim + d) * inner + i] - m;
        y[(o * dim + d) * inner + i] = log ? v - std::log(s) : std::exp(v) / s;
      }
    }
  }
}

void testSoftmaxOnce(int64_t outer, int64_t dim, int64_t inner, bool log) {
  int64_t n = outer * dim * inner;
  std::vector<float> x = randomFloats(n, -20, 20), y(n), gy = randomFloats(n), gx(n);
  std::vector<double> want;
  naiveSoftmax(x, outer, dim, inner, log, want);
  auto attrs = std::vector<std::pair<std::string, AttrValue>>{
      {"outer", num(outer)}, {"dim", num(dim)}, {"inner", num(inner)}, {"log", flag(log)}};
  std::string tag = std::string(log ? "log_softmax " : "softmax ") + std::to_string(outer) + "x" + std::to_string(dim) +
                    "x" + std::to_string(inner);
  KernelCall call = makeCall("softmax", {buf(y), buf(x)}, attrs);
  cpu::softmax(call);
  allClose(y, want, 1e-5, 1e-6, tag);

  std::vector<double> wantG(n);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double s = 0;
      for (int64_t d = 0; d < dim; ++d) {
        int64_t k = (o * dim + d) * inner + i;
        s += log ? gy[k] : static_cast<double>(gy[k]) * y[k];
      }
      for (int64_t d = 0; d < dim; ++d) {
        int64_t k = (o * dim + d) * inner + i;
        wantG[k] = log ? gy[k] - std::exp(static_cast<double>(y[k])) * s : y[k] * (gy[k] - s);
      }
    }
  }
  KernelCall back = makeCall("softmax_backward", {buf(gx), buf(gy), buf(y)}, attrs);
  cpu::softmaxBackward(back);
  allClose(gx, wantG, 1e-4, 1e-5, tag + " backward");
}

void testSoftmax() {
  for (bool log : {false, true}) {
    testSoftmaxOnce(1, 1, 1, log);
    testSoftmaxOnce(7, 13, 1, log);
    testSoftmaxOnce(3, 10, 5, log);
    testSoftmaxOnce(2, 17, 600, log);
    testSoftmaxOnce(1000, 100, 1, log);
    testSoftmaxOnce(5, 3000, 1, log);
    testSoftmaxOnce(0, 3, 4, log);
  }
  std::vector<float> x = {-kInf, -kInf, -kInf, 1e30f, 1e30f, -kInf, 3, 88, 89}, y(9);
  KernelCall call = makeCall("softmax", {buf(y), buf(x)},
                             {{"outer", num(3)}, {"dim", num(3)}, {"inner", num(1)}, {"log", flag(false)}});
  cpu::softmax(call);
  check(std::isnan(y[0]) && std::isnan(y[2]), "softmax of an all -inf row is NaN");
  check(y[3] == 0.5f && y[5] == 0, "softmax of huge logits and -inf");
  check(!std::isnan(y[8]) && std::fabs(y[6] + y[7] + y[8] - 1) < 1e-6, "softmax of large logits");
  std::vector<float> small(5);
  check(codeOf(cpu::softmax, makeCall("softmax", {buf(small), buf(x)},
                                      {{"outer", num(3)}, {"dim", num(3)}, {"inner", num(1)}})) == "ERR_SHAPE",
        "softmax size");
}

// ---------------------------------------------------------------------------------------

// The fastest of `reps` runs: the machine is shared, so the minimum is the stable figure.
double seconds(const std::function<void()>& fn, int reps) {
  fn();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void bench() {
  const int64_t n = 16 << 20;
  std::vector<float> x = randomFloats(n), out(n);
  auto reduceBench = [&](const char* label, Shape shape, std::vector<int> axes, int64_t outputs) {
    std::vector<float> o(outputs);
    KernelCall call =
        makeCall("reduce", {buf(o), buf(x)}, {{"op", str("sum")}, {"shape", list(shape)}, {"axes", list(axes)}});
    double s = seconds([&] { cpu::reduce(call); }, 10);
    std::printf("bench reduce sum %s: %.2f ms, %.1f GB/s\n", label, s * 1e3, 4.0 * n / s / 1e9);
  };
  reduceBench("all 16M", {n}, {0}, 1);
  reduceBench("rows [16K, 1024] axis 1", {n / 1024, 1024}, {1}, n / 1024);
  reduceBench("bias grad [16K, 1024] axis 0", {n / 1024, 1024}, {0}, 1024);
  reduceBench("conv bias grad [16, 64, 128, 128] axes 0,2,3", {16, 64, 128, 128}, {0, 2, 3}, 64);
  reduceBench("[1M, 16] axis 0", {n / 16, 16}, {0}, 16);
  std::vector<float> xs(n / 1000 * 1000), ys(xs.size());
  for (bool log : {false, true}) {
    KernelCall call = makeCall("softmax", {buf(ys), buf(xs)},
                               {{"outer", num(n / 1000)}, {"dim", num(1000)}, {"inner", num(1)}, {"log", flag(log)}});
    double s = seconds([&] { cpu::softmax(call); }, 5);
    std::printf("bench %s [16K, 1000]: %.2f ms, %.1f GB/s\n", log ? "log_softmax" : "softmax", s * 1e3,
                8.0 * (n / 1000 * 1000) / s / 1e9);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* threads = std::getenv("DEEPNODE_NUM_THREADS");  // the same override as the addon
  ThreadPool pool(threads ? std::max(1, std::atoi(threads)) : 2);
  setCurrentPool(&pool);
  testReduce();
  testArgReduce();
  testSoftmax();
  if (argc > 1 && std::string(argv[1]) == "--bench") bench();
  return finish("reduce_test");
}
