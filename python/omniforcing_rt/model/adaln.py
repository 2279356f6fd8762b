"""Timestep conditioning: sinusoidal features, the AdaLN-single MLPs, and modulation rows.

t = multiplier * sigma goes through 256 sinusoidal features (cosine half first, frequencies
exp(-ln(1e4) i / 128)), ``linear_1`` -> SiLU -> ``linear_2`` giving the embedded timestep e, then
SiLU -> ``linear`` giving coef * D modulation values shared by every block (spec A.4). A block adds
its own learned table row k to slice k of that vector.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AdaLayerNormSingle", "modulation_rows", "timestep_features"]

TIMESTEP_FEATURES = 256


def timestep_features(t: torch.Tensor, dim: int = TIMESTEP_FEATURES) -> torch.Tensor:
    """[N] timesteps -> [N, dim] float32 features, cosine half first (flip_sin_to_cos)."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    args = t.float()[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class _TimestepEmbedder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(TIMESTEP_FEATURES, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear_2(nn.functional.silu(self.linear_1(feats)))


class _Emb(nn.Module):
    # Only exists so parameter names read ``emb.timestep_embedder.*`` as in the checkpoint.
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.timestep_embedder = _TimestepEmbedder(dim)


class AdaLayerNormSingle(nn.Module):
    """Timestep -> (modulation vector [.., coef*D], embedded timestep [.., D])."""

    def __init__(self, dim: int, coefficient: int) -> None:
        super().__init__()
        self.coefficient = coefficient
        self.emb = _Emb(dim)
        self.linear = nn.Linear(dim, coefficient * dim)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """t: any shape of already-scaled timesteps. Returns (mod [*t.shape, coef*D], e [*t.shape, D])."""
        dtype = self.linear.weight.dtype
        feats = timestep_features(t.reshape(-1)).to(dtype)
        e = self.emb.timestep_embedder(feats)
        mod = self.linear(nn.functional.silu(e))
        return mod.reshape(*t.shape, -1), e.reshape(*t.shape, -1)


def modulation_rows(table: torch.Tensor, mod: torch.Tensor) -> list[torch.Tensor]:
    """Per-row modulation values: table[k] + mod[..., k*D:(k+1)*D] for every row k of ``table``.

    Args:
        table: [K, D] learned block table.
        mod: [B, T, K*D] shared modulation vector (T may be 1 to broadcast).

    Returns:
        K tensors [B, T, D].
    """
    k, d = table.shape
    vals = table.to(mod.dtype)[None, None] + mod.unflatten(-1, (k, d))
    return list(vals.unbind(dim=2))
