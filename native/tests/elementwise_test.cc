// Standalone checks of the creation and element-wise kernels (creation.cc, elementwise.cc)
// against naive loops: random shapes with size-1 and empty dims, broadcasting each way,
// every op and dtype, the Philox numbers of lib/random.ts, and the error paths.
// Build: g++ -O3 -std=c++17 -Inative native/tests/elementwise_test.cc native/core/{threadpool,kernel,
//        cpu_features}.cc native/cpu/{creation,elementwise}.cc -lpthread
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/philox.h"
#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "cpu/vec_math.h"
#include "test_util.h"

using namespace deepnode;
using namespace deepnode::test;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------
// Philox: numbers produced by lib/random.ts (compiled with tsc, run under node 20).

struct PhiloxCase {
  uint64_t seed, offset;
  uint32_t bits24[16];  // uniform * 2^24
  double normals[8];
  float scaled[8];  // rand_uniform(low = -2, high = 3.5)
};

const PhiloxCase kPhiloxCases[] = {
    {0ull,
     0ull,
     {6694888, 14772677, 12343212, 10158299, 16311500, 6074880, 11642228, 622335, 326307, 5359410, 2364691, 4559157,
      13209839, 6964340, 10144019, 7160126},
     {0.99113782143853746, -0.92466240916641818, -0.61760887444682699, -0.48206857856339419, -0.15363818015939548,
      0.18082581920066557, 0.83173505265429315, 0.19743990352326629},
     {0.194755316f, 2.84286094f, 2.04642010f, 1.33014989f, 3.34732628f, -0.00849914551f, 1.81661975f, -1.79598272f}},
    {0ull,
     1000ull,
     {7530140, 10696419, 3559107, 14902330, 350971, 14765207, 13254067, 6726036, 6590906, 9638369, 3022797, 10035388,
      3512123, 5126339, 1513452, 12727199},
     {-0.82172209304820010, -0.96280258582594636, 1.3444151179717747, -1.1373529083697358, 2.0281820021005341,
      -1.9027924161243404, -0.55776083173294633, 0.40042147441712422},
     {0.468572259f, 1.50655937f, -0.833233833f, 2.88536453f, -1.88494277f, 2.84041214f, 2.34502172f, 0.204966426f}},
    {0ull,
     8589934596ull,
     {11146794, 3033241, 5235630, 920355, 15562189, 12497387, 525919, 2721691, 9293316, 9620616, 7839202, 9010078,
      11165751, 11632985, 7856671, 1489905},
     {0.38093420968505132, 0.82013941105182342, 1.4363674531267556, 0.51567174317239017, -0.012417458512769380,
      -0.38755754279498439, 1.3788691226733567, 2.2414227248824106},
     {1.65420389f, -1.00562608f, -0.283626735f, -1.69828415f, 3.10168314f, 2.09696269f, -1.82759035f, -1.10776019f}},
    {1099511627783ull,
     0ull,
     {3405790, 16052046, 752677, 10333903, 6160989, 8907369, 4022004, 7738312, 4980637, 14866061, 8974752, 2577108,
      9064679, 831959, 2047763, 7379290},
     {1.7203489100785034, -0.47904983292833575, -1.8591532044983401, -1.6588636002137844, -1.3888452557404496,
      -0.27327174885103056, -1.6402386128488753, 0.40755340121735856},
     {-0.883495033f, 3.26227069f, -1.75325322f, 1.38771737f, 0.0197295845f, 0.920063138f, -0.681484342f, 0.536816359f}},
    {1099511627783ull,
     1000ull,
     {500546, 9868693, 4265680, 1638392, 10780654, 11880536, 9766260, 7131038, 9088310, 5797306, 13823553, 13177367,
      4569376, 621844, 9420501, 10739709},
     {-2.2534743230726453, -1.3949926821617458, 1.3530596354657194, 0.95292680407978692, -0.24454967195630567,
      -0.90814776346643611, -0.92702126729448875, 0.47202514723301692},
     {-1.83590817f, 1.23520970f, -0.601601124f, -1.46289325f, 1.53417373f, 1.89474320f, 1.20162952f, 0.337736428f}},
    {1099511627783ull,
     8589934596ull,
     {1197890, 302609, 6664157, 3600949, 12963621, 14366852, 14615728, 6010113, 8755508, 2886219, 13545637, 650869,
      7766196, 10347850, 5556704, 10642595},
     {2.2828508546356878, 0.25982783776975626, 0.29948495433346445, 1.3254678739758916, 0.44489415015726230,
      -0.56375392835086435, -0.33026297773694824, 0.40837894329492069},
     {-1.60730100f, -1.90079701f, 0.184680909f, -0.819516897f, 2.24980617f, 2.70982122f, 2.79140902f, -0.0297314227f}},
    {12345ull,
     0ull,
     {13761086, 3112938, 13814422, 14887099, 46697, 2420887, 14981848, 10837802, 7089364, 5506241, 8872033, 5967523,
      11943516, 9981710, 11854927, 7407603},
     {0.24804871549594645, 0.57864128156692030, 0.47362427401182328, -0.40533592907813037, 2.1145281854231062,
      2.7012815454065047, -0.28927929246055079, -0.37773302539612519},
     {2.51123548f, -0.979499400f, 2.52872038f, 2.88037133f, -1.98469150f, -1.20637143f, 2.91143250f, 1.55290842f}},
    {12345ull,
     1000ull,
     {5214328, 3757836, 3076643, 15812950, 1466009, 16201588, 10994625, 10027391, 13579482, 11629208, 8380942, 5744693,
      7083802, 11529798, 16503800, 7192442},
     {0.24878587169792324, 1.5084191444208248, 1.7230393223726608, -0.65076897546562307, 2.1568235946122449,
      -0.47229935763829678, -0.75158198207652605, -0.52948546649886696},
     {-0.290610075f, -0.768085361f, -0.991397858f, 3.18388891f, -1.51940477f, 3.31129456f, 1.60431898f, 1.28723490f}},
    {12345ull,
     8589934596ull,
     {7347277, 6380408, 5461816, 7152074, 15347596, 15256898, 2413400, 16309917, 2257067, 8024872, 8787585, 16241946,
      11256722, 3724392, 9772894, 13371814},
     {-0.93843731232450933, 0.87790611843994115, -1.3403673712062401, 0.66925019581308642, 0.35546737615368995,
      -0.22752728703379679, 1.9391765671285615, -0.34287589653892259},
     {0.408625096f, 0.0916607380f, -0.209477186f, 0.344632566f, 3.03133392f, 3.00160098f, -1.20882583f, 3.34680748f}},
};

