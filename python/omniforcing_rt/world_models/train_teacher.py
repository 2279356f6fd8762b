"""Phase 2b of issue #10: train the bidirectional world teacher by flow matching on cached latents.

The teacher is the embedded ``default`` model's LTX-2 AV architecture (``num_layers`` blocks),
run under the teacher convention with no masks, conditioned on world captions through the fixed
:class:`~omniforcing_rt.world_models.caption_features.CaptionFeaturizer`. A run directory holds

* ``latents.safetensors``: the cached latents of the train clips (see ``teacher_latents``);
* ``checkpoints/step_N.pt`` (atomic, :func:`~omniforcing_rt.distill.checkpoint.save_checkpoint`),
  ``metrics.jsonl`` and ``loss.png`` (:mod:`~omniforcing_rt.distill.metrics`), ``config.json``;
* ``model/``: the exported teacher, a model directory ``load_model(DIR)`` and the distillation
  trainer's ``teacher`` field read (``convention: teacher``; ``media`` points at the world media
  when they were used), with ``prompt_features.safetensors`` helpers (see ``caption_features``).

Determinism and resume: batches, noise, sigmas and caption dropout of step ``s`` come from a
generator keyed by ``(seed, s)`` rather than from a running RNG, and checkpoints hold the weights,
the AdamW state and the EMA, so a resumed run computes the same next loss as an uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from omniforcing_rt.distill.checkpoint import latest_checkpoint, save_checkpoint
from omniforcing_rt.distill.data import keyed_generator
from omniforcing_rt.distill.metrics import MetricsLog, plot_metrics, read_metrics
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import init_random_weights, write_model_dir
from omniforcing_rt.world_models.caption_features import CaptionFeaturizer
from omniforcing_rt.world_models.flow_matching import flow_matching_loss, sample_sigmas
from omniforcing_rt.world_models.teacher_config import TeacherConfig
from omniforcing_rt.world_models.teacher_latents import LatentSet, cache_latents, make_source

__all__ = ["TeacherTrainer", "prepare_latents", "teacher_model_config"]

log = logging.getLogger(__name__)


def teacher_model_config(num_layers: int) -> ModelConfig:
    """The embedded ``default`` model's architecture with ``num_layers`` blocks."""
    from omniforcing_rt.models import load_model

    return dataclasses.replace(load_model("default").model.config, num_layers=num_layers)


