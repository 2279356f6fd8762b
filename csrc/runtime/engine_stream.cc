// BlockRunner: one block of each stream of a batch, the C++ twin of pipeline/stream.py
// generate_block:
//
//   plan     block spec, RoPE tables (once per block, engine_rope.cc), sink rows
//   noise    keyed noise for step 0; x = noise
//   denoise  for each sigma_i: x0 = pass(x, sigma_i); x = renoise(x0, noise(i + 1), sigma_{i+1})
//   refresh  pass(x0 [re-noised to sigma_ctx if > 0], sigma_ctx); its K/V are appended to the
//            block's in-flight pages, then both page tables commit (rotation) and the history
//            slot tables are rewritten on the device
//   output   x0 of the last denoise pass, copied out as float32 [F, C, H, W] and [T, C]
//
// Batching: streams with equal BatchKeys run every pass together; per-stream inputs (tokens,
// sigma, RoPE tables, text K/V and mask, history slots) are concatenated as the pass expects
// (compile/denoiser_pass.py) and the outputs are split by row. Noise stays keyed per stream, so a
// stream's blocks do not depend on what it was batched with (up to GEMM summation order).
// [Padding unequal histories to one length would batch more often but needs a mask input the
// single-stream pass does not have.]
//
// Re-noising follows schedule.py renoise bit for bit: (1 - s) * x0.float() + s * eps.float(),
// eps first cast to the model dtype as the reference does. Cancellation is checked after every
// pass; a cancelled stream leaves the batch and its block is never committed.
// Per-operator ATen headers (a fraction of ATen.h's compile time).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS

#include "runtime/engine_stream.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/add.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/check.h"
#include "ofrt/noise.h"
#include "runtime/engine_rope.h"

namespace ofrt {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

at::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "float32") return at::kFloat;
  if (dtype == "bfloat16") return at::kBFloat16;
  if (dtype == "float16") return at::kHalf;
  OFRT_THROW(ConfigError, "unknown dtype '" << dtype << "'");
}

// schedule.py renoise, in fp32, cast back to x0's dtype.
at::Tensor renoise(const at::Tensor& x0, const at::Tensor& eps, double sigma_next) {
  const at::Tensor mixed = at::add(at::mul(x0.to(at::kFloat), 1.0 - sigma_next),
                                   at::mul(eps.to(at::kFloat), sigma_next));
  return mixed.to(x0.scalar_type());
}

std::vector<float> to_host_floats(const at::Tensor& t) {
  const at::Tensor host = t.to(at::kCPU, at::kFloat).contiguous();
  std::vector<float> out(static_cast<size_t>(host.numel()));
  std::memcpy(out.data(), host.data_ptr<float>(), out.size() * sizeof(float));
  return out;
}

}  // namespace

Stream::Stream(int64_t id_, uint64_t seed_, int64_t num_blocks_, BlockLayout layout_, TextKv text_,
               PageTable video, PageTable audio, size_t queue_depth, std::function<void()> on_pop)
    : id(id_),
      seed(seed_),
      num_blocks(num_blocks_),
      layout(std::move(layout_)),
      text(std::move(text_)),
      video_table(std::move(video)),
      audio_table(std::move(audio)),
      queue(queue_depth, std::move(on_pop)),
      start_time(Clock::now()) {}

BlockRunner::BlockRunner(const EngineConfig& config, const ModelManifest& manifest,
                         DenoiserBackend& backend, KvPoolTensors& pools)
    : config_(config),
      manifest_(manifest),
      backend_(backend),
      pools_(pools),
      dtype_(scalar_type(config.dtype)),
      device_(config.device),
      sigmas_(config.pass_sigmas()) {
  for (size_t i = 0; i < manifest.input_names.size(); ++i) {
    input_index_[manifest.input_names[i]] = i;
  }
  OFRT_CHECK(!sigmas_.empty(), ConfigError, "the denoising_step_list has no denoise pass");
  OFRT_CHECK(manifest.output_names.size() == 10, ConfigError,
             "the package's pass has " << manifest.output_names.size() << " outputs, expected 10");
}

