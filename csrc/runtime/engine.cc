// Engine: lifecycle, the worker thread and stream scheduling; see include/ofrt/engine.h.
//
// Scheduling: one worker serves every stream round-robin, one block at a time. A stream is
// runnable when it is running, not cancelled and its queue has room; the worker sleeps on a
// condition variable otherwise, woken by start_stream, cancel/close and every chunk pop. [A thread
// per stream would let streams run concurrently, but they would compete for the same cores (or
// the same GPU stream) and a pass is already parallel inside.] The stream served next is joined
// by up to max_batch_streams - 1 further runnable streams with the same BatchKey (next block's
// shapes and history length), taken in round-robin order; the group runs its passes batched.
#include "ofrt/engine.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <condition_variable>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/check.h"
#include "kv_cache/cache_set.h"
#include "ofrt/backend.h"
#include "runtime/engine_stream.h"

namespace ofrt {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("cannot open the engine package manifest", {path + " is unreadable"});
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

at::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "bfloat16") return at::kBFloat16;
  if (dtype == "float16") return at::kHalf;
  return at::kFloat;  // validated by EngineConfig::from_json
}

const char* state_name(StreamState s) {
  switch (s) {
    case StreamState::kRunning:
      return "running";
    case StreamState::kFinished:
      return "finished";
    case StreamState::kCancelled:
      return "cancelled";
    case StreamState::kFailed:
      return "failed";
  }
  return "?";
}

void check_text(const TextKv& t, const ModelManifest& m, at::ScalarType dtype,
                const at::Device& device) {
  const int64_t lt = t.video_k.defined() ? t.video_k.size(1) : 0;
  const auto check = [&](const at::Tensor& x, const char* name, std::vector<int64_t> shape) {
    OFRT_CHECK(x.defined() && x.sizes().vec() == shape, InputError,
               name << " must be " << c10::IntArrayRef(shape) << ", got "
                    << (x.defined() ? x.sizes() : c10::IntArrayRef{}));
    OFRT_CHECK(x.scalar_type() == dtype && x.device() == device && x.is_contiguous(), InputError,
               name << " must be a contiguous " << dtype << " tensor on " << device);
  };
  check(t.video_k, "text video_k", {m.num_layers, lt, m.cache_dims.at("video_self")});
  check(t.video_v, "text video_v", {m.num_layers, lt, m.cache_dims.at("video_self")});
  check(t.audio_k, "text audio_k", {m.num_layers, lt, m.cache_dims.at("audio_self")});
  check(t.audio_v, "text audio_v", {m.num_layers, lt, m.cache_dims.at("audio_self")});
  check(t.mask, "text mask", {1, 1, 1, lt});
}

}  // namespace

struct Engine::Impl {
  EngineConfig config;
  ModelManifest manifest;
  KvPlan plan;
  std::unique_ptr<DenoiserBackend> backend;
  std::unique_ptr<KvPoolTensors> pools;
  std::unique_ptr<BlockRunner> runner;
  PagePool video_pool{0};
  PagePool audio_pool{0};

  mutable std::mutex mutex;
  std::condition_variable cv;
  std::map<int64_t, std::shared_ptr<Stream>> streams;
  int64_t next_id = 1;
  int64_t last_served = 0;
  int64_t blocks_done = 0;
  bool stop = false;
  std::thread worker;

  std::shared_ptr<Stream> pick_locked();
  std::vector<std::shared_ptr<Stream>> pick_group_locked();
  void finish_locked(Stream& s, StreamState state, const std::string& error);
  void after_block_locked(const std::shared_ptr<Stream>& s, std::optional<StreamChunk> chunk,
                          StreamState end, const std::string& error);
  void worker_loop();
  std::shared_ptr<Stream> find_locked(int64_t id) const;
  void wake() {
    { std::lock_guard<std::mutex> lock(mutex); }  // orders the notify after a waiter's check
    cv.notify_all();
  }
};

std::shared_ptr<Stream> Engine::Impl::find_locked(int64_t id) const {
  const auto it = streams.find(id);
  OFRT_CHECK(it != streams.end(), InputError, "no stream " << id << " (closed or never started)");
  return it->second;
}

std::shared_ptr<Stream> Engine::Impl::pick_locked() {
  const auto runnable = [](const Stream& s) {
    return s.state == StreamState::kRunning && !s.running && !s.cancel_requested.load() &&
           !s.queue.full();
  };
  // Round-robin: the first runnable stream after the one served last, wrapping around.
  for (auto it = streams.upper_bound(last_served); it != streams.end(); ++it) {
    if (runnable(*it->second)) return it->second;
  }
  for (auto it = streams.begin(); it != streams.end() && it->first <= last_served; ++it) {
    if (runnable(*it->second)) return it->second;
  }
  return nullptr;
}

