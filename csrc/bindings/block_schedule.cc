// Bindings of include/ofrt/block_schedule.h. Python names, argument names, defaults and
// keyword-only markers follow pipeline/layout.py, pipeline/schedule.py and model/positions.py,
// so `_C.BlockLayout.create(...)` is a drop-in for `layout.BlockLayout.create(...)`.
#include "ofrt/block_schedule.h"

#include <pybind11/numpy.h>
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bindings/bindings.h"

namespace py = pybind11;

namespace ofrt::bindings {
namespace {

// A layout kind given as _C.LayoutKind, a str ("release" / "paper") or layout.LayoutKind (a str
// Enum, so its value is read). Anything else is the ConfigError layout.py raises, with repr().
LayoutKind kind_from_py(const py::handle& kind) {
  if (py::isinstance<LayoutKind>(kind)) return kind.cast<LayoutKind>();
  if (py::isinstance<py::str>(kind)) {
    const auto name = kind.cast<std::string>();
    if (name == "release") return LayoutKind::kRelease;
    if (name == "paper") return LayoutKind::kPaper;
  }
  throw_invalid_layout_kind(py::repr(kind).cast<std::string>());
}

BlockLayoutOptions make_options(int64_t block_frames, std::optional<int64_t> first_block_frames,
                                int64_t audio_sink_tokens) {
  BlockLayoutOptions options;
  options.block_frames = block_frames;
  options.first_block_frames = first_block_frames;
  options.audio_sink_tokens = audio_sink_tokens;
  return options;
}

py::tuple spec_tuple(const BlockSpec& s) {
  return py::make_tuple(s.index, s.video_start, s.video_frames, s.audio_start, s.audio_frames,
                        s.video_token_start, s.video_tokens, s.audio_token_start, s.audio_tokens,
                        s.sink_tokens, s.pixel_frame_start, s.pixel_frames, s.audio_sample_start,
                        s.audio_samples);
}

py::tuple layout_tuple(const BlockLayout& l) {
  return py::make_tuple(l.kind(), l.first_block_frames(), l.block_frames(), l.num_blocks(),
                        l.tokens_per_frame(), l.audio_sink_tokens());
}

std::string kind_repr(LayoutKind kind) {
  return kind == LayoutKind::kRelease ? "LayoutKind.RELEASE" : "LayoutKind.PAPER";
}

// [count, 2] float64 array, like the torch tensors of positions.py.
py::array_t<double> bounds_array(const std::vector<TimeBounds>& bounds) {
  py::array_t<double> out({static_cast<py::ssize_t>(bounds.size()), py::ssize_t{2}});
  auto view = out.mutable_unchecked<2>();
  for (py::ssize_t i = 0; i < view.shape(0); ++i) {
    view(i, 0) = bounds[static_cast<size_t>(i)][0];
    view(i, 1) = bounds[static_cast<size_t>(i)][1];
  }
  return out;
}

py::array_t<float> float_array(const std::vector<float>& values) {
  py::array_t<float> out(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

template <size_t N>
py::tuple int_tuple(const std::array<int64_t, N>& values) {
  py::tuple out(N);
  for (size_t i = 0; i < N; ++i) out[i] = py::int_(values[i]);
  return out;
}

void register_constants(py::module_& m) {
  m.attr("VIDEO_FPS") = kVideoFps;
  m.attr("VIDEO_TEMPORAL_STRIDE") = kVideoTemporalStride;
  m.attr("VIDEO_SPATIAL_STRIDE") = kVideoSpatialStride;
  m.attr("AUDIO_MEL_FRAMES_PER_S") = kAudioMelFramesPerS;
  m.attr("AUDIO_LATENT_MEL_STRIDE") = kAudioLatentMelStride;
  m.attr("AUDIO_SAMPLE_RATE") = kAudioSampleRate;
  m.attr("AUDIO_SAMPLES_PER_MEL") = kAudioSamplesPerMel;
  m.attr("DEFAULT_MAX_SHIFT") = kDefaultMaxShift;
  m.attr("DEFAULT_TERMINAL") = kDefaultTerminal;
  m.attr("DEFAULT_GRID_STEPS") = kDefaultGridSteps;
  m.attr("RELEASE_STEP_LIST") = int_tuple(kReleaseStepList);
  m.attr("PAPER_STEP_LIST") = int_tuple(kPaperStepList);
}

void register_layout_kind(py::module_& m) {
  py::enum_<LayoutKind>(m, "LayoutKind", R"doc(Which block-0 convention a layout follows.

RELEASE: release (v2) code, block 0 = 4 video + 26 audio latents.
PAPER: paper (v1) Global Prefix, block 0 = 1 video + 1 audio latent (+ sinks).
LayoutKind("release") / LayoutKind("paper") also work, as in layout.LayoutKind.)doc")
      .value("RELEASE", LayoutKind::kRelease)
      .value("PAPER", LayoutKind::kPaper)
      .def(py::init([](const std::string& name) { return parse_layout_kind(name); }),
           py::arg("name"));
  m.def(
      "layout_kind_name", [](LayoutKind kind) { return std::string(layout_kind_name(kind)); },
      py::arg("kind"),
      R"doc("release" or "paper": the value of the matching layout.LayoutKind member.)doc");
}

void register_block_spec(py::module_& m) {
  py::class_<BlockSpec>(
      m, "BlockSpec",
      R"doc(One causal block: latent ranges, token ranges and the media it decodes to.

Read-only; built by BlockLayout.block(k). Same fields as layout.BlockSpec.)doc")
      .def_readonly("index", &BlockSpec::index, "Block index k (0 = first block).")
      .def_readonly("video_start", &BlockSpec::video_start,
                    "Absolute index of the block's first video latent frame.")
      .def_readonly("video_frames", &BlockSpec::video_frames,
                    "Number of video latent frames in the block.")
      .def_readonly("audio_start", &BlockSpec::audio_start,
                    "Absolute index of the block's first audio latent (sinks excluded).")
      .def_readonly("audio_frames", &BlockSpec::audio_frames,
                    "Number of audio latents in the block (sinks excluded).")
      .def_readonly("video_token_start", &BlockSpec::video_token_start,
                    "First video token (video_start * tokens_per_frame).")
      .def_readonly("video_tokens", &BlockSpec::video_tokens, "Video tokens in the block.")
      .def_readonly("audio_token_start", &BlockSpec::audio_token_start,
                    "First audio token in the audio sequence that includes the sinks.")
      .def_readonly("audio_tokens", &BlockSpec::audio_tokens,
                    "Audio tokens in the block, sinks included for block 0.")
      .def_readonly("sink_tokens", &BlockSpec::sink_tokens,
                    "Audio sink tokens carried by this block (only block 0 has any).")
      .def_readonly("pixel_frame_start", &BlockSpec::pixel_frame_start,
                    "First decoded video frame of the block.")
      .def_readonly("pixel_frames", &BlockSpec::pixel_frames,
                    "Decoded video frames (25 for release block 0, 24 for a 3-latent block).")
      .def_readonly("audio_sample_start", &BlockSpec::audio_sample_start,
                    "First decoded audio sample (24 kHz) of the block.")
      .def_readonly("audio_samples", &BlockSpec::audio_samples,
                    "Decoded audio samples per channel (24,240 release block 0, 24,000 after).")
      .def_property_readonly("video_pts_s", &BlockSpec::video_pts_s,
                             "Presentation time of the block's first video frame, in seconds.")
      .def_property_readonly("audio_pts_s", &BlockSpec::audio_pts_s,
                             "Presentation time of the block's first audio sample, in seconds.")
      .def(py::self == py::self)  // NOLINT(misc-redundant-expression)
      .def("__hash__", [](const BlockSpec& s) { return py::hash(spec_tuple(s)); })
      .def("__repr__", [](const BlockSpec& s) {
        return "BlockSpec(index=" + std::to_string(s.index) +
               ", video_start=" + std::to_string(s.video_start) +
               ", video_frames=" + std::to_string(s.video_frames) +
               ", audio_start=" + std::to_string(s.audio_start) +
               ", audio_frames=" + std::to_string(s.audio_frames) +
               ", video_token_start=" + std::to_string(s.video_token_start) +
               ", video_tokens=" + std::to_string(s.video_tokens) +
               ", audio_token_start=" + std::to_string(s.audio_token_start) +
               ", audio_tokens=" + std::to_string(s.audio_tokens) +
               ", sink_tokens=" + std::to_string(s.sink_tokens) +
               ", pixel_frame_start=" + std::to_string(s.pixel_frame_start) +
               ", pixel_frames=" + std::to_string(s.pixel_frames) +
               ", audio_sample_start=" + std::to_string(s.audio_sample_start) +
               ", audio_samples=" + std::to_string(s.audio_samples) + ")";
      });
}

constexpr const char* kLayoutDoc = R"doc(A clip cut into causal blocks (layout.BlockLayout).

Block 0 holds first_block_frames video latents and the audio latents of the same span; every
later block holds block_frames video latents (1 s at 3) and 25 * block_frames / 3 audio latents.
Every latent is used: N_v = F0 + F (K - 1), N_a = 1 + 25 (N_v - 1) / 3.

Build it with create, for_seconds or for_video_latents, or with the keyword-only constructor;
all validate and raise omniforcing_rt.errors.ConfigError listing every problem.)doc";

void register_block_layout(py::module_& m) {
  py::class_<BlockLayout>(m, "BlockLayout", kLayoutDoc)
      .def(py::init([](const py::object& kind, int64_t first_block_frames, int64_t block_frames,
                       int64_t num_blocks, int64_t tokens_per_frame, int64_t audio_sink_tokens) {
             return BlockLayout(kind_from_py(kind), first_block_frames, block_frames, num_blocks,
                                tokens_per_frame, audio_sink_tokens);
           }),
           py::kw_only(), py::arg("kind"), py::arg("first_block_frames"), py::arg("block_frames"),
           py::arg("num_blocks"), py::arg("tokens_per_frame"), py::arg("audio_sink_tokens") = 0,
           "Validated construction; raises ConfigError listing every problem.")
      .def_static(
          "default_first_block_frames",
          [](const py::object& kind) {
            return BlockLayout::default_first_block_frames(kind_from_py(kind));
          },
          py::arg("kind"), "Block-0 video latents of a layout kind: 4 (release) or 1 (paper).")
      .def_static(
          "create",
          [](const py::object& kind, int64_t num_blocks, int64_t tokens_per_frame,
             int64_t block_frames, std::optional<int64_t> first_block_frames,
             int64_t audio_sink_tokens) {
            return BlockLayout::create(
                kind_from_py(kind), num_blocks, tokens_per_frame,
                make_options(block_frames, first_block_frames, audio_sink_tokens));
          },
          py::arg("kind"), py::arg("num_blocks"), py::arg("tokens_per_frame"), py::kw_only(),
          py::arg("block_frames") = 3, py::arg("first_block_frames") = py::none(),
          py::arg("audio_sink_tokens") = 0,
          R"doc(A layout of ``num_blocks`` blocks of the given kind ("release" / "paper").)doc")
      .def_static(
          "for_video_latents",
          [](const py::object& kind, int64_t video_latents, int64_t tokens_per_frame,
             int64_t block_frames, std::optional<int64_t> first_block_frames,
             int64_t audio_sink_tokens) {
            return BlockLayout::for_video_latents(
                kind_from_py(kind), video_latents, tokens_per_frame,
                make_options(block_frames, first_block_frames, audio_sink_tokens));
          },
          py::arg("kind"), py::arg("video_latents"), py::arg("tokens_per_frame"), py::kw_only(),
          py::arg("block_frames") = 3, py::arg("first_block_frames") = py::none(),
          py::arg("audio_sink_tokens") = 0,
          "The layout whose blocks use exactly ``video_latents`` latents (ConfigError if none "
          "does).")
      .def_static(
          "for_seconds",
          [](const py::object& kind, double seconds, int64_t tokens_per_frame, int64_t block_frames,
             std::optional<int64_t> first_block_frames, int64_t audio_sink_tokens) {
            return BlockLayout::for_seconds(
                kind_from_py(kind), seconds, tokens_per_frame,
                make_options(block_frames, first_block_frames, audio_sink_tokens));
          },
          py::arg("kind"), py::arg("seconds"), py::arg("tokens_per_frame"), py::kw_only(),
          py::arg("block_frames") = 3, py::arg("first_block_frames") = py::none(),
          py::arg("audio_sink_tokens") = 0,
          "The layout whose duration is within one video frame of ``seconds`` (ConfigError if "
          "none is).")
      .def_property_readonly("kind", &BlockLayout::kind, "Block-0 convention.")
      .def_property_readonly("first_block_frames", &BlockLayout::first_block_frames,
                             "Video latents in block 0 (4 release, 1 paper).")
      .def_property_readonly("block_frames", &BlockLayout::block_frames,
                             "Video latents per later block (3 = one second).")
      .def_property_readonly("num_blocks", &BlockLayout::num_blocks, "Number of blocks K.")
      .def_property_readonly("tokens_per_frame", &BlockLayout::tokens_per_frame,
                             "Video tokens per latent frame (latent H x W).")
      .def_property_readonly("audio_sink_tokens", &BlockLayout::audio_sink_tokens,
                             "Learnable audio sink tokens prepended to block 0.")
      .def_property_readonly("video_latent_frames", &BlockLayout::video_latent_frames,
                             "Total video latent frames N_v.")
      .def_property_readonly("audio_latent_frames", &BlockLayout::audio_latent_frames,
                             "Total audio latents N_a (sinks excluded).")
      .def_property_readonly("pixel_frames", &BlockLayout::pixel_frames,
                             "Decoded video frames: 1 + 8 (N_v - 1).")
      .def_property_readonly("duration_s", &BlockLayout::duration_s,
                             "Clip duration in seconds (pixel frames / fps).")
      .def_property_readonly("audio_samples", &BlockLayout::audio_samples,
                             "Decoded audio samples per channel: (4 N_a - 3) mel frames x 240.")
      .def("block", &BlockLayout::block, py::arg("k"),
           "The spec of block ``k``; ConfigError when k is outside [0, num_blocks).")
      .def_property_readonly("blocks", &BlockLayout::blocks, "All block specs in order.")
      .def(py::self == py::self)  // NOLINT(misc-redundant-expression)
      .def("__hash__", [](const BlockLayout& l) { return py::hash(layout_tuple(l)); })
      .def("__repr__", [](const BlockLayout& l) {
        return "BlockLayout(kind=" + kind_repr(l.kind()) +
               ", first_block_frames=" + std::to_string(l.first_block_frames()) +
               ", block_frames=" + std::to_string(l.block_frames()) +
               ", num_blocks=" + std::to_string(l.num_blocks()) +
               ", tokens_per_frame=" + std::to_string(l.tokens_per_frame()) +
               ", audio_sink_tokens=" + std::to_string(l.audio_sink_tokens()) + ")";
      });
}

void register_functions(py::module_& m) {
  m.def("audio_latents_for_video", &audio_latents_for_video, py::arg("video_latents"),
        "Audio latents spanning the same time as ``video_latents`` video latents from t = 0.");
  m.def(
      "video_latent_bounds_s",
      [](int64_t start, int64_t count) {
        return bounds_array(video_latent_bounds_s(start, count));
      },
      py::arg("start"), py::arg("count"),
      R"doc([count, 2] float64 time bounds in seconds of video latent frames start..start+count-1.

Latent frame k covers pixel frames [max(0, 8k-7), max(0, 8k+1)) at 24 fps; RoPE uses the
midpoint. Bit-identical to model.positions.video_latent_bounds_s (as a numpy array).)doc");
  m.def(
      "audio_latent_bounds_s",
      [](int64_t start, int64_t count) {
        return bounds_array(audio_latent_bounds_s(start, count));
      },
      py::arg("start"), py::arg("count"),
      R"doc([count, 2] float64 time bounds in seconds of audio latents start..start+count-1.

Audio latent j covers mel frames [max(0, 4j-3), 4j+1) at 100 mel frames/s. Bit-identical to
model.positions.audio_latent_bounds_s (as a numpy array).)doc");
  m.def(
      "ltx2_sigmas",
      [](int64_t steps, double shift, double terminal) {
        return float_array(ltx2_sigmas(steps, shift, terminal));
      },
      py::arg("steps"), py::arg("shift") = kDefaultMaxShift, py::arg("terminal") = kDefaultTerminal,
      R"doc(The LTX2Scheduler grid without a latent (fixed shift), float32 [steps + 1] from ~1 to 0.

Args:
    steps: number of denoising steps N; the grid has N + 1 points ending at 0.
    shift: the logit shift s; sigma' = e^s / (e^s + 1/sigma - 1).
    terminal: the last non-zero sigma after stretching.

Follows schedule.ltx2_sigmas' float32 torch ops one by one: equal to <= 1e-6 everywhere, bit for
bit against torch's x86 (AVX2/AVX512) CPU kernels.)doc");
  m.def(
      "student_sigmas",
      [](const std::vector<int64_t>& step_list, int64_t grid_steps) {
        return float_array(student_sigmas(step_list, grid_steps));
      },
      py::arg("step_list"), py::arg("grid_steps") = kDefaultGridSteps,
      R"doc(Map a denoising_step_list to float32 sigmas: each t/1000 snaps to the nearest grid point.

Args:
    step_list: strictly decreasing integers in [0, 1000]; a trailing 0 stays sigma 0.
    grid_steps: the LTX2Scheduler grid resolution (40 in every shipped config).

Raises ConfigError listing every problem of step_list.)doc");
}

}  // namespace

void register_block_schedule(py::module_& m) {
  register_constants(m);
  register_layout_kind(m);
  register_block_spec(m);
  register_block_layout(m);
  register_functions(m);
}

}  // namespace ofrt::bindings
