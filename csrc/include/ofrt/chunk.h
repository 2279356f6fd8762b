// StreamChunk: one generated block as it leaves the engine. Framework-free: latents are host
// float32 buffers (copied out of the backend's tensors once per block), so the queue and its tests
// need no tensor library.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "ofrt/block_schedule.h"

namespace ofrt {

//! Wall time of each stage of one block, in milliseconds (steady clock, worker thread).
struct StageTimings {
  double plan_ms = 0.0;         //!< block schedule, positions, RoPE tables, slot tables
  double noise_ms = 0.0;        //!< keyed noise draws and re-noising
  double denoise_ms = 0.0;      //!< the S denoise passes together
  double refresh_ms = 0.0;      //!< the context-refresh pass
  double commit_ms = 0.0;       //!< paged append of the refresh K/V, rotation, table rewrite
  double output_ms = 0.0;       //!< copying the latents out
  double block_ms = 0.0;        //!< the whole block, queue push excluded
  std::vector<double> pass_ms;  //!< every pass in order (denoise..., refresh)
  int64_t batch_streams =
      1;  //!< streams that shared this block's passes (pass times are the batch's)
};

//! One generated block.
struct StreamChunk {
  BlockSpec spec;                        //!< index, latent ranges, media spans and timestamps
  std::vector<float> video_latents;      //!< clean video latents, row-major [F, C, H, W]
  std::array<int64_t, 4> video_shape{};  //!< [F, C, H, W]
  std::vector<float> audio_latents;      //!< clean audio latents (sinks never appear), [T, C]
  std::array<int64_t, 2> audio_shape{};  //!< [T, C]
  StageTimings timings;                  //!< per-stage wall times
  double ready_s = 0.0;                  //!< seconds from stream start to the chunk being queued
};

}  // namespace ofrt