size_t BlockRunner::index_of(const std::string& name) const {
  const auto it = input_index_.find(name);
  OFRT_CHECK(it != input_index_.end(), ConfigError,
             "the package's pass has no input '" << name << "' (stale package?)");
  return it->second;
}

at::Tensor BlockRunner::slots(const std::vector<int64_t>& values) const {
  return at::tensor(values, at::TensorOptions().dtype(at::kLong)).to(device_);
}

BlockRunner::Latents BlockRunner::noise(const Stream& s, const BlockSpec& spec,
                                        int64_t step) const {
  const int64_t f = spec.video_frames, c = manifest_.in_channels;
  const int64_t h = config_.latent_grid_hw[0], w = config_.latent_grid_hw[1];
  const auto draw = [&](int64_t stream, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (const int64_t d : shape) n *= d;
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
    keyed_normal(noise_key(s.seed, spec.index, step, stream), t.data_ptr<float>(), n);
    return t;
  };
  // Video noise is drawn in latent order [1, F, C, H, W] (as the reference), then patchified.
  const at::Tensor video = draw(kNoiseStreamVideo, {1, f, c, h, w});
  const at::Tensor audio =
      draw(kNoiseStreamAudio, {1, spec.audio_frames, manifest_.audio_in_channels});
  return {
      video.permute({0, 1, 3, 4, 2}).reshape({1, f * h * w, c}).to(device_, dtype_).contiguous(),
      audio.to(device_, dtype_)};
}

struct BlockRunner::Member {
  Stream* stream = nullptr;
  size_t slot = 0;  // index in the group / outcome vector
  BlockSpec spec;
  std::vector<at::Tensor> inputs;  // this stream's pass inputs (tokens and sigma unset)
  Latents x;                       // input of the next pass
  Latents x0;                      // output of the last denoise pass
  StageTimings t;
  Clock::time_point start;
};

BatchKey BlockRunner::batch_key(const Stream& s) const {
  const BlockSpec spec = s.layout.block(s.next_block);
  return {spec.video_frames,
          spec.audio_frames,
          manifest_.audio_sink_tokens > 0 ? spec.sink_tokens : 0,
          static_cast<int64_t>(s.video_table.history_slots().size()),
          static_cast<int64_t>(s.audio_table.history_slots().size()),
          s.text.mask.size(-1)};
}

std::vector<at::Tensor> BlockRunner::stream_inputs(const Stream& s, const BlockSpec& spec) const {
  std::vector<at::Tensor> in(manifest_.input_names.size());
  const std::vector<at::Tensor> rope = rope_inputs(manifest_, spec, config_.latent_grid_hw[0],
                                                   config_.latent_grid_hw[1], dtype_, device_);
  const char* const tables[] = {"video", "audio", "video_cross", "audio_cross"};
  for (int t = 0; t < 4; ++t) {
    in[index_of(std::string("rope_") + tables[t] + "_cos")] = rope[2 * t];
    in[index_of(std::string("rope_") + tables[t] + "_sin")] = rope[2 * t + 1];
  }
  const int64_t sinks = manifest_.audio_sink_tokens > 0 ? spec.sink_tokens : 0;
  in[index_of("sink_rows")] = at::arange(sinks, at::TensorOptions().dtype(at::kLong)).to(device_);
  in[index_of("text_video_k")] = s.text.video_k;
  in[index_of("text_video_v")] = s.text.video_v;
  in[index_of("text_audio_k")] = s.text.audio_k;
  in[index_of("text_audio_v")] = s.text.audio_v;
  in[index_of("text_mask")] = s.text.mask;
  const char* const caches[] = {"video_self", "v2a", "audio_self", "a2v"};
  for (int c = 0; c < 4; ++c) {
    in[index_of(std::string(caches[c]) + "_k")] = pools_.tensors()[2 * c];
    in[index_of(std::string(caches[c]) + "_v")] = pools_.tensors()[2 * c + 1];
  }
  in[index_of("video_slots")] = s.video_history;
  in[index_of("audio_slots")] = s.audio_history;
  return in;
}

