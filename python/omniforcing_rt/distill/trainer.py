"""The optimisation loop shared by every training stage.

A stage owns one or two :class:`Trainee` (generator, critic) and implements ``step(step) -> metrics``
by calling :meth:`Trainer.update` for each network it updates that step. :meth:`Trainer.update` runs
``grad_accum`` micro-steps, each ``backward`` of ``loss / grad_accum`` (gradients really accumulate;
under FSDP the reduce-scatter is skipped until the last micro-step), then clips the global gradient
norm, sets the learning rate (a pure function of the update index: warmup, then constant or
cosine), steps AdamW and updates the EMA. A non-finite gradient norm skips the update (and is
logged), identically on every process.

:meth:`Trainer.fit` resumes from the newest checkpoint in ``OUT/checkpoints`` (model, optimizer and
EMA states; all random draws are keyed by step, so the continued loss trajectory is identical), runs
the steps with a progress bar, appends ``metrics.jsonl``, writes checkpoints and the loss plot.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from omniforcing_rt.distill.checkpoint import latest_checkpoint, prefixed, save_checkpoint, unprefixed
from omniforcing_rt.distill.config import DistillConfig, OptimConfig
from omniforcing_rt.distill.distributed import DistContext, full_tensor, like_param, set_gradient_sync
from omniforcing_rt.distill.metrics import MetricsLog, plot_metrics, read_metrics
from omniforcing_rt.errors import CheckpointError

__all__ = ["Ema", "Stage", "Trainee", "Trainer", "lr_at"]

log = logging.getLogger(__name__)

PLOT_EVERY_S = 60.0
"""Minimum seconds between loss plots at checkpoints (the end of a run always plots)."""

MicroStep = Callable[[int], tuple[torch.Tensor, dict[str, float]]]
"""micro-step index -> (loss to back-propagate, float metrics)."""


def lr_at(cfg: OptimConfig, update: int, total: int) -> float:
    """Learning rate of update ``update`` (0-based) out of ``total``."""
    if cfg.warmup_steps and update < cfg.warmup_steps:
        return cfg.lr * (update + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        span = max(1, total - cfg.warmup_steps)
        frac = min(1.0, (update - cfg.warmup_steps) / span)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    return cfg.lr


class Ema:
    """fp32 exponential moving average of a module's parameters, kept in host memory.

    Each process keeps the shadow of its own shard (the parameters' local part under FSDP2) on the
    CPU, as the release does (spec D: fp32 CPU shadow), so the EMA costs no accelerator memory.
    [A device-resident shadow saves a host copy per update but doubles the shard's fp32 footprint
    on the GPU, which is what limits the 19B run.] Whole tensors are gathered only to save.
    """

    def __init__(self, decay: float, start: int) -> None:
        self.decay = decay
        self.start = start
        self.shadow: dict[str, torch.Tensor] | None = None
        self._layout: dict[str, torch.Tensor] = {}  # name -> the parameter (for mesh / placements)

    @staticmethod
    def _local(p: torch.Tensor) -> torch.Tensor:
        from torch.distributed.tensor import DTensor

        return p.to_local() if isinstance(p, DTensor) else p

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Initialise the shadow at ``start``, then shadow <- d shadow + (1 - d) param."""
        if step < self.start:
            return
        params = dict(module.named_parameters())
        if self.shadow is None:
            self._layout = {k: p.detach() for k, p in params.items()}
            self.shadow = {k: self._local(p.detach()).to("cpu", torch.float32, copy=True) for k, p in params.items()}
            return
        for k, p in params.items():
            host = self._local(p.detach()).to("cpu", torch.float32)
            self.shadow[k].mul_(self.decay).add_(host, alpha=1.0 - self.decay)

    def full_state(self) -> dict[str, torch.Tensor] | None:
        """Whole tensors on CPU (a collective under FSDP: call on every process)."""
        from torch.distributed.tensor import DTensor

        if self.shadow is None:
            return None
        out = {}
        for k, v in self.shadow.items():
            p = self._layout[k]
            if isinstance(p, DTensor):
                v = DTensor.from_local(v.to(p.device), p.device_mesh, p.placements, shape=p.shape, stride=p.stride())
            out[k] = full_tensor(v).cpu()
        return out

    def load_full(self, module: nn.Module, state: dict[str, torch.Tensor]) -> None:
        params = dict(module.named_parameters())
        missing = sorted(set(params) - set(state))
        if missing:
            raise CheckpointError(f"EMA state lacks {missing[:4]}")
        self._layout = {k: p.detach() for k, p in params.items()}
        self.shadow = {
            k: self._local(like_param(state[k].float(), p.detach())).to("cpu", torch.float32, copy=True)
            for k, p in params.items()
        }


@dataclass
class Trainee:
    """One trained network and its optimiser."""

    name: str
    """'generator' or 'critic' (the checkpoint entry)."""
    module: nn.Module
    """The (possibly FSDP-sharded) network."""
    optim: OptimConfig
    """Optimiser settings."""
    total_updates: int
    """Updates over the whole run (for the cosine schedule)."""
    ema: Ema | None = None
    """EMA shadow (generator only)."""
    optimizer: torch.optim.Optimizer = field(init=False)
    """AdamW over the trainable parameters."""

    def __post_init__(self) -> None:
        params = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=self.optim.lr, betas=self.optim.betas, weight_decay=self.optim.weight_decay
        )


