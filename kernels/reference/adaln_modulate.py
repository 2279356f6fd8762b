"""Reference AdaLN ops, in fp64 (spec A.6): ``adaln_modulate`` and ``gated_residual``.

``adaln_modulate(x, shift, scale) = rms(x) * (1 + scale) + shift`` where ``rms`` is RMSNorm over
the last dim **without** a learned weight, eps 1e-6. ``gated_residual(x, y, gate) = x + y * gate``.
Modulation tensors broadcast to x: ``[C]``, ``[1|T, C]`` or ``[B, 1|T, C]`` (per-token rows for
full-sequence training, where each block has its own sigma).
"""

from __future__ import annotations

import torch

from omniforcing_rt.errors import InputError

from .._elementwise_args import as_btc, broadcast_mod

RMS_EPS = 1e-6


def adaln_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, *, eps: float = RMS_EPS) -> torch.Tensor:
    """rms(x) * (1 + scale) + shift.

    Args:
        x: [T, C] or [B, T, C] activations.
        shift, scale: broadcastable to x ([C], [1|T, C], [B, 1|T, C]).
        eps: RMSNorm epsilon.

    Returns:
        Same shape and dtype as x.
    """
    x3 = as_btc("x", x)
    sh, sc = broadcast_mod("shift", shift, x3).double(), broadcast_mod("scale", scale, x3).double()
    xd = x3.double()
    normed = xd * torch.rsqrt(xd.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (normed * (1.0 + sc) + sh).to(x.dtype).reshape(x.shape)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """x + y * gate, with y shaped like x and gate broadcastable to it. Returns x's dtype."""
    x3 = as_btc("x", x)
    y3 = as_btc("y", y)
    if y3.shape != x3.shape:
        raise InputError(f"y {tuple(y.shape)} must match x {tuple(x.shape)}")
    g = broadcast_mod("gate", gate, x3).double()
    return (x3.double() + y3.double() * g).to(x.dtype).reshape(x.shape)
