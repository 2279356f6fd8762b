"""Deterministic clip sets of the world: train / held-out / reference splits, optionally on disk.

A clip is a pure function of ``(WorldConfig, seed)``; a split is a disjoint seed range, so "the
first 64 held-out clips" names the same 64 clips on every machine:

* ``train``: seeds ``0 ..`` (teacher training, ODE pairs, distillation);
* ``heldout``: seeds ``1_000_000 ..`` (the scenes models are evaluated on; never trained on);
* ``reference``: seeds ``2_000_000 ..`` (the real clips the fidelity distances compare against;
  disjoint from ``heldout`` so the ground-truth renderer's distance is the finite-sample floor).

On disk, clip ``i`` of a split is ``clip_NNNNNN.mp4`` (H.264 + AAC, lossy; for viewing) or
``clip_NNNNNN.npz`` (``frames`` uint8 [F, H, W, 3] + ``audio`` float32 [2, N], lossless; for
training), plus ``clip_NNNNNN.json`` with the caption and the ground truth (balls, colours,
pitches, impacts), and a ``dataset.json`` manifest describing the world and the split.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omniforcing_rt.errors import InputError
from omniforcing_rt.world.caption import caption, prompt_spec
from omniforcing_rt.world.render import render_audio, render_video
from omniforcing_rt.world.scene import Scene, WorldConfig, sample_scene

__all__ = [
    "SPLIT_STARTS",
    "Clip",
    "clip_seed",
    "ground_truth",
    "iter_clips",
    "make_clip",
    "write_clip",
    "write_dataset",
]

SPLIT_STARTS: dict[str, int] = {"train": 0, "heldout": 1_000_000, "reference": 2_000_000}
"""First seed of each split."""
_SPLIT_SIZE = 1_000_000


@dataclass(frozen=True)
class Clip:
    """One rendered clip with its scene and caption."""

    scene: Scene
    """The sampled, simulated scene (the ground truth)."""
    caption: str
    """Its caption."""
    frames: np.ndarray
    """uint8 [F, H, W, 3]."""
    audio: np.ndarray
    """float32 [2, N] at the world's sample rate."""


def clip_seed(split: str, index: int) -> int:
    """Seed of clip ``index`` of ``split``."""
    if split not in SPLIT_STARTS:
        raise InputError(f"unknown split {split!r}; choose one of {sorted(SPLIT_STARTS)}")
    if not 0 <= index < _SPLIT_SIZE:
        raise InputError(f"clip index must be in [0, {_SPLIT_SIZE}), got {index}")
    return SPLIT_STARTS[split] + index


def make_clip(config: WorldConfig, seed: int) -> Clip:
    """Sample, simulate and render the clip of ``seed``."""
    scene = sample_scene(config, seed)
    return Clip(scene, caption(scene), render_video(scene), render_audio(scene))


def iter_clips(config: WorldConfig, split: str, count: int, start: int = 0) -> Iterator[Clip]:
    """Clips ``start .. start + count - 1`` of ``split``, in order."""
    for i in range(start, start + count):
        yield make_clip(config, clip_seed(split, i))


def ground_truth(scene: Scene) -> dict[str, Any]:
    """JSON-able ground truth of a scene: caption, attributes, balls, impacts."""
    cfg = scene.config
    spec = prompt_spec(scene)
    balls = [{**dataclasses.asdict(b), "rgb": list(cfg.colour(b.colour).rgb),
              "pitch_hz": cfg.colour(b.colour).pitch_hz} for b in scene.balls]  # fmt: skip
    impacts = [{**dataclasses.asdict(e), "colour": scene.balls[e.ball].colour,
                "pitch_hz": cfg.colour(scene.balls[e.ball].colour).pitch_hz} for e in scene.events]  # fmt: skip
    return {
        "seed": scene.seed, "caption": caption(scene), "spec": dataclasses.asdict(spec),
        "frames": cfg.frames, "fps": cfg.fps, "audio_samples": cfg.audio_samples, "sample_rate": cfg.sample_rate,
        "size_hw": [cfg.height, cfg.width], "gravity": scene.gravity, "speed_word": scene.speed_word,
        "balls": balls, "impacts": impacts,
    }  # fmt: skip


def write_mp4(path: Path, frames: np.ndarray, audio: np.ndarray, fps: int, sample_rate: int) -> None:
    """One clip as H.264 + AAC (via the streaming writer, as one block)."""
    import torch

    from omniforcing_rt.media.containers import Mp4StreamWriter

    with Mp4StreamWriter(path, frames.shape[2], frames.shape[1], fps=fps, sample_rate=sample_rate) as w:
        w.write_block(torch.from_numpy(np.ascontiguousarray(frames)), torch.from_numpy(audio))


def write_clip(clip: Clip, stem: Path, fmt: str = "mp4") -> list[Path]:
    """Write ``stem.mp4`` or ``stem.npz`` plus ``stem.json``; return the paths."""
    cfg = clip.scene.config
    if fmt == "mp4":
        media = stem.with_suffix(".mp4")
        write_mp4(media, clip.frames, clip.audio, cfg.fps, cfg.sample_rate)
    elif fmt == "npz":
        media = stem.with_suffix(".npz")
        np.savez_compressed(media, frames=clip.frames, audio=clip.audio)
    else:
        raise InputError(f"format must be 'mp4' or 'npz', got {fmt!r}")
    meta = stem.with_suffix(".json")
    meta.write_text(json.dumps(ground_truth(clip.scene), indent=1) + "\n")
    return [media, meta]


def write_dataset(
    out: Path, config: WorldConfig, split: str, count: int, *, start: int = 0, fmt: str = "mp4", progress: bool = True
) -> dict[str, Any]:
    """Render and write clips ``start ..`` of ``split`` into ``out``; return the manifest."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    manifest = {"world": _config_json(config), "split": split, "first_seed": clip_seed(split, start),
                "count": count, "format": fmt, "clips": []}  # fmt: skip
    for i, clip in enumerate(tqdm(iter_clips(config, split, count, start), total=count, desc=split,
                                  unit="clip", disable=not progress)):  # fmt: skip
        stem = out / f"clip_{start + i:06d}"
        paths = write_clip(clip, stem, fmt)
        manifest["clips"].append({"seed": clip.scene.seed, "caption": clip.caption, "media": paths[0].name,
                                  "ground_truth": paths[1].name})  # fmt: skip
    (out / "dataset.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _config_json(config: WorldConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