std::vector<std::pair<std::string, AttrValue>> keyAttrs(uint64_t seed, uint64_t offset) {
  return {{"seedLo", num(static_cast<double>(seed & 0xffffffffu))},
          {"seedHi", num(static_cast<double>(seed >> 32))},
          {"offset", num(static_cast<double>(offset))}};
}

void testPhilox() {
  for (const PhiloxCase& c : kPhiloxCases) {
    std::string tag = "philox seed " + std::to_string(c.seed) + " offset " + std::to_string(c.offset);
    philox::Key key{c.seed, c.offset};
    bool bitsOk = true;
    philox::forEachUniform(key, 0, 16, [&](int64_t e, double u) { bitsOk &= u * 16777216.0 == c.bits24[e]; });
    check(bitsOk, tag + ": uniforms differ from lib/random.ts");
    std::vector<double> normals(8), want(c.normals, c.normals + 8);
    philox::forEachNormal(key, 0, 8, [&](int64_t e, double z) { normals[e] = z; });
    allClose(normals, want, 1e-14, 1e-14, tag + ": normals");

    std::vector<float> out(8);
    auto attrs = keyAttrs(c.seed, c.offset);
    attrs.push_back({"low", num(-2)});
    attrs.push_back({"high", num(3.5)});
    KernelCall call = makeCall("rand_uniform", {buf(out)}, attrs);
    cpu::randUniform(call);
    check(std::memcmp(out.data(), c.scaled, sizeof(c.scaled)) == 0, tag + ": rand_uniform not bit-identical");
  }
}

// Element e of a big random op equals element (e - k) of the op at offset + k, whichever
// thread produced it: the numbers depend only on (seed, global index).
void testRandomKernels() {
  const int64_t n = 100003;
  std::vector<float> all(n), tail(n - 1000), normal(n), mask(n), out(n), x = randomFloats(n);
  auto attrs = keyAttrs(99, 8);
  attrs.push_back({"low", num(0)});
  attrs.push_back({"high", num(1)});
  KernelCall a = makeCall("rand_uniform", {buf(all)}, attrs);
  cpu::randUniform(a);
  attrs[2] = {"offset", num(1008)};
  KernelCall b = makeCall("rand_uniform", {buf(tail)}, attrs);
  cpu::randUniform(b);
  check(std::equal(tail.begin(), tail.end(), all.begin() + 1000), "rand_uniform: offsets shift the stream");
  attrs[2] = {"offset", num(8 + 999)};  // not a multiple of 4: starts mid-block
  KernelCall odd = makeCall("rand_uniform", {buf(tail)}, attrs);
  cpu::randUniform(odd);
  check(std::equal(tail.begin(), tail.end(), all.begin() + 999), "rand_uniform: an offset inside a block");

  auto nattrs = keyAttrs(99, 8);
  nattrs.push_back({"mean", num(1)});
  nattrs.push_back({"std", num(2)});
  KernelCall nc = makeCall("rand_normal", {buf(normal)}, nattrs);
  cpu::randNormal(nc);
  double mean = 0, var = 0;
  for (float z : normal) mean += z;
  mean /= n;
  for (float z : normal) var += (z - mean) * (z - mean);
  var /= n;
  check(std::fabs(mean - 1) < 0.05 && std::fabs(var - 4) < 0.1, "rand_normal: mean/variance");

  for (double p : {0.0, 0.3, 1.0}) {
    auto dattrs = keyAttrs(99, 8);
    dattrs.push_back({"p", num(p)});
    KernelCall dc = makeCall("dropout", {buf(out), buf(mask), buf(x)}, dattrs);
    cpu::dropout(dc);
    bool ok = true;
    float scale = p < 1 ? static_cast<float>(1 / (1 - p)) : 0;
    for (int64_t e = 0; e < n; ++e) {
      float want = all[e] >= p ? scale : 0;  // `all` holds the uniforms of the same key
      ok &= mask[e] == want && out[e] == x[e] * want;
    }
    check(ok, "dropout p=" + std::to_string(p));
  }
  auto bad = keyAttrs(1, 0);
  bad.push_back({"p", num(1.5)});
  check(codeOf(cpu::dropout, makeCall("dropout", {buf(out), buf(mask), buf(x)}, bad)) == "ERR_VALUE", "dropout p>1");
}

