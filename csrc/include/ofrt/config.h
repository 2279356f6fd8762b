// Engine configuration as it arrives from Python, the compiled package's manifest, and the KV
// cache plan derived from both.
//
// EngineConfig mirrors python/omniforcing_rt/engine_config.py field for field; it is parsed from
// EngineConfig.to_json() (one source of truth in Python, one parser here) and validated again,
// every problem listed in one ConfigError. ModelManifest is the JSON written beside the AOTI
// package by python/omniforcing_rt/compile/export.py: the model geometry the graph was compiled
// for, the RoPE frequency grids (exact float values) and the graph's input/output names.
// plan_kv_cache() sizes the page pools and refuses a plan over the memory budget with
// CacheCapacityError before anything is allocated. Framework-free.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ofrt/block_schedule.h"
#include "ofrt/kv_cache.h"

namespace ofrt {

// -------------------------------------------------------------------------------------------
// EngineConfig
// -------------------------------------------------------------------------------------------

//! The resolved engine configuration (engine_config.py: EngineConfig after resolve()).
struct EngineConfig {
  std::string device = "cpu";               //!< torch device string of the pools and passes
  std::string dtype = "float32";            //!< activation / KV dtype of the compiled pass
  std::string backend = "aoti";             //!< denoiser backend name
  int64_t page_size_tokens = 64;            //!< tokens per KV page
  std::optional<double> video_window_s;     //!< video history besides block 0 (nullopt: all)
  std::optional<double> audio_window_s;     //!< audio history besides block 0 (nullopt: all)
  double max_stream_s = 20.0;               //!< longest stream a window of None must hold
  int64_t max_streams = 2;                  //!< concurrent streams the pool is sized for
  int64_t max_batch_streams = 4;            //!< most streams batched into one pass
  std::optional<int64_t> kv_budget_bytes;   //!< page-pool budget (nullopt: unlimited)
  int64_t queue_depth = 2;                  //!< ready chunks buffered per stream
  std::optional<int64_t> num_threads;       //!< intra-op threads of the worker (nullopt: torch's)
  std::array<int64_t, 2> latent_grid_hw{};  //!< video latent rows x columns
  LayoutKind layout_kind = LayoutKind::kRelease;  //!< block-0 convention
  std::optional<int64_t> first_block_frames;      //!< video latents of block 0
  int64_t block_frames = 3;                       //!< video latents per later block
  std::vector<int64_t> denoising_step_list;       //!< student steps on the 0..1000 scale
  int64_t context_noise = 0;                      //!< refresh-pass noise level, 0..999
  double debug_pass_delay_ms = 0.0;  //!< debug knob: sleep after every pass (cancellation tests)

  //! Parses EngineConfig.to_json(); ConfigError listing every problem.
  static EngineConfig from_json(const std::string& text);
  //! Back to JSON (same keys as Python; for the round-trip test).
  std::string to_json() const;

  //! The block layout of a stream of `num_blocks` blocks (kUnlimitedBlocks for open-ended).
  BlockLayout layout(int64_t num_blocks, int64_t audio_sink_tokens) const;
  //! Sigmas of the denoise passes (the trailing 0 is not a pass).
  std::vector<float> pass_sigmas() const;
  //! Blocks of a stream max_stream_s long (the sizing length for windows of None).
  int64_t max_stream_blocks() const;
};

// -------------------------------------------------------------------------------------------
// ModelManifest
// -------------------------------------------------------------------------------------------

//! One rotary table of a pass (AVTransformer.rope): its width, head split and frequency grid.
struct RopeTableSpec {
  int64_t dim = 0;               //!< rotated width
  int64_t heads = 0;             //!< head count (split pairing cuts the table per head)
  std::vector<int64_t> max_pos;  //!< per-axis max position
  std::vector<double> grid;      //!< frequencies as used by the angle product (exact values)
};

//! What the compiled package was built for (compile/export.py writes it as manifest.json).
struct ModelManifest {
  int64_t format_version = 0;
  std::string config_hash;
  std::string device;
  std::string dtype;
  int64_t page_size_tokens = 0;
  int64_t num_layers = 0;
  int64_t in_channels = 0;
  int64_t audio_in_channels = 0;
  int64_t audio_sink_tokens = 0;
  std::map<std::string, int64_t> cache_dims;         //!< video_self, v2a, audio_self, a2v widths
  std::string rope_type;                             //!< "interleaved" or "split"
  std::string angle_dtype;                           //!< "float64" or "float32"
  std::string position_style;                        //!< "causal" or "patchifier"
  std::string position_dtype;                        //!< "float64" or "float32"
  std::map<std::string, RopeTableSpec> rope_tables;  //!< video, audio, video_cross, audio_cross
  std::vector<std::string> input_names;
  std::vector<std::string> output_names;
  std::string package_file;  //!< the .pt2 next to the manifest

  //! Parses manifest.json; ConfigError listing every problem.
  static ModelManifest from_json(const std::string& text);
};

// -------------------------------------------------------------------------------------------
// KV cache plan
// -------------------------------------------------------------------------------------------

//! Page-pool sizes for one engine.
struct KvPlan {
  PageTableSpec video;  //!< video table geometry at the sizing length
  PageTableSpec audio;  //!< audio table geometry at the sizing length
  int64_t video_pages_per_stream = 0;
  int64_t audio_pages_per_stream = 0;
  int64_t video_pool_pages = 0;  //!< max_streams reservations
  int64_t audio_pool_pages = 0;
  int64_t video_page_bytes = 0;  //!< one page of video_self + v2a, K and V, all layers
  int64_t audio_page_bytes = 0;  //!< one page of audio_self + a2v, K and V, all layers
  int64_t pool_bytes = 0;        //!< both pools

  //! The tables of one stream of `num_blocks` blocks; CacheCapacityError when it needs more
  //! pages than a stream's reservation (a window of None and a stream longer than max_stream_s).
  std::array<PageTableSpec, 2> stream_specs(int64_t num_blocks) const;
};

//! Bytes per element of a dtype name ("float32", "bfloat16", "float16"); ConfigError otherwise.
int64_t dtype_bytes(const std::string& dtype);
//! History blocks a window of `seconds` keeps (Python pipeline/stream.py window_blocks).
int64_t window_blocks(double seconds, int64_t block_frames);

//! Sizes the pools; CacheCapacityError (nothing allocated yet) when they exceed the budget.
KvPlan plan_kv_cache(const EngineConfig& config, const ModelManifest& manifest);

}  // namespace ofrt
