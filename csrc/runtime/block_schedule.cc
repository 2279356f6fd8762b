// Host-side block schedule; see include/ofrt/block_schedule.h. Every formula and every error
// message here mirrors pipeline/layout.py, pipeline/schedule.py or model/positions.py line for
// line; change them together (tests/runtime/test_block_schedule.py compares the two).
#include "ofrt/block_schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/check.h"
#include "common/py_format.h"
#include "ofrt/errors.h"

namespace ofrt {
namespace {

// Audio latents per video latent stride, as the reduced fraction kAudioPerVideoNum / Den:
// (8 frames / 24 fps) * (100 mel/s / 4 mel) = 800 / 96 = 25 / 3 (layout.py _AUDIO_PER_VIDEO).
constexpr int64_t kAudioPerVideoRawNum = kVideoTemporalStride * kAudioMelFramesPerS;
constexpr int64_t kAudioPerVideoRawDen = kVideoFps * kAudioLatentMelStride;
constexpr int64_t kAudioPerVideoGcd = std::gcd(kAudioPerVideoRawNum, kAudioPerVideoRawDen);
constexpr int64_t kAudioPerVideoNum = kAudioPerVideoRawNum / kAudioPerVideoGcd;  // 25
constexpr int64_t kAudioPerVideoDen = kAudioPerVideoRawDen / kAudioPerVideoGcd;  // 3

// Fraction(25, 3) * n is a whole number iff den divides n (num and den are coprime).
bool audio_per_video_is_whole(int64_t n) { return n % kAudioPerVideoDen == 0; }

// Overflow-checked int64 arithmetic for the C++-only size limit (Python ints are unbounded).
bool mul_overflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }
bool add_overflows(int64_t a, int64_t b, int64_t* out) { return __builtin_add_overflow(a, b, out); }

// True when some size of a (otherwise valid) layout does not fit int64. Block quantities are
// bounded by these totals, so block(k) cannot overflow once this passes.
bool layout_sizes_overflow(int64_t f0, int64_t f, int64_t num_blocks, int64_t tokens_per_frame,
                           int64_t sinks) {
  int64_t n_v = 0, n_a = 0, tmp = 0;
  if (mul_overflows(f, num_blocks - 1, &tmp) || add_overflows(tmp, f0, &n_v)) return true;
  if (mul_overflows((n_v - 1) / kAudioPerVideoDen, kAudioPerVideoNum, &tmp) ||
      add_overflows(tmp, 1, &n_a))
    return true;
  if (mul_overflows(n_v, tokens_per_frame, &tmp)) return true;
  if (add_overflows(n_a, sinks, &tmp)) return true;
  if (mul_overflows(n_v, kVideoTemporalStride, &tmp)) return true;
  if (mul_overflows(n_a, kAudioLatentMelStride * kAudioSamplesPerMel, &tmp)) return true;
  return false;
}

std::string int_str(int64_t v) { return std::to_string(v); }

}  // namespace

// ------------------------------------------------------------------------------ LayoutKind

std::string_view layout_kind_name(LayoutKind kind) {
  return kind == LayoutKind::kRelease ? "release" : "paper";
}

void throw_invalid_layout_kind(std::string_view shown) {
  throw ConfigError(kDefaultConfigErrorMessage,
                    {"layout kind must be 'release' or 'paper', got " + std::string(shown)});
}

LayoutKind parse_layout_kind(std::string_view name) {
  if (name == "release") return LayoutKind::kRelease;
  if (name == "paper") return LayoutKind::kPaper;
  throw_invalid_layout_kind(py_format::str_repr(name));
}

int64_t audio_latents_for_video(int64_t video_latents) {
  // n = 1 + 25/3 * (video_latents - 1); must be a whole number.
  const int64_t rest = video_latents - 1;
  if (!audio_per_video_is_whole(rest)) {
    throw ConfigError(
        kDefaultConfigErrorMessage,
        {int_str(video_latents) + " video latents do not span a whole number of audio latents"});
  }
  int64_t scaled = 0;
  OFRT_CHECK(!mul_overflows(rest / kAudioPerVideoDen, kAudioPerVideoNum, &scaled), ConfigError,
             video_latents << " video latents overflow int64 audio latents");
  return 1 + scaled;
}

