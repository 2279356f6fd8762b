"""Reference ``x0_renoise``: the end of a denoise pass (spec A.8, A.11, C.1).

``x0 = x - sigma * v`` (the velocity-to-clean conversion, computed in fp32 or better) and
``x_next = (1 - sigma_next) * x0 + sigma_next * noise`` (re-noise to the next sigma with the
caller's seeded noise). The reference computes both in fp64 from the unrounded x0.
"""

from __future__ import annotations

import torch

from .._elementwise_args import validate_renoise


def _per_batch(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sigma of 1 or B values, shaped to broadcast over x [B, ...]."""
    return s.reshape(-1).double().reshape(-1, *([1] * (x.dim() - 1)))


def x0_renoise(
    x: torch.Tensor, v: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean estimate and re-noised next input.

    Args:
        x: [B, ...] current noisy latents x_sigma.
        v: [B, ...] predicted velocity.
        noise: [B, ...] fresh noise for the next step.
        sigma, sigma_next: fp32/fp64 tensors with 1 or B values (tensors, not floats, so a
            captured CUDA graph can replay with new values).

    Returns:
        (x0, x_next), both shaped like x in x's dtype.
    """
    validate_renoise(x, v, noise, sigma, sigma_next)
    s, sn = _per_batch(sigma, x), _per_batch(sigma_next, x)
    x0 = x.double() - s * v.double()
    x_next = (1.0 - sn) * x0 + sn * noise.double()
    return x0.to(x.dtype), x_next.to(x.dtype)
