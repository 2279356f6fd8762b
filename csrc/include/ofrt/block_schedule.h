// Host-side block schedule: block k -> latent / token / media ranges, absolute RoPE time bounds
// and the sigma list of its denoise passes.
//
// This is the C++ twin of three Python modules, which are the source of truth:
//   python/omniforcing_rt/pipeline/layout.py   LayoutKind, BlockSpec, BlockLayout
//   python/omniforcing_rt/model/positions.py   media constants, *_latent_bounds_s
//   python/omniforcing_rt/pipeline/schedule.py ltx2_sigmas, student_sigmas
// Names are spelled as in Python (design.md §5) and tests/runtime/test_block_schedule.py checks
// every value and every ConfigError problem list against the Python code.
//
// Layout in one paragraph (spec B.1/B.3): block 0 holds first_block_frames (F0) video latents and
// the 1 + 25 (F0 - 1) / 3 audio latents of the same span; every later block holds block_frames
// (F, 3 = one second) video latents and 25 F / 3 audio latents. The release layout uses F0 = 4
// (4 video + 26 audio latents), the paper layout F0 = 1 (1 + 1, plus optional audio sink tokens
// that come first in the audio token sequence). Every latent is used: N_v = F0 + F (K - 1) and
// N_a = 1 + 25 (N_v - 1) / 3.
//
// Numerics: layout arithmetic is exact int64. Time bounds are float64 with the same operations as
// positions.py, so they agree bit for bit. Sigmas are float32 and follow the Python/torch float32
// op sequence step by step (see the comment on ltx2_sigmas); they agree to <= 1e-6 everywhere
// and bit for bit on x86 torch builds (AVX2 / AVX512 kernels).
//
// Nothing here depends on a framework: no torch, no pybind11.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ofrt {

// -------------------------------------------------------------------------------------------
// Media constants (model/positions.py)
// -------------------------------------------------------------------------------------------

//! Output video frame rate.
inline constexpr int64_t kVideoFps = 24;
//! Pixel frames per video latent frame (the first latent holds 1).
inline constexpr int64_t kVideoTemporalStride = 8;
//! Pixels per latent row/column.
inline constexpr int64_t kVideoSpatialStride = 32;
//! Mel frames per second at the audio VAE input (16 kHz, hop 160).
inline constexpr int64_t kAudioMelFramesPerS = 100;
//! Mel frames per audio latent (the first latent holds 1).
inline constexpr int64_t kAudioLatentMelStride = 4;
//! Vocoder output sample rate.
inline constexpr int64_t kAudioSampleRate = 24000;
//! Vocoder upsampling factor (240).
inline constexpr int64_t kAudioSamplesPerMel = kAudioSampleRate / kAudioMelFramesPerS;

// -------------------------------------------------------------------------------------------
// Sigma-schedule constants (pipeline/schedule.py)
// -------------------------------------------------------------------------------------------

//! LTX2Scheduler logit shift used without a latent.
inline constexpr double kDefaultMaxShift = 2.05;
//! Last non-zero sigma after stretching.
inline constexpr double kDefaultTerminal = 0.1;
//! LTX2Scheduler grid resolution of every shipped config.
inline constexpr int64_t kDefaultGridSteps = 40;
//! v2 release denoising_step_list.
inline constexpr std::array<int64_t, 5> kReleaseStepList = {1000, 909, 725, 421, 0};
//! v1 / paper denoising_step_list.
inline constexpr std::array<int64_t, 4> kPaperStepList = {1000, 757, 522, 0};

// -------------------------------------------------------------------------------------------
// LayoutKind
// -------------------------------------------------------------------------------------------

//! Which block-0 convention a layout follows.
enum class LayoutKind {
  kRelease,  //!< release (v2): block 0 = 4 video + 26 audio latents
  kPaper,    //!< paper (v1) Global Prefix: block 0 = 1 video + 1 audio latent (+ sinks)
};

//! "release" / "paper" (the Python enum's value).
std::string_view layout_kind_name(LayoutKind kind);
//! The kind named `name`; ConfigError "layout kind must be 'release' or 'paper', got 'x'".
LayoutKind parse_layout_kind(std::string_view name);
//! Throws the ConfigError of an invalid kind; `shown` is the value's Python repr.
[[noreturn]] void throw_invalid_layout_kind(std::string_view shown);

//! Audio latents spanning the same time as `video_latents` video latents from t = 0; ConfigError
//! when that is not a whole number.
int64_t audio_latents_for_video(int64_t video_latents);

// -------------------------------------------------------------------------------------------
// BlockSpec
// -------------------------------------------------------------------------------------------

//! One causal block: latent ranges, token ranges and the media it decodes to.
struct BlockSpec {
  int64_t index = 0;               //!< block index k (0 = first block)
  int64_t video_start = 0;         //!< absolute index of the first video latent frame
  int64_t video_frames = 0;        //!< video latent frames in the block
  int64_t audio_start = 0;         //!< absolute index of the first audio latent (sinks excluded)
  int64_t audio_frames = 0;        //!< audio latents in the block (sinks excluded)
  int64_t video_token_start = 0;   //!< first video token (video_start * tokens_per_frame)
  int64_t video_tokens = 0;        //!< video tokens in the block
  int64_t audio_token_start = 0;   //!< first audio token, in the sequence that starts with sinks
  int64_t audio_tokens = 0;        //!< audio tokens in the block, sinks included for block 0
  int64_t sink_tokens = 0;         //!< audio sink tokens carried by this block (block 0 only)
  int64_t pixel_frame_start = 0;   //!< first decoded video frame
  int64_t pixel_frames = 0;        //!< decoded video frames (25 release block 0, 24 after)
  int64_t audio_sample_start = 0;  //!< first decoded audio sample (24 kHz)
  int64_t audio_samples = 0;       //!< decoded samples per channel (24,240 block 0, 24,000 after)