// ------------------------------------------------------------------------------- BlockSpec

double BlockSpec::video_pts_s() const {
  return static_cast<double>(pixel_frame_start) / static_cast<double>(kVideoFps);
}

double BlockSpec::audio_pts_s() const {
  return static_cast<double>(audio_sample_start) /
         static_cast<double>(kAudioSamplesPerMel * kAudioMelFramesPerS);
}

bool BlockSpec::operator==(const BlockSpec& o) const {
  return index == o.index && video_start == o.video_start && video_frames == o.video_frames &&
         audio_start == o.audio_start && audio_frames == o.audio_frames &&
         video_token_start == o.video_token_start && video_tokens == o.video_tokens &&
         audio_token_start == o.audio_token_start && audio_tokens == o.audio_tokens &&
         sink_tokens == o.sink_tokens && pixel_frame_start == o.pixel_frame_start &&
         pixel_frames == o.pixel_frames && audio_sample_start == o.audio_sample_start &&
         audio_samples == o.audio_samples;
}

// ----------------------------------------------------------------------------- BlockLayout

BlockLayout::BlockLayout(LayoutKind kind, int64_t first_block_frames, int64_t block_frames,
                         int64_t num_blocks, int64_t tokens_per_frame, int64_t audio_sink_tokens)
    : kind_(kind),
      first_block_frames_(first_block_frames),
      block_frames_(block_frames),
      num_blocks_(num_blocks),
      tokens_per_frame_(tokens_per_frame),
      audio_sink_tokens_(audio_sink_tokens) {
  // Same checks, order and words as BlockLayout.__post_init__.
  std::vector<std::string> problems;
  if (first_block_frames < 1) {
    problems.push_back("first_block_frames must be >= 1, got " + int_str(first_block_frames));
  } else if (!audio_per_video_is_whole(first_block_frames - 1)) {
    problems.push_back("first_block_frames - 1 must be a multiple of 3, got " +
                       int_str(first_block_frames));
  }
  if (block_frames < 1 || !audio_per_video_is_whole(block_frames)) {
    problems.push_back("block_frames must be a positive multiple of 3, got " +
                       int_str(block_frames));
  }
  if (num_blocks < 1) problems.push_back("num_blocks must be >= 1, got " + int_str(num_blocks));
  if (tokens_per_frame < 1) {
    problems.push_back("tokens_per_frame must be >= 1, got " + int_str(tokens_per_frame));
  }
  if (audio_sink_tokens < 0) {
    problems.push_back("audio_sink_tokens must be >= 0, got " + int_str(audio_sink_tokens));
  }
  // C++ only: Python ints never overflow, int64 does. Only reachable with absurd sizes.
  if (problems.empty() && layout_sizes_overflow(first_block_frames, block_frames, num_blocks,
                                                tokens_per_frame, audio_sink_tokens)) {
    problems.push_back("block layout is too large: its sizes overflow int64");
  }
  if (!problems.empty()) throw ConfigError("invalid block layout", std::move(problems));
}

int64_t BlockLayout::default_first_block_frames(LayoutKind kind) {
  return kind == LayoutKind::kRelease ? 4 : 1;
}

BlockLayout BlockLayout::create(LayoutKind kind, int64_t num_blocks, int64_t tokens_per_frame,
                                const BlockLayoutOptions& options) {
  const int64_t f0 = options.first_block_frames.value_or(default_first_block_frames(kind));
  return BlockLayout(kind, f0, options.block_frames, num_blocks, tokens_per_frame,
                     options.audio_sink_tokens);
}

BlockLayout BlockLayout::for_video_latents(LayoutKind kind, int64_t video_latents,
                                           int64_t tokens_per_frame,
                                           const BlockLayoutOptions& options) {
  const BlockLayout probe = create(kind, 1, tokens_per_frame, options);
  const int64_t f0 = probe.first_block_frames_;
  const int64_t f = probe.block_frames_;
  const int64_t rest = video_latents - f0;
  if (rest < 0 || rest % f != 0) {
    std::vector<int64_t> valid;
    for (int64_t k = 0; k < 6; ++k) valid.push_back(f0 + f * k);
    throw ConfigError(int_str(video_latents) + " video latents do not fit the " +
                          std::string(layout_kind_name(kind)) + " layout",
                      {"valid counts are " + int_str(f0) + " + " + int_str(f) +
                       "k: " + py_format::int_list_repr(valid) + " ..."});
  }
  return create(kind, 1 + rest / f, tokens_per_frame, options);
}

