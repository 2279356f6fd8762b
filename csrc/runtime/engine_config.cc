// EngineConfig / ModelManifest parsing and the KV cache plan; see include/ofrt/config.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "common/check.h"
#include "common/py_format.h"
#include "ofrt/config.h"
#include "ofrt/errors.h"
#include "runtime/engine_json.h"

namespace ofrt {
namespace {

const char* const kDevices[] = {"cpu", "cuda"};
const char* const kTemporalCaches[] = {"video_self", "v2a", "audio_self", "a2v"};
const char* const kRopeTables[] = {"video", "audio", "video_cross", "audio_cross"};

bool known_device(const std::string& device) {
  const std::string base = device.substr(0, device.find(':'));
  return std::any_of(std::begin(kDevices), std::end(kDevices),
                     [&](const char* d) { return base == d; });
}

void check_config(const EngineConfig& c, std::vector<std::string>& p) {
  if (!known_device(c.device))
    p.push_back("device must be 'cpu' or 'cuda[:N]', got '" + c.device + "'");
  if (c.dtype != "float32" && c.dtype != "bfloat16" && c.dtype != "float16") {
    p.push_back("dtype must be float32, bfloat16 or float16, got '" + c.dtype + "'");
  }
  if (c.backend != "aoti") p.push_back("backend must be 'aoti', got '" + c.backend + "'");
  if (c.page_size_tokens < 1) p.push_back("page_size_tokens must be >= 1");
  const double block_s =
      static_cast<double>(c.block_frames * kVideoTemporalStride) / static_cast<double>(kVideoFps);
  for (const auto& [name, v] : {std::pair{"video_window_s", c.video_window_s},
                                std::pair{"audio_window_s", c.audio_window_s}}) {
    if (v && !(std::isfinite(*v) && *v >= block_s - 1e-9)) {
      p.push_back(std::string(name) + " must be at least one block or None");
    }
  }
  if (!(std::isfinite(c.max_stream_s) && c.max_stream_s > 0))
    p.push_back("max_stream_s must be > 0");
  if (c.max_streams < 1) p.push_back("max_streams must be >= 1");
  if (c.max_batch_streams < 1) p.push_back("max_batch_streams must be >= 1");
  if (c.kv_budget_bytes && *c.kv_budget_bytes < 1)
    p.push_back("kv_budget_bytes must be >= 1 or None");
  if (c.queue_depth < 1) p.push_back("queue_depth must be >= 1");
  if (c.num_threads && *c.num_threads < 1) p.push_back("num_threads must be >= 1 or None");
  if (c.latent_grid_hw[0] < 1 || c.latent_grid_hw[1] < 1)
    p.push_back("latent_grid_hw must be positive");
  if (c.context_noise < 0 || c.context_noise >= 1000)
    p.push_back("context_noise must be in [0, 1000)");
  if (c.debug_pass_delay_ms < 0) p.push_back("debug_pass_delay_ms must be >= 0");
}

std::string optional_number_json(const std::optional<double>& v) {
  return v ? py_format::float_repr(*v) : "null";
}
std::string optional_int_json(const std::optional<int64_t>& v) {
  return v ? std::to_string(*v) : "null";
}

}  // namespace

// ------------------------------------------------------------------------------ EngineConfig

EngineConfig EngineConfig::from_json(const std::string& text) {
  const json::Value root = json::Value::parse(text);
  json::FieldReader r(root, "engine config");
  EngineConfig c;
  c.device = r.string("device");
  c.dtype = r.string("dtype");
  c.backend = r.string("backend");
  c.page_size_tokens = r.integer("page_size_tokens");
  c.video_window_s = r.optional_number("video_window_s");
  c.audio_window_s = r.optional_number("audio_window_s");
  c.max_stream_s = r.number("max_stream_s");
  c.max_streams = r.integer("max_streams");
  c.max_batch_streams = r.integer("max_batch_streams");
  c.kv_budget_bytes = r.optional_integer("kv_budget_bytes");
  c.queue_depth = r.integer("queue_depth");
  c.num_threads = r.optional_integer("num_threads");
  const std::vector<int64_t> hw = r.integer_list("latent_grid_hw");
  if (hw.size() == 2) {
    c.latent_grid_hw = {hw[0], hw[1]};
  } else {
    r.add_problem("latent_grid_hw must hold two integers");
  }
  const std::string kind = r.string("layout_kind");
  if (kind == "release" || kind == "paper") {
    c.layout_kind = parse_layout_kind(kind);
  } else {
    r.add_problem("layout_kind must be 'release' or 'paper', got '" + kind + "'");
  }
  c.first_block_frames = r.optional_integer("first_block_frames");
  c.block_frames = r.integer("block_frames");
  c.denoising_step_list = r.integer_list("denoising_step_list");
  c.context_noise = r.integer("context_noise");
  c.debug_pass_delay_ms = r.number("debug_pass_delay_ms");
  std::vector<std::string>& problems = r.problems();
  check_config(c, problems);  // field values as parsed (defaults where a field was bad)
  if (problems.empty()) {
    try {
      c.layout(1, 0);
      c.pass_sigmas();
    } catch (const ConfigError& e) {
      problems.insert(problems.end(), e.problems().begin(), e.problems().end());
    }
  }
  if (!problems.empty()) throw ConfigError("invalid engine config", problems);
  return c;
}

std::string EngineConfig::to_json() const {
  std::ostringstream o;
  o << "{\"audio_window_s\": " << optional_number_json(audio_window_s) << ", \"backend\": \""
    << backend << "\", \"block_frames\": " << block_frames
    << ", \"context_noise\": " << context_noise
    << ", \"debug_pass_delay_ms\": " << py_format::float_repr(debug_pass_delay_ms)
    << ", \"denoising_step_list\": " << py_format::int_list_repr(denoising_step_list)
    << ", \"device\": \"" << device << "\", \"dtype\": \"" << dtype
    << "\", \"first_block_frames\": " << optional_int_json(first_block_frames)
    << ", \"kv_budget_bytes\": " << optional_int_json(kv_budget_bytes) << ", \"latent_grid_hw\": ["
    << latent_grid_hw[0] << ", " << latent_grid_hw[1] << "], \"layout_kind\": \""
    << layout_kind_name(layout_kind) << "\", \"max_batch_streams\": " << max_batch_streams
    << ", \"max_stream_s\": " << py_format::float_repr(max_stream_s)
    << ", \"max_streams\": " << max_streams
    << ", \"num_threads\": " << optional_int_json(num_threads)
    << ", \"page_size_tokens\": " << page_size_tokens << ", \"queue_depth\": " << queue_depth
    << ", \"video_window_s\": " << optional_number_json(video_window_s) << "}";
  return o.str();
}

BlockLayout EngineConfig::layout(int64_t num_blocks, int64_t audio_sink_tokens) const {
  BlockLayoutOptions options;
  options.block_frames = block_frames;
  options.first_block_frames = first_block_frames;
  options.audio_sink_tokens = audio_sink_tokens;
  return BlockLayout::create(layout_kind, num_blocks, latent_grid_hw[0] * latent_grid_hw[1],
                             options);
}

std::vector<float> EngineConfig::pass_sigmas() const {
  std::vector<float> out;
  for (const float s : student_sigmas(denoising_step_list)) {
    if (s > 0.0f) out.push_back(s);
  }
  return out;
}

int64_t EngineConfig::max_stream_blocks() const {
  const BlockLayout one = layout(1, 0);
  const double block_s =
      static_cast<double>(block_frames * kVideoTemporalStride) / static_cast<double>(kVideoFps);
  const double rest = (max_stream_s - one.duration_s()) / block_s;
  return 1 + std::max<int64_t>(0, static_cast<int64_t>(std::ceil(rest - 1e-9)));
}

// ----------------------------------------------------------------------------- ModelManifest

namespace {

RopeTableSpec read_rope_table(const json::Value& v, const std::string& name,
                              std::vector<std::string>& problems) {
  json::FieldReader r(v, "manifest rope table " + name);
  RopeTableSpec t;
  t.dim = r.integer("dim");
  t.heads = r.integer("heads");
  t.max_pos = r.integer_list("max_pos");
  t.grid = r.number_list("grid");
  problems.insert(problems.end(), r.problems().begin(), r.problems().end());
  return t;
}

}  // namespace

ModelManifest ModelManifest::from_json(const std::string& text) {
  const json::Value root = json::Value::parse(text);
  json::FieldReader r(root, "manifest");
  ModelManifest m;
  m.format_version = r.integer("format_version");
  m.config_hash = r.string("config_hash");
  m.device = r.string("device");
  m.dtype = r.string("dtype");
  m.page_size_tokens = r.integer("page_size_tokens");
  m.num_layers = r.integer("num_layers");
  m.in_channels = r.integer("in_channels");
  m.audio_in_channels = r.integer("audio_in_channels");
  m.audio_sink_tokens = r.integer("audio_sink_tokens");
  m.input_names = r.string_list("input_names");
  m.output_names = r.string_list("output_names");
  m.package_file = r.string("package_file");
  json::FieldReader dims(r.object("cache_dims"), "manifest.cache_dims");
  for (const char* c : kTemporalCaches) m.cache_dims[c] = dims.integer(c);
  json::FieldReader rope(r.object("rope"), "manifest.rope");
  m.rope_type = rope.string("type");
  m.angle_dtype = rope.string("angle_dtype");
  m.position_style = rope.string("position_style");
  m.position_dtype = rope.string("position_dtype");
  const json::Value& tables = rope.object("tables");
  std::vector<std::string>& problems = r.problems();
  for (const char* t : kRopeTables) {
    const json::Value* v = tables.find(t);
    if (v == nullptr) {
      problems.push_back(std::string("manifest.rope.tables lacks '") + t + "'");
    } else {
      m.rope_tables[t] = read_rope_table(*v, t, problems);
    }
  }
  for (auto* sub : {&dims, &rope}) {
    problems.insert(problems.end(), sub->problems().begin(), sub->problems().end());
  }
  if (!problems.empty()) throw ConfigError("invalid engine package manifest", problems);
  return m;
}

// ---------------------------------------------------------------------------------- KvPlan

int64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "float32") return 4;
  if (dtype == "bfloat16" || dtype == "float16") return 2;
  throw ConfigError("unknown dtype",
                    {"dtype must be float32, bfloat16 or float16, got '" + dtype + "'"});
}

