"""Latents of world clips for teacher training: pluggable encoders and a cached safetensors shard.

The teacher never sees pixels or waveforms: each train clip is encoded once into the transformer's
layout (video ``[F', C, h, w]`` with ``F' = (F - 1) / 8 + 1``, audio tokens ``[T, C]`` with ``T``
from :func:`~omniforcing_rt.pipeline.layout.audio_latents_for_video`) and cached. Two sources:

* :class:`WorldEncoderSource`: the trained world media encoders exported by
  :func:`~omniforcing_rt.world_models.export.export_media` (already normalised to ~N(0, 1) per
  channel, and decodable by the exported decoders). This is what a real teacher trains on.
* :class:`StandInSource`: **for tests (and smoke runs before the media encoders exist) only**. A
  fixed, untrained, seeded linear encoder with the same geometry: per latent cell, the video is
  average-pooled to 2 x 4 x 4 (time x space) RGB means (96 numbers) and the log-mel to 4 frames x
  16 bands x 2 channels (128 numbers), each mapped by a seeded orthogonal matrix to 128 channels.
  The cache standardises its latents per channel. It keeps where and when the balls are and which
  pitches sound, so captions are learnable, but it has no decoder: stand-in samples cannot be
  turned back into media.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.pipeline.layout import audio_latents_for_video
from omniforcing_rt.world.dataset import clip_seed, make_clip
from omniforcing_rt.world.scene import WorldConfig
from omniforcing_rt.world_models.mel import LOG_FLOOR, log_mel

__all__ = ["LatentSet", "LatentSource", "StandInSource", "WorldEncoderSource", "cache_latents", "make_source"]

log = logging.getLogger(__name__)

CACHE_FORMAT = "omniforcing_rt.world_teacher_latents/1"


class LatentSource(Protocol):
    """Encodes one clip into transformer latents."""

    name: str
    needs_statistics: bool
    """True when the cache must standardise the latents per channel (the stand-in)."""

    def encode(self, frames: np.ndarray, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [F, H, W, 3] and float [2, N] -> (video [F', C, h, w], audio [T, C])."""
        ...


def _orthogonal(n_in: int, n_out: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(max(n_in, n_out), max(n_in, n_out), generator=gen))
    return q[:n_in, :n_out].contiguous()


class StandInSource:
    """Fixed seeded pooling + orthogonal projection encoder (tests only; see the module docstring)."""

    name = "standin"
    needs_statistics = True

    def __init__(self, channels: int = 128, seed: int = 0) -> None:
        self.video_proj = _orthogonal(96, channels, seed) * (channels / 96) ** 0.5
        self.audio_proj = _orthogonal(128, channels, seed + 1)

    @torch.no_grad()
    def encode(self, frames: np.ndarray, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        f, hh, ww, _ = frames.shape
        x = torch.from_numpy(frames).float().div(127.5).sub(1.0)
        x = torch.cat([x[:1].expand(7, -1, -1, -1), x])  # frame 0 alone makes latent 0 (causal VAE geometry)
        k, h, w = x.shape[0] // 8, hh // 32, ww // 32
        x = x.view(k, 2, 4, h, 4, 8, w, 4, 8, 3).mean(dim=(2, 5, 8))  # [k, 2, h, 4, w, 4, 3]
        cells = x.permute(0, 2, 4, 1, 3, 5, 6).reshape(k, h, w, 96)
        video = (cells @ self.video_proj).permute(0, 3, 1, 2).contiguous()  # [k, C, h, w]
        mel = log_mel(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))  # [2, 4T - 3, 64]
        mel = torch.nn.functional.pad(mel, (0, 0, 3, 0), value=LOG_FLOOR)
        t = mel.shape[1] // 4
        a = mel.view(2, t, 4, 16, 4).mean(-1).permute(1, 0, 2, 3).reshape(t, 128)
        return video, a @ self.audio_proj