// ---------------------------------------------------------------------------------------
// vec::exp and vec::tanh against double precision, in ulps of the float result.

double ulpError(float got, double want) {
  float w = static_cast<float>(want);
  if (got == w) return 0;
  float next = std::nextafter(w, got > w ? kInf : -kInf);
  return std::fabs(got - want) / std::fabs(static_cast<double>(next) - w);
}

void testVecMath() {
  double worstExp = 0, worstTanh = 0, worstSigmoid = 0;
  for (float x = -87.0f; x <= 88.7f; x = x + 1e-3f + std::fabs(x) * 1e-5f) {
    worstExp = std::max(worstExp, ulpError(cpu::vec::exp(x), std::exp(static_cast<double>(x))));
  }
  for (float x = -20.0f; x <= 20.0f; x += 3.7e-4f) {
    worstTanh = std::max(worstTanh, ulpError(cpu::vec::tanh(x), std::tanh(static_cast<double>(x))));
    worstSigmoid = std::max(worstSigmoid, ulpError(cpu::vec::sigmoid(x), 1 / (1 + std::exp(-static_cast<double>(x)))));
  }
  std::printf("vec_math worst error: exp %.2f ulp, tanh %.2f ulp, sigmoid %.2f ulp\n", worstExp, worstTanh,
              worstSigmoid);
  check(worstExp <= 2 && worstTanh <= 4 && worstSigmoid <= 4, "vec_math accuracy");
  check(cpu::vec::exp(-kInf) == 0 && cpu::vec::exp(kInf) == kInf && std::isnan(cpu::vec::exp(kNaN)), "exp specials");
  check(cpu::vec::exp(89.0f) == kInf && cpu::vec::exp(-88.0f) >= 0, "exp range ends");
  check(cpu::vec::tanh(kInf) == 1 && cpu::vec::tanh(-kInf) == -1 && std::isnan(cpu::vec::tanh(kNaN)), "tanh specials");
  check(cpu::vec::tanh(1e-20f) == 1e-20f, "tanh keeps tiny values");
}

// ---------------------------------------------------------------------------------------
// fill and cast

void testFillCast() {
  std::vector<float> f(70000);
  std::vector<int32_t> i(5);
  std::vector<uint8_t> u(5);
  std::vector<int8_t> s(3);
  KernelCall c1 = makeCall("fill", {buf(f)}, {{"value", num(2.5)}});
  cpu::fill(c1);
  check(std::all_of(f.begin(), f.end(), [](float v) { return v == 2.5f; }), "fill float32");
  KernelCall c2 = makeCall("fill", {buf(i)}, {{"value", num(-7.9)}});
  cpu::fill(c2);
  check(i[4] == -7, "fill int32 truncates");
  KernelCall c3 = makeCall("fill", {buf(u)}, {{"value", num(1)}});
  cpu::fill(c3);
  check(u[0] == 1, "fill uint8");
  KernelCall c4 = makeCall("fill", {buf(s)}, {{"value", num(-3)}});
  cpu::fill(c4);
  check(s[2] == -3, "fill int8");

  std::vector<float> x = {-2.7f, -0.5f, 0.0f, 0.4f, 3.9f, kNaN, 3e9f, -3e9f};
  std::vector<int32_t> xi(x.size());
  std::vector<uint8_t> xb(x.size());
  std::vector<double> xd(x.size());
  KernelCall k1 = makeCall("cast", {buf(xi), buf(x)}, {});
  cpu::cast(k1);
  check(xi == std::vector<int32_t>({-2, 0, 0, 0, 3, 0, 2147483647, -2147483647 - 1}), "cast float32->int32");
  KernelCall k2 = makeCall("cast", {buf(xb), buf(x)}, {});
  cpu::cast(k2);
  check(xb == std::vector<uint8_t>({1, 1, 0, 1, 1, 1, 1, 1}), "cast float32->bool");
  KernelCall k3 = makeCall("cast", {buf(xd), buf(x)}, {});
  cpu::cast(k3);
  check(xd[0] == static_cast<double>(-2.7f) && std::isnan(xd[5]), "cast float32->float64");
  std::vector<float> back(x.size());
  KernelCall k4 = makeCall("cast", {buf(back), buf(xi)}, {});
  cpu::cast(k4);
  check(back[0] == -2 && back[4] == 3, "cast int32->float32");
  std::vector<float> small(3);
  check(codeOf(cpu::cast, makeCall("cast", {buf(small), buf(x)}, {})) == "ERR_SHAPE", "cast size mismatch");
}

// ---------------------------------------------------------------------------------------
// unary

