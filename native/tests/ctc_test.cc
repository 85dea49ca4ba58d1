// Standalone checks of ctc.cc against brute force: every path of C^T labels is enumerated,
// collapsed (repeats merged, blanks dropped) and, where it spells the target, its probability
// summed; the loss is -log of the sum and the gradient d loss / d logProbs[t, k] is minus the
// share of those paths that emit k at t. Also the error paths.
// Build: g++ -O3 -std=c++17 -Inative native/tests/ctc_test.cc native/core/{threadpool,kernel,
//        cpu_features}.cc native/cpu/ctc.cc -lpthread
#include <cmath>
#include <cstdlib>

#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

struct Problem {
  int64_t steps, batch, classes, maxTarget, blank;
  std::vector<float> logProbs;
  std::vector<int32_t> targets, inputLengths, targetLengths;
};

std::vector<std::pair<std::string, AttrValue>> attrs(const Problem& p) {
  return {{"steps", num(p.steps)},
          {"batch", num(p.batch)},
          {"classes", num(p.classes)},
          {"maxTarget", num(p.maxTarget)},
          {"blank", num(p.blank)},
          {"zeroInfinity", flag(false)},
          {"rank", num(3)},
          {"targetRank", num(2)}};
}

// Brute force for sample n: the loss, and the gradient rows [steps, classes].
double bruteForce(const Problem& p, int64_t n, std::vector<double>& grad) {
  int64_t steps = p.inputLengths[n];
  std::vector<int32_t> target(p.targets.begin() + n * p.maxTarget,
                              p.targets.begin() + n * p.maxTarget + p.targetLengths[n]);
  int64_t paths = 1;
  for (int64_t t = 0; t < steps; ++t) paths *= p.classes;
  double total = 0;
  grad.assign(static_cast<size_t>(p.steps * p.classes), 0.0);
  std::vector<int32_t> path(static_cast<size_t>(steps));
  for (int64_t code = 0; code < paths; ++code) {
    int64_t rest = code;
    double logP = 0;
    std::vector<int32_t> spelled;
    for (int64_t t = 0; t < steps; ++t) {
      path[t] = static_cast<int32_t>(rest % p.classes);
      rest /= p.classes;
      logP += p.logProbs[(t * p.batch + n) * p.classes + path[t]];
      bool repeat = t > 0 && path[t] == path[t - 1];
      if (path[t] != p.blank && !repeat) spelled.push_back(path[t]);
    }
    if (spelled != target) continue;
    double prob = std::exp(logP);
    total += prob;
    for (int64_t t = 0; t < steps; ++t) grad[t * p.classes + path[t]] += prob;
  }
  for (double& g : grad) g = -g / total;
  return -std::log(total);
}

void testAgainstBruteForce(int64_t steps, int64_t classes, int64_t blank, std::vector<std::vector<int32_t>> rows,
                           std::vector<int32_t> inputLengths) {
  Problem p{steps, static_cast<int64_t>(rows.size()), classes, 0, blank, {}, {}, inputLengths, {}};
  for (const auto& row : rows) p.maxTarget = std::max<int64_t>(p.maxTarget, static_cast<int64_t>(row.size()));
  for (const auto& row : rows) {
    p.targetLengths.push_back(static_cast<int32_t>(row.size()));
    for (int64_t k = 0; k < p.maxTarget; ++k) p.targets.push_back(k < static_cast<int64_t>(row.size()) ? row[k] : 0);
  }
  p.logProbs = randomFloats(steps * p.batch * classes, -3, 0);
  int64_t width = 2 * p.maxTarget + 1;
  std::vector<float> loss(p.batch), gradLoss(p.batch, 1.0f), grad(p.logProbs.size(), 5.0f);
  std::vector<double> alpha(static_cast<size_t>(p.batch * steps * width));
  KernelCall f = makeCall(
      "ctc_loss", {buf(loss), buf(alpha), buf(p.logProbs), buf(p.targets), buf(p.inputLengths), buf(p.targetLengths)},
      attrs(p));
  cpu::ctcLoss(f);
  KernelCall b = makeCall("ctc_loss_backward",
                          {buf(grad), buf(gradLoss), buf(p.logProbs), buf(p.targets), buf(p.inputLengths),
                           buf(p.targetLengths), buf(alpha), buf(loss)},
                          attrs(p));
  cpu::ctcLossBackward(b);
  std::string tag = "T " + std::to_string(steps) + " C " + std::to_string(classes);
  for (int64_t n = 0; n < p.batch; ++n) {
    std::vector<double> want;
    double wantLoss = bruteForce(p, n, want);
    check(close(loss[n], wantLoss, 1e-5, 1e-5), "ctc_loss sample " + std::to_string(n) + " " + tag);
    std::vector<float> got(static_cast<size_t>(steps * classes));
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t k = 0; k < classes; ++k) got[t * classes + k] = grad[(t * p.batch + n) * classes + k];
    allClose(got, want, 1e-4, 1e-5, "ctc_loss_backward sample " + std::to_string(n) + " " + tag);
  }
}

void testErrors() {
  Problem p{3, 1, 4, 2, 0, std::vector<float>(12, -1.0f), {1, 0}, {3}, {2}};
  std::vector<float> loss(1);
  std::vector<double> alpha(15);
  auto call = [&]() {
    return makeCall("ctc_loss",
                    {buf(loss), buf(alpha), buf(p.logProbs), buf(p.targets), buf(p.inputLengths), buf(p.targetLengths)},
                    attrs(p));
  };
  check(codeOf(cpu::ctcLoss, call()) == "ERR_INDEX", "ctc_loss: a target equal to the blank is ERR_INDEX");
  p.targets = {1, 2};
  p.inputLengths = {4};
  check(codeOf(cpu::ctcLoss, call()) == "ERR_VALUE", "ctc_loss: an input length beyond T is ERR_VALUE");
  p.inputLengths = {3};
  alpha.resize(14);
  check(codeOf(cpu::ctcLoss, call()) == "ERR_SHAPE", "ctc_loss: a short logAlpha buffer is ERR_SHAPE");
}

}  // namespace

int main() {
  const char* threads = std::getenv("DEEPNODE_NUM_THREADS");  // the same override as the addon
  ThreadPool pool(threads ? std::max(1, std::atoi(threads)) : 2);
  setCurrentPool(&pool);
  testAgainstBruteForce(5, 3, 0, {{1, 2}, {1, 1}, {}, {2}}, {5, 5, 3, 4});
  testAgainstBruteForce(6, 4, 3, {{0, 1, 0}, {2, 2}, {1}}, {6, 6, 2});
  testAgainstBruteForce(4, 3, 1, {{0, 0, 2}}, {4});
  testErrors();
  return finish("ctc_test");
}