class WorldEncoderSource:
    """The trained world media encoders of an exported ``media.safetensors``."""

    name = "world"
    needs_statistics = False

    def __init__(self, media: Path | str) -> None:
        from omniforcing_rt.world_models.export import load_world_encoders

        if not Path(media).is_file():
            raise CheckpointError(f"world media checkpoint not found: {media} (run train_world.py media-export)")
        self.video, self.audio = load_world_encoders(media)

    @torch.no_grad()
    def encode(self, frames: np.ndarray, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        from omniforcing_rt.media.audio_vae import audio_latent_to_tokens
        from omniforcing_rt.world_models.data import frames_to_video

        zv = self.video(frames_to_video(frames)[None])[0]  # [C, F', h, w]
        za = self.audio(log_mel(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))[None])
        return zv.permute(1, 0, 2, 3).contiguous(), audio_latent_to_tokens(za)[0]


def make_source(kind: str, media: str | None, channels: int = 128, seed: int = 0) -> LatentSource:
    """The latent source named ``kind`` ('world' or 'standin')."""
    if kind == "standin":
        return StandInSource(channels, seed)
    if kind == "world":
        if media is None:
            raise ConfigError("invalid latent source", ["the 'world' source needs a media checkpoint"])
        return WorldEncoderSource(media)
    raise ConfigError("invalid latent source", [f"unknown latent source {kind!r}"])


@dataclass(frozen=True)
class LatentSet:
    """Cached latents of N train clips."""

    video: torch.Tensor
    """[N, F', C, h, w] float32."""
    audio: torch.Tensor
    """[N, T, C] float32."""
    captions: list[str]
    """Caption of each clip."""
    source: str
    """Name of the source that encoded them."""

    def __len__(self) -> int:
        return len(self.captions)

    @classmethod
    def load(cls, path: Path) -> LatentSet:
        """Read a cache written by :func:`cache_latents`."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a Mapping)
        except Exception as e:  # safetensors raises several types for bad files
            raise CheckpointError(f"cannot read latent cache {path}: {e}") from None
        if meta.get("format") != CACHE_FORMAT or "video" not in t or "audio" not in t:
            raise CheckpointError(f"{path} is not a {CACHE_FORMAT} latent cache")
        return cls(t["video"].float(), t["audio"].float(), json.loads(meta["captions"]), meta["source"])


def _standardise(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-4)
    return (x - mean) / std, mean.flatten(), std.flatten()


def cache_latents(
    source: LatentSource, path: Path, count: int, video_latents: int = 7, progress: bool = True
) -> LatentSet:
    """Encode train clips ``0..count-1`` into ``path`` (reused when it already holds them); returns the set."""
    if path.is_file():
        cached = LatentSet.load(path)
        if cached.source == source.name and len(cached) == count and cached.video.shape[1] == video_latents:
            return cached
        log.info("latent cache %s does not match (%s, %d clips): re-encoding", path, cached.source, len(cached))
    world = WorldConfig(frames=8 * (video_latents - 1) + 1)
    videos, audios, captions = [], [], []
    for i in tqdm(range(count), desc=f"latents ({source.name})", unit="clip", disable=not progress):
        clip = make_clip(world, clip_seed("train", i))
        v, a = source.encode(clip.frames, clip.audio)
        videos.append(v)
        audios.append(a)
        captions.append(clip.caption)
    video, audio = torch.stack(videos).float(), torch.stack(audios).float()
    if audio.shape[1] != audio_latents_for_video(video_latents):
        raise ConfigError(problems=[f"source gives {audio.shape[1]} audio latents, the layout needs "
                                    f"{audio_latents_for_video(video_latents)}"])  # fmt: skip
    tensors = {}
    if source.needs_statistics:
        video, tensors["video_mean"], tensors["video_std"] = _standardise(video, (0, 1, 3, 4))
        audio, tensors["audio_mean"], tensors["audio_std"] = _standardise(audio, (0, 1))
    _write(path, {"video": video, "audio": audio, **tensors}, captions, source.name)
    return LatentSet(video, audio, captions, source.name)


def _write(path: Path, tensors: dict[str, torch.Tensor], captions: list[str], source: str) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    meta = {"format": CACHE_FORMAT, "captions": json.dumps(captions), "source": source}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)