double naiveUnary(const std::string& op, double x, double alpha, double beta) {
  if (op == "neg") return -x;
  if (op == "exp") return std::exp(x);
  if (op == "log") return std::log(x);
  if (op == "sqrt") return std::sqrt(x);
  if (op == "abs") return std::fabs(x);
  if (op == "sign") return x > 0 ? 1 : (x < 0 ? -1 : 0);
  if (op == "relu") return std::isnan(x) ? x : std::max(x, 0.0);
  if (op == "sigmoid") return 1 / (1 + std::exp(-x));
  if (op == "tanh") return std::tanh(x);
  if (op == "square") return x * x;
  if (op == "reciprocal") return 1 / x;
  if (op == "sin") return std::sin(x);
  if (op == "cos") return std::cos(x);
  if (op == "floor") return std::floor(x);
  if (op == "ceil") return std::ceil(x);
  if (op == "round") return std::nearbyint(x);
  if (op == "affine") return alpha * x + beta;
  if (op == "pow") return std::pow(x, alpha);
  if (op == "clamp") return std::isnan(x) ? x : std::min(std::max(x, alpha), beta);
  if (op == "erf") return std::erf(x);
  if (op == "gelu") return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
  if (op == "gelu_tanh") return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  if (op == "silu") return x / (1 + std::exp(-x));
  return kNaN;
}

void testUnary() {
  const char* ops[] = {"neg",     "exp",   "log",    "sqrt",       "abs",   "sign", "relu",
                       "sigmoid", "tanh",  "square", "reciprocal", "sin",   "cos",  "floor",
                       "ceil",    "round", "affine", "pow",        "clamp", "erf",  "silu"};
  std::vector<float> x = randomFloats(50001, -6, 6);
  const float specials[] = {0.0f, -0.0f, 0.5f, 1.5f, 2.5f, -2.5f, kNaN, kInf, -kInf, 1000.0f, -1000.0f, 88.0f, -104.0f};
  std::copy(std::begin(specials), std::end(specials), x.begin());
  for (const char* op : ops) {
    for (double alpha : {2.0, 0.5}) {
      std::vector<float> out(x.size());
      KernelCall call =
          makeCall("unary", {buf(out), buf(x)}, {{"op", str(op)}, {"alpha", num(alpha)}, {"beta", num(1.25)}});
      cpu::unary(call);
      std::vector<double> want(x.size());
      for (size_t i = 0; i < x.size(); ++i) want[i] = static_cast<float>(naiveUnary(op, x[i], alpha, 1.25));
      allClose(out, want, 2e-6, 1e-30, std::string("unary ") + op + " alpha " + std::to_string(alpha));
    }
  }
  // GELU's 1 + erf (1 + tanh) cancels for negative x, so its float error is absolute.
  for (const char* op : {"gelu", "gelu_tanh"}) {
    std::vector<float> out(x.size());
    KernelCall call = makeCall("unary", {buf(out), buf(x)}, {{"op", str(op)}, {"alpha", num(0)}, {"beta", num(0)}});
    cpu::unary(call);
    std::vector<double> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = naiveUnary(op, x[i], 0, 0);
    allClose(out, want, 2e-6, 3e-7, std::string("unary ") + op);
  }
  std::vector<float> s = {kNaN, -0.0f, 2.5f, 3.5f, -0.5f}, o(5);
  KernelCall relu = makeCall("unary", {buf(o), buf(s)}, {{"op", str("relu")}, {"alpha", num(0)}, {"beta", num(0)}});
  cpu::unary(relu);
  check(std::isnan(o[0]), "relu(NaN) is NaN");
  KernelCall round = makeCall("unary", {buf(o), buf(s)}, {{"op", str("round")}, {"alpha", num(0)}, {"beta", num(0)}});
  cpu::unary(round);
  check(o[2] == 2 && o[3] == 4 && o[4] == 0, "round half to even");
  std::vector<float> big = {-1000, 1000, -90}, sg(3);
  KernelCall sig =
      makeCall("unary", {buf(sg), buf(big)}, {{"op", str("sigmoid")}, {"alpha", num(0)}, {"beta", num(0)}});
  cpu::unary(sig);
  check(sg[0] == 0 && sg[1] == 1 && sg[2] >= 0 && !std::isnan(sg[2]), "sigmoid saturates without NaN");

  std::vector<int32_t> xi = {-5, 0, 7, -2147483647 - 1, 3}, oi(5);
  auto intOp = [&](const char* op, double alpha, double beta) {
    KernelCall call =
        makeCall("unary", {buf(oi), buf(xi)}, {{"op", str(op)}, {"alpha", num(alpha)}, {"beta", num(beta)}});
    cpu::unary(call);
    return oi;
  };
  check(intOp("neg", 0, 0) == std::vector<int32_t>({5, 0, -7, -2147483647 - 1, -3}), "int32 neg wraps");
  check(intOp("abs", 0, 0)[0] == 5, "int32 abs");
  check(intOp("sign", 0, 0) == std::vector<int32_t>({-1, 0, 1, -1, 1}), "int32 sign");
  check(intOp("square", 0, 0)[2] == 49, "int32 square");
  check(intOp("affine", 3, -1)[0] == -16, "int32 affine");
  check(intOp("affine", 0.5, 0)[0] == -2, "int32 affine non-integer truncates");
  check(codeOf(cpu::unary, makeCall("unary", {buf(oi), buf(xi)}, {{"op", str("exp")}})) == "ERR_DTYPE", "int32 exp");
  check(codeOf(cpu::unary, makeCall("unary", {buf(o), buf(s)}, {{"op", str("bogus")}})) == "ERR_VALUE", "unknown op");
  check(messageOf(cpu::unary, makeCall("unary", {buf(o), buf(s)}, {{"op", str("bogus")}})).find("bogus") !=
            std::string::npos,
        "unknown op names it");
  std::vector<float> short3(3);
  check(codeOf(cpu::unary, makeCall("unary", {buf(short3), buf(s)}, {{"op", str("neg")}})) == "ERR_SHAPE", "size");
}

