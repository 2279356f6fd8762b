// RoPE positions and tables; see engine_rope.h. Each function names the Python function it
// mirrors; keep the operation order identical (bit-exactness depends on it).
// Per-operator ATen headers (a fraction of ATen.h's compile time).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS

#include "runtime/engine_rope.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros_like.h>

#include <string>
#include <vector>

#include "common/check.h"

namespace ofrt {
namespace {

at::ScalarType dtype_named(const std::string& name) {
  if (name == "float64") return at::kDouble;
  if (name == "float32") return at::kFloat;
  OFRT_THROW(ConfigError, "unknown precision '" << name << "'");
}

at::Tensor arange(int64_t start, int64_t count, at::ScalarType dtype) {
  return at::arange(start, start + count, at::TensorOptions().dtype(dtype));
}

// positions.py _causal_video_time_s: ((t*8 + 1 - 8).clamp(0) + ((t+1)*8 + 1 - 8).clamp(0)) / 2
// / 24.
at::Tensor causal_video_time_s(int64_t start, int64_t count, at::ScalarType dtype) {
  const at::Tensor k = arange(start, count, dtype);
  const int64_t s = kVideoTemporalStride;
  const at::Tensor lo = k.mul(s).add(1).sub(s).clamp_min(0);
  const at::Tensor hi = k.add(1).mul(s).add(1).sub(s).clamp_min(0);
  return lo.add(hi).div(2.0).div(kVideoFps);
}

// positions.py _causal_audio_time_s: ((t*4 + 1 - 4).clamp(0) + ((t+1)*4 + 1 - 4).clamp(0)) / 2 *
// 160 / 16000.
at::Tensor causal_audio_time_s(int64_t start, int64_t count, at::ScalarType dtype) {
  const at::Tensor t = arange(start, count, dtype);
  const int64_t s = kAudioLatentMelStride;
  const at::Tensor lo = t.mul(s).add(1).sub(s).clamp_min(0);
  const at::Tensor hi = t.add(1).mul(s).add(1).sub(s).clamp_min(0);
  return lo.add(hi).div(2.0).mul(160).div(16000);
}

// positions.py video_latent_bounds_s / audio_latent_bounds_s: float64 [count, 2] seconds.
at::Tensor latent_bounds_s(int64_t start, int64_t count, int64_t stride, bool video) {
  const at::Tensor k = arange(start, count, at::kDouble);
  const at::Tensor lo = k.mul(stride).sub(stride - 1).clamp_min(0);
  at::Tensor hi = k.mul(stride).add(1);
  if (video) hi = hi.clamp_min(0);
  return at::stack({lo, hi}, -1).div(video ? kVideoFps : kAudioMelFramesPerS);
}

// rope.py _angles: [B, T, n * A] angles from bounds [B, A, T, 2].
at::Tensor angles(const at::Tensor& positions, const RopeTableSpec& table, at::ScalarType dtype) {
  const at::Tensor pos = positions.to(dtype);
  const at::Tensor mid = pos.select(-1, 0).add(pos.select(-1, 1)).div(2.0);  // [B, A, T]
  std::vector<at::Tensor> fracs;
  for (int64_t a = 0; a < mid.size(1); ++a) fracs.push_back(mid.select(1, a).div(table.max_pos[a]));
  const at::Tensor frac = at::stack(fracs, -1);  // [B, T, A]
  const at::Tensor grid = at::tensor(table.grid, at::TensorOptions().dtype(at::kDouble)).to(dtype);
  const at::Tensor freqs = grid.mul(frac.unsqueeze(-1).mul(2).sub(1));  // [B, T, A, n]
  return freqs.transpose(-1, -2).flatten(2);
}

// rope.py rope_tables, for one table of the manifest.
std::vector<at::Tensor> rope_table(const ModelManifest& m, const at::Tensor& positions,
                                   const RopeTableSpec& table, at::ScalarType out_dtype) {
  const at::ScalarType dtype = dtype_named(m.angle_dtype);
  const at::Tensor freqs = angles(positions, table, dtype);
  const int64_t b = freqs.size(0), t = freqs.size(1);
  at::Tensor cos, sin;
  if (m.rope_type == "split") {
    const int64_t pad = table.dim / 2 - freqs.size(-1);
    cos = freqs.cos();
    sin = freqs.sin();
    cos = at::cat({at::ones_like(cos.narrow(-1, 0, pad)), cos}, -1);
    sin = at::cat({at::zeros_like(sin.narrow(-1, 0, pad)), sin}, -1);
    cos = cos.reshape({b, t, table.heads, -1}).transpose(1, 2);
    sin = sin.reshape({b, t, table.heads, -1}).transpose(1, 2);
  } else {
    const int64_t pad = table.dim % (2 * static_cast<int64_t>(table.max_pos.size()));
    cos = freqs.cos().repeat_interleave(2, -1);
    sin = freqs.sin().repeat_interleave(2, -1);
    cos = at::cat({at::ones_like(cos.narrow(-1, 0, pad)), cos}, -1);
    sin = at::cat({at::zeros_like(sin.narrow(-1, 0, pad)), sin}, -1);
  }
  return {cos.to(out_dtype).contiguous(), sin.to(out_dtype).contiguous()};
}

// rope.py identity_rows: `rows` identity rotations first along the token axis (-2).
void prepend_identity(std::vector<at::Tensor>& cos_sin, int64_t rows) {
  std::vector<int64_t> shape = cos_sin[0].sizes().vec();
  shape[shape.size() - 2] = rows;
  const at::Tensor ones = at::ones(shape, cos_sin[0].options());
  cos_sin[0] = at::cat({ones, cos_sin[0]}, -2);
  cos_sin[1] = at::cat({at::zeros_like(ones), cos_sin[1]}, -2);
}

}  // namespace

at::Tensor video_positions(const ModelManifest& m, int64_t start_frame, int64_t num_frames,
                           int64_t grid_h, int64_t grid_w) {
  const at::ScalarType dtype = dtype_named(m.position_dtype);
  at::Tensor t;
  if (m.position_style == "causal") {
    const at::Tensor mid = causal_video_time_s(start_frame, num_frames, dtype);
    t = at::stack({mid, mid}, -1).to(at::kDouble);
  } else {
    t = latent_bounds_s(start_frame, num_frames, kVideoTemporalStride, /*video=*/true);
  }
  const int64_t st = kVideoSpatialStride;
  const at::Tensor rows = arange(0, grid_h, at::kDouble);
  const at::Tensor cols = arange(0, grid_w, at::kDouble);
  const at::Tensor h = at::stack({rows.mul(st), rows.mul(st).add(st)}, -1);
  const at::Tensor w = at::stack({cols.mul(st), cols.mul(st).add(st)}, -1);
  const std::vector<int64_t> shape = {num_frames, grid_h, grid_w, 2};
  const at::Tensor tt = t.unsqueeze(1).unsqueeze(1).expand(shape);
  const at::Tensor hh = h.unsqueeze(0).unsqueeze(2).expand(shape);
  const at::Tensor ww = w.unsqueeze(0).unsqueeze(0).expand(shape);
  const at::Tensor pos = at::stack({tt, hh, ww}, 0).reshape({3, -1, 2});
  return pos.to(dtype).unsqueeze(0).contiguous();
}

at::Tensor audio_positions(const ModelManifest& m, int64_t start_latent, int64_t num_latents) {
  const at::ScalarType dtype = dtype_named(m.position_dtype);
  at::Tensor pos;
  if (m.position_style == "causal") {
    const at::Tensor mid = causal_audio_time_s(start_latent, num_latents, dtype);
    pos = at::stack({mid, mid}, -1);
  } else {
    pos = latent_bounds_s(start_latent, num_latents, kAudioLatentMelStride, /*video=*/false)
              .to(dtype);
  }
  return pos.unsqueeze(0).unsqueeze(0).contiguous();
}

std::vector<at::Tensor> rope_inputs(const ModelManifest& m, const BlockSpec& spec, int64_t grid_h,
                                    int64_t grid_w, at::ScalarType out_dtype,
                                    const at::Device& device) {
  const at::Tensor vpos = video_positions(m, spec.video_start, spec.video_frames, grid_h, grid_w);
  const at::Tensor apos = audio_positions(m, spec.audio_start, spec.audio_frames);
  std::vector<at::Tensor> video = rope_table(m, vpos, m.rope_tables.at("video"), out_dtype);
  std::vector<at::Tensor> audio = rope_table(m, apos, m.rope_tables.at("audio"), out_dtype);
  std::vector<at::Tensor> vcross =
      rope_table(m, vpos.narrow(1, 0, 1), m.rope_tables.at("video_cross"), out_dtype);
  std::vector<at::Tensor> across = rope_table(m, apos, m.rope_tables.at("audio_cross"), out_dtype);
  if (spec.sink_tokens > 0) {
    prepend_identity(audio, spec.sink_tokens);
    prepend_identity(across, spec.sink_tokens);
  }
  std::vector<at::Tensor> out;
  for (auto* pair : {&video, &audio, &vcross, &across}) {
    for (const at::Tensor& x : *pair) out.push_back(x.to(device).contiguous());
  }
  return out;
}

}  // namespace ofrt