std::vector<at::Tensor> BlockRunner::batch_inputs(const std::vector<Member*>& members) const {
  std::vector<at::Tensor> in = members.front()->inputs;
  if (members.size() == 1) return in;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string& name = manifest_.input_names[i];
    int64_t dim = -1;  // the axis the pass concatenates streams on (denoiser_pass.py)
    if (name.rfind("rope_", 0) == 0 || name == "text_mask" || name == "video_slots" ||
        name == "audio_slots") {
      dim = 0;
    } else if (name.rfind("text_", 0) == 0) {
      dim = 1;  // text K/V [L, Lt, D] -> [L, B * Lt, D]
    }
    if (dim < 0 || !in[i].defined()) continue;
    std::vector<at::Tensor> parts;
    for (const Member* m : members) parts.push_back(m->inputs[i]);
    in[i] = at::cat(parts, dim);
  }
  return in;
}

std::vector<at::Tensor> BlockRunner::pass(std::vector<at::Tensor>& inputs,
                                          const std::vector<Member*>& members, bool refresh,
                                          float sigma) {
  std::vector<at::Tensor> video, audio;
  for (const Member* m : members) {
    video.push_back(m->x.video);
    audio.push_back(m->x.audio);
  }
  const auto batch = static_cast<int64_t>(members.size());
  inputs[index_of("video_tokens")] = batch == 1 ? video[0] : at::cat(video, 0);
  inputs[index_of("audio_tokens")] = batch == 1 ? audio[0] : at::cat(audio, 0);
  inputs[index_of("sigma")] =
      at::full({batch}, sigma, at::TensorOptions().dtype(at::kFloat)).to(device_);
  const Clock::time_point t0 = Clock::now();
  std::vector<at::Tensor> out = backend_.run(inputs);
  const double ms = ms_since(t0);
  for (Member* m : members) {
    (refresh ? m->t.refresh_ms : m->t.denoise_ms) += ms;
    m->t.pass_ms.push_back(ms);
    m->stream->passes_done.fetch_add(1);
  }
  if (config_.debug_pass_delay_ms > 0) {
    std::this_thread::sleep_for(
        std::chrono::duration<double, std::milli>(config_.debug_pass_delay_ms));
  }
  return out;
}

void BlockRunner::drop_cancelled(std::vector<Member*>& members,
                                 std::vector<at::Tensor>& inputs) const {
  const size_t before = members.size();
  members.erase(std::remove_if(members.begin(), members.end(),
                               [](const Member* m) { return m->stream->cancel_requested.load(); }),
                members.end());
  if (!members.empty() && members.size() != before) inputs = batch_inputs(members);
}

void BlockRunner::commit(Stream& s, const std::vector<at::Tensor>& outputs, int64_t row) const {
  const int64_t batch = outputs[0].size(0);
  std::vector<at::Tensor> kv;
  for (size_t i = 2; i < outputs.size(); ++i) {
    const int64_t tokens = outputs[i].size(1) / batch;
    kv.push_back(outputs[i].narrow(1, row * tokens, tokens));
  }
  pools_.append(kv, slots(s.video_table.inflight_slots()), slots(s.audio_table.inflight_slots()));
  s.video_table.commit();
  s.audio_table.commit();
  // The device tables are rewritten here only: every pass of the next block reads these.
  s.video_history = slots(s.video_table.history_slots());
  s.audio_history = slots(s.audio_table.history_slots());
}

