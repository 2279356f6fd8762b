"""A synthetic audio-visual world with a known ground truth, and the scorer built on it (issue #10).

Coloured balls bounce in a box; every wall impact rings the note of the ball's colour. Clips are
deterministic functions of a seed, sized for the embedded default model (128 x 192, 25 + 24 k
frames at 24 fps, stereo 24 kHz audio of the layout's length), and come with captions and the
exact ground truth. The scorer detects bounces in frames and onsets in audio without the ground
truth, so it scores any model's output; the tests hold it to the ground truth. See README.md.

Modules: scene (config, sampling, exact physics), render (frames, audio), caption (text and its
parsed PromptSpec), detect_video / detect_audio (ground-truth-free detectors), score (sync error,
prompt accuracy), fidelity (Fréchet distances), dataset (splits, files), evaluate (generators ->
metrics), model_clip (a streaming model as a generator), command (CLI).
"""

from omniforcing_rt.world.caption import PromptSpec, caption, parse_caption, prompt_spec
from omniforcing_rt.world.dataset import Clip, make_clip
from omniforcing_rt.world.render import render_audio, render_video
from omniforcing_rt.world.scene import Impact, Scene, WorldConfig, sample_scene
from omniforcing_rt.world.score import ClipScore, score_clip

__all__ = [
    "Clip",
    "ClipScore",
    "Impact",
    "PromptSpec",
    "Scene",
    "WorldConfig",
    "caption",
    "make_clip",
    "parse_caption",
    "prompt_spec",
    "render_audio",
    "render_video",
    "sample_scene",
    "score_clip",
]