class TeacherTrainer:
    """Flow-matching training of the world teacher on a :class:`LatentSet`."""

    def __init__(self, config: TeacherConfig, latents: LatentSet) -> None:
        self.config = config
        self.latents = latents
        self.conv = Convention.teacher()
        self.model = AVTransformer(teacher_model_config(config.num_layers))
        init_random_weights(self.model, config.seed)
        self.model.train()
        mcfg = self.model.config
        self.featurizer = CaptionFeaturizer(config.text_tokens, mcfg.caption_channels, config.seed)
        self.text = self.featurizer.encode_batch([*latents.captions, ""])  # row N: the empty caption
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99)
        )
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if config.ema_decay > 0 else None
        self.step = 0
        self.elapsed_s = 0.0

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to 10 % of ``lr`` at ``steps``."""
        c = self.config
        if step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        frac = min(1.0, (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps))
        return c.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """Clips, noise, sigmas and caption rows of ``step`` (a pure function of seed and step)."""
        c, n = self.config, len(self.latents)
        gen = keyed_generator(c.seed, step, 0x7EA)
        idx = torch.randint(0, n, (c.batch_size,), generator=gen)
        video, audio = self.latents.video[idx], self.latents.audio[idx]
        noise_v = torch.randn(video.shape, generator=gen)
        noise_a = torch.randn(audio.shape, generator=gen)
        sigma = sample_sigmas(c, c.batch_size, gen)
        drop = torch.rand(c.batch_size, generator=gen) < c.caption_dropout
        rows = torch.where(drop, torch.full_like(idx, n), idx)
        return {"video": video, "audio": audio, "noise_v": noise_v, "noise_a": noise_a, "sigma": sigma,
                "rows": rows}  # fmt: skip

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Flow-matching loss of ``step``'s batch (with grad in training mode)."""
        b = self.batch(step)
        fv, fa, fm = (t[b["rows"]] for t in self.text)
        text = self.model.encode_text(fv, fa, fm)
        c = self.config
        return flow_matching_loss(self.model, self.conv, text, (b["video"], b["audio"]),
                                  (b["noise_v"], b["noise_a"]), b["sigma"], (c.video_weight, c.audio_weight))  # fmt: skip

    def train_step(self) -> dict[str, float]:
        """One optimisation step; returns its metrics record."""
        t0 = time.perf_counter()
        lr = self.lr_at(self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        loss, parts = self.loss(self.step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        self.opt.step()
        if self.ema is not None:
            with torch.no_grad():
                for pe, p in zip(self.ema.parameters(), self.model.parameters()):
                    pe.lerp_(p, 1.0 - self.config.ema_decay)
        self.step += 1
        dt = time.perf_counter() - t0
        self.elapsed_s += dt
        return {
            "step": self.step,
            "loss": float(loss.detach()),
            **parts,
            "grad_norm": grad_norm,
            "lr": lr,
            "step_s": dt,
        }

    def state(self) -> dict[str, Any]:
        """Checkpoint payload (see :mod:`~omniforcing_rt.distill.checkpoint`)."""
        out: dict[str, Any] = {
            "generator": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": {"teacher": self.opt.state_dict()},
            "config": json.dumps(self.config.to_dict()),
            "model_config": json.dumps(self.model.config.to_metadata()),
            "elapsed_s": self.elapsed_s,
        }
        if self.ema is not None:
            out["generator_ema"] = {k: v.detach().clone() for k, v in self.ema.state_dict().items()}
        return out

    def load_state(self, obj: dict[str, Any]) -> None:
        """Restore a checkpoint written by :meth:`state`."""
        self.model.load_state_dict(obj["generator"])
        self.opt.load_state_dict(obj["optimizer"]["teacher"])
        if self.ema is not None:
            self.ema.load_state_dict(obj.get("generator_ema", obj["generator"]))
        self.step = int(obj["step"])
        self.elapsed_s = float(obj.get("elapsed_s", 0.0))

    def export(self, out: Path, media: str | None = None) -> Path:
        """Write the (EMA) teacher as a model directory; returns it."""
        model = self.ema if self.ema is not None else self.model
        h, w = self.latents.video.shape[-2:]
        info: dict[str, Any] = {
            "name": "world-teacher",
            "description": "bidirectional world teacher trained by flow matching (issue #10, phase 2b)",
            "latent_grid_hw": [int(h), int(w)], "pixel_size_hw": [int(h) * 32, int(w) * 32], "layout": "release",
            "convention": "teacher", "text_tokens": self.config.text_tokens, "seed": self.config.seed,
            "caption_features": {"kind": "word_table", "seed": self.featurizer.seed,
                                 "position_scale": self.featurizer.position_scale},
            "latent_source": self.latents.source, "steps_done": self.step,
            "sample_steps": self.config.sample_steps,
        }  # fmt: skip
        if media:
            info["media"] = os.path.relpath(Path(media).resolve(), out.resolve())
        write_model_dir(out, model, info)
        return out

    def run(self, run_dir: Path, *, max_seconds: float | None = None, progress: bool = True) -> dict[str, Any]:
        """Train (resuming from ``run_dir/checkpoints``) until ``steps`` or ``max_seconds``; export."""
        c = self.config
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(c.to_dict(), indent=1) + "\n")
        found = latest_checkpoint(run_dir / "checkpoints")
        if found is not None:
            self.load_state(found[1])
            log.info("resumed from %s at step %d", found[0], self.step)
        metrics = MetricsLog(run_dir / "metrics.jsonl", self.step)
        start, t_end = self.step, None if max_seconds is None else time.perf_counter() + max_seconds
        bar = tqdm(total=c.steps, initial=self.step, desc="teacher", unit="step", disable=not progress)
        while self.step < c.steps and (t_end is None or time.perf_counter() < t_end):
            rec = self.train_step()
            metrics.write(rec)
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.4f}")
            if self.step % c.checkpoint_every == 0:
                save_checkpoint(run_dir / "checkpoints", self.step, self.state(), c.keep_checkpoints)
        bar.close()
        if self.step > start or found is None:
            save_checkpoint(run_dir / "checkpoints", self.step, self.state(), c.keep_checkpoints)
        records = read_metrics(run_dir / "metrics.jsonl")
        plot_metrics(records, run_dir / "loss.png", "world teacher", ("loss", "video_loss", "audio_loss"))
        model_dir = self.export(run_dir / "model", c.media if self.latents.source == "world" else None)
        return _summary(records, self.step, self.elapsed_s, model_dir)


def _summary(records: list[dict[str, Any]], step: int, elapsed: float, model_dir: Path) -> dict[str, Any]:
    losses = [r["loss"] for r in records if isinstance(r.get("loss"), float)]
    head, tail = losses[: max(1, len(losses) // 20)], losses[-max(1, len(losses) // 20) :]
    return {
        "steps_done": step, "train_seconds": round(elapsed, 1),
        "seconds_per_step": round(elapsed / max(1, step), 4),
        "loss_start": sum(head) / len(head) if head else None, "loss_end": sum(tail) / len(tail) if tail else None,
        "model_dir": str(model_dir),
    }  # fmt: skip


def prepare_latents(config: TeacherConfig, run_dir: Path, progress: bool = True) -> LatentSet:
    """The run's latent cache (``run_dir/latents.safetensors``), encoded on first use."""
    source = make_source(config.latent_source, config.media, seed=config.seed)
    return cache_latents(source, run_dir / "latents.safetensors", config.train_clips, config.video_latents, progress)
