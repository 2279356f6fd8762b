// _C._testing hooks into the engine's framework-free host logic: keyed noise, the page pool and
// page tables, the bounded chunk queue, config parsing and the KV plan. Not public API;
// tests/runtime/test_page_table.py, test_chunk_queue.py and test_engine_*.py use them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ofrt/config.h"
#include "ofrt/kv_cache.h"
#include "ofrt/noise.h"
#include "runtime/chunk_queue.h"

namespace py = pybind11;

namespace ofrt::bindings {
namespace {

py::array_t<float> keyed_normal_py(uint64_t key, int64_t count) {
  py::array_t<float> out(count);
  {
    py::gil_scoped_release release;
    keyed_normal(key, out.mutable_data(), count);
  }
  return out;
}

py::dict group_dict(const PageGroup& g) {
  py::dict d;
  d["block"] = g.block;
  d["tokens"] = g.tokens;
  d["pages"] = g.pages;
  return d;
}

py::dict plan_dict(const std::string& config_json, const std::string& manifest_json) {
  const KvPlan p =
      plan_kv_cache(EngineConfig::from_json(config_json), ModelManifest::from_json(manifest_json));
  py::dict d;
  d["video_pages_per_stream"] = p.video_pages_per_stream;
  d["audio_pages_per_stream"] = p.audio_pages_per_stream;
  d["video_pool_pages"] = p.video_pool_pages;
  d["audio_pool_pages"] = p.audio_pool_pages;
  d["video_page_bytes"] = p.video_page_bytes;
  d["audio_page_bytes"] = p.audio_page_bytes;
  d["pool_bytes"] = p.pool_bytes;
  d["video_window_blocks"] = p.video.window_blocks;
  d["audio_window_blocks"] = p.audio.window_blocks;
  return d;
}

using IntQueue = BoundedQueue<int64_t>;

void register_page_table(py::module_& t) {
  py::class_<PagePool>(t, "PagePool", "Free list over page ids (include/ofrt/kv_cache.h).")
      .def(py::init<int64_t>(), py::arg("num_pages"))
      .def_property_readonly("num_pages", &PagePool::num_pages)
      .def_property_readonly("free_pages", &PagePool::free_pages)
      .def("allocate", &PagePool::allocate, py::arg("count"))
      .def("release", &PagePool::release, py::arg("pages"));
  py::class_<PageTable>(t, "PageTable", "One modality's page table of one stream.")
      .def(py::init([](int64_t page_size, int64_t first, int64_t block, int64_t window,
                       int64_t max_blocks, std::vector<int64_t> pages) {
             PageTableSpec s{page_size, first, block, window, max_blocks};
             return std::make_unique<PageTable>(s, std::move(pages));
           }),
           py::arg("page_size_tokens"), py::arg("first_block_tokens"), py::arg("block_tokens"),
           py::arg("window_blocks"), py::arg("max_blocks"), py::arg("pages"))
      .def_static(
          "pages_needed",
          [](int64_t page_size, int64_t first, int64_t block, int64_t window, int64_t max_blocks) {
            return PageTableSpec{page_size, first, block, window, max_blocks}.pages_needed();
          },
          py::arg("page_size_tokens"), py::arg("first_block_tokens"), py::arg("block_tokens"),
          py::arg("window_blocks"), py::arg("max_blocks"))
      .def_property_readonly("block", &PageTable::block)
      .def_property_readonly("history_slots", &PageTable::history_slots)
      .def_property_readonly("inflight_slots", &PageTable::inflight_slots)
      .def_property_readonly("committed_blocks", &PageTable::committed_blocks)
      .def_property_readonly("pages", &PageTable::pages)
      .def_property_readonly("pinned", [](const PageTable& p) { return group_dict(p.pinned()); })
      .def_property_readonly("inflight",
                             [](const PageTable& p) { return group_dict(p.inflight()); })
      .def_property_readonly("window",
                             [](const PageTable& p) {
                               py::list out;
                               for (const PageGroup& g : p.window()) out.append(group_dict(g));
                               return out;
                             })
      .def("commit", &PageTable::commit);
}

void register_queue(py::module_& t) {
  py::class_<IntQueue>(t, "IntQueue", "BoundedQueue<int64> (the chunk queue's template).")
      .def(py::init<size_t>(), py::arg("capacity"))
      .def_property_readonly("capacity", &IntQueue::capacity)
      .def("__len__", &IntQueue::size)
      .def("full", &IntQueue::full)
      .def("closed", &IntQueue::closed)
      .def("try_push", &IntQueue::try_push, py::arg("item"))
      .def(
          "pop",
          [](IntQueue& q, double timeout_s) {
            bool timed_out = false;
            std::optional<int64_t> item;
            {
              py::gil_scoped_release release;
              item = q.pop(timeout_s, &timed_out);
            }
            return py::make_tuple(item ? py::cast(*item) : py::none(), timed_out);
          },
          py::arg("timeout_s"), "(item or None, timed_out); waits with the GIL released.")
      .def("close", &IntQueue::close, py::arg("drop") = false);
}

}  // namespace

void register_engine_testing(py::module_& m) {
  py::module_ t = m.attr("_testing").cast<py::module_>();
  t.def("splitmix64", &splitmix64, py::arg("x"));
  t.def("noise_key", &noise_key, py::arg("seed"), py::arg("block"), py::arg("step"),
        py::arg("stream"), "pipeline/noise.py noise_key (seed modulo 2**64).");
  t.def("keyed_normal", &keyed_normal_py, py::arg("key"), py::arg("count"),
        "pipeline/noise.py keyed_normal: float32 [count].");
  t.def("pages_for_tokens", &pages_for_tokens, py::arg("tokens"), py::arg("page_size_tokens"));
  register_page_table(t);
  register_queue(t);
  t.def(
      "engine_config_roundtrip",
      [](const std::string& text) { return EngineConfig::from_json(text).to_json(); },
      py::arg("json"), "EngineConfig::from_json(json).to_json().");
  t.def(
      "engine_config_info",
      [](const std::string& text) {
        const EngineConfig c = EngineConfig::from_json(text);
        py::dict d;
        d["pass_sigmas"] = c.pass_sigmas();
        d["max_stream_blocks"] = c.max_stream_blocks();
        return d;
      },
      py::arg("json"));
  m.def("plan_kv_cache", &plan_dict, py::arg("config_json"), py::arg("manifest_json"),
        R"doc(The engine's KV page-pool plan as a dict (pages per stream and pool, bytes per page,
pool bytes, window blocks); CacheCapacityError when it exceeds kv_budget_bytes. Nothing is
allocated: Engine.from_pretrained calls it before compiling.)doc");
}

}  // namespace ofrt::bindings
