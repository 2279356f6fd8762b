"""Configuration of the world teacher's flow-matching training (issue #10, phase 2b).

The teacher is a small bidirectional LTX-2 AV transformer trained on latents of world clips. One
frozen dataclass holds everything a run depends on, so a run directory's ``config.json`` and its
checkpoints say exactly what was trained; validation lists every problem at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from omniforcing_rt.errors import ConfigError

__all__ = ["LATENT_SOURCES", "SIGMA_SAMPLERS", "TeacherConfig"]

LATENT_SOURCES = ("world", "standin")
"""``world``: the trained world media encoders; ``standin``: the fixed test encoder."""
SIGMA_SAMPLERS = ("logit_normal", "uniform")
"""How training sigmas are drawn (see :mod:`~omniforcing_rt.world_models.flow_matching`)."""


@dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    """One teacher-training run."""

    num_layers: int = 2
    """Transformer blocks (the rest of the architecture is the embedded ``default`` model's)."""
    text_tokens: int = 48
    """Caption length L in tokens (world captions have at most ~42 words; longer ones are cut)."""
    latent_source: str = "world"
    """Where clip latents come from: ``world`` (trained encoders in ``media``) or ``standin`` (tests)."""
    media: str | None = None
    """Exported world media checkpoint (``media.safetensors``) for the ``world`` source and for decoding."""
    train_clips: int = 256
    """Train scenes (seeds 0..N-1 of the world's ``train`` split) whose latents are cached."""
    video_latents: int = 7
    """Video latents per clip, 4 + 3 k (7 = the world's 49 frames); audio latents follow from the layout."""
    seed: int = 0
    """Seed of the weights, the featurizer table, batches, noise and sigmas (each keyed by step)."""
    steps: int = 2000
    """Planned optimisation steps (the learning-rate schedule's length)."""
    batch_size: int = 8
    """Clips per step."""
    lr: float = 3e-4
    """Peak AdamW learning rate."""
    warmup_steps: int = 50
    """Linear warm-up steps; a cosine decay to 10 % of ``lr`` follows until ``steps``."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (0 = off)."""
    sigma_sampler: str = "logit_normal"
    """``logit_normal``: sigma = sigmoid(N(mean, std)) (SD3 / LTX trainer); ``uniform``: U(0, 1)."""
    sigma_logit_mean: float = 0.0
    """Mean of the logit-normal (positive shifts training toward high noise)."""
    sigma_logit_std: float = 1.0
    """Std of the logit-normal."""
    sigma_uniform_fraction: float = 0.1
    """Fraction of each batch drawn U(0, 1) instead, so the ends of the sigma range are trained too."""
    video_weight: float = 1.0
    """Weight of the video velocity MSE."""
    audio_weight: float = 1.0
    """Weight of the audio velocity MSE."""
    caption_dropout: float = 0.1
    """Probability of replacing a caption by the empty one (what classifier-free guidance needs)."""
    ema_decay: float = 0.0
    """EMA decay of the exported weights (0 = no EMA: the raw weights are exported)."""
    checkpoint_every: int = 200
    """Steps between atomic checkpoints (one is always written at the end of a run)."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept."""
    sample_steps: int = 40
    """Euler steps of the evaluation sampler (LTX2Scheduler grid)."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError("invalid teacher config", problems)

    def problems(self) -> list[str]:
        """Every problem of this config (empty when valid)."""
        p: list[str] = []
        for name in ("num_layers", "text_tokens", "train_clips", "video_latents", "steps", "batch_size",
                     "checkpoint_every", "keep_checkpoints", "sample_steps"):  # fmt: skip
            if int(getattr(self, name)) < 1:
                p.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            p.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.video_latents < 4 or (self.video_latents - 4) % 3:
            p.append(f"video_latents must be 4 + 3 k (world clips of 25 + 24 k frames), got {self.video_latents}")
        if self.lr <= 0:
            p.append(f"lr must be > 0, got {self.lr}")
        for name in ("weight_decay", "grad_clip", "video_weight", "audio_weight"):
            if getattr(self, name) < 0:
                p.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.video_weight + self.audio_weight <= 0:
            p.append("video_weight + audio_weight must be > 0")
        if self.sigma_logit_std <= 0:
            p.append(f"sigma_logit_std must be > 0, got {self.sigma_logit_std}")
        for name in ("sigma_uniform_fraction", "caption_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                p.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            p.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.latent_source not in LATENT_SOURCES:
            p.append(f"latent_source must be one of {list(LATENT_SOURCES)}, got {self.latent_source!r}")
        elif self.latent_source == "world" and not self.media:
            p.append("latent_source 'world' needs media (an exported media.safetensors)")
        if self.sigma_sampler not in SIGMA_SAMPLERS:
            p.append(f"sigma_sampler must be one of {list(SIGMA_SAMPLERS)}, got {self.sigma_sampler!r}")
        return p

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored in checkpoints and ``config.json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ConfigError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError("invalid teacher config", [f"unknown key {k!r}" for k in unknown])
        return cls(**data)
