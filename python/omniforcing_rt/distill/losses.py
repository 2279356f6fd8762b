"""Losses and noise assignment of the distillation stages.

Every loss is a mean over samples of a per-sample value, so a batch of B equals B accumulated
micro-batches of 1 and a sharded step equals the single-process step.

* Causal ODE regression (spec D.2): each block draws its own trajectory index; x0 MSE per modality
  against the teacher's clean endpoint, frames at sigma 0 (clean history) masked out.
* DMD (spec D.2): g = (fake - real) / mean|x - real| per sample and modality, loss = 1/2 MSE(x, sg(x - g)).
* Critic: flow matching, MSE between (x_sigma - x0_hat) / sigma (float64) and (eps - x).
"""

from __future__ import annotations

import functools

import torch

from omniforcing_rt.pipeline.layout import BlockLayout
from omniforcing_rt.pipeline.schedule import ltx2_sigmas

__all__ = [
    "audio_block_ids",
    "critic_flow_loss",
    "dmd_loss",
    "dmd_sigmas",
    "noisy_clip",
    "ode_regression_loss",
    "release_compat_audio_video_frame",
]


def release_compat_audio_video_frame(video_frames: int, audio_frames: int) -> torch.Tensor:
    """[N] the video frame whose noise index the release's Stage-2 code gives each audio latent.

    The release cuts the audio axis proportionally: video frame f owns audio latents
    round(f N / F) .. round((f + 1) N / F) - 1 (round half to even). At 16 / 126 latents this puts 14
    audio latents (26-31, 51-54, 76-78, 101) on the previous block's level (spec D.2).
    """
    edges = torch.round(torch.arange(video_frames + 1, dtype=torch.float64) * audio_frames / video_frames).long()
    counts = edges[1:] - edges[:-1]
    return torch.repeat_interleave(torch.arange(video_frames), counts)


def audio_block_ids(layout: BlockLayout, mapping: str) -> torch.Tensor:
    """[N] block whose noise level each audio latent takes: its own block, or the release quirk."""
    if mapping == "own_block":
        return layout.audio_frame_block_ids()
    frames = release_compat_audio_video_frame(layout.video_latent_frames, layout.audio_latent_frames)
    return layout.video_frame_block_ids()[frames]


def noisy_clip(
    traj_video: torch.Tensor,
    traj_audio: torch.Tensor,
    sigmas: torch.Tensor,
    block_index: torch.Tensor,
    video_blocks: torch.Tensor,
    audio_blocks: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Assemble the ODE-regression input from per-block trajectory indices.

    Args:
        traj_video: [B, T, F, C, H, W]; traj_audio: [B, T, N, C] (trajectory at ``sigmas`` [T]).
        block_index: [B, K] trajectory index of every block.
        video_blocks: [F] block of each video frame; audio_blocks: [N] block whose level each audio latent takes.

    Returns:
        (video [B, F, C, H, W], audio [B, N, C], video_sigma [B, F], audio_sigma [B, N]).
    """
    b = traj_video.shape[0]
    vi = block_index[:, video_blocks]  # [B, F]
    ai = block_index[:, audio_blocks]  # [B, N]
    rows = torch.arange(b)[:, None]
    video = traj_video[rows, vi, torch.arange(vi.shape[1])[None]]
    audio = traj_audio[rows, ai, torch.arange(ai.shape[1])[None]]
    return video, audio, sigmas[vi], sigmas[ai]


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """[B] mean squared error over the frames where ``frame_mask`` [B, F] is True (0 when none)."""
    err = (pred.float() - target.float()).pow(2).flatten(2).mean(-1)  # [B, F]
    m = frame_mask.float()
    return (err * m).sum(1) / m.sum(1).clamp_min(1.0)


def ode_regression_loss(
    pred: tuple[torch.Tensor, torch.Tensor],
    target: tuple[torch.Tensor, torch.Tensor],
    sigma: tuple[torch.Tensor, torch.Tensor],
    video_weight: float,
    audio_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """x0 MSE per modality (clean-history frames masked); returns (loss, parts)."""
    lv = _masked_mse(pred[0], target[0], sigma[0] > 0).mean()
    la = _masked_mse(pred[1], target[1], sigma[1] > 0).mean()
    loss = video_weight * lv + audio_weight * la
    return loss, {"video_loss": float(lv.detach()), "audio_loss": float(la.detach())}


def dmd_sigmas(t: torch.Tensor) -> torch.Tensor:
    """Integer DMD timesteps in [0, 1000) -> sigma through the 1000-step LTX2Scheduler grid."""
    return _dmd_grid()[1000 - t.long()]


@functools.cache
def _dmd_grid() -> torch.Tensor:
    return ltx2_sigmas(1000)


def _dmd_one(x: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(1, x.ndim))
    with torch.no_grad():
        xf, rf = x.detach().double(), real.double()
        norm = (xf - rf).abs().mean(dim=dims, keepdim=True)
        g = torch.nan_to_num((fake.double() - rf) / norm)
        target = (xf - g).to(x.dtype)
    return 0.5 * (x.float() - target.float()).pow(2).mean(dim=dims)


def dmd_loss(
    x: tuple[torch.Tensor, torch.Tensor],
    real: tuple[torch.Tensor, torch.Tensor],
    fake: tuple[torch.Tensor, torch.Tensor],
    video_weight: float,
    audio_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The normalised DMD generator loss per modality (gradient = g / numel, through x only)."""
    lv = _dmd_one(x[0], real[0], fake[0]).mean()
    la = _dmd_one(x[1], real[1], fake[1]).mean()
    return video_weight * lv + audio_weight * la, {"video_dmd": float(lv.detach()), "audio_dmd": float(la.detach())}


def critic_flow_loss(
    x: tuple[torch.Tensor, torch.Tensor],
    noisy: tuple[torch.Tensor, torch.Tensor],
    eps: tuple[torch.Tensor, torch.Tensor],
    x0_hat: tuple[torch.Tensor, torch.Tensor],
    sigma: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow-matching loss of the critic, video + audio; ``sigma`` [B] is per sample."""
    parts = []
    for xi, ni, ei, pi in zip(x, noisy, eps, x0_hat):
        s = sigma.double().view(-1, *([1] * (xi.ndim - 1)))
        flow = (ni.double() - pi.double()) / s
        err = (flow - (ei.double() - xi.double())).pow(2).flatten(1).mean(-1)
        parts.append(err.mean())
    return (parts[0] + parts[1]).float(), {
        "critic_video": float(parts[0].detach()),
        "critic_audio": float(parts[1].detach()),
    }
