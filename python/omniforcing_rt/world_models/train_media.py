"""Training of the world's media models on one CPU thread (issue #10, phase 2a).

Three parts, each trained by its own run so each fits a short CPU budget:

* ``video``: :class:`~omniforcing_rt.world_models.video_encoder.VideoEncoder` + the LTX-2
  :class:`~omniforcing_rt.media.video_vae.VideoDecoder` (the ``default`` model's size) on
  ``window``-frame windows (8k + 1 frames, starting on a latent boundary);
* ``audio``: :class:`~omniforcing_rt.world_models.audio_encoder.AudioEncoder` + the LTX-2
  :class:`~omniforcing_rt.media.audio_vae.AudioDecoder` on ``window``-frame log-mel windows;
* ``vocoder``: the LTX-2 HiFi-GAN :class:`~omniforcing_rt.media.vocoder.Vocoder` from ground-truth
  log-mel windows to the 24 kHz stereo waveform.

A run is deterministic from its seed (parameters seeded, batches a function of ``(seed, step)``,
latent noise from a generator seeded per step), so it can stop at any step and resume to the
same result: ``checkpoint.pt`` (models, optimizer, step) is written atomically (temporary file +
``os.replace``). It logs ``metrics.jsonl`` and draws ``loss.png`` in its run directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.world.scene import WorldConfig
from omniforcing_rt.world_models import data, losses
from omniforcing_rt.world_models.media_config import MediaSizes, build_audio_pair, build_video_pair, build_vocoder

__all__ = ["PARTS", "MediaTrainConfig", "MediaTrainer", "default_train_config", "plot_losses"]

PARTS = ("video", "audio", "vocoder")
"""Trainable parts, one run each."""
_DEFAULT_WINDOW = {"video": 17, "audio": 49, "vocoder": 32}
_DEFAULT_BATCH = {"video": 1, "audio": 2, "vocoder": 4}
_DEFAULT_STEPS = {"video": 400, "audio": 1200, "vocoder": 3000}
_DEFAULT_LR = {"video": 1e-3, "audio": 5e-4, "vocoder": 1e-3}


@dataclass(frozen=True, kw_only=True)
class MediaTrainConfig:
    """One training run of one media part."""

    part: str
    """``video``, ``audio`` or ``vocoder``."""
    seed: int = 0
    """Seeds parameters, batches and latent noise."""
    steps: int = 1000
    """Planned steps (the learning-rate schedule's length)."""
    batch: int = 1
    """Clips (windows) per step."""
    window: int = 17
    """Video frames (8k + 1), audio mel frames (4T - 3) or vocoder mel frames per window."""
    lr: float = 5e-4
    """Peak AdamW learning rate (linear warm-up over ``warmup`` steps, cosine to 10 %)."""
    warmup: int = 20
    """Warm-up steps."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    kl_weight: float = 1e-4
    """Weight of the latent KL term (video, audio)."""
    noise_std: float = 0.1
    """Std of the fixed-variance latent posterior (video, audio)."""
    object_weight: float = 10.0
    """Video loss weight of non-background pixels relative to background ones."""
    log_every: int = 10
    """Steps between metrics lines."""
    checkpoint_every: int = 100
    """Steps between checkpoints (one is also written at the end)."""
    sizes: MediaSizes = field(default_factory=MediaSizes)
    """Model sizes."""
    world: WorldConfig = field(default_factory=WorldConfig)
    """The world the clips come from."""

    def __post_init__(self) -> None:
        p = []
        if self.part not in PARTS:
            p.append(f"part must be one of {list(PARTS)}, got {self.part!r}")
        for name in ("steps", "batch", "window", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                p.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                p.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.warmup < 0 or self.kl_weight < 0 or self.noise_std < 0 or self.object_weight < 1:
            p.append("warmup, kl_weight, noise_std must be >= 0 and object_weight >= 1")
        if self.part == "video" and (self.window - 1) % 8:
            p.append(f"video window must be 8k + 1 frames, got {self.window}")
        if self.part == "audio" and (self.window + 3) % 4:
            p.append(f"audio window must be 4T - 3 mel frames, got {self.window}")
        if p:
            raise ConfigError("invalid media training config", p)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (sizes as checkpoint metadata; the world by its defaults)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sizes", "world")}
        enc = self.sizes.metadata()["world_encoders"]
        extra = {"video_res_layers": self.sizes.video_res_layers} if self.sizes.video_res_layers else {}
        sizes = {"video": enc["video"], "audio": enc["audio"]}
        return {**d, "sizes": sizes, "vocoder_width": self.sizes.vocoder_width, **extra}


def default_train_config(part: str, **overrides: Any) -> MediaTrainConfig:
    """The config used for the shipped weights, with per-part window and batch defaults."""
    kw: dict[str, Any] = {
        "window": _DEFAULT_WINDOW.get(part, 17),
        "batch": _DEFAULT_BATCH.get(part, 1),
        "lr": _DEFAULT_LR.get(part, 5e-4),
        "steps": _DEFAULT_STEPS.get(part, 1000),
        "sizes": MediaSizes(vocoder_width=64, video_res_layers=1 if part == "video" else 0),
        "object_weight": 200.0 if part == "video" else 10.0,
        # Video: no latent noise and no KL. With either, the latent collapsed to a per-channel
        # constant (spatial std 0.0006-0.003: Adam turns the tiny KL gradient into full-size
        # steps while the reconstruction gradient reaching the encoder is weak; see README).
        "noise_std": 0.0 if part == "video" else 0.1,
        "kl_weight": 0.0 if part == "video" else 1e-4,
    }
    kw.update(overrides)
    return MediaTrainConfig(part=part, **kw)


class MediaTrainer:
    """Trains one part; ``modules`` holds its networks by name (``encoder``/``decoder`` or ``vocoder``)."""

    def __init__(self, config: MediaTrainConfig) -> None:
        self.config = config
        self.modules = _build(config)
        params = [p for m in self.modules.values() for p in m.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.99), weight_decay=0.0)
        self.step = 0
        self.elapsed_s = 0.0

    def lr_at(self, step: int) -> float:
        """Warm-up then cosine decay to 10 % of the peak at ``config.steps``."""
        c = self.config
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        t = min(1.0, (step - c.warmup) / max(1, c.steps - c.warmup))
        return c.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of the batch of ``step`` (train mode) and its named terms."""
        c = self.config
        gen = torch.Generator().manual_seed(c.seed * 1_000_003 + step)
        if c.part == "vocoder":
            mel, wave = data.vocoder_batch(c.world, c.seed, step, c.batch, c.window)
            pred = self.modules["vocoder"](mel)
            stft, mel_l1 = losses.multi_resolution_stft(pred, wave), losses.mel_l1(pred, mel)
            return stft + mel_l1, {"stft": stft.item(), "mel_l1": mel_l1.item()}
        if c.part == "video":
            target = data.video_batch(c.world, c.seed, step, c.batch, c.window)
        else:
            target = data.audio_batch(c.world, c.seed, step, c.batch, c.window)
        z = self.modules["encoder"].raw(target)
        pred = self.modules["decoder"](losses.add_latent_noise(z, c.noise_std, gen))
        if c.part == "video":
            rec = losses.weighted_pixel_mse(pred, target, c.world.background, c.object_weight)
        else:
            rec = (pred - target).abs().mean()
        kl = losses.latent_kl(z)
        return rec + c.kl_weight * kl, {"rec": rec.item(), "kl": kl.item(), "z_std": z.detach().std().item()}

    def train_step(self) -> dict[str, float]:
        """One optimiser step; returns the metrics of that step."""
        for m in self.modules.values():
            m.train()
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, terms = self.loss(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for m in self.modules.values() for p in m.parameters()]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip))
        self.optimizer.step()
        self.step += 1
        return {"step": self.step, "loss": loss.item(), **terms, "grad_norm": grad_norm, "lr": lr}

    def state(self) -> dict[str, Any]:
        """Everything a resume needs."""
        return {
            "config": self.config.to_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "models": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizer": self.optimizer.state_dict(),
        }

    def save(self, path: Path) -> None:
        """Atomic checkpoint: write a temporary file beside ``path``, then rename over it."""
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        """Restore a checkpoint written by :meth:`save` for the same config."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["config"] != self.config.to_dict():
            raise CheckpointError(f"{path} was written by a different config: {state['config']}")
        for k, m in self.modules.items():
            m.load_state_dict(state["models"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed_s = int(state["step"]), float(state["elapsed_s"])

    def run(self, run_dir: Path, *, max_seconds: float | None = None, progress: bool = True) -> dict[str, Any]:
        """Train to ``config.steps`` (or until ``max_seconds`` of this call), resuming from ``run_dir``."""
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt, metrics = run_dir / "checkpoint.pt", run_dir / "metrics.jsonl"
        if ckpt.exists():
            self.load(ckpt)
        _truncate_metrics(metrics, self.step)
        start = time.perf_counter()
        bar = tqdm(total=self.config.steps, initial=self.step, disable=not progress, desc=self.config.part)
        last: dict[str, float] = {}
        while self.step < self.config.steps:
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
            t0 = time.perf_counter()
            last = self.train_step()
            self.elapsed_s += time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{last['loss']:.4f}")
            if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                with metrics.open("a") as f:
                    f.write(json.dumps({**last, "elapsed_s": round(self.elapsed_s, 2)}) + "\n")
            if self.step % self.config.checkpoint_every == 0:
                self.save(ckpt)
        bar.close()
        self.save(ckpt)
        plot_losses(metrics, run_dir / "loss.png", self.config.part)
        return {"step": self.step, "elapsed_s": self.elapsed_s, "last": last}


def _build(config: MediaTrainConfig) -> dict[str, nn.Module]:
    if config.part == "video":
        enc, dec = build_video_pair(config.sizes, config.seed)
        return {"encoder": enc, "decoder": dec}
    if config.part == "audio":
        enc, dec = build_audio_pair(config.sizes, config.seed)
        return {"encoder": enc, "decoder": dec}
    return {"vocoder": build_vocoder(config.sizes, config.seed)}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics lines past the resumed step (written after the last checkpoint)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in lines))


def plot_losses(metrics: Path, out: Path, title: str) -> None:
    """PNG of the loss (and its terms) against the step, log scale."""
    if not metrics.exists():
        return
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [json.loads(ln) for ln in metrics.read_text().splitlines() if ln]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("loss", "rec", "stft", "mel_l1"):
        if key in rows[0]:
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(f"world media: {title}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
