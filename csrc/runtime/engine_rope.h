// Per-block RoPE inputs of the denoiser pass: positions (model/positions.py) and the four rotary
// tables (AVTransformer.rope + rope.rope_tables), computed once per block by the engine's plan
// step and reused by all of the block's passes. The ATen operations are those of the Python
// reference in the same order, so the tables are bit-identical (tests/runtime/test_engine_rope.py).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "ofrt/block_schedule.h"
#include "ofrt/config.h"

namespace ofrt {

//! Video position bounds [1, 3, F*H*W, 2] of a block (positions.py video_positions).
at::Tensor video_positions(const ModelManifest& manifest, int64_t start_frame, int64_t num_frames,
                           int64_t grid_h, int64_t grid_w);
//! Audio position bounds [1, 1, T, 2] (positions.py audio_positions).
at::Tensor audio_positions(const ModelManifest& manifest, int64_t start_latent,
                           int64_t num_latents);

//! The eight rope inputs (cos, sin of video, audio, video_cross, audio_cross) of block `spec`,
//! in the dtype and on the device of the pass; the audio tables carry spec.sink_tokens identity
//! rows first.
std::vector<at::Tensor> rope_inputs(const ModelManifest& manifest, const BlockSpec& spec,
                                    int64_t grid_h, int64_t grid_w, at::ScalarType out_dtype,
                                    const at::Device& device);

}  // namespace ofrt
