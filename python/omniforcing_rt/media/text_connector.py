"""Embeddings1DConnector: the two small transformers turning text features into the AV contexts.

The video and the audio connector have the same architecture and separate weights, and both read
the *same* feature-extractor output and mask (parallel, not chained; spec-media.md 5.4):

1. register replacement: the valid rows are packed to the front in order; position p >= n gets
   learnable register ``p mod R``; afterwards every position is valid (batch items are handled
   independently here; ltx-core squeezes the mask and is only correct for batch 1);
2. 1-D RoPE over positions 0..L-1 with fractional position ``p / max_pos`` (tables from
   :func:`omniforcing_rt.model.rope.rope_tables`, so the frequency grid precision and the
   split / interleaved pairing follow the same code as the transformer);
3. ``num_layers`` pre-norm blocks: ``x += attn(rms(x))``, ``x += ff(rms(x))`` with weightless
   RMSNorm (eps 1e-6), q/k RMSNorm over the whole inner width before RoPE, tanh-GELU MLP x4;
4. final weightless RMSNorm. The video output is multiplied by the (all-ones) output mask.

``max_pos`` (the open question of spec-media.md 5.4): read from the header key
``transformer.connector_positional_embedding_max_pos``; when absent the default is ltx-core's
``[1]`` (:data:`LTX_CORE_DEFAULT_CONNECTOR_MAX_POS`), because that is what the official code runs
with such a header, and a warning is logged. The diffusers / SGLang ports use 4096 instead;
pass ``max_pos=`` explicitly to choose.

Sizes (heads, head size, layers, registers) are literals in ltx-core (30 x 128, 2, 128); they
are read from the ``text_encoder_tiny`` section when present (media fixtures).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.media.config_reader import SectionReader, parse_metadata
from omniforcing_rt.model.config import Convention, RopeType
from omniforcing_rt.model.rope import apply_rope, rope_tables

__all__ = [
    "LTX_CORE_DEFAULT_CONNECTOR_MAX_POS",
    "Embeddings1DConnector",
    "TextConnectorConfig",
    "TextContexts",
    "encode_text_contexts",
]

logger = logging.getLogger(__name__)

LTX_CORE_DEFAULT_CONNECTOR_MAX_POS = 1
"""``connector_positional_embedding_max_pos[0]`` when the header lacks the key (ltx-core's [1])."""
CONNECTOR_NORM_EPS = 1e-6
"""Epsilon of every RMSNorm in the connector."""
FF_MULT = 4
"""MLP expansion of the connector blocks (ltx-core ``FeedForward`` default)."""


@dataclass(frozen=True, kw_only=True)
class TextConnectorConfig:
    """Architecture and RoPE convention of one Embeddings1DConnector. Defaults: LTX-2 19B literals."""

    num_attention_heads: int = 30
    """Attention heads."""
    attention_head_dim: int = 128
    """Head size; inner width = heads x head size (= Gemma hidden size)."""
    num_layers: int = 2
    """Transformer blocks."""
    num_learnable_registers: int = 128
    """Registers replacing padding; the sequence length must be a multiple of it."""
    positional_embedding_theta: float = 10000.0
    """RoPE base, read from ``transformer.positional_embedding_theta`` (ltx-core's connector
    configurator ignores that key and always uses 10000; the two agree for LTX-2)."""
    max_pos: int = LTX_CORE_DEFAULT_CONNECTOR_MAX_POS
    """Divisor of the positions (fractional position p / max_pos)."""
    rope_type: RopeType = RopeType.INTERLEAVED
    """q/k channel pairing (``transformer.rope_type``; ltx-core default interleaved)."""
    frequencies_precision: str = "float32"
    """Frequency grid precision (``transformer.frequencies_precision``)."""

    def __post_init__(self) -> None:
        p = []
        try:
            object.__setattr__(self, "rope_type", RopeType(self.rope_type))
        except ValueError:
            p.append(f"rope_type must be 'interleaved' or 'split', got {self.rope_type!r}")
        for name in ("num_attention_heads", "attention_head_dim", "num_layers", "num_learnable_registers", "max_pos"):
            if getattr(self, name) < 1:
                p.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.attention_head_dim % 2:
            p.append("attention_head_dim must be even for rotary embedding")
        if self.frequencies_precision not in ("float32", "float64"):
            p.append(f"frequencies_precision must be 'float32' or 'float64', got {self.frequencies_precision!r}")
        if p:
            raise ConfigError("invalid text connector config", p)

    @property
    def inner_dim(self) -> int:
        """Feature width (3840 for LTX-2)."""
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_checkpoint_metadata(
        cls, metadata: Mapping[str, Any] | str, *, max_pos: int | None = None
    ) -> TextConnectorConfig:
        """Read the connector convention from ``transformer`` and sizes from ``text_encoder_tiny``.

        Args:
            metadata: the checkpoint ``config`` JSON.
            max_pos: overrides the header's ``connector_positional_embedding_max_pos``.
        """
        meta = parse_metadata(metadata)
        tr = SectionReader(meta.get("transformer"), "transformer")
        kw: dict[str, Any] = dict(
            rope_type=tr.get_str("rope_type", "interleaved", ("interleaved", "split")),
            positional_embedding_theta=tr.get_float("positional_embedding_theta", 10000.0),
            # ltx-core: double precision iff the value is exactly "float64".
            frequencies_precision="float64" if tr.raw("frequencies_precision") == "float64" else "float32",
        )
        if max_pos is None:
            if tr.has("connector_positional_embedding_max_pos"):
                values = tr.get_int_list("connector_positional_embedding_max_pos", (1,), minimum=1)
                if len(values) != 1:
                    tr.problems.append(f"connector_positional_embedding_max_pos needs 1 entry, got {list(values)}")
                max_pos = values[0]
            else:
                logger.warning(
                    "checkpoint header has no connector_positional_embedding_max_pos; using ltx-core's default %d",
                    LTX_CORE_DEFAULT_CONNECTOR_MAX_POS,
                )
                max_pos = LTX_CORE_DEFAULT_CONNECTOR_MAX_POS
        if "text_encoder_tiny" in meta:
            te = SectionReader(meta["text_encoder_tiny"], "text_encoder_tiny", tr.problems)
            kw.update(
                num_attention_heads=te.get_int("connector_num_attention_heads", 30, minimum=1),
                attention_head_dim=te.get_int("connector_attention_head_dim", 128, minimum=1),
                num_layers=te.get_int("connector_num_layers", 2, minimum=1),
                num_learnable_registers=te.get_int("connector_num_learnable_registers", 128, minimum=1),
            )
        tr.raise_if_problems("invalid text connector config in checkpoint metadata")
        return cls(**kw, max_pos=max_pos)

    @property
    def convention(self) -> Convention:
        """The RoPE convention object shared with the transformer's rope code."""
        return Convention(rope_type=self.rope_type, frequencies_precision=self.frequencies_precision)


# ------------------------------------------------------------------------------------- layers
class _Attention(nn.Module):
    """Self-attention with biased projections, whole-width q/k RMSNorm and RoPE."""

    def __init__(self, config: TextConnectorConfig) -> None:
        super().__init__()
        dim = config.inner_dim
        self.heads = config.num_attention_heads
        self.rope_type = config.rope_type
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Identity())
        self.q_norm = nn.RMSNorm(dim, eps=CONNECTOR_NORM_EPS)
        self.k_norm = nn.RMSNorm(dim, eps=CONNECTOR_NORM_EPS)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """[B, L, D] -> [B, L, D]; no mask (every position is valid after register replacement)."""
        b, t, _ = x.shape
        q = apply_rope(self.q_norm(self.to_q(x)), cos, sin, self.rope_type)
        k = apply_rope(self.k_norm(self.to_k(x)), cos, sin, self.rope_type)
        v = self.to_v(x)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, t, -1))


