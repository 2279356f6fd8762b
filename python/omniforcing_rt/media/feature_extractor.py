"""Gemma hidden-state feature extractor: 49 stacked hidden states -> one [B, L, D] text feature.

Gemma itself is not re-implemented here; the caller passes the ``output_hidden_states`` tuple of
``Gemma3ForConditionalGeneration`` (49 tensors [B, L, 3840]: the scaled embeddings, the residual
stream after layers 1..47, and the final-norm output of layer 48) and the tokenizer's mask.

Per batch item and per layer l, over the valid tokens and all D features (spec-media.md 5.2):
``mean_l = sum / (n D + 1e-6)``, ``N = 8 (E - mean_l) / (max_l - min_l + 1e-6)``; padded positions
become 0. The flattened feature index is ``d * 49 + l`` (layer fastest). Then ``aggregate_embed``
(Linear D*49 -> D, no bias; checkpoint key ``text_embedding_projection.aggregate_embed.weight``).

Padded positions are removed by selection (``masked_fill``), never by multiplying with the mask,
so non-finite values there cannot leak. Valid tokens are taken from the mask itself; ltx-core
derives them from the token count and the padding side, which is the same set for the
tokenizer's left padding.

Sizes come from the checkpoint ``config`` section ``text_encoder_tiny`` when present (media
fixtures); otherwise the literals of the official code (3840 x 49), which has no config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.media.config_reader import SectionReader, parse_metadata

__all__ = ["FeatureExtractorConfig", "GemmaFeatureExtractor", "normalize_and_concat_hidden_states"]

NORMALIZATION_SCALE = 8.0
"""Fixed scale of the per-layer min-max normalisation (ltx-core literal)."""
NORMALIZATION_EPS = 1e-6
"""Epsilon in both denominators (ltx-core literal)."""


@dataclass(frozen=True, kw_only=True)
class FeatureExtractorConfig:
    """Sizes of the feature extractor. Defaults: Gemma-3-12B as hard-coded by ltx-core."""

    hidden_size: int = 3840
    """Gemma hidden size D (also the output width)."""
    num_hidden_states: int = 49
    """Stacked hidden states (embedding output + 48 layers)."""

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.num_hidden_states < 1:
            raise ConfigError("invalid feature extractor config", ["hidden_size and num_hidden_states must be >= 1"])

    @classmethod
    def from_checkpoint_metadata(cls, metadata: Mapping[str, Any] | str) -> FeatureExtractorConfig:
        """Sizes from ``text_encoder_tiny`` (``gemma_hidden_size``, ``num_hidden_states``) or the defaults."""
        meta = parse_metadata(metadata)
        if "text_encoder_tiny" not in meta:
            return cls()
        r = SectionReader(meta["text_encoder_tiny"], "text_encoder_tiny")
        kw = dict(
            hidden_size=r.get_int("gemma_hidden_size", 3840, minimum=1),
            num_hidden_states=r.get_int("num_hidden_states", 49, minimum=1),
        )
        r.raise_if_problems("invalid feature extractor config in checkpoint metadata")
        return cls(**kw)


def normalize_and_concat_hidden_states(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per-layer masked min-max normalisation and flattening (ltx-core ``_norm_and_concat_padded_batch``).

    Args:
        hidden_states: [B, L, D, N] hidden states stacked on the last axis.
        attention_mask: [B, L] tokenizer mask (1 = valid token).

    Returns:
        [B, L, D * N] with feature index ``d * N + l``; zeros at padded positions.
    """
    b, t, d, n_layers = hidden_states.shape
    valid = (attention_mask != 0).view(b, t, 1, 1)
    count = valid.view(b, t).sum(dim=1)
    masked = hidden_states.masked_fill(~valid, 0.0)
    mean = masked.sum(dim=(1, 2), keepdim=True) / ((count * d).view(b, 1, 1, 1) + NORMALIZATION_EPS)
    x_min = hidden_states.masked_fill(~valid, float("inf")).amin(dim=(1, 2), keepdim=True)
    x_max = hidden_states.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
    normed = NORMALIZATION_SCALE * (hidden_states - mean) / (x_max - x_min + NORMALIZATION_EPS)
    normed = normed.reshape(b, t, d * n_layers)
    return normed.masked_fill(~valid.view(b, t, 1), 0.0)


class GemmaFeatureExtractor(nn.Module):
    """Normalise the stacked hidden states and project them with ``aggregate_embed``."""

    def __init__(self, config: FeatureExtractorConfig) -> None:
        super().__init__()
        self.config = config
        d, n = config.hidden_size, config.num_hidden_states
        self.aggregate_embed = nn.Linear(d * n, d, bias=False)

    def stack(self, hidden_states: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """The HF tuple of N [B, L, D] (or a stacked [N, B, L, D]) as [B, L, D, N].

        Raises:
            InputError: wrong count or width.
        """
        stacked = torch.stack(list(hidden_states), dim=-1)
        n, d = self.config.num_hidden_states, self.config.hidden_size
        if stacked.ndim != 4 or stacked.shape[-1] != n or stacked.shape[-2] != d:
            raise InputError(f"expected {n} hidden states of width {d}, got stacked shape {tuple(stacked.shape)}")
        return stacked

    def project(self, normed: torch.Tensor) -> torch.Tensor:
        """``aggregate_embed`` of [B, L, D * N] normalised features -> [B, L, D]."""
        return self.aggregate_embed(normed.to(self.aggregate_embed.weight.dtype))

    def forward(
        self, hidden_states: Sequence[torch.Tensor] | torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Text features [B, L, D] from N hidden states [B, L, D] and the mask [B, L]."""
        stacked = self.stack(hidden_states)
        if attention_mask.shape != stacked.shape[:2]:
            raise InputError(f"attention mask {tuple(attention_mask.shape)} does not match {tuple(stacked.shape[:2])}")
        return self.project(normalize_and_concat_hidden_states(stacked, attention_mask))