int64_t window_blocks(double seconds, int64_t block_frames) {
  const double block_s =
      static_cast<double>(block_frames * kVideoTemporalStride) / static_cast<double>(kVideoFps);
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(seconds / block_s + 1e-9)));
}

std::array<PageTableSpec, 2> KvPlan::stream_specs(int64_t num_blocks) const {
  std::array<PageTableSpec, 2> specs = {video, audio};
  for (PageTableSpec& s : specs) {
    if (num_blocks > s.max_blocks) {  // only a window of None has a finite max_blocks
      throw CacheCapacityError("a stream of " + std::to_string(num_blocks) +
                               " blocks keeps its whole history, but the " + "pool holds " +
                               std::to_string(s.max_blocks) + " blocks per stream: set a window " +
                               "(video_window_s / audio_window_s) or raise max_stream_s");
    }
    s.max_blocks = num_blocks;
  }
  return specs;
}

KvPlan plan_kv_cache(const EngineConfig& config, const ModelManifest& manifest) {
  const BlockLayout two = config.layout(2, manifest.audio_sink_tokens);
  const BlockSpec b0 = two.block(0);
  const BlockSpec b1 = two.block(1);
  const int64_t longest = config.max_stream_blocks();
  KvPlan plan;
  const auto make = [&](int64_t first, int64_t later, const std::optional<double>& window) {
    PageTableSpec s;
    s.page_size_tokens = config.page_size_tokens;
    s.first_block_tokens = first;
    s.block_tokens = later;
    s.window_blocks =
        window ? window_blocks(*window, config.block_frames) : std::max<int64_t>(1, longest - 1);
    s.max_blocks = window ? kUnlimitedBlocks : longest;
    return s;
  };
  plan.video = make(b0.video_tokens, b1.video_tokens, config.video_window_s);
  plan.audio = make(b0.audio_tokens, b1.audio_tokens, config.audio_window_s);
  plan.video_pages_per_stream = plan.video.pages_needed();
  plan.audio_pages_per_stream = plan.audio.pages_needed();
  plan.video_pool_pages = plan.video_pages_per_stream * config.max_streams;
  plan.audio_pool_pages = plan.audio_pages_per_stream * config.max_streams;
  const int64_t unit =
      2 * manifest.num_layers * config.page_size_tokens * dtype_bytes(config.dtype);
  const auto dim = [&](const char* c) { return manifest.cache_dims.at(c); };
  plan.video_page_bytes = unit * (dim("video_self") + dim("v2a"));
  plan.audio_page_bytes = unit * (dim("audio_self") + dim("a2v"));
  plan.pool_bytes =
      plan.video_pool_pages * plan.video_page_bytes + plan.audio_pool_pages * plan.audio_page_bytes;
  if (config.kv_budget_bytes && plan.pool_bytes > *config.kv_budget_bytes) {
    throw CacheCapacityError("the KV page pool needs " + std::to_string(plan.pool_bytes) +
                             " bytes (" + std::to_string(config.max_streams) + " streams x (" +
                             std::to_string(plan.video_pages_per_stream) + " video + " +
                             std::to_string(plan.audio_pages_per_stream) + " audio pages of " +
                             std::to_string(config.page_size_tokens) +
                             " tokens)) but kv_budget_bytes is " +
                             std::to_string(*config.kv_budget_bytes) +
                             ": shorten the windows, lower max_streams or raise the budget");
  }
  return plan;
}

}  // namespace ofrt