class _GeluProjection(nn.Module):
    """``ff.net.0``: Linear then tanh-approximated GELU (weights under ``proj``)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class _FeedForward(nn.Module):
    """``ff``: ``net.0`` (Linear + GELU), ``net.1`` (identity), ``net.2`` (Linear)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_GeluProjection(dim, FF_MULT * dim), nn.Identity(), nn.Linear(FF_MULT * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Block(nn.Module):
    """Pre-norm transformer block with weightless RMSNorm."""

    def __init__(self, config: TextConnectorConfig) -> None:
        super().__init__()
        self.attn1 = _Attention(config)
        self.ff = _FeedForward(config.inner_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(_rms(x), cos, sin)
        return x + self.ff(_rms(x))


def _rms(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), eps=CONNECTOR_NORM_EPS)


class Embeddings1DConnector(nn.Module):
    """One connector (module-relative names as in ``model.diffusion_model.<video|audio>_embeddings_connector.*``)."""

    def __init__(self, config: TextConnectorConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer_1d_blocks = nn.ModuleList(_Block(config) for _ in range(config.num_layers))
        self.learnable_registers = nn.Parameter(torch.empty(config.num_learnable_registers, config.inner_dim))

    def replace_padding_with_registers(self, features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pack valid rows to the front; fill position p >= n with register ``p mod R``.

        Args:
            features: [B, L, D] text features.
            attention_mask: [B, L] (nonzero = valid token).

        Returns:
            [B, L, D]; every position is valid afterwards.

        Raises:
            InputError: L is not a multiple of the register count, or shapes disagree.
        """
        b, t, d = features.shape
        r = self.config.num_learnable_registers
        if t % r:
            raise InputError(f"text length {t} must be a multiple of the {r} learnable registers")
        if attention_mask.shape != (b, t):
            raise InputError(f"attention mask {tuple(attention_mask.shape)} does not match features [B, L]=({b}, {t})")
        registers = self.learnable_registers.to(features.dtype).repeat(t // r, 1)
        out = registers.unsqueeze(0).repeat(b, 1, 1)
        for i in range(b):
            rows = features[i][attention_mask[i] != 0]
            out[i, : rows.shape[0]] = rows
        return out

    def rope(self, length: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables for positions 0..length-1 (fractional position p / max_pos)."""
        cfg = self.config
        pos = torch.arange(length, dtype=torch.float32, device=device).view(1, 1, length, 1).expand(1, 1, length, 2)
        return rope_tables(
            pos, cfg.inner_dim, cfg.num_attention_heads, (cfg.max_pos,), cfg.positional_embedding_theta,
            cfg.convention, out_dtype=dtype,
        )  # fmt: skip

    def forward(self, features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Connector output [B, L, D] from features [B, L, D] and the tokenizer mask [B, L]."""
        x = self.replace_padding_with_registers(features, attention_mask)
        cos, sin = self.rope(x.shape[1], x.device, x.dtype)
        for block in self.transformer_1d_blocks:
            x = block(x, cos, sin)
        return _rms(x)


class TextContexts(NamedTuple):
    """What the transformer's text cross-attention consumes."""

    video: torch.Tensor
    """[B, L, D] video context."""
    audio: torch.Tensor
    """[B, L, D] audio context."""
    attention_mask: torch.Tensor
    """[B, L] int64, all ones (every slot holds a token or a register)."""


def encode_text_contexts(
    features: torch.Tensor,
    attention_mask: torch.Tensor,
    video_connector: Embeddings1DConnector,
    audio_connector: Embeddings1DConnector,
) -> TextContexts:
    """Run both connectors on the same features (ltx-core ``AVGemmaTextEncoderModel._run_connectors``).

    Args:
        features: [B, L, D] feature-extractor output.
        attention_mask: [B, L] tokenizer mask.
    """
    out_mask = torch.ones(features.shape[:2], dtype=torch.int64, device=features.device)
    video = video_connector(features, attention_mask) * out_mask.unsqueeze(-1).to(features.dtype)
    audio = audio_connector(features, attention_mask)
    return TextContexts(video, audio, out_mask)
