"""Caption features for the world teacher: a fixed, seeded word-embedding table plus positions.

Why not the hashed whole-prompt stand-in (:func:`~omniforcing_rt.pipeline.prompt.hashed_prompt_features`):
it maps each *whole* prompt to unrelated noise, so a model cannot generalise to a caption it has
not seen. Why not a tiny random Gemma-3: its features of a word depend on every earlier word
through untrained layers, which blurs exactly the bindings ("the red ball rings a low note") the
teacher must learn, and it adds a ``transformers`` forward to every prompt. World captions use a
vocabulary of a few dozen words, so the simplest featurizer that keeps every word distinguishable
is a lookup: token ``w`` at position ``i`` ->
``e(w) + position_scale * p(i)``, where ``e(w)`` is a unit-RMS Gaussian vector seeded by
``sha256(seed, w)`` (any word, seen or not, gets its own fixed vector; nothing is trained) and
``p(i)`` a sinusoidal position code (the transformer's text cross-attention has no positions of its
own, and word order carries the colour <-> note binding).

Tokens are lower-case words and the separators ``,`` and ``;``. Sequences are **left padded** to
``tokens`` (the convention of :meth:`AVTransformer.encode_text`); the empty caption (the
unconditional branch of classifier-free guidance) is one reserved ``<empty>`` token, so a row is
never fully masked. Video and audio get the same features: the teacher's two text projections
(``caption_projection`` / ``audio_caption_projection``) learn their own views of them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from omniforcing_rt.pipeline.prompt import PromptFeatures

__all__ = ["EMPTY_TOKEN", "CaptionFeaturizer", "tokenize", "write_prompt_features"]

EMPTY_TOKEN = "<empty>"
_TOKEN = re.compile(r"[a-z0-9]+|[,;]")


def tokenize(caption: str) -> list[str]:
    """Lower-case word and separator tokens of ``caption`` (``[EMPTY_TOKEN]`` when it has none)."""
    tokens = _TOKEN.findall(caption.lower())
    return tokens or [EMPTY_TOKEN]


@dataclass(frozen=True)
class CaptionFeaturizer:
    """Deterministic caption -> ([L, C] video, [L, C] audio, [L] mask) features (module docstring)."""

    tokens: int
    """Sequence length L (longer captions keep their first L tokens)."""
    channels: int
    """Feature width C (the transformer's ``caption_channels``)."""
    seed: int = 0
    """Seed of the word table."""
    position_scale: float = 0.5
    """Weight of the sinusoidal position code relative to the unit-RMS word vector."""

    def word_vector(self, word: str) -> torch.Tensor:
        """The fixed unit-RMS vector [C] of ``word``."""
        digest = hashlib.sha256(f"{self.seed}:{word}".encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
        v = torch.randn(self.channels, generator=gen)
        return v / v.pow(2).mean().sqrt()

    def positions(self, count: int) -> torch.Tensor:
        """Sinusoidal position codes [count, C] (unit RMS)."""
        half = self.channels // 2
        freq = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
        ang = torch.arange(count, dtype=torch.float32)[:, None] * freq[None]
        code = torch.zeros(count, self.channels)
        code[:, 0 : 2 * half : 2] = torch.sin(ang)
        code[:, 1 : 2 * half : 2] = torch.cos(ang)
        return code * math.sqrt(2.0)

    def encode(self, caption: str) -> PromptFeatures:
        """Features of one caption, batch of 1: video, audio [1, L, C], mask [1, L] (1 valid, left padded)."""
        words = tokenize(caption)[: self.tokens]
        n = len(words)
        feats = torch.stack([self.word_vector(w) for w in words]) + self.position_scale * self.positions(n)
        video = torch.zeros(1, self.tokens, self.channels)
        video[0, self.tokens - n :] = feats
        mask = torch.zeros(1, self.tokens, dtype=torch.int64)
        mask[0, self.tokens - n :] = 1
        return PromptFeatures(video=video, audio=video.clone(), mask=mask)

    def encode_batch(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(video [B, L, C], audio [B, L, C], mask [B, L]) of several captions."""
        feats = [self.encode(c) for c in captions]
        return (torch.cat([f.video for f in feats]), torch.cat([f.audio for f in feats]),
                torch.cat([f.mask for f in feats]))  # fmt: skip


def write_prompt_features(path: Path, featurizer: CaptionFeaturizer, prompts: Sequence[str], negative: str) -> None:
    """A ``prompt_features`` file for the distillation trainer (rows: prompts, then ``negative``).

    The student is then conditioned exactly as the teacher was trained (distill ``PromptBank``).
    """
    from safetensors.torch import save_file

    video, audio, mask = featurizer.encode_batch([*prompts, negative])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"video": video.contiguous(), "audio": audio.contiguous(), "mask": mask.contiguous()}, str(path))
