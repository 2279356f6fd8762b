"""The audio VAE's front end: 24 kHz world audio -> 16 kHz stereo natural-log Slaney mel.

The LTX-2 audio VAE encodes a log-mel spectrogram, not a waveform (spec-media.md section 3.7):
16 kHz, power-1 magnitude STFT (n_fft = window = 1024 Hann, hop 160, centred reflect padding),
64 Slaney-scale, Slaney-normalised mel bands up to 8 kHz, ``log(clamp(mel, 1e-5))``, 100 frames
per second. The world renders 24 kHz audio, so it is first resampled to 16 kHz (band-limited FFT
resampling; the world's tones lie far below 8 kHz). A clip of ``240 M`` samples at 24 kHz gives
exactly ``M`` mel frames here (the last centred frame is dropped), which is the vocoder's
``M`` mel frames -> ``240 M`` samples, so mel and waveform stay frame-aligned end to end.
"""

from __future__ import annotations

import math

import torch

__all__ = ["LOG_FLOOR", "MEL_BINS", "MEL_HOP_16K", "log_mel", "resample_24k_to_16k", "slaney_filterbank"]

MEL_BINS = 64
"""Mel bands per channel (the vocoder's fixed input width)."""
MEL_HOP_16K = 160
"""Hop at 16 kHz (100 mel frames per second; 240 samples at 24 kHz)."""
N_FFT_16K = 1024
"""FFT and window length at 16 kHz."""
LOG_FLOOR = math.log(1e-5)
"""Log-mel of silence (the clamp floor)."""


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa ``htk=False``)."""
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(hz >= min_log_hz, min_log_mel + torch.log(hz / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def slaney_filterbank(sample_rate: int = 16_000, n_fft: int = N_FFT_16K, bands: int = MEL_BINS,
                      f_max: float = 8000.0) -> torch.Tensor:  # fmt: skip
    """Triangular Slaney-normalised mel filters, float64 [bands, n_fft // 2 + 1] (librosa's)."""
    fft_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = _mel_to_hz(torch.linspace(0.0, float(_hz_to_mel(torch.tensor(f_max))), bands + 2, dtype=torch.float64))
    lower = (fft_hz[None] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - fft_hz[None]) / (edges[2:] - edges[1:-1])[:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def resample_24k_to_16k(audio: torch.Tensor) -> torch.Tensor:
    """Band-limited FFT resampling of [..., N] 24 kHz audio (N divisible by 3) to [..., 2N/3]."""
    n = audio.shape[-1]
    m = n * 2 // 3
    spec = torch.fft.rfft(audio.double(), dim=-1)[..., : m // 2 + 1]
    return (torch.fft.irfft(spec, n=m, dim=-1) * (m / n)).to(audio.dtype)


_FILTERS: dict[str, torch.Tensor] = {}


def log_mel(audio_24k: torch.Tensor) -> torch.Tensor:
    """[B, 2, 240 M] (or [2, 240 M]) 24 kHz audio -> [B, 2, M, 64] natural-log mel (float32)."""
    squeeze = audio_24k.ndim == 2
    x = audio_24k[None] if squeeze else audio_24k
    b, c, n = x.shape
    frames = n // 240
    wave = resample_24k_to_16k(x.float()).reshape(b * c, -1)
    if "fb" not in _FILTERS:
        _FILTERS["fb"] = slaney_filterbank().float()
        _FILTERS["win"] = torch.hann_window(N_FFT_16K)
    spec = torch.stft(wave, N_FFT_16K, MEL_HOP_16K, window=_FILTERS["win"], center=True, pad_mode="reflect",
                      return_complex=True).abs()  # fmt: skip
    mel = torch.log(torch.clamp(_FILTERS["fb"] @ spec, min=1e-5))[..., :frames]  # [B*C, 64, M]
    out = mel.reshape(b, c, MEL_BINS, frames).transpose(2, 3).contiguous()
    return out[0] if squeeze else out
