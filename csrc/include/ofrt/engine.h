// Engine: the C++-owned streaming loop (design.md §3-§4).
//
// One Engine holds a compiled denoiser backend, the KV page pools sized for `max_streams`
// concurrent streams, and one worker thread. start_stream() reserves a stream's pages (or throws
// CacheCapacityError) and returns at once; the worker then generates the stream's blocks with no
// Python involved: block schedule, RoPE tables and slot tables (plan), keyed noise, S denoise
// passes with re-noise, the context-refresh pass, the paged append of its K/V, commit (table
// rotation) and the chunk copy-out. Chunks wait in a bounded per-stream queue; a stream whose
// queue is full is not scheduled (back-pressure), so a slow consumer never stalls other streams.
// Several streams share the worker round-robin, one block at a time. cancel() takes effect
// between passes: the block in flight is discarded, the stream's pages return to the pool and
// the engine stays usable. Errors in a block abort that stream only (StreamAbortedError at
// next_chunk). Thread-safe: every public method may be called from any thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ofrt/chunk.h"
#include "ofrt/config.h"

namespace ofrt {

//! Per-prompt text K/V of a stream (AVTransformer.encode_text, stacked over layers).
struct TextKv {
  at::Tensor video_k;  //!< [L, Lt, Dv]
  at::Tensor video_v;  //!< [L, Lt, Dv]
  at::Tensor audio_k;  //!< [L, Lt, Da]
  at::Tensor audio_v;  //!< [L, Lt, Da]
  at::Tensor mask;     //!< additive [1, 1, 1, Lt] (0 valid, -max padding)
};

//! A snapshot of one stream.
struct StreamStats {
  int64_t id = 0;
  std::string state;          //!< "running", "finished", "cancelled", "failed"
  int64_t blocks_done = 0;    //!< blocks generated (committed)
  int64_t passes_done = 0;    //!< transformer passes run, aborted blocks included
  int64_t queued_chunks = 0;  //!< chunks waiting for the consumer
  int64_t video_pages = 0;    //!< pages reserved (0 once released)
  int64_t audio_pages = 0;
  std::string error;                  //!< why the stream failed
  std::vector<int64_t> video_blocks;  //!< committed blocks the video table holds
  std::vector<int64_t> audio_blocks;  //!< committed blocks the audio table holds
};

//! A snapshot of the engine.
struct EngineStats {
  int64_t streams = 0;           //!< streams not yet closed
  int64_t video_pool_pages = 0;  //!< pages in the video pool
  int64_t audio_pool_pages = 0;
  int64_t video_free_pages = 0;  //!< pages not reserved by any stream
  int64_t audio_free_pages = 0;
  int64_t pool_bytes = 0;   //!< bytes of the eight pool tensors
  int64_t blocks_done = 0;  //!< blocks generated over the engine's life
};

class Engine {
 public:
  //! Parses `config_json` (EngineConfig.to_json()), reads `package_dir`/manifest.json, plans the
  //! pools (CacheCapacityError before any allocation), loads the backend, starts the worker.
  Engine(const std::string& config_json, const std::string& package_dir);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  //! Starts a stream of `num_blocks` blocks (<= 0: until cancelled) and returns its id.
  //! InputError for malformed text K/V; CacheCapacityError when its pages do not fit.
  int64_t start_stream(const TextKv& text, uint64_t seed, int64_t num_blocks);
  //! The next chunk, waiting up to `timeout_s` (< 0: forever); nullopt at the end of the stream
  //! or on timeout (`*timed_out`). StreamAbortedError when it was cancelled or failed.
  std::optional<StreamChunk> next_chunk(int64_t stream, double timeout_s, bool* timed_out);
  //! Requests cancellation (effective between passes); queued chunks are dropped.
  void cancel(int64_t stream);
  //! Cancels if needed and forgets the stream once the worker is done with it.
  void close_stream(int64_t stream);
  //! InputError for an unknown id.
  StreamStats stream_stats(int64_t stream) const;
  EngineStats stats() const;

  const EngineConfig& config() const;
  const ModelManifest& manifest() const;
  const KvPlan& plan() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ofrt
