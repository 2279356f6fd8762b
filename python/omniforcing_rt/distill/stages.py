"""Entry point of every stage: process group, teacher, data, training, export.

:func:`run_stage` is what ``omniforcing-rt distill STAGE`` calls in every process. Layout of OUT::

    OUT/config.json             the resolved config (every default filled in)
    OUT/teacher/                the synthetic teacher (tiny preset only)
    OUT/ode_pairs/              generated ODE pairs (stage ode-pairs, or ode with generate_pairs)
    OUT/checkpoints/            step_<8-digit step>.pt + latest (training stages)
    OUT/metrics.jsonl, loss.png per-step metrics and the loss curve
    OUT/export/generator/       the generator as a model directory (release shard layout + model.json)
    OUT/export/generator_ema/   the same for the EMA weights, when an EMA was kept
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from omniforcing_rt.distill.checkpoint import export_generator, latest_checkpoint
from omniforcing_rt.distill.config import DistillConfig
from omniforcing_rt.distill.distributed import DistContext, init_distributed
from omniforcing_rt.distill.networks import ensure_teacher
from omniforcing_rt.distill.ode_pairs import generate_ode_pairs
from omniforcing_rt.distill.trainer import Trainer

__all__ = ["StageResult", "run_stage"]

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage produced."""

    out: Path
    """The output directory."""
    first_step: int = 0
    """Step the training resumed from (0 = fresh)."""
    checkpoint: Path | None = None
    """The last checkpoint."""
    exports: list[Path] = field(default_factory=list)
    """Exported model directories."""
    ode_pairs: Path | None = None
    """ODE pairs written or used."""


def run_stage(cfg: DistillConfig, out: str | Path, *, resume: bool = True, progress: bool = True) -> StageResult:
    """Run ``cfg.stage`` into ``out`` (joins the process group described by the environment)."""
    out = Path(out)
    ctx = init_distributed()
    try:
        if cfg.train.num_threads is not None and ctx.device.type == "cpu":
            torch.set_num_threads(cfg.train.num_threads)
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
        teacher = ensure_teacher(cfg, out, ctx.is_main)
        ctx.barrier()
        with warnings.catch_warnings():
            # Our code never writes in place into module outputs, which is what this FSDP2 warning is about.
            warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
            return _dispatch(cfg, out, ctx, teacher, resume, progress)
    finally:
        ctx.shutdown()


def _dispatch(
    cfg: DistillConfig, out: Path, ctx: DistContext, teacher: Path, resume: bool, progress: bool
) -> StageResult:
    result = StageResult(out)
    if cfg.stage == "ode-pairs":
        target = Path(cfg.ode_pairs) if cfg.ode_pairs else out / "ode_pairs"
        result.ode_pairs = generate_ode_pairs(cfg, target, teacher, ctx, progress)
        return result
    trainer = Trainer(cfg, out, ctx, progress)
    if cfg.stage == "ode":
        from omniforcing_rt.distill.ode import OdeStage

        pairs = (
            Path(cfg.ode_pairs) if cfg.ode_pairs else generate_ode_pairs(cfg, out / "ode_pairs", teacher, ctx, progress)
        )
        result.ode_pairs = pairs
        stage = OdeStage(cfg, ctx, trainer, teacher, pairs)
    else:
        from omniforcing_rt.distill.dmd import DmdStage

        stage = DmdStage(cfg, ctx, trainer, teacher)
    result.first_step = trainer.fit(stage, resume=resume)
    found = latest_checkpoint(trainer.ckdir) if ctx.is_main else None
    if found is not None:
        result.checkpoint = found[0]
        result.exports.append(export_generator(found[0], out / "export" / "generator"))
        if "generator_ema" in found[1]:
            result.exports.append(export_generator(found[0], out / "export" / "generator_ema", use_ema=True))
    ctx.barrier()
    return result