  //! Presentation time of the first video frame, in seconds.
  double video_pts_s() const;
  //! Presentation time of the first audio sample, in seconds.
  double audio_pts_s() const;

  bool operator==(const BlockSpec& other) const;
  bool operator!=(const BlockSpec& other) const { return !(*this == other); }
};

// -------------------------------------------------------------------------------------------
// BlockLayout
// -------------------------------------------------------------------------------------------

//! Keyword options of BlockLayout::create / for_video_latents / for_seconds.
struct BlockLayoutOptions {
  int64_t block_frames = 3;                   //!< video latents per later block
  std::optional<int64_t> first_block_frames;  //!< default: 4 release, 1 paper
  int64_t audio_sink_tokens = 0;              //!< audio sink tokens prepended to block 0
};

//! A clip cut into causal blocks. Every constructor validates and throws ConfigError listing every
//! problem (same problems, same order, same words as layout.py).
class BlockLayout {
 public:
  //! Validated construction (Python: BlockLayout(kind=..., ...) / __post_init__).
  BlockLayout(LayoutKind kind, int64_t first_block_frames, int64_t block_frames, int64_t num_blocks,
              int64_t tokens_per_frame, int64_t audio_sink_tokens = 0);

  //! Block-0 video latents of a layout kind: 4 (release) or 1 (paper).
  static int64_t default_first_block_frames(LayoutKind kind);
  //! A layout of `num_blocks` blocks of the given kind.
  static BlockLayout create(LayoutKind kind, int64_t num_blocks, int64_t tokens_per_frame,
                            const BlockLayoutOptions& options = {});
  //! The layout whose blocks use exactly `video_latents` latents (ConfigError if none does).
  static BlockLayout for_video_latents(LayoutKind kind, int64_t video_latents,
                                       int64_t tokens_per_frame,
                                       const BlockLayoutOptions& options = {});
  //! The layout whose duration is within one video frame of `seconds` (ConfigError if none is).
  static BlockLayout for_seconds(LayoutKind kind, double seconds, int64_t tokens_per_frame,
                                 const BlockLayoutOptions& options = {});

  // ----- fields
  LayoutKind kind() const { return kind_; }
  int64_t first_block_frames() const { return first_block_frames_; }
  int64_t block_frames() const { return block_frames_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t tokens_per_frame() const { return tokens_per_frame_; }
  int64_t audio_sink_tokens() const { return audio_sink_tokens_; }

  // ----- sizes
  //! Total video latent frames N_v.
  int64_t video_latent_frames() const;
  //! Total audio latents N_a (sinks excluded).
  int64_t audio_latent_frames() const;
  //! Decoded video frames: 1 + 8 (N_v - 1).
  int64_t pixel_frames() const;
  //! Clip duration in seconds (pixel frames / fps).
  double duration_s() const;
  //! Decoded audio samples per channel: (4 N_a - 3) mel frames x 240.
  int64_t audio_samples() const;

  // ----- blocks
  //! The spec of block `k`; ConfigError when k is outside [0, num_blocks).
  BlockSpec block(int64_t k) const;
  //! All block specs in order.
  std::vector<BlockSpec> blocks() const;

  bool operator==(const BlockLayout& other) const;
  bool operator!=(const BlockLayout& other) const { return !(*this == other); }

 private:
  LayoutKind kind_;
  int64_t first_block_frames_;
  int64_t block_frames_;
  int64_t num_blocks_;
  int64_t tokens_per_frame_;
  int64_t audio_sink_tokens_;
};

// -------------------------------------------------------------------------------------------
// Absolute RoPE time bounds (model/positions.py)
// -------------------------------------------------------------------------------------------

//! [start, end) time bounds in seconds of one latent; RoPE uses their midpoint.
using TimeBounds = std::array<double, 2>;

//! Bounds of video latent frames start..start+count-1: [max(0, 8k-7), max(0, 8k+1)) / 24.
//! InputError when count < 0.
std::vector<TimeBounds> video_latent_bounds_s(int64_t start, int64_t count);
//! Bounds of audio latents start..start+count-1: [max(0, 4j-3), 4j+1) / 100.
//! InputError when count < 0.
std::vector<TimeBounds> audio_latent_bounds_s(int64_t start, int64_t count);

// -------------------------------------------------------------------------------------------
// Sigma schedule (pipeline/schedule.py)
// -------------------------------------------------------------------------------------------

//! The LTX2Scheduler grid without a latent (fixed shift), float32 like the official code: N + 1
//! points decreasing from ~1 to 0. ConfigError when steps < 1 or terminal is outside [0, 1);
//! std::overflow_error ("math range error", Python's OverflowError) when exp(shift) overflows.
std::vector<float> ltx2_sigmas(int64_t steps, double shift = kDefaultMaxShift,
                               double terminal = kDefaultTerminal);

//! Maps a denoising_step_list (strictly decreasing, in [0, 1000]) to sigmas: each t / 1000 snaps
//! to the nearest point of the `grid_steps` grid; 0 stays 0. ConfigError lists every problem.
std::vector<float> student_sigmas(const std::vector<int64_t>& step_list,
                                  int64_t grid_steps = kDefaultGridSteps);

}  // namespace ofrt
