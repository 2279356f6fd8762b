"""Evaluating clip generators on held-out scenes of the world: the numbers behind ``omniforcing-rt evaluate``.

A *generator* is any callable ``generate(caption, seed) -> (frames, audio, timings)``: uint8
[F, H, W, 3] frames at 24 fps, float32 [2, N] audio at 24 kHz, and a timings dict with
``seconds`` (wall time of the whole clip) and ``ttfc_s`` (wall time until the first chunk of
media was ready). The evaluator runs it on the captions (and seeds) of the first ``count``
held-out scenes and reports:

* ``sync_error_ms``: median over all clips' audio onsets of the capped per-onset sync error
  (:mod:`omniforcing_rt.world.score`; ``SYNC_CAP_MS`` when no clip had a matchable onset);
* ``onset_recall``: mean over clips of the fraction of visual impacts that were heard;
* ``prompt_accuracy``: mean over clips of the fraction of caption attributes recovered;
* ``video_fidelity`` / ``audio_fidelity``: Fréchet distances of the clips' features to the
  first ``count`` clips of the disjoint ``reference`` split (:mod:`omniforcing_rt.world.fidelity`);
* ``seconds_per_clip`` and ``ttfc_s``: means of the generator's timings;
* ``rtf``: real-time factor, wall seconds per second of media (mean ``seconds`` / mean clip
  duration); below 1 is faster than real time.

:func:`ground_truth_generator` renders the real clip of the seed: its row is the sanity check
(sync ~1 ms, accuracy ~1.0, fidelity = the finite-sample floor) every model is read against.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from omniforcing_rt.errors import InputError
from omniforcing_rt.world.caption import caption, parse_caption
from omniforcing_rt.world.dataset import clip_seed, iter_clips, make_clip
from omniforcing_rt.world.fidelity import audio_features, frechet_distance, video_features
from omniforcing_rt.world.scene import WorldConfig, sample_scene
from omniforcing_rt.world.score import SYNC_CAP_MS, ClipScore, score_clip

__all__ = [
    "METRIC_KEYS",
    "ClipGenerator",
    "Reference",
    "evaluate_generator",
    "ground_truth_generator",
    "reference_features",
    "unavailable_row",
]

ClipGenerator = Callable[[str, int], tuple[np.ndarray, np.ndarray, dict[str, float]]]
"""generate(caption, seed) -> (frames uint8 [F, H, W, 3], audio float32 [2, N], timings)."""

METRIC_KEYS = ("sync_error_ms", "onset_recall", "prompt_accuracy", "video_fidelity", "audio_fidelity",
               "seconds_per_clip", "ttfc_s", "rtf")  # fmt: skip
"""The metrics of every evaluated row."""


@dataclass(frozen=True)
class Reference:
    """Feature rows of the real reference clips the fidelity distances compare against."""

    video: np.ndarray
    """float64 [clips, 67] video features."""
    audio: np.ndarray
    """float64 [clips, 64] audio features."""


def reference_features(config: WorldConfig, count: int) -> Reference:
    """Features of the first ``count`` clips of the ``reference`` split (count >= 2)."""
    if count < 2:
        raise InputError(f"the fidelity reference needs at least 2 clips, got {count}")
    clips = list(iter_clips(config, "reference", count))
    return Reference(
        np.stack([video_features(c.frames) for c in clips]),
        np.stack([audio_features(c.audio, config.sample_rate) for c in clips]),
    )


def ground_truth_generator(config: WorldConfig) -> ClipGenerator:
    """A "model" that renders the real clip of ``seed`` (the caption is implied by the seed)."""

    def generate(caption: str, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        clip = make_clip(config, seed)
        wall = time.perf_counter() - t0
        return clip.frames, clip.audio, {"seconds": wall, "ttfc_s": wall}

    return generate


def _check_output(frames: Any, audio: Any, timings: Any) -> None:
    problems = []
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        problems.append(f"frames must be a uint8 [F, H, W, 3] array, got {getattr(frames, 'shape', type(frames))}")
    if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.shape[0] != 2:
        problems.append(f"audio must be a [2, N] array, got {getattr(audio, 'shape', type(audio))}")
    if not isinstance(timings, dict) or not {"seconds", "ttfc_s"} <= set(timings):
        problems.append("timings must be a dict with 'seconds' and 'ttfc_s'")
    if problems:
        raise InputError("the generator returned an invalid clip: " + "; ".join(problems))


def _clip_row(seed: int, caption: str, score: ClipScore, timings: dict[str, float], duration: float) -> dict:
    return {
        "seed": seed, "caption": caption, "sync_error_ms": score.sync_error_ms, "onset_recall": score.onset_recall,
        "prompt_accuracy": score.prompt_accuracy, "attributes": score.attributes,
        "visual_impacts": len(score.visual_impacts), "onsets": len(score.onsets),
        "seconds": float(timings["seconds"]), "ttfc_s": float(timings["ttfc_s"]), "duration_s": duration,
    }  # fmt: skip


def _nanmean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def evaluate_generator(
    generate: ClipGenerator,
    config: WorldConfig,
    count: int,
    *,
    reference: Reference | None = None,
    progress: bool = False,
    desc: str = "evaluate",
) -> dict[str, Any]:
    """Run ``generate`` on the first ``count`` held-out scenes; the metrics (module docstring) + per-clip rows."""
    from tqdm import tqdm

    if count < 2:
        raise InputError(f"evaluation needs at least 2 clips (fidelity is a distance between sets), got {count}")
    reference = reference or reference_features(config, count)
    rows, errors, vfeat, afeat = [], [], [], []
    for i in tqdm(range(count), desc=desc, unit="clip", disable=not progress):
        seed = clip_seed("heldout", i)
        text = caption(sample_scene(config, seed))
        frames, audio, timings = generate(text, seed)
        _check_output(frames, audio, timings)
        score = score_clip(frames, audio, parse_caption(text, config), config)
        errors.extend(score.onset_errors_ms)
        vfeat.append(video_features(frames))
        afeat.append(audio_features(audio, config.sample_rate))
        rows.append(_clip_row(seed, text, score, timings, frames.shape[0] / config.fps))
    seconds = float(np.mean([r["seconds"] for r in rows]))
    duration = float(np.mean([r["duration_s"] for r in rows]))
    return {
        "status": "ok", "clips": count,
        "sync_error_ms": float(np.median(errors)) if errors else SYNC_CAP_MS,
        "onset_recall": _nanmean([r["onset_recall"] for r in rows]),
        "prompt_accuracy": _nanmean([r["prompt_accuracy"] for r in rows]),
        "video_fidelity": frechet_distance(np.stack(vfeat), reference.video),
        "audio_fidelity": frechet_distance(np.stack(afeat), reference.audio),
        "seconds_per_clip": seconds, "ttfc_s": float(np.mean([r["ttfc_s"] for r in rows])),
        "rtf": seconds / duration, "per_clip": rows,
    }  # fmt: skip


def unavailable_row(reason: str) -> dict[str, Any]:
    """The row of a model that cannot be evaluated (yet): every metric None, with the reason."""
    return {"status": "unavailable", "reason": reason, **dict.fromkeys(METRIC_KEYS)}
