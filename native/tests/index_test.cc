// Standalone checks of index.cc (gather, scatter_add, nll_loss and its backward) and
// optim.cc (SGD and Adam steps) against naive loops in double, and their error paths.
// Build: g++ -O3 -std=c++17 -Inative native/tests/index_test.cc native/core/{threadpool,kernel,
//        cpu_features}.cc native/cpu/{index,optim}.cc -lpthread
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

std::vector<std::pair<std::string, AttrValue>> extent(int64_t outer, int64_t dim, int64_t inner, int64_t indexDim) {
  return {{"outer", num(outer)}, {"dim", num(dim)}, {"inner", num(inner)}, {"indexDim", num(indexDim)}};
}

void testGatherScatterOnce(int64_t outer, int64_t dim, int64_t inner, int64_t indexDim) {
  std::vector<float> x = randomFloats(outer * dim * inner), src = randomFloats(outer * indexDim * inner);
  std::vector<int32_t> index = randomInts(outer * indexDim * inner, 0, std::max<int>(0, dim - 1));
  std::vector<float> out(index.size()), acc = randomFloats(x.size());
  std::vector<double> wantOut(index.size()), wantAcc(acc.begin(), acc.end()), wantFlat(index.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < indexDim; ++j) {
      for (int64_t i = 0; i < inner; ++i) {
        int64_t k = (o * indexDim + j) * inner + i, t = (o * dim + index[k]) * inner + i;
        wantOut[k] = x[t];
        wantFlat[k] = static_cast<double>(t);
        wantAcc[t] += src[k];
      }
    }
  }
  std::string tag = std::to_string(outer) + "x" + std::to_string(dim) + "x" + std::to_string(inner) + " by " +
                    std::to_string(indexDim);
  KernelCall g = makeCall("gather", {buf(out), buf(x), buf(index)}, extent(outer, dim, inner, indexDim));
  cpu::gather(g);
  allClose(out, wantOut, 0, 0, "gather " + tag);
  KernelCall s = makeCall("scatter_add", {buf(acc), buf(index), buf(src)}, extent(outer, dim, inner, indexDim));
  cpu::scatterAdd(s);
  allClose(acc, wantAcc, 1e-5, 1e-5, "scatter_add " + tag);

  std::vector<int32_t> xi(x.size()), oi(index.size());
  for (size_t k = 0; k < xi.size(); ++k) xi[k] = static_cast<int32_t>(k);
  KernelCall gi = makeCall("gather", {buf(oi), buf(xi), buf(index)}, extent(outer, dim, inner, indexDim));
  cpu::gather(gi);
  allClose(oi, wantFlat, 0, 0, "gather int32 " + tag);
}

void testGatherScatter() {
  testGatherScatterOnce(1, 1, 1, 1);
  testGatherScatterOnce(3, 5, 1, 7);
  testGatherScatterOnce(2, 4, 3, 2);
  testGatherScatterOnce(1, 1000, 128, 5000);  // embedding backward: many rows into few
  testGatherScatterOnce(50, 7, 200, 9);
  testGatherScatterOnce(0, 3, 2, 4);
  testGatherScatterOnce(2, 3, 2, 0);

  std::vector<float> x(6, 1), out(4, 0), src(4, 1);
  std::vector<int32_t> index = {0, 2, 3, 1};
  std::string msg = messageOf(cpu::gather, makeCall("gather", {buf(out), buf(x), buf(index)}, extent(2, 3, 1, 2)));
  check(msg.find("index 3") != std::string::npos && msg.find("[0, 3)") != std::string::npos, "gather names the index");
  check(codeOf(cpu::scatterAdd, makeCall("scatter_add", {buf(x), buf(index), buf(src)}, extent(2, 3, 1, 2))) ==
                "ERR_INDEX" &&
            x[0] == 1,
        "scatter_add checks indices before writing");
  index[2] = -1;
  check(codeOf(cpu::gather, makeCall("gather", {buf(out), buf(x), buf(index)}, extent(2, 3, 1, 2))) == "ERR_INDEX",
        "negative index");
  check(codeOf(cpu::gather, makeCall("gather", {buf(out), buf(x), buf(index)}, extent(2, 4, 1, 2))) == "ERR_SHAPE",
        "gather x size");
}

