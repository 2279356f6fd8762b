"""Transformer architecture and runtime conventions, read from checkpoint metadata and validated.

The LTX-2 checkpoint carries its architecture as JSON under the safetensors metadata key ``config``,
section ``transformer``. :meth:`ModelConfig.from_metadata` reads that section exactly as the
official configurator does: 18 "checked" keys must be present with their only supported value,
every dimension falls back to its 19B default, and every problem is reported at once.

Runtime conventions are kept apart from the architecture on purpose (spec A.12). The same weights
are evaluated under the *student* convention (interleaved RoPE, float32 frequency grid, A<->V gate
timestep sigma) by the OmniForcing generator and under the *teacher* convention (split RoPE, float64
grid, gate timestep 1000*sigma) by LTX-2 itself; mixing them silently gives wrong outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any

import torch

from omniforcing_rt.errors import ConfigError

__all__ = ["CHECKED_KEYS", "Convention", "ModelConfig", "RopeType"]

CHECKED_KEYS: dict[str, Any] = {
    "dropout": 0.0,
    "attention_bias": True,
    "num_vector_embeds": None,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
    "use_middle_indices_grid": True,
}
"""Keys the official configurator requires, with the only value this architecture supports."""

# Metadata keys that select a runtime convention rather than the architecture.
_CONVENTION_KEYS = ("rope_type", "frequencies_precision", "av_ca_timestep_scale_multiplier")


class RopeType(str, Enum):
    """Rotary pairing. These are different functions, not two layouts of one rotation."""

    INTERLEAVED = "interleaved"
    """Channels (2j, 2j+1) rotate together across the whole inner dimension (the student)."""
    SPLIT = "split"
    """Inside each head, channel i rotates with channel i + d/2 (the teacher / LTX-2 header)."""


@dataclass(frozen=True, kw_only=True)
class Convention:
    """How the weights are evaluated at run time (spec A.12)."""

    rope_type: RopeType = RopeType.INTERLEAVED
    """Rotary pairing of q/k channels."""
    frequencies_precision: str = "float32"
    """Precision of the frequency grid theta_i: 'float32' (torch) or 'float64' (numpy, then fp32)."""
    av_ca_timestep_scale_multiplier: float = 1.0
    """Input scale of the two A<->V gate AdaLNs: 1 (gate sees sigma) or 1000 (gate sees 1000 sigma)."""
    rope_angle_precision: str = "float32"
    """Precision of the angle product theta * (2 pos / max_pos - 1) before cos/sin. 'float32'
    reproduces the official code bit for bit; 'float64' keeps absolute-time angles exact for
    long streams (the angle grows ~1571 rad per second, beyond fp32 resolution after ~10 s)."""

    position_style: str = "causal"
    """How pipelines build RoPE positions: 'causal' (OmniForcing student code) or 'patchifier'
    (LTX-2); they differ by float32 rounding only (see model/positions.py)."""

    def __post_init__(self) -> None:
        problems = []
        if self.position_style not in ("causal", "patchifier"):
            problems.append(f"position_style must be 'causal' or 'patchifier', got {self.position_style!r}")
        try:
            object.__setattr__(self, "rope_type", RopeType(self.rope_type))
        except ValueError:
            problems.append(f"rope_type must be 'interleaved' or 'split', got {self.rope_type!r}")
        for name in ("frequencies_precision", "rope_angle_precision"):
            if getattr(self, name) not in ("float32", "float64"):
                problems.append(f"{name} must be 'float32' or 'float64', got {getattr(self, name)!r}")
        try:
            multiplier_ok = float(self.av_ca_timestep_scale_multiplier) > 0
        except (TypeError, ValueError):
            multiplier_ok = False
        if not multiplier_ok:
            problems.append(f"av_ca_timestep_scale_multiplier must be > 0, got {self.av_ca_timestep_scale_multiplier}")
        if problems:
            raise ConfigError("invalid runtime convention", problems)

    @classmethod
    def student(cls) -> Convention:
        """OmniForcing generator convention: interleaved, float32 grid, gate timestep sigma."""
        return cls()

    @classmethod
    def streaming(cls) -> Convention:
        """The student convention with float64 positions and angles: what long streams need.

        Differs from :meth:`student` only in rounding (<= ~1e-3 in cos/sin at 5 s, from the
        official float32 angles); at 600 s the float32 angles are off by tens of radians.
        """
        return cls(rope_angle_precision="float64")

    @property
    def position_dtype(self) -> torch.dtype:
        """dtype pipelines build RoPE positions in (float64 when angles are float64)."""
        return torch.float64 if self.rope_angle_precision == "float64" else torch.float32

    @classmethod
    def teacher(cls) -> Convention:
        """LTX-2 (real checkpoint header) convention: split, float64 grid, gate timestep 1000 sigma."""
        return cls(
            rope_type=RopeType.SPLIT,
            frequencies_precision="float64",
            av_ca_timestep_scale_multiplier=1000.0,
            position_style="patchifier",
        )

    @classmethod
    def from_metadata(cls, section: Mapping[str, Any]) -> Convention:
        """The convention a checkpoint header asks for (ltx-core defaults for absent keys)."""
        kw = {k: section[k] for k in _CONVENTION_KEYS if k in section}
        return cls(**kw)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Architecture of the LTX-2 dual-stream AV transformer. Defaults are the 19B checkpoint."""

    num_layers: int = 48
    """Dual-stream transformer blocks."""
    num_attention_heads: int = 32
    """Video attention heads."""
    attention_head_dim: int = 128
    """Video head size; video inner dim = heads x head size."""
    in_channels: int = 128
    """Video latent features per token."""
    out_channels: int = 128
    """Video output features per token."""
    cross_attention_dim: int = 4096
    """Width of the projected video text context (must equal the video inner dim)."""
    caption_channels: int = 3840
    """Width of the text features entering the model (Gemma-3-12B hidden size)."""
    audio_num_attention_heads: int = 32
    """Audio attention heads (also the A<->V cross-attention heads)."""
    audio_attention_head_dim: int = 64
    """Audio head size; audio inner dim = heads x head size."""
    audio_in_channels: int = 128
    """Audio latent features per token (8 channels x 16 mel bins)."""
    audio_out_channels: int = 128
    """Audio output features per token."""
    audio_cross_attention_dim: int = 2048
    """Width of the projected audio text context and inner dim of both A<->V attentions."""
    norm_eps: float = 1e-6
    """Epsilon of every RMSNorm / LayerNorm."""
    positional_embedding_theta: float = 10000.0
    """RoPE base theta."""
    positional_embedding_max_pos: tuple[int, ...] = (20, 2048, 2048)
    """Video RoPE max positions (seconds, pixels, pixels)."""
    audio_positional_embedding_max_pos: tuple[int, ...] = (20,)
    """Audio RoPE max position (seconds)."""
    timestep_scale_multiplier: float = 1000.0
    """sigma -> timestep scale of the main AdaLNs."""
    audio_sink_tokens: int = 0
    """Learnable audio sink tokens (paper-era v1 students; 0 for LTX-2 and the release)."""
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    """Unrecognised metadata keys (JSON-encoded values), kept for reporting."""

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError("invalid transformer config", problems)

    def _problems(self) -> list[str]:
        p: list[str] = []
        positive = (
            "num_layers", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels",
            "cross_attention_dim", "caption_channels", "audio_num_attention_heads", "audio_attention_head_dim",
            "audio_in_channels", "audio_out_channels", "audio_cross_attention_dim",
        )  # fmt: skip
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                p.append(f"{name} must be a positive integer, got {v!r}")
        if p:
            return p
        if self.cross_attention_dim != self.video_dim:
            p.append(
                f"cross_attention_dim ({self.cross_attention_dim}) must equal the video inner dim "
                f"num_attention_heads * attention_head_dim ({self.video_dim})"
            )
        if self.audio_cross_attention_dim != self.audio_dim:
            p.append(
                f"audio_cross_attention_dim ({self.audio_cross_attention_dim}) must equal the audio inner dim "
                f"audio_num_attention_heads * audio_attention_head_dim ({self.audio_dim})"
            )
        if self.attention_head_dim % 2 or self.audio_attention_head_dim % 2:
            p.append("head dims must be even for rotary embedding")
        if self.av_cross_dim % self.num_attention_heads or (self.av_cross_dim // self.num_attention_heads) % 2:
            p.append(f"A<->V inner dim {self.av_cross_dim} must split into {self.num_attention_heads} even-sized heads")
        if len(self.positional_embedding_max_pos) != 3:
            p.append(f"positional_embedding_max_pos needs 3 entries, got {list(self.positional_embedding_max_pos)}")
        if len(self.audio_positional_embedding_max_pos) != 1:
            p.append(
                f"audio_positional_embedding_max_pos needs 1 entry, got {list(self.audio_positional_embedding_max_pos)}"
            )
        if not self.norm_eps > 0 or not self.positional_embedding_theta > 1:
            p.append("norm_eps must be > 0 and positional_embedding_theta > 1")
        if not isinstance(self.audio_sink_tokens, int) or self.audio_sink_tokens < 0:
            p.append(f"audio_sink_tokens must be a non-negative integer, got {self.audio_sink_tokens!r}")
        return p

    # ------------------------------------------------------------------------- derived sizes
    @property
    def video_dim(self) -> int:
        """Video hidden / inner dim (4096 at 19B)."""
        return self.num_attention_heads * self.attention_head_dim

    @property
    def audio_dim(self) -> int:
        """Audio hidden / inner dim (2048 at 19B)."""
        return self.audio_num_attention_heads * self.audio_attention_head_dim

    @property
    def av_cross_dim(self) -> int:
        """Inner dim of both A<->V attentions (= audio inner dim)."""
        return self.audio_cross_attention_dim

    @property
    def cross_pe_max_pos(self) -> int:
        """Max time position of the A<->V rotary tables: max of the two temporal max_pos."""
        return max(self.positional_embedding_max_pos[0], self.audio_positional_embedding_max_pos[0])

    # --------------------------------------------------------------------------- conversions
    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | str, **overrides: Any) -> ModelConfig:
        """Build from a safetensors ``config`` JSON (whole dict or its ``transformer`` section).

        Raises:
            ConfigError: listing every missing checked key, unsupported value, and bad dimension.
        """
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except json.JSONDecodeError as e:
                raise ConfigError(problems=[f"checkpoint config metadata is not valid JSON: {e}"]) from None
        if not isinstance(metadata, Mapping):
            raise ConfigError(problems=[f"config metadata must be a JSON object, got {type(metadata).__name__}"])
        section = metadata.get("transformer", metadata)
        if not isinstance(section, Mapping):
            raise ConfigError(problems=["config section 'transformer' must be a JSON object"])
        problems = []
        for key, want in CHECKED_KEYS.items():
            if key not in section:
                problems.append(f"missing required key {key!r} (expected {want!r})")
            elif section[key] != want or type(section[key]) is not type(want):
                problems.append(f"unsupported {key}={section[key]!r} (only {want!r} is supported)")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kw: dict[str, Any] = {}
        extra = []
        for key, value in section.items():
            if key in known:
                kw[key] = tuple(value) if isinstance(value, list) else value
            elif key not in CHECKED_KEYS and key not in _CONVENTION_KEYS:
                extra.append((key, json.dumps(value)))
        kw.update(overrides)
        try:
            cfg = cls(**kw, extra=tuple(extra))
        except ConfigError as e:
            problems.extend(e.problems)
            cfg = None
        if problems:
            raise ConfigError("invalid transformer config in checkpoint metadata", problems)
        assert cfg is not None
        return cfg

    def to_metadata(self) -> dict[str, Any]:
        """The ``transformer`` section that :meth:`from_metadata` reads back to an equal config."""
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if k != "extra"}
        if not self.audio_sink_tokens:
            d.pop("audio_sink_tokens")
        return {**CHECKED_KEYS, **d}

    def with_(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)