// ---------------------------------------------------------------------------------------
// binary, where, expand

Shape randomShape(int maxDims, int maxDim, bool allowZero) {
  Shape s(randomInt(0, maxDims));
  for (auto& d : s) d = randomInt(allowZero && randomInt(0, 20) == 0 ? 0 : 1, maxDim);
  return s;
}

// A shape that broadcasts to `out`: some leading dims dropped, some dims set to 1.
Shape broadcastable(const Shape& out) {
  Shape s(out.begin() + randomInt(0, static_cast<int>(out.size())), out.end());
  for (auto& d : s) {
    if (randomInt(0, 2) == 0) d = 1;
  }
  return s;
}

template <typename T>
std::vector<T> randomValues(int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    auto v = randomFloats(n, -4, 4);
    for (auto& x : v) {
      if (randomInt(0, 7) == 0) x = std::round(x);  // ties for comparisons and remainder
    }
    return v;
  } else if constexpr (std::is_same_v<T, int32_t>) {
    auto v = randomInts(n, -9, 9);
    for (auto& x : v) {
      if (x == 0) x = 3;  // divisors stay nonzero
    }
    return v;
  } else {
    std::vector<uint8_t> v(n);
    for (auto& x : v) x = static_cast<uint8_t>(randomInt(0, 1));
    return v;
  }
}

template <typename T>
double naiveBinary(const std::string& op, T a, T b) {
  double x = a, y = b;
  if (op == "add") return std::is_integral_v<T> ? static_cast<T>(a + b) : static_cast<T>(x + y);
  if (op == "sub") return static_cast<T>(x - y);
  if (op == "mul") return static_cast<T>(x * y);
  if (op == "div") return static_cast<T>(x / y);
  if (op == "pow") return static_cast<T>(std::pow(x, y));
  if (op == "maximum") return std::isnan(x) || std::isnan(y) ? NAN : std::max(x, y);
  if (op == "minimum") return std::isnan(x) || std::isnan(y) ? NAN : std::min(x, y);
  if (op == "floordiv") return static_cast<T>(std::floor(x / y));
  if (op == "remainder") return static_cast<T>(x - std::floor(x / y) * y);
  if (op == "eq") return x == y;
  if (op == "ne") return x != y;
  if (op == "lt") return x < y;
  if (op == "le") return x <= y;
  if (op == "gt") return x > y;
  if (op == "ge") return x >= y;
  if (op == "relu_backward") return y > 0 ? x : 0;
  if (op == "sigmoid_backward") return static_cast<T>(x * y * (1 - y));
  if (op == "tanh_backward") return static_cast<T>(x * (1 - y * y));
  return NAN;
}

template <typename T>
void testBinaryShapes(const std::vector<std::string>& ops, const Shape& out, const Shape& as, const Shape& bs) {
  auto a = randomValues<T>(numel(as));
  auto b = randomValues<T>(numel(bs));
  if constexpr (std::is_same_v<T, int32_t>) {
    for (auto& v : b) v = v == 0 ? 1 : v;
  }
  for (const std::string& op : ops) {
    bool cmp = op == "eq" || op == "ne" || op == "lt" || op == "le" || op == "gt" || op == "ge";
    std::vector<double> want(numel(out));
    for (int64_t i = 0; i < numel(out); ++i) {
      auto idx = unravel(out, i);
      want[i] = naiveBinary<T>(op, a[broadcastIndex(as, idx)], b[broadcastIndex(bs, idx)]);
    }
    std::string tag = "binary " + op + " " + dtypeName(dtypeOf<T>()) + " " + shapeString(out) + " <- " +
                      shapeString(as) + ", " + shapeString(bs);
    auto attrs = std::vector<std::pair<std::string, AttrValue>>{
        {"op", str(op)}, {"outShape", list(out)}, {"aShape", list(as)}, {"bShape", list(bs)}};
    double rtol = std::is_same_v<T, float> ? 2e-6 : 0;
    if (cmp) {
      std::vector<uint8_t> o(numel(out));
      KernelCall call = makeCall("binary", {buf(o), buf(a), buf(b)}, attrs);
      cpu::binary(call);
      allClose(o, want, 0, 0, tag);
    } else {
      std::vector<T> o(numel(out));
      KernelCall call = makeCall("binary", {buf(o), buf(a), buf(b)}, attrs);
      cpu::binary(call);
      allClose(o, want, rtol, 1e-6, tag);
    }
  }
}

const std::vector<std::string> kFloatBinary = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum",       "floordiv",         "remainder",
    "eq",  "ne",  "lt",  "le",  "gt",  "ge",      "relu_backward", "sigmoid_backward", "tanh_backward"};
