"""Training batches rendered on the fly from the world's train seeds (no files, no data loader).

Every batch is a pure function of ``(seed, step)``: the clip indices and window offsets come from
``numpy.random.default_rng([seed, step])``, and clip ``i`` is train seed ``i`` of
:func:`~omniforcing_rt.world.dataset.clip_seed`. A resumed run therefore sees exactly the batches
it would have seen without the interruption, and held-out / reference seeds are never touched.
Rendering a clip takes ~0.05 s, small next to a training step.
"""

from __future__ import annotations

import numpy as np
import torch

from omniforcing_rt.world.dataset import clip_seed, make_clip
from omniforcing_rt.world.scene import WorldConfig
from omniforcing_rt.world_models.mel import LOG_FLOOR, log_mel

__all__ = ["TRAIN_POOL", "audio_batch", "frames_to_video", "video_batch", "vocoder_batch", "video_to_frames"]

TRAIN_POOL = 100_000
"""Train clips drawn from (indices 0 .. TRAIN_POOL - 1 of the train split)."""


def _rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


def frames_to_video(frames: np.ndarray) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> float32 [3, F, H, W] in [-1, 1]."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(127.5).sub(1.0)


def video_to_frames(video: torch.Tensor) -> np.ndarray:
    """float [3, F, H, W] (roughly [-1, 1]) -> uint8 [F, H, W, 3], rounded (not truncated)."""
    x = ((video.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).numpy()


def video_batch(config: WorldConfig, seed: int, step: int, batch: int, frames: int) -> torch.Tensor:
    """[B, 3, frames, H, W] windows starting on a latent boundary (frame 8k) of random train clips."""
    rng = _rng(seed, step)
    out = []
    for _ in range(batch):
        clip = make_clip(config, clip_seed("train", int(rng.integers(TRAIN_POOL))))
        start = 8 * int(rng.integers((config.frames - frames) // 8 + 1))
        out.append(frames_to_video(clip.frames[start : start + frames]))
    return torch.stack(out)


def _clip_mel_audio(config: WorldConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    clip = make_clip(config, clip_seed("train", int(rng.integers(TRAIN_POOL))))
    audio = torch.from_numpy(clip.audio)
    return log_mel(audio), audio


def _sounding_start(mel: torch.Tensor, frames: int, rng: np.random.Generator) -> int:
    """A random window start, among those whose window holds a tone when any does (most are silent)."""
    loud = (mel.amax(dim=(0, 2)) > LOG_FLOOR + 4.0).float()  # [M] frames with sound
    sums = torch.nn.functional.conv1d(loud.view(1, 1, -1), torch.ones(1, 1, frames)).view(-1)
    candidates = torch.nonzero(sums > 0).view(-1)
    if candidates.numel() == 0:
        return int(rng.integers(mel.shape[1] - frames + 1))
    return int(candidates[int(rng.integers(candidates.numel()))])


def audio_batch(config: WorldConfig, seed: int, step: int, batch: int, mel_frames: int) -> torch.Tensor:
    """[B, 2, mel_frames, 64] log-mel windows (mel_frames = 4T - 3) at random offsets of train clips."""
    rng = _rng(seed, step)
    out = []
    for _ in range(batch):
        mel, _ = _clip_mel_audio(config, rng)
        start = _sounding_start(mel, mel_frames, rng)
        out.append(mel[:, start : start + mel_frames])
    return torch.stack(out)


def vocoder_batch(
    config: WorldConfig, seed: int, step: int, batch: int, mel_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, 2, mel_frames, 64] log-mel, [B, 2, 240 mel_frames] the matching 24 kHz waveform)."""
    rng = _rng(seed, step)
    mels, waves = [], []
    for _ in range(batch):
        mel, audio = _clip_mel_audio(config, rng)
        start = _sounding_start(mel, mel_frames, rng)
        mels.append(mel[:, start : start + mel_frames])
        waves.append(audio[:, 240 * start : 240 * (start + mel_frames)])
    return torch.stack(mels), torch.stack(waves)