// ---------------------------------------------------------------------------------------

struct NllCase {
  int64_t n, c, inner;
  bool weighted;
  int ignoreIndex;
};

void testNllOnce(const NllCase& k, const std::string& reduction) {
  std::vector<float> logp = randomFloats(k.n * k.c * k.inner, -5, 0), weight = randomFloats(k.c, 0.1f, 2);
  std::vector<int32_t> targets = randomInts(k.n * k.inner, 0, std::max<int>(0, k.c - 1));
  for (auto& t : targets) {
    if (randomInt(0, 4) == 0) t = k.ignoreIndex;
  }
  Buffer w = k.weighted ? buf(weight) : nullBuffer();
  auto attrs = std::vector<std::pair<std::string, AttrValue>>{{"n", num(k.n)},
                                                              {"c", num(k.c)},
                                                              {"inner", num(k.inner)},
                                                              {"reduction", str(reduction)},
                                                              {"ignoreIndex", num(k.ignoreIndex)}};
  int64_t count = k.n * k.inner;
  std::vector<double> each(count, 0), grad(logp.size(), 0);
  double sum = 0, total = 0;
  std::vector<float> gradOut = randomFloats(reduction == "none" ? count : 1);
  for (int64_t e = 0; e < count; ++e) {
    int t = targets[e];
    if (t == k.ignoreIndex) continue;
    double wt = k.weighted ? weight[t] : 1;
    int64_t at = (e / k.inner * k.c + t) * k.inner + e % k.inner;
    each[e] = -wt * logp[at];
    sum += each[e];
    total += wt;
    grad[at] = -wt * (reduction == "none" ? gradOut[e] : gradOut[0]);
  }
  if (reduction == "mean") {
    for (auto& g : grad) g /= total;
  }
  std::vector<double> want = reduction == "none" ? each : std::vector<double>{reduction == "sum" ? sum : sum / total};
  std::vector<float> out(want.size());
  std::string tag = "nll_loss " + reduction + " n=" + std::to_string(k.n) + " c=" + std::to_string(k.c) +
                    " inner=" + std::to_string(k.inner) + (k.weighted ? " weighted" : "");
  KernelCall call = makeCall("nll_loss", {buf(out), buf(logp), buf(targets), w}, attrs);
  cpu::nllLoss(call);
  allClose(out, want, 1e-5, 1e-6, tag);
  std::vector<float> gradLogp(logp.size(), 42);
  KernelCall back = makeCall("nll_loss_backward", {buf(gradLogp), buf(gradOut), buf(targets), w}, attrs);
  cpu::nllLossBackward(back);
  allClose(gradLogp, grad, 1e-5, 1e-7, tag + " backward");
}

void testNll() {
  for (const char* r : {"none", "sum", "mean"}) {
    for (const NllCase& k : std::vector<NllCase>{{4, 10, 1, false, -100},
                                                 {3, 5, 7, true, -100},
                                                 {64, 10, 1, true, 3},
                                                 {1, 1, 1, false, -100},
                                                 {0, 4, 1, false, -100}}) {
      testNllOnce(k, r);
    }
  }
  std::vector<float> logp(6, -1), out(1);
  std::vector<int32_t> targets = {-100, -100};
  auto attrs = std::vector<std::pair<std::string, AttrValue>>{
      {"n", num(2)}, {"c", num(3)}, {"inner", num(1)}, {"reduction", str("mean")}, {"ignoreIndex", num(-100)}};
  KernelCall allIgnored = makeCall("nll_loss", {buf(out), buf(logp), buf(targets), nullBuffer()}, attrs);
  cpu::nllLoss(allIgnored);
  check(std::isnan(out[0]), "nll_loss mean with every target ignored is NaN");
  targets = {1, 12};
  std::string msg =
      messageOf(cpu::nllLoss, makeCall("nll_loss", {buf(out), buf(logp), buf(targets), nullBuffer()}, attrs));
  check(msg.find("target 12 is out of bounds for 3 classes") != std::string::npos, "nll_loss bad target: " + msg);
  check(codeOf(cpu::nllLoss, makeCall("nll_loss", {buf(out), buf(logp), buf(targets), nullBuffer()}, attrs)) ==
            "ERR_INDEX",
        "nll_loss bad target code");
  targets = {1, 2};
  attrs[3].second = str("avg");
  check(codeOf(cpu::nllLoss, makeCall("nll_loss", {buf(out), buf(logp), buf(targets), nullBuffer()}, attrs)) ==
            "ERR_VALUE",
        "nll_loss unknown reduction");
}

