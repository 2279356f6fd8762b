"""Rectified flow matching as LTX-2 trains it, and the teacher's Euler sampler.

Training (one sigma per clip, shared by its video and audio tokens, as the bidirectional teacher
is sampled): ``x_sigma = (1 - sigma) x0 + sigma eps``, target velocity ``v = eps - x0``, the model
predicts the velocity, loss = ``w_v MSE_video + w_a MSE_audio`` (``x0 = x_sigma - sigma v``, the
convention of :meth:`AVTransformer.to_x0`).

Sigma sampling: logit-normal, ``sigma = sigmoid(N(mean, std))`` (the SD3 / LTX-Video trainer
default; mean 0, std 1 puts most weight at mid noise where the velocity is hardest to predict),
with a fraction of each batch drawn ``U(0, 1)`` so the ends of the range, where the 40-step
LTX2Scheduler grid also samples (sigma ~1 and ~0.1), are trained too. ``uniform`` draws all of
them ``U(0, 1)``.

Sampling reuses the distillation stage's own sampler (:func:`~omniforcing_rt.distill.ode_pairs.sample_trajectory`):
Euler on the LTX2Scheduler grid under the teacher convention, optionally with the multimodal
guider, so what we evaluate here is exactly what ``ode-pairs`` will record.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from omniforcing_rt.distill.config import GuiderConfig
from omniforcing_rt.distill.guidance import clip_velocity
from omniforcing_rt.distill.ode_pairs import sample_trajectory
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.transformer import AVTransformer, TextContext
from omniforcing_rt.world_models.teacher_config import TeacherConfig

__all__ = ["NO_GUIDANCE", "clip_velocity", "euler_sample", "flow_matching_loss", "sample_sigmas"]

NO_GUIDANCE = GuiderConfig(video_cfg=1.0, audio_cfg=1.0, video_stg=0.0, audio_stg=0.0,
                           video_modality=1.0, audio_modality=1.0, video_rescale=0.0, audio_rescale=0.0,
                           stg_blocks=())  # fmt: skip
"""Plain conditional sampling (one pass per step)."""


def sample_sigmas(cfg: TeacherConfig, batch: int, gen: torch.Generator) -> torch.Tensor:
    """Training sigmas [batch] in (0, 1) (see the module docstring)."""
    uniform = torch.rand(batch, generator=gen)
    if cfg.sigma_sampler == "uniform":
        return uniform.clamp(1e-4, 1.0 - 1e-4)
    logit = torch.randn(batch, generator=gen) * cfg.sigma_logit_std + cfg.sigma_logit_mean
    pick_uniform = torch.rand(batch, generator=gen) < cfg.sigma_uniform_fraction
    return torch.where(pick_uniform, uniform, torch.sigmoid(logit)).clamp(1e-4, 1.0 - 1e-4)


def flow_matching_loss(
    model: AVTransformer,
    conv: Convention,
    text: TextContext,
    clean: tuple[torch.Tensor, torch.Tensor],
    noise: tuple[torch.Tensor, torch.Tensor],
    sigma: torch.Tensor,
    weights: tuple[float, float],
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted velocity MSE of one batch.

    Args:
        clean: (video [B, F, C, h, w], audio [B, T, C]) x0.
        noise: the same shapes, eps.
        sigma: [B] noise level of each clip.
        weights: (video, audio) loss weights.

    Returns:
        (loss, {"video_loss", "audio_loss"}).
    """
    (v0, a0), (ve, ae) = clean, noise
    sv, sa = sigma.view(-1, 1, 1, 1, 1), sigma.view(-1, 1, 1)
    xv, xa = (1 - sv) * v0 + sv * ve, (1 - sa) * a0 + sa * ae
    vsig = sigma[:, None].expand(-1, v0.shape[1])
    asig = sigma[:, None].expand(-1, a0.shape[1])
    vel_v, vel_a = clip_velocity(model, conv, text, xv, xa, vsig, asig)
    lv = F.mse_loss(vel_v.float(), (ve - v0).float())
    la = F.mse_loss(vel_a.float(), (ae - a0).float())
    loss = weights[0] * lv + weights[1] * la
    return loss, {"video_loss": float(lv.detach()), "audio_loss": float(la.detach())}


@torch.no_grad()
def euler_sample(
    model: AVTransformer,
    conv: Convention,
    text_cond: TextContext,
    text_uncond: TextContext,
    noise: tuple[torch.Tensor, torch.Tensor],
    steps: int = 40,
    guider: GuiderConfig = NO_GUIDANCE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean latents (video [B, F, C, h, w], audio [B, T, C]) from ``noise`` at sigma 1."""
    v, a = sample_trajectory(model, conv, text_cond, text_uncond, noise, guider, steps, [steps])
    return v[:, 0], a[:, 0]