BlockLayout BlockLayout::for_seconds(LayoutKind kind, double seconds, int64_t tokens_per_frame,
                                     const BlockLayoutOptions& options) {
  const BlockLayout probe = create(kind, 1, tokens_per_frame, options);
  if (!std::isfinite(seconds) || seconds <= 0) {
    throw ConfigError(kDefaultConfigErrorMessage,
                      {"seconds must be a positive number, got " + py_format::float_repr(seconds)});
  }
  const double block_s = static_cast<double>(probe.block_frames_ * kVideoTemporalStride) /
                         static_cast<double>(kVideoFps);
  const double probe_s = probe.duration_s();
  auto invalid = [&]() {
    std::string valid;
    for (int64_t i = 0; i < 5; ++i) {
      if (i > 0) valid += ", ";
      valid += py_format::fixed(probe_s + static_cast<double>(i) * block_s, 3);
    }
    return ConfigError(py_format::float_repr(seconds) + " s is not a valid duration for the " +
                           std::string(layout_kind_name(kind)) + " layout",
                       {"valid durations are " + py_format::fixed(probe_s, 3) + " s + k x " +
                        py_format::fixed(block_s, 3) + " s (" + valid + ", ...)"});
  };
  // Python's round() rounds half to even, as nearbyint does in the default rounding mode.
  const double k_real = std::max(0.0, std::nearbyint((seconds - probe_s) / block_s));
  // C++ only: keep the block count inside int64 (create() itself rejects any layout whose
  // sizes overflow int64, i.e. clips longer than ~1e15 s; Python ints have no such limit).
  if (!(k_real < 4.0e18)) throw invalid();
  const auto k = static_cast<int64_t>(k_real);
  BlockLayout layout = create(kind, k + 1, tokens_per_frame, options);
  if (std::abs(layout.duration_s() - seconds) > 1.0 / static_cast<double>(kVideoFps) + 1e-9) {
    throw invalid();
  }
  return layout;
}

int64_t BlockLayout::video_latent_frames() const {
  return first_block_frames_ + block_frames_ * (num_blocks_ - 1);
}

int64_t BlockLayout::audio_latent_frames() const {
  return audio_latents_for_video(video_latent_frames());
}

int64_t BlockLayout::pixel_frames() const {
  return 1 + kVideoTemporalStride * (video_latent_frames() - 1);
}

double BlockLayout::duration_s() const {
  return static_cast<double>(pixel_frames()) / static_cast<double>(kVideoFps);
}

int64_t BlockLayout::audio_samples() const {
  return (kAudioLatentMelStride * audio_latent_frames() - (kAudioLatentMelStride - 1)) *
         kAudioSamplesPerMel;
}

BlockSpec BlockLayout::block(int64_t k) const {
  if (k < 0 || k >= num_blocks_) {
    throw ConfigError(
        kDefaultConfigErrorMessage,
        {"block index " + int_str(k) + " out of range [0, " + int_str(num_blocks_) + ")"});
  }
  const int64_t f0 = first_block_frames_;
  const int64_t f = block_frames_;
  const bool first = k == 0;
  const int64_t v_start = first ? 0 : f0 + f * (k - 1);
  const int64_t v_n = first ? f0 : f;
  const int64_t a_start = first ? 0 : audio_latents_for_video(v_start);
  const int64_t a_n = audio_latents_for_video(v_start + v_n) - a_start;
  const int64_t sinks = first ? audio_sink_tokens_ : 0;
  const int64_t px_start = first ? 0 : 1 + kVideoTemporalStride * (v_start - 1);
  const int64_t px_n = first ? 1 + kVideoTemporalStride * (v_n - 1) : kVideoTemporalStride * v_n;
  const int64_t mel_start =
      first ? 0 : kAudioLatentMelStride * a_start - (kAudioLatentMelStride - 1);
  const int64_t mel_n = kAudioLatentMelStride * a_n - (first ? kAudioLatentMelStride - 1 : 0);

  BlockSpec spec;
  spec.index = k;
  spec.video_start = v_start;
  spec.video_frames = v_n;
  spec.audio_start = a_start;
  spec.audio_frames = a_n;
  spec.video_token_start = v_start * tokens_per_frame_;
  spec.video_tokens = v_n * tokens_per_frame_;
  spec.audio_token_start = first ? 0 : audio_sink_tokens_ + a_start;
  spec.audio_tokens = a_n + sinks;
  spec.sink_tokens = sinks;
  spec.pixel_frame_start = px_start;
  spec.pixel_frames = px_n;
  spec.audio_sample_start = mel_start * kAudioSamplesPerMel;
  spec.audio_samples = mel_n * kAudioSamplesPerMel;
  return spec;
}

