"""Rotary position embedding of LTX-2: frequency grid, cos/sin tables, and the two pairings.

Angle for axis a and frequency i: theta_i * (2 * pos_a / max_pos_a - 1), with
theta_i = (pi/2) * base^(i / (n - 1)), n = dim // (2 * num_axes) frequencies per axis, laid out
frequency-major with the axes interleaved ([f0_t, f0_h, f0_w, f1_t, ...]). The unused leading
channels (dim not divisible by 2 * num_axes) get cos 1 / sin 0 (spec A.9).

Precision (numerics rule of the project): the official code forms the angle product in float32.
That is what ``rope_angle_precision='float32'`` reproduces, bit for bit. Angles grow by ~1571 rad
per second of absolute time, so for long streams ``'float64'`` forms positions, grid and product in
float64 and casts only cos/sin; the rotation itself then runs in the activation dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from omniforcing_rt.errors import InputError
from omniforcing_rt.model.config import Convention, RopeType

__all__ = ["apply_rope", "frequency_grid", "identity_rows", "rope_tables"]


def frequency_grid(theta: float, num_axes: int, dim: int, precision: str) -> torch.Tensor:
    """theta_i * pi/2 for the n = dim // (2 num_axes) frequencies of one axis.

    'float32' follows the torch float32 path of the official code; 'float64' the numpy float64
    path (returned as float32, as the official code does, unless ``keep64``-style callers upcast).
    """
    n = dim // (2 * num_axes)
    if precision == "float64":
        grid = np.power(theta, np.linspace(0.0, 1.0, n, dtype=np.float64)) * math.pi / 2
        return torch.as_tensor(grid, dtype=torch.float64)
    idx = theta ** torch.linspace(math.log(1, theta), math.log(theta, theta), n, dtype=torch.float32)
    return idx.to(torch.float32) * math.pi / 2


def _angles(positions: torch.Tensor, grid: torch.Tensor, max_pos: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """[B, T, n * num_axes] angles from position bounds [B, A, T, 2] (midpoints used)."""
    pos = positions.to(dtype)
    mid = (pos[..., 0] + pos[..., 1]) / 2.0  # [B, A, T]
    frac = torch.stack([mid[:, a] / max_pos[a] for a in range(mid.shape[1])], dim=-1)  # [B, T, A]
    freqs = grid.to(dtype) * (frac.unsqueeze(-1) * 2 - 1)  # [B, T, A, n]
    return freqs.transpose(-1, -2).flatten(2)


def rope_tables(
    positions: torch.Tensor,
    dim: int,
    num_heads: int,
    max_pos: tuple[int, ...],
    theta: float,
    convention: Convention,
    out_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for a sequence.

    Args:
        positions: [B, A, T, 2] float [start, end) bounds per axis (A = 3 video, 1 audio/cross).
        dim: rotated width (the attention inner dim).
        num_heads: heads the width is split into (used by the split pairing).
        max_pos: per-axis max position (A entries).
        theta: RoPE base.
        convention: selects pairing, grid precision and angle precision.
        out_dtype: dtype of the returned tables (the activation dtype).

    Returns:
        interleaved: cos, sin of shape [B, T, dim]; split: [B, H, T, dim / (2 H)].
    """
    if positions.ndim != 4 or positions.shape[-1] != 2:
        raise InputError(f"positions must be [B, axes, T, 2], got {tuple(positions.shape)}")
    if positions.shape[1] != len(max_pos):
        raise InputError(f"positions has {positions.shape[1]} axes but max_pos has {len(max_pos)}")
    num_axes = positions.shape[1]
    wide = convention.rope_angle_precision == "float64"
    grid = frequency_grid(theta, num_axes, dim, convention.frequencies_precision)
    if not wide:
        grid = grid.to(torch.float32)
    freqs = _angles(positions, grid, max_pos, torch.float64 if wide else torch.float32)
    b, t, _ = freqs.shape
    if convention.rope_type is RopeType.SPLIT:
        pad = dim // 2 - freqs.shape[-1]
        cos, sin = freqs.cos(), freqs.sin()
        cos = torch.cat([torch.ones_like(cos[..., :pad]), cos], dim=-1)
        sin = torch.cat([torch.zeros_like(sin[..., :pad]), sin], dim=-1)
        cos = cos.reshape(b, t, num_heads, -1).transpose(1, 2)
        sin = sin.reshape(b, t, num_heads, -1).transpose(1, 2)
    else:
        pad = dim % (2 * num_axes)
        cos = freqs.cos().repeat_interleave(2, dim=-1)
        sin = freqs.sin().repeat_interleave(2, dim=-1)
        cos = torch.cat([torch.ones_like(cos[..., :pad]), cos], dim=-1)
        sin = torch.cat([torch.zeros_like(sin[..., :pad]), sin], dim=-1)
    return cos.to(out_dtype).contiguous(), sin.to(out_dtype).contiguous()


def identity_rows(cos: torch.Tensor, sin: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepend ``rows`` identity rotations (cos 1, sin 0) along the token axis.

    Audio sink tokens use this: their q/k are not rotated at all ("skip rotation"), which is not
    the same as position 0 (spec B.4).
    """
    if rows == 0:
        return cos, sin
    tok = -2  # token axis for both [B, T, D] and [B, H, T, d]
    shape = list(cos.shape)
    shape[tok] = rows
    ones = torch.ones(shape, dtype=cos.dtype, device=cos.device)
    return torch.cat([ones, cos], dim=tok), torch.cat([torch.zeros_like(ones), sin], dim=tok)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rope_type: RopeType) -> torch.Tensor:
    """Rotate ``x`` [B, T, H*d] with tables from :func:`rope_tables` of the same pairing."""
    if rope_type is RopeType.INTERLEAVED:
        x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
        rotated = torch.stack((-x2, x1), dim=-1).flatten(-2)
        return x * cos + rotated * sin
    heads = cos.shape[1]
    xh = x.unflatten(-1, (heads, 2, -1)).transpose(1, 2)  # [B, H, T, 2, d/2]
    first, second = xh[..., 0, :], xh[..., 1, :]
    out_first = first * cos - second * sin
    out_second = second * cos + first * sin
    return torch.stack([out_first, out_second], dim=-2).transpose(1, 2).flatten(-3)