const std::vector<std::string> kIntBinary = {"add", "sub", "mul", "maximum", "minimum", "floordiv", "remainder",
                                             "eq",  "ne",  "lt",  "le",      "gt",      "ge"};
const std::vector<std::string> kBoolBinary = {"mul", "maximum", "minimum", "eq", "ne", "lt", "ge"};

void testBinary() {
  for (int trial = 0; trial < 300; ++trial) {
    Shape out = randomShape(5, 5, true);
    Shape as = broadcastable(out), bs = broadcastable(out);
    if (trial % 3 == 0) as = out;  // the same-shape and one-sided paths
    testBinaryShapes<float>(kFloatBinary, out, as, bs);
    if (trial % 4 == 0) testBinaryShapes<int32_t>(kIntBinary, out, as, bs);
    if (trial % 8 == 0) testBinaryShapes<uint8_t>(kBoolBinary, out, as, bs);
  }
  // Large cases cross the threading grain: same shape, scalar, bias row, per-channel.
  testBinaryShapes<float>({"add", "mul", "gt"}, {300, 257}, {300, 257}, {300, 257});
  testBinaryShapes<float>({"sub", "div"}, {300, 257}, {}, {300, 257});
  testBinaryShapes<float>({"add"}, {300, 257}, {300, 257}, {257});
  testBinaryShapes<float>({"add", "mul"}, {8, 16, 23, 29}, {8, 16, 23, 29}, {1, 16, 1, 1});
  testBinaryShapes<float>({"add"}, {64, 1, 700}, {64, 1, 1}, {700});
  testBinaryShapes<int32_t>({"add", "remainder"}, {513, 130}, {513, 1}, {130});

  // Python semantics of integer floor division and remainder.
  std::vector<int32_t> a = {7, -7, 7, -7, -2147483647 - 1, 0}, b = {2, 2, -2, -2, -1, 5}, o(6);
  auto run = [&](const char* op) {
    KernelCall call = makeCall(
        "binary", {buf(o), buf(a), buf(b)},
        {{"op", str(op)}, {"outShape", list(Shape{6})}, {"aShape", list(Shape{6})}, {"bShape", list(Shape{6})}});
    cpu::binary(call);
    return o;
  };
  check(run("floordiv") == std::vector<int32_t>({3, -4, -4, 3, -2147483647 - 1, 0}), "int32 floordiv");
  check(run("remainder") == std::vector<int32_t>({1, 1, -1, -1, 0, 0}), "int32 remainder");
  std::vector<float> fa = {5.5f, -5.5f, 5.5f, 1.0f}, fb = {2, 2, -2, 0}, fo(4);
  KernelCall frem = makeCall(
      "binary", {buf(fo), buf(fa), buf(fb)},
      {{"op", str("remainder")}, {"outShape", list(Shape{4})}, {"aShape", list(Shape{4})}, {"bShape", list(Shape{4})}});
  cpu::binary(frem);
  check(fo[0] == 1.5f && fo[1] == 0.5f && fo[2] == -0.5f && std::isnan(fo[3]), "float remainder");

  // Errors, each before any write.
  b[3] = 0;
  o.assign(6, 42);
  auto attrs6 = std::vector<std::pair<std::string, AttrValue>>{
      {"op", str("floordiv")}, {"outShape", list(Shape{6})}, {"aShape", list(Shape{6})}, {"bShape", list(Shape{6})}};
  check(codeOf(cpu::binary, makeCall("binary", {buf(o), buf(a), buf(b)}, attrs6)) == "ERR_VALUE" && o[0] == 42,
        "int32 division by zero");
  attrs6[0].second = str("div");
  check(codeOf(cpu::binary, makeCall("binary", {buf(o), buf(a), buf(b)}, attrs6)) == "ERR_DTYPE", "int32 div");
  attrs6[0].second = str("frobnicate");
  check(codeOf(cpu::binary, makeCall("binary", {buf(o), buf(a), buf(b)}, attrs6)) == "ERR_VALUE", "unknown op");
  attrs6[0].second = str("add");
  attrs6[2].second = list(Shape{5});
  check(codeOf(cpu::binary, makeCall("binary", {buf(o), buf(a), buf(b)}, attrs6)) == "ERR_SHAPE", "bad broadcast");
  attrs6[2].second = list(Shape{2, 3});
  check(codeOf(cpu::binary, makeCall("binary", {buf(o), buf(a), buf(b)}, attrs6)) == "ERR_SHAPE", "a size");
  attrs6[2].second = list(Shape{6});
  check(codeOf(cpu::binary, makeCall("binary", {buf(o), buf(a), buf(fb)}, attrs6)) == "ERR_DTYPE", "mixed dtypes");
  attrs6[0].second = str("lt");
  check(codeOf(cpu::binary, makeCall("binary", {buf(o), buf(a), buf(b)}, attrs6)) == "ERR_DTYPE", "cmp out dtype");
}

