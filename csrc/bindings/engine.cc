// Bindings of the streaming engine (include/ofrt/engine.h): _C.Engine and _C.StreamChunk.
//
// Tensors cross as DLPack (design.md §4): the Python wrapper passes torch tensors, whose
// __dlpack__() capsule becomes an at::Tensor sharing the same memory. [Binding at::Tensor
// directly would link libtorch_python and tie us to torch's bundled pybind11.] Chunks carry host
// float32 latents, returned as numpy arrays that own the buffer (no copy). Every call that can
// block (construction loads the package; next_chunk waits) releases the GIL.
#include "ofrt/engine.h"

#include <ATen/DLConvertor.h>
#include <ATen/dlpack.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ofrt/errors.h"
#include "runtime/engine_rope.h"

namespace py = pybind11;

namespace ofrt::bindings {

void register_engine_testing(py::module_& m);

namespace {

// A torch tensor (anything with __dlpack__) -> at::Tensor sharing its memory. Such a tensor keeps
// the Python object alive and its deleter takes the GIL: never let one reach the worker thread
// (copy it first, under the GIL), or freeing it there would wait on a GIL the waiting caller holds.
at::Tensor from_dlpack(const py::object& obj) {
  py::capsule capsule = obj.attr("__dlpack__")();
  if (std::string(capsule.name()) != "dltensor") {
    throw InputError("expected a legacy DLPack capsule named 'dltensor'");
  }
  auto* managed = static_cast<DLManagedTensor*>(capsule.get_pointer());
  at::Tensor t = at::fromDLPack(managed);
  capsule.set_name("used_dltensor");  // the tensor owns it now (DLPack protocol)
  return t;
}

template <typename T>
py::array_t<float> owning_array(std::vector<float>&& data, const T& shape) {
  auto* holder = new std::vector<float>(std::move(data));
  py::capsule owner(holder, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  return py::array_t<float>(dims, holder->data(), owner);
}

py::dict timings_dict(const StageTimings& t) {
  py::dict d;
  d["plan_ms"] = t.plan_ms;
  d["noise_ms"] = t.noise_ms;
  d["denoise_ms"] = t.denoise_ms;
  d["refresh_ms"] = t.refresh_ms;
  d["commit_ms"] = t.commit_ms;
  d["output_ms"] = t.output_ms;
  d["block_ms"] = t.block_ms;
  d["pass_ms"] = t.pass_ms;
  d["batch_streams"] = t.batch_streams;
  return d;
}

// What Python sees of a chunk: the spec and timings, plus the latents moved into numpy arrays.
struct PyChunk {
  BlockSpec spec;
  py::array_t<float> video_latents;
  py::array_t<float> audio_latents;
  py::dict timings;
  double ready_s;
};

PyChunk to_py(StreamChunk&& c) {
  return PyChunk{c.spec, owning_array(std::move(c.video_latents), c.video_shape),
                 owning_array(std::move(c.audio_latents), c.audio_shape), timings_dict(c.timings),
                 c.ready_s};
}

py::dict stream_stats_dict(const StreamStats& s) {
  py::dict d;
  d["id"] = s.id;
  d["state"] = s.state;
  d["blocks_done"] = s.blocks_done;
  d["passes_done"] = s.passes_done;
  d["queued_chunks"] = s.queued_chunks;
  d["video_pages"] = s.video_pages;
  d["audio_pages"] = s.audio_pages;
  d["error"] = s.error;
  d["video_blocks"] = s.video_blocks;
  d["audio_blocks"] = s.audio_blocks;
  return d;
}

py::dict engine_stats_dict(const Engine& e) {
  const EngineStats s = e.stats();
  const KvPlan& p = e.plan();
  py::dict d;
  d["streams"] = s.streams;
  d["video_pool_pages"] = s.video_pool_pages;
  d["audio_pool_pages"] = s.audio_pool_pages;
  d["video_free_pages"] = s.video_free_pages;
  d["audio_free_pages"] = s.audio_free_pages;
  d["pool_bytes"] = s.pool_bytes;
  d["planned_pool_bytes"] = p.pool_bytes;
  d["video_pages_per_stream"] = p.video_pages_per_stream;
  d["audio_pages_per_stream"] = p.audio_pages_per_stream;
  d["video_window_blocks"] = p.video.window_blocks;
  d["audio_window_blocks"] = p.audio.window_blocks;
  d["blocks_done"] = s.blocks_done;
  return d;
}

int64_t start_stream(Engine& e, const py::object& video_k, const py::object& video_v,
                     const py::object& audio_k, const py::object& audio_v, const py::object& mask,
                     uint64_t seed, int64_t num_blocks) {
  // Owned copies (once per prompt): the engine's tensors must not reference Python objects.
  TextKv text{from_dlpack(video_k).clone(), from_dlpack(video_v).clone(),
              from_dlpack(audio_k).clone(), from_dlpack(audio_v).clone(),
              from_dlpack(mask).clone()};
  py::gil_scoped_release release;
  return e.start_stream(text, seed, num_blocks);
}

std::optional<PyChunk> next_chunk(Engine& e, int64_t stream, double timeout_s) {
  bool timed_out = false;
  std::optional<StreamChunk> c;
  {
    py::gil_scoped_release release;
    c = e.next_chunk(stream, timeout_s, &timed_out);
  }
  if (timed_out) {
    PyErr_SetString(PyExc_TimeoutError, "no chunk within the timeout");
    throw py::error_already_set();
  }
  if (!c) return std::nullopt;
  return to_py(std::move(*c));
}

// at::Tensor -> a DLPack capsule torch.from_dlpack() accepts.
py::capsule to_dlpack(const at::Tensor& t) {
  DLManagedTensor* managed = at::toDLPack(t);
  return py::capsule(managed, "dltensor", [](PyObject* cap) {
    if (PyCapsule_IsValid(cap, "dltensor")) {  // never consumed: we still own it
      auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
      if (m != nullptr && m->deleter != nullptr) m->deleter(m);
    }
  });
}

py::list rope_inputs_py(const std::string& manifest_json, int64_t video_start, int64_t video_frames,
                        int64_t audio_start, int64_t audio_frames, int64_t sink_tokens,
                        int64_t grid_h, int64_t grid_w) {
  const ModelManifest m = ModelManifest::from_json(manifest_json);
  BlockSpec spec;
  spec.video_start = video_start;
  spec.video_frames = video_frames;
  spec.audio_start = audio_start;
  spec.audio_frames = audio_frames;
  spec.sink_tokens = sink_tokens;
  py::list out;
  for (const at::Tensor& t : rope_inputs(m, spec, grid_h, grid_w, at::kFloat, at::kCPU)) {
    out.append(to_dlpack(t));
  }
  out.append(to_dlpack(video_positions(m, video_start, video_frames, grid_h, grid_w)));
  out.append(to_dlpack(audio_positions(m, audio_start, audio_frames)));
  return out;
}

// Destroys an Engine with the GIL released: ~Engine joins the worker thread.
struct EngineDeleter {
  void operator()(Engine* e) const {
    py::gil_scoped_release release;
    delete e;
  }
};

}  // namespace

void register_engine(py::module_& m) {
  register_engine_testing(m);
  py::module_ t = m.attr("_testing").cast<py::module_>();
  t.def("rope_inputs", &rope_inputs_py, py::arg("manifest_json"), py::arg("video_start"),
        py::arg("video_frames"), py::arg("audio_start"), py::arg("audio_frames"),
        py::arg("sink_tokens"), py::arg("grid_h"), py::arg("grid_w"),
        R"doc(The engine's float32 CPU RoPE inputs of one block (8 DLPack capsules: cos/sin of
video, audio, video_cross, audio_cross) followed by the video and audio positions.)doc");

