"""PixelNorm: RMS normalisation over the channel axis, shared by the video and audio VAE decoders.

The two decoders use different epsilons (video 1e-8, audio 1e-6; spec-media.md section 7 item 7),
so the epsilon is always passed explicitly rather than defaulted.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AUDIO_PIXEL_NORM_EPS", "VIDEO_PIXEL_NORM_EPS", "PixelNorm", "pixel_norm"]

VIDEO_PIXEL_NORM_EPS = 1e-8
"""ltx-core ``PixelNorm()`` default, used everywhere in the video decoder."""
AUDIO_PIXEL_NORM_EPS = 1e-6
"""ltx-core ``build_normalization_layer(..., PIXEL)``, used everywhere in the audio decoder."""


def pixel_norm(x: torch.Tensor, eps: float, dim: int = 1) -> torch.Tensor:
    """``x / sqrt(mean(x^2 over dim) + eps)``, evaluated in the same order as ltx-core.

    Args:
        x: [B, C, ...] activations.
        eps: added to the mean square.
        dim: the channel axis.

    Returns:
        Tensor of the shape of ``x``.
    """
    return x / torch.sqrt(torch.mean(x**2, dim=dim, keepdim=True) + eps)


class PixelNorm(nn.Module):
    """Module wrapper of :func:`pixel_norm` (no parameters, no buffers)."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise [B, C, ...] over C."""
        return pixel_norm(x, self.eps)
