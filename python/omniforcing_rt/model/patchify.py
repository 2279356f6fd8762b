"""Latent <-> token layout (patch size 1): video f-major then h then w; audio one token per latent."""

from __future__ import annotations

import torch

from omniforcing_rt.errors import InputError

__all__ = ["patchify_video", "unpatchify_video"]


def patchify_video(latent: torch.Tensor) -> torch.Tensor:
    """[B, F, C, H, W] -> [B, F*H*W, C]."""
    if latent.ndim != 5:
        raise InputError(f"video latent must be [B, F, C, H, W], got {tuple(latent.shape)}")
    b, f, c, h, w = latent.shape
    return latent.permute(0, 1, 3, 4, 2).reshape(b, f * h * w, c)


def unpatchify_video(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """[B, F*H*W, C] -> [B, F, C, H, W]."""
    b, t, c = tokens.shape
    if t != frames * height * width:
        raise InputError(f"{t} tokens do not make {frames} x {height} x {width} latents")
    return tokens.reshape(b, frames, height, width, c).permute(0, 1, 4, 2, 3)
