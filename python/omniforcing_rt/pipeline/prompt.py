"""Prompt conditioning inputs: caption features for both streams plus the padding mask.

Real models get these from Gemma-3 and the embeddings connectors (the media/text path). A model
without a text encoder (the embedded random ``default``) gets *hashed* features instead: the prompt
string seeds a generator that draws [1, L, C] features, so different prompts give different,
reproducible conditioning. That is a stand-in for conditioning plumbing, not language
understanding, and the CLI says so when it is used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from omniforcing_rt.errors import InputError

__all__ = ["PromptFeatures", "hashed_prompt_features"]


@dataclass(frozen=True)
class PromptFeatures:
    """Caption features entering the transformer."""

    video: torch.Tensor
    """[B, L, caption_channels] features for the video stream."""
    audio: torch.Tensor
    """[B, L, caption_channels] features for the audio stream."""
    mask: torch.Tensor | None = None
    """[B, L] int (1 valid, 0 left padding) or None when nothing is padded."""

    def __post_init__(self) -> None:
        if self.video.ndim != 3 or self.video.shape != self.audio.shape:
            raise InputError(
                f"video/audio features must both be [B, L, C], got {tuple(self.video.shape)} and {tuple(self.audio.shape)}"
            )
        if self.mask is not None and tuple(self.mask.shape) != tuple(self.video.shape[:2]):
            raise InputError(f"mask must be [B, L] = {tuple(self.video.shape[:2])}, got {tuple(self.mask.shape)}")


def hashed_prompt_features(prompt: str, tokens: int, channels: int) -> PromptFeatures:
    """Deterministic features for ``prompt`` (see module docstring)."""
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "little") & ((1 << 63) - 1)
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn(1, tokens, channels, generator=gen)
    audio = torch.randn(1, tokens, channels, generator=gen)
    return PromptFeatures(video, audio, torch.ones(1, tokens, dtype=torch.int64))