std::vector<std::shared_ptr<Stream>> Engine::Impl::pick_group_locked() {
  std::vector<std::shared_ptr<Stream>> group;
  const std::shared_ptr<Stream> first = pick_locked();
  if (!first) return group;
  group.push_back(first);
  first->running = true;
  last_served = first->id;
  const BatchKey key = runner->batch_key(*first);
  while (static_cast<int64_t>(group.size()) < config.max_batch_streams) {
    const std::shared_ptr<Stream> next = pick_locked();  // round-robin after last_served
    if (!next || next == first) break;
    if (!(runner->batch_key(*next) == key)) break;  // keep the round-robin order fair
    next->running = true;
    last_served = next->id;
    group.push_back(next);
  }
  return group;
}

void Engine::Impl::finish_locked(Stream& s, StreamState state, const std::string& error) {
  if (s.state == StreamState::kRunning) {
    s.state = state;
    s.error = error;
  }
  if (!s.pages_released) {
    video_pool.release(s.video_table.pages());
    audio_pool.release(s.audio_table.pages());
    s.pages_released = true;
  }
  s.queue.close(/*drop=*/s.state == StreamState::kCancelled);
}

void Engine::Impl::after_block_locked(const std::shared_ptr<Stream>& s,
                                      std::optional<StreamChunk> chunk, StreamState end,
                                      const std::string& error) {
  s->running = false;
  if (s->cancel_requested.load() && end == StreamState::kRunning) end = StreamState::kCancelled;
  if (chunk && end == StreamState::kRunning) {
    chunk->ready_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - s->start_time).count();
    s->queue.try_push(std::move(*chunk));  // cannot fail: only the worker pushes, after full()
    s->blocks_done.fetch_add(1);
    ++blocks_done;
    if (s->next_block >= s->num_blocks) end = StreamState::kFinished;
  }
  if (end != StreamState::kRunning) finish_locked(*s, end, error);
  if (s->closed && s->state != StreamState::kRunning) streams.erase(s->id);
}

void Engine::Impl::worker_loop() {
  at::init_num_threads();
  if (config.num_threads) at::set_num_threads(static_cast<int>(*config.num_threads));
  c10::InferenceMode inference_mode;
  while (true) {
    std::vector<std::shared_ptr<Stream>> group;
    {
      std::unique_lock<std::mutex> lock(mutex);
      cv.wait(lock, [&] { return stop || !(group = pick_group_locked()).empty(); });
      if (stop) {
        for (const auto& s : group) s->running = false;
        return;
      }
    }
    std::vector<Stream*> raw;
    for (const auto& s : group) raw.push_back(s.get());
    std::vector<BlockOutcome> outcomes;
    std::string error;
    try {
      outcomes = runner->run(raw);
    } catch (const std::exception& e) {
      error = e.what();  // a failed batch fails every stream in it
    }
    std::lock_guard<std::mutex> lock(mutex);
    for (size_t i = 0; i < group.size(); ++i) {
      if (!error.empty()) {
        after_block_locked(group[i], std::nullopt, StreamState::kFailed, error);
      } else if (outcomes[i].cancelled) {
        after_block_locked(group[i], std::nullopt, StreamState::kCancelled, "");
      } else {
        after_block_locked(group[i], std::move(outcomes[i].chunk), StreamState::kRunning, "");
      }
    }
  }
}

// ------------------------------------------------------------------------------------ Engine

Engine::Engine(const std::string& config_json, const std::string& package_dir)
    : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.config = EngineConfig::from_json(config_json);
  d.manifest = ModelManifest::from_json(read_file(package_dir + "/manifest.json"));
  OFRT_CHECK(d.manifest.page_size_tokens == d.config.page_size_tokens, ConfigError,
             "the package was compiled for page_size_tokens=" << d.manifest.page_size_tokens
                                                              << ", the config asks for "
                                                              << d.config.page_size_tokens);
  d.plan = plan_kv_cache(d.config, d.manifest);  // CacheCapacityError before any allocation
  d.backend = make_denoiser_backend(d.config, d.manifest, package_dir);
  d.video_pool = PagePool(d.plan.video_pool_pages);
  d.audio_pool = PagePool(d.plan.audio_pool_pages);
  d.pools = std::make_unique<KvPoolTensors>(d.plan, d.manifest, scalar_type(d.config.dtype),
                                            at::Device(d.config.device));
  d.runner = std::make_unique<BlockRunner>(d.config, d.manifest, *d.backend, *d.pools);
  d.worker = std::thread([&d] { d.worker_loop(); });
}

Engine::~Engine() {
  Impl& d = *impl_;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    d.stop = true;
    for (auto& [id, s] : d.streams) {
      s->cancel_requested.store(true);
      s->queue.close(/*drop=*/true);
    }
  }
  d.cv.notify_all();
  if (d.worker.joinable()) d.worker.join();
}