template <typename T>
void testWhereOnce(const Shape& out, const Shape& cs, const Shape& as, const Shape& bs) {
  std::vector<uint8_t> c(numel(cs));
  for (auto& v : c) v = static_cast<uint8_t>(randomInt(0, 1));
  auto a = randomValues<T>(numel(as));
  auto b = randomValues<T>(numel(bs));
  std::vector<T> o(numel(out));
  KernelCall call =
      makeCall("where", {buf(o), buf(c), buf(a), buf(b)},
               {{"outShape", list(out)}, {"condShape", list(cs)}, {"aShape", list(as)}, {"bShape", list(bs)}});
  cpu::where(call);
  std::vector<T> want(numel(out));
  for (int64_t i = 0; i < numel(out); ++i) {
    auto idx = unravel(out, i);
    want[i] = c[broadcastIndex(cs, idx)] ? a[broadcastIndex(as, idx)] : b[broadcastIndex(bs, idx)];
  }
  allClose(o, want, 0, 0, "where " + shapeString(out));
}

void testWhereExpand() {
  for (int trial = 0; trial < 200; ++trial) {
    Shape out = randomShape(4, 6, true);
    testWhereOnce<float>(out, broadcastable(out), broadcastable(out), broadcastable(out));
    if (trial % 5 == 0) testWhereOnce<uint8_t>(out, out, out, broadcastable(out));
    Shape xs = broadcastable(out);
    auto x = randomValues<float>(numel(xs));
    std::vector<float> o(numel(out)), want(numel(out));
    KernelCall call = makeCall("expand", {buf(o), buf(x)}, {{"outShape", list(out)}, {"xShape", list(xs)}});
    cpu::expand(call);
    for (int64_t i = 0; i < numel(out); ++i) want[i] = x[broadcastIndex(xs, unravel(out, i))];
    allClose(o, want, 0, 0, "expand " + shapeString(xs) + " -> " + shapeString(out));
  }
  testWhereOnce<float>({300, 300}, {300, 300}, {300, 300}, {1});
  std::vector<double> xd = {1.5, 2.5}, od(6);
  KernelCall call =
      makeCall("expand", {buf(od), buf(xd)}, {{"outShape", list(Shape{3, 2})}, {"xShape", list(Shape{2})}});
  cpu::expand(call);
  check(od[4] == 1.5 && od[5] == 2.5, "expand float64");
  check(codeOf(cpu::expand, makeCall("expand", {buf(od), buf(xd)},
                                     {{"outShape", list(Shape{2, 3})}, {"xShape", list(Shape{2})}})) == "ERR_SHAPE",
        "expand bad broadcast");
}

// ---------------------------------------------------------------------------------------
// permute

