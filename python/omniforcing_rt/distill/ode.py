"""Stage ``ode``: causal ODE regression of the student on the teacher's trajectories (spec D.2 Stage 2).

Per sample: every block draws an independent trajectory index t_k in 0..T-1 (T-1 = the clean
endpoint, which then acts as clean history); the clip is assembled from those points and run once
through the block-causal masked forward (:func:`masked_forward` with gradient, the full-sequence
equivalent of streaming). The loss is the x0 MSE against the teacher's clean endpoint per modality
with weights, frames at sigma 0 masked out.

Audio latents take the noise level of their own block (the block the attention mask puts them in).
``student.audio_sigma_mapping = 'release_compat'`` reproduces the release, which gives 14 audio latents
the previous block's level (spec D.2). Sinks (``student.audio_sink_tokens``) and the Global Prefix
layout (``student.layout = 'paper'``) are selected by the student config.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch

from omniforcing_rt.distill.config import DistillConfig
from omniforcing_rt.distill.data import OdePairs, keyed_generator, micro_slots, sample_indices
from omniforcing_rt.distill.distributed import DistContext, prepare_module, resolve_parallel
from omniforcing_rt.distill.losses import audio_block_ids, noisy_clip, ode_regression_loss
from omniforcing_rt.distill.networks import build_generator, checkpoint_extras, convention, load_teacher
from omniforcing_rt.distill.trainer import Ema, Trainee, Trainer
from omniforcing_rt.errors import ConfigError
from omniforcing_rt.pipeline.layout import BlockLayout
from omniforcing_rt.pipeline.offline import masked_forward

__all__ = ["OdeStage", "compute_context"]

log = logging.getLogger(__name__)

PURPOSE_BLOCK_INDEX = 1


def compute_context(ctx: DistContext, dtype: str, fsdp: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for unsharded bf16 runs (FSDP applies its mixed-precision policy instead)."""
    if dtype == "bfloat16" and not fsdp:
        return torch.autocast(ctx.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def student_layout(cfg: DistillConfig) -> BlockLayout:
    """The student's block layout over the configured clip."""
    h, w = cfg.latent_grid_hw
    return BlockLayout.for_video_latents(
        cfg.student.layout, cfg.video_latents, h * w, audio_sink_tokens=cfg.student.audio_sink_tokens
    )


class OdeStage:
    """Causal ODE regression (see module docstring)."""

    plot_keys = ("loss", "video_loss", "audio_loss")

    def __init__(
        self, cfg: DistillConfig, ctx: DistContext, trainer: Trainer, teacher_path: Path, pairs_dir: Path
    ) -> None:
        self.cfg, self.ctx, self.trainer = cfg, ctx, trainer
        teacher = load_teacher(teacher_path, ctx.device)
        gen = build_generator(cfg, teacher)
        del teacher
        self.layout = student_layout(cfg)
        self.pairs = OdePairs(pairs_dir)
        mc = gen.config
        problems = self.pairs.problems_for(
            video_frames=self.layout.video_latent_frames, audio_frames=self.layout.audio_latent_frames,
            grid_hw=cfg.latent_grid_hw, video_channels=mc.in_channels, audio_channels=mc.audio_in_channels,
            caption_channels=mc.caption_channels, sigmas=self.pairs_sigmas_expected(),
        )  # fmt: skip
        if problems:
            raise ConfigError(f"the ODE pairs at {pairs_dir} do not match the student", problems)
        self.extras = checkpoint_extras(cfg, mc)
        self.conv = convention(cfg.student.convention)
        self.fsdp = resolve_parallel(cfg.train.parallel, ctx)
        dtype = torch.bfloat16 if cfg.train.dtype == "bfloat16" else torch.float32
        prepare_module(gen, ctx, fsdp=self.fsdp, checkpointing=cfg.train.activation_checkpointing, dtype=dtype)
        ema = Ema(cfg.train.ema_decay, cfg.train.ema_start) if cfg.train.ema_decay else None
        self.generator = gen
        self.trainees = {"generator": Trainee("generator", gen, cfg.optim, cfg.train.steps, ema)}
        self.sigmas = torch.tensor(self.pairs.sigmas, dtype=torch.float32)
        self.video_blocks = self.layout.video_frame_block_ids()
        self.audio_blocks = audio_block_ids(self.layout, cfg.student.audio_sigma_mapping)

    def pairs_sigmas_expected(self) -> list[float]:
        from omniforcing_rt.pipeline.schedule import student_sigmas

        return [float(s) for s in student_sigmas(self.cfg.student.step_list)]

    def checkpoint_extras(self) -> dict[str, Any]:
        return self.extras

    def block_indices(self, step: int, slots: list[int]) -> torch.Tensor:
        """[B, K] trajectory index of every block, keyed by (seed, step, slot)."""
        t, k = len(self.sigmas), self.layout.num_blocks
        rows = [torch.randint(t, (k,), generator=keyed_generator(self.cfg.train.seed, step, s, PURPOSE_BLOCK_INDEX))
                for s in slots]  # fmt: skip
        return torch.stack(rows)

    def batch_loss(self, step: int, slots: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of the samples in ``slots`` of step ``step`` (mean over samples)."""
        tc = self.cfg.train
        g = tc.batch_size * self.ctx.world * tc.grad_accum
        batch = self.pairs.load(sample_indices(tc.seed, step, slots, g, len(self.pairs)))
        dev = self.ctx.device
        xv, xa, sv, sa = noisy_clip(batch["video"], batch["audio"], self.sigmas, self.block_indices(step, slots),
                                    self.video_blocks, self.audio_blocks)  # fmt: skip
        with compute_context(self.ctx, tc.dtype, self.fsdp):
            text = self.generator.encode_text(
                batch["video_context"].to(dev), batch["audio_context"].to(dev), batch["text_mask"].to(dev)
            )
            pred = masked_forward(self.generator, text, self.layout, xv.to(dev), xa.to(dev), sv.to(dev), sa.to(dev),
                                  self.conv, grad=True)  # fmt: skip
        target = (batch["video"][:, -1].to(dev), batch["audio"][:, -1].to(dev))
        oc = self.cfg.ode
        return ode_regression_loss(pred, target, (sv.to(dev), sa.to(dev)), oc.video_weight, oc.audio_weight)

    def step(self, step: int) -> dict[str, float]:
        tc = self.cfg.train

        def micro(m: int) -> tuple[torch.Tensor, dict[str, float]]:
            return self.batch_loss(step, micro_slots(self.ctx.rank, self.ctx.world, tc.batch_size, m))

        metrics = self.trainer.update(self.trainees["generator"], step, micro, step)
        metrics["loss"] = metrics["generator_loss"]
        return metrics