StreamChunk BlockRunner::output(const BlockSpec& spec, const Latents& x0) const {
  StreamChunk chunk;
  chunk.spec = spec;
  const int64_t f = spec.video_frames, c = manifest_.in_channels;
  const int64_t h = config_.latent_grid_hw[0], w = config_.latent_grid_hw[1];
  chunk.video_latents = to_host_floats(x0.video.reshape({f, h, w, c}).permute({0, 3, 1, 2}));
  chunk.video_shape = {f, c, h, w};
  chunk.audio_latents = to_host_floats(x0.audio[0]);
  chunk.audio_shape = {x0.audio.size(1), x0.audio.size(2)};
  return chunk;
}

std::vector<BlockOutcome> BlockRunner::run(const std::vector<Stream*>& group) {
  std::vector<BlockOutcome> outcomes(group.size());
  std::vector<Member> storage(group.size());
  std::vector<Member*> members;
  for (size_t i = 0; i < group.size(); ++i) {
    Member& m = storage[i];
    Stream& s = *group[i];
    m.stream = &s;
    m.slot = i;
    m.start = Clock::now();
    m.spec = s.layout.block(s.next_block);
    if (!s.video_history.defined()) {
      s.video_history = slots(s.video_table.history_slots());
      s.audio_history = slots(s.audio_table.history_slots());
    }
    m.inputs = stream_inputs(s, m.spec);
    m.t.plan_ms = ms_since(m.start);
    m.t.batch_streams = static_cast<int64_t>(group.size());
    const Clock::time_point t0 = Clock::now();
    m.x = noise(s, m.spec, 0);
    m.t.noise_ms += ms_since(t0);
    members.push_back(&m);
  }
  std::vector<at::Tensor> inputs = batch_inputs(members);
  for (size_t i = 0; i < sigmas_.size() && !members.empty(); ++i) {
    const std::vector<at::Tensor> out = pass(inputs, members, /*refresh=*/false, sigmas_[i]);
    for (size_t b = 0; b < members.size(); ++b) {
      Member& m = *members[b];
      m.x0 = {out[0].narrow(0, static_cast<int64_t>(b), 1),
              out[1].narrow(0, static_cast<int64_t>(b), 1)};
      const Clock::time_point t0 = Clock::now();
      if (i + 1 < sigmas_.size()) {
        const Latents eps = noise(*m.stream, m.spec, static_cast<int64_t>(i) + 1);
        m.x = {renoise(m.x0.video, eps.video, sigmas_[i + 1]),
               renoise(m.x0.audio, eps.audio, sigmas_[i + 1])};
      }
      m.t.noise_ms += ms_since(t0);
    }
    drop_cancelled(members, inputs);
  }
  const double s_ctx = static_cast<double>(config_.context_noise) / 1000.0;
  for (Member* m : members) {
    m->x = m->x0;
    if (s_ctx > 0) {
      const Clock::time_point t0 = Clock::now();
      const Latents eps = noise(*m->stream, m->spec, static_cast<int64_t>(sigmas_.size()));
      m->x = {renoise(m->x0.video, eps.video, s_ctx), renoise(m->x0.audio, eps.audio, s_ctx)};
      m->t.noise_ms += ms_since(t0);
    }
  }
  std::vector<at::Tensor> out;
  if (!members.empty()) out = pass(inputs, members, /*refresh=*/true, static_cast<float>(s_ctx));
  for (size_t b = 0; b < members.size(); ++b) {
    Member& m = *members[b];
    Stream& s = *m.stream;
    if (s.cancel_requested.load()) continue;  // never committed
    Clock::time_point t0 = Clock::now();
    commit(s, out, static_cast<int64_t>(b));
    m.t.commit_ms = ms_since(t0);
    t0 = Clock::now();
    StreamChunk chunk = output(m.spec, m.x0);
    m.t.output_ms = ms_since(t0);
    m.t.block_ms = ms_since(m.start);
    chunk.timings = std::move(m.t);
    ++s.next_block;
    outcomes[m.slot].chunk = std::move(chunk);
  }
  for (size_t i = 0; i < group.size(); ++i) outcomes[i].cancelled = !outcomes[i].chunk.has_value();
  return outcomes;
}

}  // namespace ofrt