template <typename T>
void testPermuteOnce(const Shape& shape, const std::vector<int64_t>& perm) {
  int64_t n = numel(shape);
  std::vector<T> x(n), o(n), want(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<T>(i % 251);
  Shape outShape(shape.size());
  for (size_t i = 0; i < perm.size(); ++i) outShape[i] = shape[perm[i]];
  for (int64_t i = 0; i < n; ++i) {
    auto oi = unravel(outShape, i);
    std::vector<int64_t> xi(shape.size());
    for (size_t d = 0; d < perm.size(); ++d) xi[perm[d]] = oi[d];
    int64_t flat = 0;
    for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + xi[d];
    want[i] = x[flat];
  }
  KernelCall call = makeCall("permute", {buf(o), buf(x)}, {{"shape", list(shape)}, {"perm", list(perm)}});
  cpu::permute(call);
  allClose(o, want, 0, 0, "permute " + shapeString(shape) + " by " + shapeString(perm));
}

void testPermute() {
  for (int trial = 0; trial < 300; ++trial) {
    Shape shape = randomShape(5, 7, true);
    std::vector<int64_t> perm(shape.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(i);
    std::shuffle(perm.begin(), perm.end(), rng());
    testPermuteOnce<float>(shape, perm);
    if (trial % 5 == 0) testPermuteOnce<uint8_t>(shape, perm);
    if (trial % 7 == 0) testPermuteOnce<double>(shape, perm);
  }
  testPermuteOnce<float>({333, 517}, {1, 0});
  testPermuteOnce<float>({3, 130, 67}, {0, 2, 1});
  testPermuteOnce<float>({2, 33, 17, 40}, {0, 2, 3, 1});
  std::vector<float> x(6), o(6);
  check(codeOf(cpu::permute, makeCall("permute", {buf(o), buf(x)},
                                      {{"shape", list(Shape{2, 3})}, {"perm", list(std::vector<int>{0, 0})}})) ==
            "ERR_VALUE",
        "permute rejects a non-permutation");
  check(codeOf(cpu::permute, makeCall("permute", {buf(o), buf(x)},
                                      {{"shape", list(Shape{2, 3})}, {"perm", list(std::vector<int>{1, 2})}})) ==
            "ERR_VALUE",
        "permute rejects an axis out of range");
}

// ---------------------------------------------------------------------------------------
// Bandwidth figures (not asserted).

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
  std::vector<float> a = randomFloats(n), b = randomFloats(n), o(n), bias = randomFloats(1024), t(n);
  auto attrs = std::vector<std::pair<std::string, AttrValue>>{
      {"op", str("add")}, {"outShape", list(Shape{n})}, {"aShape", list(Shape{n})}, {"bShape", list(Shape{n})}};
  KernelCall add = makeCall("binary", {buf(o), buf(a), buf(b)}, attrs);
  double s = seconds([&] { cpu::binary(add); }, 10);
  std::printf("bench add 16M float32: %.2f ms, %.1f GB/s\n", s * 1e3, 12.0 * n / s / 1e9);
  KernelCall biasAdd = makeCall("binary", {buf(o), buf(a), buf(bias)},
                                {{"op", str("add")},
                                 {"outShape", list(Shape{n / 1024, 1024})},
                                 {"aShape", list(Shape{n / 1024, 1024})},
                                 {"bShape", list(Shape{1024})}});
  s = seconds([&] { cpu::binary(biasAdd); }, 10);
  std::printf("bench bias add [16K, 1024] + [1024]: %.2f ms, %.1f GB/s\n", s * 1e3, 8.0 * n / s / 1e9);
  KernelCall chan = makeCall("binary", {buf(o), buf(a), buf(bias)},
                             {{"op", str("mul")},
                              {"outShape", list(Shape{16, 1024, 32, 32})},
                              {"aShape", list(Shape{16, 1024, 32, 32})},
                              {"bShape", list(Shape{1, 1024, 1, 1})}});
  s = seconds([&] { cpu::binary(chan); }, 10);
  std::printf("bench per-channel mul [16, 1024, 32, 32]: %.2f ms, %.1f GB/s\n", s * 1e3, 8.0 * n / s / 1e9);
  auto shaped = [&](const char* label, Shape out, Shape as, Shape bs) {
    std::vector<float> bb = randomFloats(numel(bs));
    KernelCall call =
        makeCall("binary", {buf(o), buf(a), buf(bb)},
                 {{"op", str("add")}, {"outShape", list(out)}, {"aShape", list(as)}, {"bShape", list(bs)}});
    double t = seconds([&] { cpu::binary(call); }, 10);
    std::printf("bench add %s: %.2f ms, %.1f GB/s\n", label, t * 1e3, 8.0 * n / t / 1e9);
  };
  shaped("[1M, 16] + [16]", {n / 16, 16}, {n / 16, 16}, {16});
  shaped("[1M, 16] + [1M, 1]", {n / 16, 16}, {n / 16, 16}, {n / 16, 1});
  shaped("[64K, 256, 1] + [256, 1] (channel, inner 1)", {n / 256 / 4, 256, 4}, {n / 256 / 4, 256, 4}, {256, 1});
  shaped("[4K, 64, 8, 8] + [1, 64, 1, 1]", {n / 4096, 64, 8, 8}, {n / 4096, 64, 8, 8}, {1, 64, 1, 1});
  for (const char* op : {"relu", "sigmoid", "exp", "tanh"}) {
    KernelCall u = makeCall("unary", {buf(o), buf(a)}, {{"op", str(op)}, {"alpha", num(0)}, {"beta", num(0)}});
    s = seconds([&] { cpu::unary(u); }, 5);
    std::printf("bench unary %s 16M: %.2f ms, %.1f GB/s\n", op, s * 1e3, 8.0 * n / s / 1e9);
  }
  auto permuteBench = [&](const char* label, Shape shape, std::vector<int> perm) {
    KernelCall call = makeCall("permute", {buf(t), buf(a)}, {{"shape", list(shape)}, {"perm", list(perm)}});
    call.buffers[0].size = call.buffers[1].size = numel(shape);
    double t = seconds([&] { cpu::permute(call); }, 5);
    std::printf("bench permute %s: %.2f ms, %.1f GB/s\n", label, t * 1e3, 8.0 * numel(shape) / t / 1e9);
  };
  permuteBench("[4000, 4000] by [1, 0]", {4000, 4000}, {1, 0});
  permuteBench("[64, 256, 1024] by [0, 2, 1]", {64, 256, 1024}, {0, 2, 1});
  permuteBench("[32, 128, 12, 64] by [0, 2, 1, 3]", {32, 128, 12, 64}, {0, 2, 1, 3});
  permuteBench("[64, 64, 64, 64] by [0, 2, 3, 1] (NCHW to NHWC)", {64, 64, 64, 64}, {0, 2, 3, 1});
  KernelCall tr = makeCall("permute", {buf(t), buf(a)},
                           {{"shape", list(Shape{4096, 4096})}, {"perm", list(std::vector<int>{1, 0})}});
  s = seconds([&] { cpu::permute(tr); }, 5);
  std::printf("bench transpose 4096x4096: %.2f ms, %.1f GB/s\n", s * 1e3, 8.0 * n / s / 1e9);
  auto ra = keyAttrs(7, 0);
  ra.push_back({"low", num(0)});
  ra.push_back({"high", num(1)});
  KernelCall ru = makeCall("rand_uniform", {buf(o)}, ra);
  s = seconds([&] { cpu::randUniform(ru); }, 3);
  std::printf("bench rand_uniform 16M: %.2f ms\n", s * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  const char* threads = std::getenv("DEEPNODE_NUM_THREADS");  // the same override as the addon
  ThreadPool pool(threads ? std::max(1, std::atoi(threads)) : 2);
  setCurrentPool(&pool);
  testPhilox();
  testVecMath();
  testRandomKernels();
  testFillCast();
  testUnary();
  testBinary();
  testWhereExpand();
  testPermute();
  if (argc > 1 && std::string(argv[1]) == "--bench") bench();
  return finish("elementwise_test");
}