// ---------------------------------------------------------------------------------------

void testSgd() {
  const int64_t n = 70001;
  for (double momentum : {0.0, 0.9}) {
    for (bool nesterov : {false, true}) {
      for (bool first : {false, true}) {
        std::vector<float> p = randomFloats(n), g = randomFloats(n), b = randomFloats(n);
        std::vector<double> wantP(n), wantB(n);
        const double lr = 0.1, wd = 0.01, damp = 0.1;
        for (int64_t i = 0; i < n; ++i) {
          double d = g[i] + wd * p[i], buf = b[i];
          if (momentum != 0) {
            buf = first ? d : momentum * buf + (1 - damp) * d;
            d = nesterov ? d + momentum * buf : buf;
          }
          wantP[i] = p[i] - lr * d;
          wantB[i] = buf;
        }
        KernelCall call = makeCall("sgd_step", {buf(p), buf(g), momentum != 0 ? buf(b) : nullBuffer()},
                                   {{"lr", num(lr)},
                                    {"momentum", num(momentum)},
                                    {"dampening", num(damp)},
                                    {"weightDecay", num(wd)},
                                    {"nesterov", flag(nesterov)},
                                    {"firstStep", flag(first)}});
        cpu::sgdStep(call);
        std::string tag =
            "sgd momentum " + std::to_string(momentum) + (nesterov ? " nesterov" : "") + (first ? " first" : "");
        allClose(p, wantP, 1e-5, 1e-6, tag);
        if (momentum != 0) allClose(b, wantB, 1e-5, 1e-6, tag + " buffer");
      }
    }
  }
  std::vector<float> p(3), g(3);
  check(codeOf(cpu::sgdStep,
               makeCall("sgd_step", {buf(p), buf(g), nullBuffer()},
                        {{"lr", num(0.1)}, {"momentum", num(0.9)}, {"dampening", num(0)}, {"weightDecay", num(0)}})) ==
            "ERR_ARGUMENT",
        "sgd momentum needs a buffer");
}