std::vector<BlockSpec> BlockLayout::blocks() const {
  std::vector<BlockSpec> out;
  out.reserve(static_cast<size_t>(num_blocks_));
  for (int64_t k = 0; k < num_blocks_; ++k) out.push_back(block(k));
  return out;
}

bool BlockLayout::operator==(const BlockLayout& o) const {
  return kind_ == o.kind_ && first_block_frames_ == o.first_block_frames_ &&
         block_frames_ == o.block_frames_ && num_blocks_ == o.num_blocks_ &&
         tokens_per_frame_ == o.tokens_per_frame_ && audio_sink_tokens_ == o.audio_sink_tokens_;
}

// ------------------------------------------------------------------------- RoPE time bounds

// Same float64 operations as positions.py: arange, s * k - (s - 1), clamp(min=0), / rate.
std::vector<TimeBounds> video_latent_bounds_s(int64_t start, int64_t count) {
  OFRT_CHECK(count >= 0, InputError, "count must be >= 0, got " << count);
  constexpr double s = static_cast<double>(kVideoTemporalStride);
  constexpr double fps = static_cast<double>(kVideoFps);
  std::vector<TimeBounds> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const double k = static_cast<double>(start + i);
    const double lo = std::max(s * k - (s - 1.0), 0.0);
    const double hi = std::max(s * k + 1.0, 0.0);
    out[static_cast<size_t>(i)] = {lo / fps, hi / fps};
  }
  return out;
}

std::vector<TimeBounds> audio_latent_bounds_s(int64_t start, int64_t count) {
  OFRT_CHECK(count >= 0, InputError, "count must be >= 0, got " << count);
  constexpr double s = static_cast<double>(kAudioLatentMelStride);
  constexpr double rate = static_cast<double>(kAudioMelFramesPerS);
  std::vector<TimeBounds> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const double j = static_cast<double>(start + i);
    const double lo = std::max(s * j - (s - 1.0), 0.0);
    const double hi = s * j + 1.0;
    out[static_cast<size_t>(i)] = {lo / rate, hi / rate};
  }
  return out;
}

// --------------------------------------------------------------------------- Sigma schedule

