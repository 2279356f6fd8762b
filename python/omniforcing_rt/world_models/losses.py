"""Reconstruction losses of the world's media autoencoders and vocoder.

* Video: the balls cover ~2-5 % of a frame, so a plain pixel loss is won by the background;
  pixels away from the world's plain background colour get ``object_weight`` times the weight
  (squared error, see :func:`weighted_pixel_mse`).
* Latent regulariser: a fixed-variance Gaussian posterior (noise of std ``noise_std`` added to the
  latent before decoding) with its KL to N(0, 1), which up to constants is ``0.5 mean(z^2)``; it
  keeps latents at a bounded scale and makes the decoder tolerant to small latent errors (the
  teacher's). The exported model then rescales latents to unit std per channel.
* Vocoder: multi-resolution STFT magnitude (spectral convergence + log magnitude L1, as in
  Parallel WaveGAN) plus L1 between the log-mels of output and target (HiFi-GAN's mel loss); no
  adversarial loss (no discriminator is trained here).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from omniforcing_rt.world_models.mel import log_mel

__all__ = ["latent_kl", "mel_l1", "multi_resolution_stft", "weighted_pixel_mse"]

STFT_RESOLUTIONS = ((256, 64), (512, 128), (1024, 256), (2048, 512))
"""(n_fft, hop) pairs of the multi-resolution STFT loss at 24 kHz."""


def weighted_pixel_mse(pred: torch.Tensor, target: torch.Tensor, background: tuple[int, int, int],
                       object_weight: float) -> torch.Tensor:  # fmt: skip
    """MSE on [B, 3, F, H, W] in [-1, 1]; pixels further than 0.1 from the background weigh more.

    Squared, not absolute, error: while the model does not yet know where a ball is, the L1
    optimum of a pixel that a ball covers only sometimes is its median, the background, and a
    weighted L1 was measured to stay there (ball-pixel error at background level after 660
    steps); the MSE optimum is the mean, a faint ball, from which the gradient can sharpen it.
    """
    bg = torch.tensor(background, dtype=target.dtype).view(1, 3, 1, 1, 1) / 127.5 - 1.0
    mask = ((target - bg).abs().amax(dim=1, keepdim=True) > 0.1).to(target.dtype)
    weight = 1.0 + (object_weight - 1.0) * mask
    return ((pred - target).pow(2) * weight).sum() / (weight.sum() * 3)


def latent_kl(z: torch.Tensor) -> torch.Tensor:
    """KL(N(z, s^2) || N(0, 1)) up to terms constant in z: 0.5 mean(z^2)."""
    return 0.5 * z.pow(2).mean()


def add_latent_noise(z: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Sample of the fixed-variance posterior: z + std * eps (eps from ``generator``)."""
    if std <= 0:
        return z
    return z + std * torch.randn(z.shape, generator=generator, dtype=z.dtype)


def _stft_mag(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=x.dtype)
    return torch.stft(x.flatten(0, 1), n_fft, hop, window=window, return_complex=True).abs().clamp(min=1e-7)


def multi_resolution_stft(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + log-magnitude L1 on [B, C, N] waveforms."""
    total = pred.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        p, t = _stft_mag(pred, n_fft, hop), _stft_mag(target, n_fft, hop)
        sc = torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp(min=1e-7)
        total = total + sc + F.l1_loss(p.log(), t.log())
    return total / len(STFT_RESOLUTIONS)


def mel_l1(pred_wave: torch.Tensor, target_mel: torch.Tensor) -> torch.Tensor:
    """L1 between the log-mel of a [B, 2, 240 M] waveform and a [B, 2, M, 64] target log-mel."""
    return F.l1_loss(log_mel(pred_wave), target_mel)
