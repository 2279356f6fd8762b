"""Stages ``dmd`` (joint Self-Forcing causal DMD, spec D.2 Stage 3) and ``bidir-dmd`` (paper Stage I).

Networks: the generator (trained), the frozen teacher (real score, teacher convention) and the critic
(fake score, a trainable copy of the teacher). Every step updates the critic; every
``dmd.gen_update_ratio``-th step (step 0 included) first updates the generator.

Generator update: roll out the generator (``dmd``: the KV-cached causal rollout of rollout.py, exit pass
with gradient; ``bidir-dmd``: whole-clip few-step sampling with backward simulation), both with an exit
index shared by all blocks and processes (drawn from a step-keyed generator). Draw t uniformly in
[min_t, max_t], sigma = the 1000-step LTX2 grid at t, noise the clip x_sigma = (1 - sigma) x + sigma eps
(same sigma for every frame of both modalities), then real = teacher CFG x0 (cond / negative prompt,
per-modality scales), fake = critic x0, and the normalised DMD loss.

Critic update: a fresh rollout without gradient, noised at its own sigma; flow-matching loss of the
critic's prediction (float64 flow). All draws are keyed by (seed, step, sample slot, purpose).

Metrics: ``loss`` is the critic's flow-matching loss (computed every step); ``generator_loss`` (the DMD
loss) and its parts appear on generator steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from omniforcing_rt.distill.config import DistillConfig
from omniforcing_rt.distill.data import PromptBank, keyed_generator, keyed_seed, micro_slots, sample_indices
from omniforcing_rt.distill.distributed import DistContext, prepare_module, resolve_parallel
from omniforcing_rt.distill.guidance import cfg_x0, clip_forward
from omniforcing_rt.distill.losses import critic_flow_loss, dmd_loss, dmd_sigmas
from omniforcing_rt.distill.networks import build_critic, build_generator, checkpoint_extras, convention, load_teacher
from omniforcing_rt.distill.ode import compute_context, student_layout
from omniforcing_rt.distill.rollout import RolloutSpec, bidirectional_rollout, causal_rollout, keyed_block_noise
from omniforcing_rt.distill.trainer import Ema, Trainee, Trainer
from omniforcing_rt.pipeline.schedule import student_sigmas

__all__ = ["DmdStage"]

P_EXIT, P_NOISE, P_SIGMA, P_EPS = 11, 12, 13, 14
GEN, CRITIC = 0, 1


class DmdStage:
    """Causal (``dmd``) or bidirectional (``bidir-dmd``) distribution matching (see module docstring)."""

    plot_keys = ("loss", "generator_loss")

    def __init__(self, cfg: DistillConfig, ctx: DistContext, trainer: Trainer, teacher_path: Path) -> None:
        self.cfg, self.ctx, self.trainer = cfg, ctx, trainer
        self.causal = cfg.stage == "dmd"
        tc = cfg.train
        teacher = load_teacher(teacher_path, ctx.device)
        generator, critic = build_generator(cfg, teacher), build_critic(cfg, teacher)
        self.extras = checkpoint_extras(cfg, generator.config)
        self.fsdp = resolve_parallel(tc.parallel, ctx)
        dtype = torch.bfloat16 if tc.dtype == "bfloat16" else torch.float32
        for model, trained in ((generator, True), (critic, True), (teacher, False)):
            prepare_module(model, ctx, fsdp=self.fsdp, checkpointing=trained and tc.activation_checkpointing,
                           dtype=dtype)  # fmt: skip
        self.teacher, self.generator, self.critic = teacher, generator, critic
        self.gen_conv = convention(cfg.student.convention)
        self.teacher_conv = convention(cfg.teacher_convention)
        ratio = cfg.dmd.gen_update_ratio
        ema = Ema(tc.ema_decay, tc.ema_start) if tc.ema_decay else None
        self.trainees = {
            "generator": Trainee("generator", generator, cfg.optim, (tc.steps + ratio - 1) // ratio, ema),
            "critic": Trainee("critic", critic, cfg.dmd.critic_optim, tc.steps),
        }
        self.bank = PromptBank(cfg.prompts, cfg.negative_prompt, cfg.text_tokens, teacher.config.caption_channels,
                               cfg.prompt_features)  # fmt: skip
        self.layout = student_layout(cfg)
        self.sigmas = tuple(float(s) for s in student_sigmas(cfg.student.step_list) if float(s) > 0)
        self.rollout_spec = RolloutSpec(self.layout, cfg.latent_grid_hw, self.sigmas,
                                        cfg.student.context_noise / 1000.0, self.gen_conv)  # fmt: skip

    def checkpoint_extras(self) -> dict[str, Any]:
        return self.extras

    # ------------------------------------------------------------------------------ pieces
    def _texts(self, step: int, slots: list[int]) -> dict[str, tuple[torch.Tensor, ...]]:
        tc = self.cfg.train
        g = tc.batch_size * self.ctx.world * tc.grad_accum
        idx = sample_indices(tc.seed, step, slots, g, len(self.bank))
        dev = self.ctx.device
        cond = tuple(t.to(dev) for t in self.bank.batch(idx))
        neg = tuple(t.to(dev) for t in self.bank.negative(len(slots)))
        return {"cond": cond, "neg": neg}

    def _rollout(self, step: int, slots: list[int], purpose: int, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, dev = self.cfg, self.ctx.device
        feats = self._texts(step, slots)["cond"]
        exit_index = int(
            torch.randint(len(self.sigmas), (1,), generator=keyed_generator(cfg.train.seed, step, P_EXIT, purpose))
        )
        seeds = [keyed_seed(cfg.train.seed, step, s, P_NOISE, purpose) for s in slots]
        mc = self.generator.config
        ckpt = cfg.train.rollout_checkpointing
        with torch.set_grad_enabled(grad):
            text = self.generator.encode_text(*feats)
        if self.causal:
            noise = keyed_block_noise(seeds, self.layout, cfg.latent_grid_hw, mc.in_channels, mc.audio_in_channels, dev)
            return causal_rollout(self.generator, self.rollout_spec, text, noise, exit_index, grad=grad,
                                  use_checkpoint=ckpt, grad_last_only=cfg.dmd.loss_blocks == "last")  # fmt: skip
        block_noise = keyed_block_noise(
            seeds, self.layout, cfg.latent_grid_hw, mc.in_channels, mc.audio_in_channels, dev
        )

        def clip_noise(step_i: int) -> tuple[torch.Tensor, torch.Tensor]:
            parts = [block_noise(b.index, step_i) for b in self.layout.blocks]
            return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)

        return bidirectional_rollout(self.generator, self.gen_conv, text, clip_noise, self.sigmas, exit_index,
                                     grad=grad, use_checkpoint=ckpt)  # fmt: skip

    def _noised(
        self, step: int, slots: list[int], purpose: int, x: tuple[torch.Tensor, torch.Tensor]
    ) -> dict[str, Any]:
        """Per-sample sigma (DMD timestep lookup) and noise; x_sigma = (1 - sigma) x + sigma eps."""
        dc, seed = self.cfg.dmd, self.cfg.train.seed
        # t uniform in [0, 1000), then clamped to [min_t, max_t], as the release does (spec D.2)
        draws = [
            torch.randint(0, 1000, (1,), generator=keyed_generator(seed, step, s, P_SIGMA, purpose)) for s in slots
        ]
        ts = torch.cat(draws).clamp(dc.min_t, dc.max_t)
        sigma = dmd_sigmas(ts).to(x[0].device)
        eps = []
        for t in x:
            rows = [
                torch.randn(t.shape[1:], generator=keyed_generator(seed, step, s, P_EPS, purpose, t.ndim))
                for s in slots
            ]
            eps.append(torch.stack(rows).to(t.device, t.dtype))
        noisy = tuple((1 - sigma.view(-1, *[1] * (t.ndim - 1))) * t + sigma.view(-1, *[1] * (t.ndim - 1)) * e
                      for t, e in zip(x, eps))  # fmt: skip
        return {"sigma": sigma, "eps": tuple(eps), "noisy": noisy}

    @staticmethod
    def _frame_sigma(sigma: torch.Tensor, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return sigma[:, None].expand(-1, x[0].shape[1]), sigma[:, None].expand(-1, x[1].shape[1])

    # ------------------------------------------------------------------------------ losses
    def generator_loss(self, step: int, slots: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        """DMD loss of a fresh gradient-carrying rollout."""
        x = self._rollout(step, slots, GEN, grad=True)
        n = self._noised(step, slots, GEN, tuple(t.detach() for t in x))
        sv, sa = self._frame_sigma(n["sigma"], x)
        texts = self._texts(step, slots)
        with torch.no_grad():
            tcond, tneg = self.teacher.encode_text(*texts["cond"]), self.teacher.encode_text(*texts["neg"])
            dc = self.cfg.dmd
            real = cfg_x0(self.teacher, self.teacher_conv, tcond, tneg, *n["noisy"], sv, sa,
                          dc.real_cfg_video, dc.real_cfg_audio)  # fmt: skip
            fake = clip_forward(self.critic, self.teacher_conv, self.critic.encode_text(*texts["cond"]),
                                *n["noisy"], sv, sa)  # fmt: skip
        if self.cfg.dmd.loss_blocks == "last":
            x, real, fake = (self._last_block(t) for t in (x, real, fake))
        loss, parts = dmd_loss(x, real, fake, self.cfg.dmd.video_weight, self.cfg.dmd.audio_weight)
        return loss, {**parts, "dmd_sigma_mean": float(n["sigma"].mean())}

    def _last_block(self, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The last block's latents of a whole-clip (video, audio) pair (``loss_blocks='last'``)."""
        spec = self.layout.blocks[-1]
        v0, a0 = spec.video_start, spec.audio_start
        return x[0][:, v0 : v0 + spec.video_frames], x[1][:, a0 : a0 + spec.audio_frames]

    def critic_loss(self, step: int, slots: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        """Flow-matching loss of the critic on a no-grad rollout."""
        with torch.no_grad():
            x = self._rollout(step, slots, CRITIC, grad=False)
        n = self._noised(step, slots, CRITIC, x)
        sv, sa = self._frame_sigma(n["sigma"], x)
        text = self.critic.encode_text(*self._texts(step, slots)["cond"])
        x0_hat = clip_forward(self.critic, self.teacher_conv, text, *n["noisy"], sv, sa)
        return critic_flow_loss(x, n["noisy"], n["eps"], x0_hat, n["sigma"])

    def step(self, step: int) -> dict[str, float]:
        tc, ctx = self.cfg.train, self.ctx
        metrics: dict[str, float] = {}
        with compute_context(ctx, tc.dtype, self.fsdp):
            if step % self.cfg.dmd.gen_update_ratio == 0:
                metrics.update(self.trainer.update(
                    self.trainees["generator"], step // self.cfg.dmd.gen_update_ratio,
                    lambda m: self.generator_loss(step, micro_slots(ctx.rank, ctx.world, tc.batch_size, m)), step,
                ))  # fmt: skip
            metrics.update(self.trainer.update(
                self.trainees["critic"], step,
                lambda m: self.critic_loss(step, micro_slots(ctx.rank, ctx.world, tc.batch_size, m)), step,
            ))  # fmt: skip
        metrics["loss"] = metrics["critic_loss"]
        return metrics