// ltx2_sigmas follows schedule.py's float32 torch ops one by one, so results are bit-identical to
// torch's x86 CPU kernels (checked for steps 1..1000 and several shifts/terminals):
//   linspace   torch's CPU kernel: step = (end - start) / (steps - 1) in float32, then
//              start + step * i for the first half and end - step * (steps - 1 - i) for the
//              second. torch compiles that kernel with FMA contraction on AVX2/AVX512, so the
//              first half is one fused multiply-add; std::fma reproduces it. A torch build
//              without FMA (non-x86 DEFAULT capability) rounds twice and can differ by 1 ulp of
//              the linspace (~6e-8), i.e. well under 1e-6 in the final sigmas.
//   1/sigma    Tensor.__rtruediv__ is reciprocal(), a correctly rounded float32 division; then
//              "- 1.0" and "e^s + ..." are float32 adds with the Python scalars rounded to
//              float32, and "e^s / (...)" is reciprocal() * float32(e^s) (two roundings).
//   stretch    scale = one_minus[-1] / float32(1 - terminal); sigma = 1 - one_minus / scale.
// This translation unit is compiled with -ffp-contract=off so the compiler cannot fuse any
// other multiply-add and change the rounding.
std::vector<float> ltx2_sigmas(int64_t steps, double shift, double terminal) {
  if (steps < 1) {
    throw ConfigError(kDefaultConfigErrorMessage, {"steps must be >= 1, got " + int_str(steps)});
  }
  if (!(0.0 <= terminal && terminal < 1.0)) {
    throw ConfigError(kDefaultConfigErrorMessage,
                      {"terminal must be in [0, 1), got " + py_format::float_repr(terminal)});
  }
  const double exp_shift = std::exp(shift);
  // math.exp raises OverflowError("math range error") where the double result overflows.
  if (std::isinf(exp_shift) && std::isfinite(shift)) throw std::overflow_error("math range error");

  // torch.linspace(1.0, 0.0, steps + 1), float32.
  const int64_t n = steps + 1;
  const float start = 1.0f;
  const float end = 0.0f;
  const float step = (end - start) / static_cast<float>(n - 1);
  const int64_t halfway = n / 2;
  std::vector<float> sigmas(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    sigmas[static_cast<size_t>(i)] = i < halfway
                                         ? std::fma(step, static_cast<float>(i), start)
                                         : std::fma(-step, static_cast<float>(n - i - 1), end);
  }

  // shifted = e^s / (e^s + (1 / sigma - 1)) on the non-zero entries; one_minus = 1 - shifted.
  const auto e = static_cast<float>(exp_shift);
  std::vector<float> one_minus;
  one_minus.reserve(sigmas.size());
  for (const float sigma : sigmas) {
    if (sigma == 0.0f) continue;
    const float inv_minus_one = 1.0f / sigma - 1.0f;
    const float shifted = (1.0f / (e + inv_minus_one)) * e;
    one_minus.push_back(1.0f - shifted);
  }
  // scale = one_minus[-1] / (1 - terminal); sigma = 1 - one_minus / scale.
  const float scale = one_minus.back() / static_cast<float>(1.0 - terminal);
  size_t j = 0;
  for (float& sigma : sigmas) {
    if (sigma == 0.0f) continue;
    sigma = 1.0f - one_minus[j++] / scale;
  }
  return sigmas;
}

std::vector<float> student_sigmas(const std::vector<int64_t>& step_list, int64_t grid_steps) {
  std::vector<std::string> problems;
  if (step_list.empty()) problems.emplace_back("denoising_step_list is empty");
  const bool out_of_range =
      std::any_of(step_list.begin(), step_list.end(), [](int64_t t) { return t < 0 || t > 1000; });
  if (out_of_range) {
    problems.push_back("denoising_step_list entries must lie in [0, 1000], got " +
                       py_format::int_list_repr(step_list));
  }
  bool decreasing = true;
  for (size_t i = 1; i < step_list.size(); ++i) {
    if (step_list[i - 1] <= step_list[i]) decreasing = false;
  }
  if (!decreasing) {
    problems.push_back("denoising_step_list must be strictly decreasing, got " +
                       py_format::int_list_repr(step_list));
  }
  if (!problems.empty()) throw ConfigError("invalid denoising_step_list", std::move(problems));

  const std::vector<float> grid = ltx2_sigmas(grid_steps);
  std::vector<float> out;
  out.reserve(step_list.size());
  for (const int64_t t : step_list) {
    if (t == 0) {
      out.push_back(0.0f);
      continue;
    }
    // argmin(|grid - float32(t / 1000)|) in float32: first minimum wins; a NaN wins like torch.
    const auto target = static_cast<float>(static_cast<double>(t) / 1000.0);
    size_t best = 0;
    float best_dist = std::fabs(grid[0] - target);
    for (size_t i = 1; i < grid.size() && !std::isnan(best_dist); ++i) {
      const float dist = std::fabs(grid[i] - target);
      if (dist < best_dist || std::isnan(dist)) {
        best = i;
        best_dist = dist;
      }
    }
    out.push_back(grid[best]);
  }
  return out;
}

}  // namespace ofrt