int64_t Engine::start_stream(const TextKv& text, uint64_t seed, int64_t num_blocks) {
  Impl& d = *impl_;
  check_text(text, d.manifest, d.runner->dtype(), d.runner->device());
  const int64_t blocks = num_blocks > 0 ? num_blocks : kUnlimitedBlocks;
  const std::array<PageTableSpec, 2> specs = d.plan.stream_specs(blocks);
  BlockLayout layout = d.config.layout(blocks, d.manifest.audio_sink_tokens);
  std::shared_ptr<Stream> s;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    const int64_t nv = specs[0].pages_needed(), na = specs[1].pages_needed();
    if (nv > d.video_pool.free_pages() || na > d.audio_pool.free_pages()) {
      throw CacheCapacityError("no room for another stream: it needs " + std::to_string(nv) +
                               " video + " + std::to_string(na) + " audio pages, " +
                               std::to_string(d.video_pool.free_pages()) + " + " +
                               std::to_string(d.audio_pool.free_pages()) +
                               " are free (max_streams=" + std::to_string(d.config.max_streams) +
                               "); close a stream or raise max_streams");
    }
    PageTable video(specs[0], d.video_pool.allocate(nv));
    PageTable audio(specs[1], d.audio_pool.allocate(na));
    const int64_t id = d.next_id++;
    s = std::make_shared<Stream>(id, seed, blocks, std::move(layout), text, std::move(video),
                                 std::move(audio), static_cast<size_t>(d.config.queue_depth),
                                 [&d] { d.wake(); });
    d.streams[id] = s;
  }
  d.cv.notify_all();
  return s->id;
}

std::optional<StreamChunk> Engine::next_chunk(int64_t stream, double timeout_s, bool* timed_out) {
  std::shared_ptr<Stream> s;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    s = impl_->find_locked(stream);
  }
  bool late = false;
  std::optional<StreamChunk> chunk = s->queue.pop(timeout_s, &late);
  if (timed_out != nullptr) *timed_out = late;
  if (chunk || late) return chunk;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (s->state == StreamState::kCancelled) {
    throw StreamAbortedError("stream " + std::to_string(stream) + " was cancelled");
  }
  if (s->state == StreamState::kFailed) {
    throw StreamAbortedError("stream " + std::to_string(stream) + " failed: " + s->error);
  }
  return std::nullopt;
}

void Engine::cancel(int64_t stream) {
  Impl& d = *impl_;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    const std::shared_ptr<Stream> s = d.find_locked(stream);
    s->cancel_requested.store(true);
    if (!s->running) d.finish_locked(*s, StreamState::kCancelled, "");
    s->queue.close(/*drop=*/true);
  }
  d.cv.notify_all();
}

void Engine::close_stream(int64_t stream) {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  const auto it = d.streams.find(stream);
  if (it == d.streams.end()) return;
  const std::shared_ptr<Stream> s = it->second;
  s->closed = true;
  s->cancel_requested.store(true);
  if (!s->running) {
    d.finish_locked(*s, StreamState::kCancelled, "");
    d.streams.erase(it);
  }
}

StreamStats Engine::stream_stats(int64_t stream) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const std::shared_ptr<Stream> s = impl_->find_locked(stream);
  StreamStats st;
  st.id = s->id;
  st.state = state_name(s->state);
  st.blocks_done = s->blocks_done.load();
  st.passes_done = s->passes_done.load();
  st.queued_chunks = static_cast<int64_t>(s->queue.size());
  st.video_pages = s->pages_released ? 0 : static_cast<int64_t>(s->video_table.pages().size());
  st.audio_pages = s->pages_released ? 0 : static_cast<int64_t>(s->audio_table.pages().size());
  st.error = s->error;
  if (!s->running) {
    st.video_blocks = s->video_table.committed_blocks();
    st.audio_blocks = s->audio_table.committed_blocks();
  }
  return st;
}

EngineStats Engine::stats() const {
  const Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  EngineStats st;
  st.streams = static_cast<int64_t>(d.streams.size());
  st.video_pool_pages = d.video_pool.num_pages();
  st.audio_pool_pages = d.audio_pool.num_pages();
  st.video_free_pages = d.video_pool.free_pages();
  st.audio_free_pages = d.audio_pool.free_pages();
  st.pool_bytes = d.pools->nbytes();
  st.blocks_done = d.blocks_done;
  return st;
}

const EngineConfig& Engine::config() const { return impl_->config; }
const ModelManifest& Engine::manifest() const { return impl_->manifest; }
const KvPlan& Engine::plan() const { return impl_->plan; }

}  // namespace ofrt