void testAdam() {
  const int64_t n = 100003;
  for (bool decoupled : {false, true}) {
    for (bool amsgrad : {false, true}) {
      std::vector<float> p = randomFloats(n), g = randomFloats(n), m = randomFloats(n), v = randomFloats(n, 0, 1);
      std::vector<float> maxV = randomFloats(n, 0, 1);
      const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
      const int step = 7;
      std::vector<double> wantP(n), wantM(n), wantV(n), wantMax(n);
      for (int64_t i = 0; i < n; ++i) {
        double pi = p[i], gi = g[i];
        if (decoupled)
          pi *= 1 - lr * wd;
        else
          gi += wd * pi;
        double mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
        double used = amsgrad ? std::max<double>(maxV[i], vi) : vi;
        double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
        wantP[i] = pi - lr / bc1 * mi / (std::sqrt(used) / std::sqrt(bc2) + eps);
        wantM[i] = mi;
        wantV[i] = vi;
        wantMax[i] = used;
      }
      KernelCall call = makeCall("adam_step", {buf(p), buf(g), buf(m), buf(v), amsgrad ? buf(maxV) : nullBuffer()},
                                 {{"lr", num(lr)},
                                  {"beta1", num(b1)},
                                  {"beta2", num(b2)},
                                  {"eps", num(eps)},
                                  {"weightDecay", num(wd)},
                                  {"decoupledWeightDecay", flag(decoupled)},
                                  {"amsgrad", flag(amsgrad)},
                                  {"step", num(step)}});
      cpu::adamStep(call);
      std::string tag = std::string("adam") + (decoupled ? "w" : "") + (amsgrad ? " amsgrad" : "");
      allClose(p, wantP, 1e-5, 1e-6, tag + " param");
      allClose(m, wantM, 1e-5, 1e-7, tag + " expAvg");
      allClose(v, wantV, 1e-5, 1e-7, tag + " expAvgSq");
      if (amsgrad) allClose(maxV, wantMax, 1e-5, 1e-7, tag + " maxExpAvgSq");
    }
  }
  std::vector<float> p(3), g(3), m(3), v(3), short2(2);
  auto attrs = std::vector<std::pair<std::string, AttrValue>>{
      {"lr", num(1e-3)},        {"beta1", num(0.9)},     {"beta2", num(0.999)},
      {"eps", num(1e-8)},       {"weightDecay", num(0)}, {"decoupledWeightDecay", flag(false)},
      {"amsgrad", flag(false)}, {"step", num(0)}};
  check(codeOf(cpu::adamStep, makeCall("adam_step", {buf(p), buf(g), buf(m), buf(v), nullBuffer()}, attrs)) ==
            "ERR_VALUE",
        "adam step 0");
  attrs[7].second = num(1);
  check(codeOf(cpu::adamStep, makeCall("adam_step", {buf(p), buf(g), buf(short2), buf(v), nullBuffer()}, attrs)) ==
            "ERR_SHAPE",
        "adam state size");
  attrs[6].second = flag(true);
  check(codeOf(cpu::adamStep, makeCall("adam_step", {buf(p), buf(g), buf(m), buf(v), nullBuffer()}, attrs)) ==
            "ERR_ARGUMENT",
        "amsgrad needs its buffer");
}

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
  const int64_t n = 10000000;
  std::vector<float> p = randomFloats(n), g = randomFloats(n), m(n), v(n);
  KernelCall call = makeCall("adam_step", {buf(p), buf(g), buf(m), buf(v), nullBuffer()},
                             {{"lr", num(1e-3)},
                              {"beta1", num(0.9)},
                              {"beta2", num(0.999)},
                              {"eps", num(1e-8)},
                              {"weightDecay", num(0.01)},
                              {"decoupledWeightDecay", flag(true)},
                              {"amsgrad", flag(false)},
                              {"step", num(3)}});
  double s = seconds([&] { cpu::adamStep(call); }, 10);
  std::printf("bench adamw step 10M params: %.2f ms, %.1f GB/s\n", s * 1e3, 28.0 * n / s / 1e9);
  KernelCall sgd = makeCall("sgd_step", {buf(p), buf(g), buf(m)},
                            {{"lr", num(0.1)},
                             {"momentum", num(0.9)},
                             {"dampening", num(0)},
                             {"weightDecay", num(0)},
                             {"nesterov", flag(false)},
                             {"firstStep", flag(false)}});
  s = seconds([&] { cpu::sgdStep(sgd); }, 10);
  std::printf("bench sgd momentum step 10M params: %.2f ms\n", s * 1e3);
  std::vector<float> table = randomFloats(50000 * 128), rows(32768 * 128);
  std::vector<int32_t> ids = randomInts(32768, 0, 49999);
  // An embedding lookup as gather along dim 0: the index repeats each id across the 128 columns.
  std::vector<int32_t> full(32768 * 128);
  for (int64_t k = 0; k < 32768 * 128; ++k) full[k] = ids[k / 128];
  KernelCall g2 = makeCall("gather", {buf(rows), buf(table), buf(full)}, extent(1, 50000, 128, 32768));
  s = seconds([&] { cpu::gather(g2); }, 5);
  std::printf("bench gather 32K rows of 128 from 50K: %.2f ms\n", s * 1e3);
  KernelCall sc = makeCall("scatter_add", {buf(table), buf(full), buf(rows)}, extent(1, 50000, 128, 32768));
  s = seconds([&] { cpu::scatterAdd(sc); }, 5);
  std::printf("bench scatter_add 32K rows of 128 into 50K: %.2f ms\n", s * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  const char* threads = std::getenv("DEEPNODE_NUM_THREADS");  // the same override as the addon
  ThreadPool pool(threads ? std::max(1, std::atoi(threads)) : 2);
  setCurrentPool(&pool);
  testGatherScatter();
  testNll();
  testSgd();
  testAdam();
  if (argc > 1 && std::string(argv[1]) == "--bench") bench();
  return finish("index_test");
}