class Stage(Protocol):
    """What :meth:`Trainer.fit` drives."""

    trainees: dict[str, Trainee]
    plot_keys: tuple[str, ...]

    def step(self, step: int) -> dict[str, float]: ...

    def checkpoint_extras(self) -> dict[str, Any]: ...


class Trainer:
    """Updates, checkpoints, metrics (see module docstring)."""

    def __init__(self, cfg: DistillConfig, out: Path, ctx: DistContext, progress: bool = True) -> None:
        self.cfg = cfg
        self.out = out
        self.ctx = ctx
        self.progress = progress
        self.ckdir = out / "checkpoints"
        self.metrics_path = out / "metrics.jsonl"

    # ----------------------------------------------------------------------------- updates
    def update(self, trainee: Trainee, update_index: int, micro: MicroStep, step: int) -> dict[str, float]:
        """One optimiser update of ``trainee`` from ``grad_accum`` micro-steps; returns averaged metrics."""
        accum = self.cfg.train.grad_accum
        lr = lr_at(trainee.optim, update_index, trainee.total_updates)
        for group in trainee.optimizer.param_groups:
            group["lr"] = lr
        totals: dict[str, float] = {}
        loss_sum = 0.0
        for m in range(accum):
            set_gradient_sync(trainee.module, m == accum - 1)
            loss, parts = micro(m)
            (loss / accum).backward()
            loss_sum += float(loss.detach()) / accum
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v / accum
        set_gradient_sync(trainee.module, True)
        params = [p for p in trainee.module.parameters() if p.requires_grad]
        clip = trainee.optim.grad_clip if trainee.optim.grad_clip > 0 else float("inf")
        norm = float(full_tensor(torch.nn.utils.clip_grad_norm_(params, clip)))
        name = trainee.name
        if math.isfinite(norm):
            trainee.optimizer.step()
        else:
            log.warning("step %d: non-finite %s gradient norm; update skipped", step, name)
        trainee.optimizer.zero_grad(set_to_none=True)
        if trainee.ema is not None:
            trainee.ema.update(trainee.module, step)
        return {f"{name}_loss": loss_sum, f"{name}_grad_norm": norm, f"{name}_lr": lr, **totals}

    # -------------------------------------------------------------------------- checkpoints
    def save(self, stage: Stage, step: int) -> Path | None:
        """Gather full states (collective) and write the checkpoint on the main process."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        obj: dict[str, Any] = {"optimizer": {}, "config": json.dumps(self.cfg.to_dict()), **stage.checkpoint_extras()}
        for name, t in stage.trainees.items():
            obj[name] = prefixed(get_model_state_dict(t.module, options=opts))
            obj["optimizer"][name] = get_optimizer_state_dict(t.module, t.optimizer, options=opts)
            if t.ema is not None:
                ema = t.ema.full_state()
                if ema is not None:
                    obj[f"{name}_ema"] = prefixed(ema)
        path = None
        if self.ctx.is_main:
            path = save_checkpoint(self.ckdir, step, obj, self.cfg.train.keep_checkpoints)
            log.info("checkpoint %s", path)
        self.ctx.barrier()
        return path

    def resume(self, stage: Stage) -> int:
        """Restore the newest checkpoint (every process reads it); returns the step to continue from."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        found = latest_checkpoint(self.ckdir)
        if found is None:
            return 0
        path, obj = found
        saved = json.loads(obj.get("config", "{}"))
        if saved.get("stage") != self.cfg.stage:
            raise CheckpointError(f"{path} is from stage {saved.get('stage')!r}, not {self.cfg.stage!r}")
        opts = StateDictOptions(full_state_dict=True)
        for name, t in stage.trainees.items():
            if name not in obj:
                raise CheckpointError(f"{path} has no '{name}' state")
            set_model_state_dict(t.module, unprefixed(obj[name]), options=opts)
            set_optimizer_state_dict(t.module, t.optimizer, obj["optimizer"][name], options=opts)
            if t.ema is not None and f"{name}_ema" in obj:
                t.ema.load_full(t.module, unprefixed(obj[f"{name}_ema"]))
        log.info("resumed from %s (step %d)", path, obj["step"])
        return int(obj["step"])

    # ---------------------------------------------------------------------------------- loop
    def fit(self, stage: Stage, resume: bool = True) -> int:
        """Run the stage to ``train.steps``; returns the first step this call executed."""
        steps = self.cfg.train.steps
        start = self.resume(stage) if resume else 0
        logger = MetricsLog(self.metrics_path, start) if self.ctx.is_main else None
        bar = tqdm(total=steps, initial=start, desc=self.cfg.stage, unit="step",
                   disable=not (self.progress and self.ctx.is_main))  # fmt: skip
        t_start = last_plot = time.perf_counter()
        for step in range(start, steps):
            t0 = time.perf_counter()
            metrics = self.ctx.mean(stage.step(step))
            now = time.perf_counter()
            record = {"step": step + 1, **metrics, "step_s": now - t0, "wall_s": now - t_start}
            if logger is not None:
                logger.write(record)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4g}")
            if (step + 1) % self.cfg.train.checkpoint_every == 0 or step + 1 == steps:
                self.save(stage, step + 1)
                if time.perf_counter() - last_plot > PLOT_EVERY_S:
                    self.plot(stage)
                    last_plot = time.perf_counter()
        bar.close()
        self.plot(stage)
        return start

    def plot(self, stage: Stage) -> None:
        if self.ctx.is_main:
            plot_metrics(read_metrics(self.metrics_path), self.out / "loss.png", self.cfg.stage, stage.plot_keys)
