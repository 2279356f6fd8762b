// The per-stream state of the engine and the block runner (engine_stream.cc): private to
// csrc/runtime. The runner is the C++ twin of pipeline/stream.py StreamingGenerator.generate_block.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kv_cache/cache_set.h"
#include "ofrt/backend.h"
#include "ofrt/block_schedule.h"
#include "ofrt/chunk.h"
#include "ofrt/config.h"
#include "ofrt/engine.h"
#include "ofrt/kv_cache.h"
#include "runtime/chunk_queue.h"

namespace ofrt {

enum class StreamState { kRunning, kFinished, kCancelled, kFailed };

//! One stream. Fields marked (worker) are touched by the worker only while `running`; the rest
//! are guarded by the engine mutex, except the queue (its own lock) and the atomics.
struct Stream {
  Stream(int64_t id, uint64_t seed, int64_t num_blocks, BlockLayout layout, TextKv text,
         PageTable video_table, PageTable audio_table, size_t queue_depth,
         std::function<void()> on_pop);

  const int64_t id;
  const uint64_t seed;
  const int64_t num_blocks;  //!< kUnlimitedBlocks for open-ended streams
  const BlockLayout layout;
  const TextKv text;
  PageTable video_table;     //!< (worker)
  PageTable audio_table;     //!< (worker)
  at::Tensor video_history;  //!< device copy of video_table.history_slots() (worker)
  at::Tensor audio_history;  //!< (worker)
  int64_t next_block = 0;    //!< (worker)
  ChunkQueue queue;
  std::atomic<bool> cancel_requested{false};
  std::atomic<int64_t> passes_done{0};
  std::atomic<int64_t> blocks_done{0};
  StreamState state = StreamState::kRunning;
  bool running = false;  //!< the worker is generating a block of it
  bool closed = false;   //!< close_stream() was called
  bool pages_released = false;
  std::string error;
  const std::chrono::steady_clock::time_point start_time;
};

//! What the runner made of one stream of a batch.
struct BlockOutcome {
  std::optional<StreamChunk> chunk;  //!< the committed block (nullopt when cancelled)
  bool cancelled = false;            //!< cancellation was requested between two passes
};

//! Shapes that must agree for streams to share a pass (see BlockRunner::run).
struct BatchKey {
  int64_t video_frames, audio_frames, sink_tokens, video_history, audio_history, text_tokens;
  bool operator==(const BatchKey& o) const {
    return video_frames == o.video_frames && audio_frames == o.audio_frames &&
           sink_tokens == o.sink_tokens && video_history == o.video_history &&
           audio_history == o.audio_history && text_tokens == o.text_tokens;
  }
};

//! Generates blocks; shared by all streams of an engine, used by the worker thread only.
class BlockRunner {
 public:
  BlockRunner(const EngineConfig& config, const ModelManifest& manifest, DenoiserBackend& backend,
              KvPoolTensors& pools);

  //! The shapes of `stream`'s next block (streams with equal keys can be batched).
  BatchKey batch_key(const Stream& stream) const;

  //! Generates, commits and returns block `next_block` of every stream of `group` (equal batch
  //! keys) in batched passes, then increments their next_block. A stream whose cancellation is
  //! requested leaves the batch after the current pass and its block is not committed.
  std::vector<BlockOutcome> run(const std::vector<Stream*>& group);

  at::ScalarType dtype() const { return dtype_; }
  const at::Device& device() const { return device_; }
  //! An int64 slot tensor on the engine device.
  at::Tensor slots(const std::vector<int64_t>& values) const;

 private:
  struct Latents {
    at::Tensor video;  // tokens [1, Tv, C]
    at::Tensor audio;  // [1, Ta, C]
  };
  struct Member;  // one stream's block in flight (engine_stream.cc)
  Latents noise(const Stream& s, const BlockSpec& spec, int64_t step) const;
  std::vector<at::Tensor> stream_inputs(const Stream& s, const BlockSpec& spec) const;
  std::vector<at::Tensor> batch_inputs(const std::vector<Member*>& members) const;
  std::vector<at::Tensor> pass(std::vector<at::Tensor>& inputs, const std::vector<Member*>& members,
                               bool refresh, float sigma);
  void drop_cancelled(std::vector<Member*>& members, std::vector<at::Tensor>& inputs) const;
  void commit(Stream& s, const std::vector<at::Tensor>& outputs, int64_t row) const;
  StreamChunk output(const BlockSpec& spec, const Latents& x0) const;
  size_t index_of(const std::string& name) const;

  const EngineConfig& config_;
  const ModelManifest& manifest_;
  DenoiserBackend& backend_;
  KvPoolTensors& pools_;
  at::ScalarType dtype_;
  at::Device device_;
  std::vector<float> sigmas_;
  std::map<std::string, size_t> input_index_;
};

}  // namespace ofrt
