// Keyed noise; see include/ofrt/noise.h. The float64 operations are spelled in the same order as
// pipeline/noise.py (numpy), so every float32 result is identical
// (tests/runtime/test_engine_noise.py).
#include "ofrt/noise.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/check.h"

namespace ofrt {
namespace {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kMix1 = 0xBF58476D1CE4E5B9ULL;
constexpr uint64_t kMix2 = 0x94D049BB133111EBULL;
constexpr double kTwoPi = 2.0 * 3.141592653589793;   // Python: 2.0 * np.pi
constexpr double kScale = 1.0 / 9007199254740992.0;  // 1 / 2^53
}  // namespace

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + kGolden;
  z = (z ^ (z >> 30)) * kMix1;
  z = (z ^ (z >> 27)) * kMix2;
  return z ^ (z >> 31);
}

uint64_t noise_key(uint64_t seed, int64_t block, int64_t step, int64_t stream) {
  uint64_t key = seed;
  for (const int64_t field : {block, step, stream}) {
    key = splitmix64(key ^ static_cast<uint64_t>(field));
  }
  return key;
}

void keyed_normal(uint64_t key, float* out, int64_t count) {
  OFRT_CHECK(count >= 0, InputError, "count must be >= 0, got " << count);
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t base = key + 2ULL * static_cast<uint64_t>(i);
    const uint64_t a = splitmix64(base) >> 11;
    const uint64_t b = splitmix64(base + 1ULL) >> 11;
    const double u1 = (static_cast<double>(a) + 1.0) * kScale;  // (0, 1]: log is finite
    const double u2 = static_cast<double>(b) * kScale;
    out[i] = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2));
  }
}

std::vector<float> keyed_normal(uint64_t key, int64_t count) {
  OFRT_CHECK(count >= 0, InputError, "count must be >= 0, got " << count);
  std::vector<float> out(static_cast<size_t>(count));
  keyed_normal(key, out.data(), count);
  return out;
}

}  // namespace ofrt