  py::class_<PyChunk>(m, "StreamChunk", R"doc(One generated block (include/ofrt/chunk.h).

video_latents: float32 [F, C, H, W]; audio_latents: float32 [T, C] (sinks never appear);
spec: the BlockSpec (index, media spans, timestamps); timings: per-stage wall ms;
ready_s: seconds from stream start to the chunk being queued.)doc")
      .def_readonly("spec", &PyChunk::spec)
      .def_readonly("video_latents", &PyChunk::video_latents)
      .def_readonly("audio_latents", &PyChunk::audio_latents)
      .def_readonly("timings", &PyChunk::timings)
      .def_readonly("ready_s", &PyChunk::ready_s);

  py::class_<Engine, std::unique_ptr<Engine, EngineDeleter>>(
      m, "Engine", R"doc(The C++ streaming engine (include/ofrt/engine.h).

Use omniforcing_rt.Engine; this is its native half. Engine(config_json, package_dir) parses
EngineConfig.to_json(), reads package_dir/manifest.json, sizes the KV pools (CacheCapacityError
before anything is allocated), loads the AOTInductor package and starts the worker thread.)doc")
      .def(py::init<const std::string&, const std::string&>(), py::arg("config_json"),
           py::arg("package_dir"), py::call_guard<py::gil_scoped_release>())
      .def("start_stream", &start_stream, py::arg("video_k"), py::arg("video_v"),
           py::arg("audio_k"), py::arg("audio_v"), py::arg("mask"), py::arg("seed"),
           py::arg("num_blocks"),
           R"doc(Start a stream; text K/V are torch tensors [L, Lt, D] (mask [1, 1, 1, Lt]) on the
engine's device and dtype. seed is taken modulo 2**64; num_blocks <= 0 streams until cancelled.
Returns the stream id.)doc")
      .def("next_chunk", &next_chunk, py::arg("stream"), py::arg("timeout_s") = -1.0,
           R"doc(The next StreamChunk, or None at the end of the stream. Waits (GIL released) up to
timeout_s seconds (< 0: forever); TimeoutError on timeout; StreamAbortedError when the stream
was cancelled or failed.)doc")
      .def("cancel", &Engine::cancel, py::arg("stream"), py::call_guard<py::gil_scoped_release>(),
           "Cancel a stream between passes; queued chunks are dropped.")
      .def("close_stream", &Engine::close_stream, py::arg("stream"),
           py::call_guard<py::gil_scoped_release>(), "Cancel if needed and forget the stream.")
      .def(
          "stream_stats",
          [](const Engine& e, int64_t id) { return stream_stats_dict(e.stream_stats(id)); },
          py::arg("stream"))
      .def("stats", &engine_stats_dict)
      .def_property_readonly("config_json", [](const Engine& e) { return e.config().to_json(); })
      .def_property_readonly("config_hash",
                             [](const Engine& e) { return e.manifest().config_hash; });
}

}  // namespace ofrt::bindings
