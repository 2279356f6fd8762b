"""Latent-to-media coordinates: the position tensors that feed RoPE, and the media rates.

LTX-2 gives every token a [start, end) bound per axis and uses the midpoint (``use_middle_indices_grid``):

* video time, in seconds: latent frame k covers pixel frames [max(0, 8k-7), max(0, 8k+1)) at 24 fps
  (the causal VAE's first latent holds a single frame);
* video space, in pixels: latent row h covers [32h, 32h+32), same for columns;
* audio time, in seconds: audio latent j covers mel frames [max(0, 4j-3), 4j+1) at 100 mel frames/s.

Two styles exist because the two official code paths round differently in float32, and RoPE
angles (~1.6e4 rad) amplify a one-ulp position difference to ~1e-4 in cos/sin:

* ``"patchifier"`` (LTX-2 / teacher): bounds built in float64, cast to float32; the model takes the
  midpoint in float32;
* ``"causal"`` (OmniForcing student): the midpoint itself is computed in float32 from integer
  frame bounds, ``((start + end) / 2) / 24`` for video and ``((start + end) / 2) * 160 / 16000``
  for audio, and returned as a degenerate [mid, mid] bound (whose midpoint is exactly mid).

Absolute indices are kept: streaming block k starts its range at the block's first latent, so
cached keys carry absolute time.
"""

from __future__ import annotations

import torch

__all__ = [
    "AUDIO_LATENT_MEL_STRIDE",
    "AUDIO_MEL_FRAMES_PER_S",
    "AUDIO_SAMPLES_PER_MEL",
    "AUDIO_SAMPLE_RATE",
    "VIDEO_FPS",
    "VIDEO_SPATIAL_STRIDE",
    "VIDEO_TEMPORAL_STRIDE",
    "audio_latent_bounds_s",
    "POSITION_STYLES",
    "audio_positions",
    "video_latent_bounds_s",
    "video_positions",
]

VIDEO_FPS = 24
"""Output video frame rate."""
VIDEO_TEMPORAL_STRIDE = 8
"""Pixel frames per video latent frame (the first latent holds 1)."""
VIDEO_SPATIAL_STRIDE = 32
"""Pixels per latent row/column."""
AUDIO_MEL_FRAMES_PER_S = 100
"""Mel frames per second at the audio VAE input (16 kHz, hop 160)."""
AUDIO_LATENT_MEL_STRIDE = 4
"""Mel frames per audio latent (the first latent holds 1)."""
AUDIO_SAMPLE_RATE = 24_000
"""Vocoder output sample rate."""
AUDIO_SAMPLES_PER_MEL = AUDIO_SAMPLE_RATE // AUDIO_MEL_FRAMES_PER_S
"""Vocoder upsampling factor (240)."""


def video_latent_bounds_s(start: int, count: int) -> torch.Tensor:
    """[count, 2] float64 time bounds in seconds of video latent frames start..start+count-1."""
    k = torch.arange(start, start + count, dtype=torch.float64)
    s = VIDEO_TEMPORAL_STRIDE
    lo = (s * k - (s - 1)).clamp(min=0)
    hi = (s * k + 1).clamp(min=0)
    return torch.stack([lo, hi], dim=-1) / VIDEO_FPS


def audio_latent_bounds_s(start: int, count: int) -> torch.Tensor:
    """[count, 2] float64 time bounds in seconds of audio latents start..start+count-1."""
    j = torch.arange(start, start + count, dtype=torch.float64)
    s = AUDIO_LATENT_MEL_STRIDE
    lo = (s * j - (s - 1)).clamp(min=0)
    hi = s * j + 1
    return torch.stack([lo, hi], dim=-1) / AUDIO_MEL_FRAMES_PER_S


POSITION_STYLES = ("patchifier", "causal")


def _causal_video_time_s(start: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(start, start + count, dtype=dtype)
    s = VIDEO_TEMPORAL_STRIDE
    lo = (t * s + 1 - s).clamp(min=0)
    hi = ((t + 1) * s + 1 - s).clamp(min=0)
    return (lo + hi) / 2.0 / VIDEO_FPS


def _causal_audio_time_s(start: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(start, start + count, dtype=dtype)
    s = AUDIO_LATENT_MEL_STRIDE
    lo = (t * s + 1 - s).clamp(min=0)
    hi = ((t + 1) * s + 1 - s).clamp(min=0)
    return (lo + hi) / 2.0 * 160 / 16000


def _check_style(style: str) -> None:
    if style not in POSITION_STYLES:
        raise ValueError(f"position style must be one of {POSITION_STYLES}, got {style!r}")


def video_positions(
    start_frame: int,
    num_frames: int,
    grid_h: int,
    grid_w: int,
    batch: int = 1,
    style: str = "patchifier",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Video position bounds [B, 3, F*H*W, 2] (time s, row px, col px), f-major then h then w.

    Args:
        start_frame: absolute index of the first latent frame.
        num_frames: number of latent frames F.
        grid_h: latent rows H.
        grid_w: latent columns W.
        batch: batch size B (positions are identical across the batch).
        style: "patchifier" (LTX-2) or "causal" (OmniForcing student), see the module docstring.
        dtype: float32 reproduces the official rounding; float64 keeps absolute time exact for
            long streams (pair it with ``rope_angle_precision='float64'``).
    """
    _check_style(style)
    if style == "causal":
        mid = _causal_video_time_s(start_frame, num_frames, dtype)
        t = torch.stack([mid, mid], dim=-1).to(torch.float64)
    else:
        t = video_latent_bounds_s(start_frame, num_frames)  # [F, 2]
    rows = torch.arange(grid_h, dtype=torch.float64)
    cols = torch.arange(grid_w, dtype=torch.float64)
    st = VIDEO_SPATIAL_STRIDE
    h = torch.stack([rows * st, rows * st + st], dim=-1)  # [H, 2]
    w = torch.stack([cols * st, cols * st + st], dim=-1)  # [W, 2]
    shape = (num_frames, grid_h, grid_w, 2)
    tt = t[:, None, None, :].expand(shape)
    hh = h[None, :, None, :].expand(shape)
    ww = w[None, None, :, :].expand(shape)
    pos = torch.stack([tt, hh, ww], dim=0).reshape(3, -1, 2)
    return pos.to(dtype).unsqueeze(0).expand(batch, -1, -1, -1).contiguous()


def audio_positions(
    start_latent: int, num_latents: int, batch: int = 1, style: str = "patchifier", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Audio position bounds [B, 1, T, 2] in seconds for latents start..start+T-1 (style, dtype as video)."""
    _check_style(style)
    if style == "causal":
        mid = _causal_audio_time_s(start_latent, num_latents, dtype)
        pos = torch.stack([mid, mid], dim=-1)
    else:
        pos = audio_latent_bounds_s(start_latent, num_latents).to(dtype)
    return pos.unsqueeze(0).unsqueeze(0).expand(batch, -1, -1, -1).contiguous()
