"""Fidelity distances: how far a set of generated clips is from held-out real clips of the world.

Both distances are Fréchet distances (the FID / FAD formula) between Gaussians fitted to simple,
fixed per-clip feature vectors, one vector per clip, so they need no learned network and are
exactly reproducible:

* **video** (67 dims): the joint RGB histogram (4 bins per channel, 64 bins, averaged over the
  frames, summing to 1) and three motion statistics: mean, standard deviation and 90th
  percentile over frame pairs of the mean absolute frame difference (in units of 1/255).
* **audio** (64 dims): mean and standard deviation over time of a 32-band log-mel spectrogram
  (mono mix, 1024-point FFT, 10 ms hop, 40 Hz .. 8 kHz, natural log of power + 1e-2: the floor
  sits far below any audible sound, so near-silence is one constant instead of noisy logs).

``frechet(a, b) = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``, computed with
symmetric eigendecompositions (numpy only). With fewer clips than dimensions the covariances are
singular; the formula stays well defined (a small ridge keeps it numerically stable), but the
value depends on the number of clips, so compare distances computed with equal set sizes. Two
disjoint sets of real clips give the floor a perfect model would reach at that size.
"""

from __future__ import annotations

import numpy as np

from omniforcing_rt.errors import InputError

__all__ = ["audio_features", "frechet_distance", "mel_filterbank", "video_features"]

_HIST_BINS = 4
_N_FFT = 1024
_MELS = 32
_POWER_FLOOR = 1e-2  # about 100 dB below the bin power of a full-scale tone: silence is constant


def video_features(frames: np.ndarray) -> np.ndarray:
    """float64 [67]: colour histogram + motion statistics of uint8 [F, H, W, 3] frames."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 2:
        raise InputError(f"frames must be [F >= 2, H, W, 3], got {tuple(frames.shape)}")
    q = (frames.astype(np.int64) * _HIST_BINS) // 256
    code = (q[..., 0] * _HIST_BINS + q[..., 1]) * _HIST_BINS + q[..., 2]
    hist = np.bincount(code.ravel(), minlength=_HIST_BINS**3).astype(np.float64)
    hist /= hist.sum()
    motion = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    stats = np.array([motion.mean(), motion.std(), np.percentile(motion, 90)]) / 255.0
    return np.concatenate([hist, stats])


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_filterbank(sample_rate: int, n_fft: int = _N_FFT, bands: int = _MELS, fmin: float = 40.0,
                   fmax: float = 8000.0) -> np.ndarray:  # fmt: skip
    """Triangular mel filters: float64 [bands, n_fft // 2 + 1]."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = 700.0 * (
        10 ** (np.linspace(_hz_to_mel(np.array(fmin)), _hz_to_mel(np.array(fmax)), bands + 2) / 2595.0) - 1
    )
    fb = np.zeros((bands, freqs.size))
    for b in range(bands):
        lo, mid, hi = edges[b : b + 3]
        fb[b] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return fb


def audio_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """float64 [64]: per-band mean and std of the log-mel spectrogram of [C, N] (or [N]) audio."""
    x = np.asarray(audio, np.float64)
    x = x.sum(axis=0) if x.ndim == 2 else x
    hop = sample_rate // 100
    if x.ndim != 1 or x.size < _N_FFT:
        raise InputError(f"audio must be [C, N] or [N] with N >= {_N_FFT}, got {tuple(np.shape(audio))}")
    starts = np.arange(0, x.size - _N_FFT + 1, hop)
    frames = np.stack([x[s : s + _N_FFT] for s in starts]) * np.hanning(_N_FFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    logmel = np.log(power @ mel_filterbank(sample_rate).T + _POWER_FLOOR)
    return np.concatenate([logmel.mean(axis=0), logmel.std(axis=0)])


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray, ridge: float = 1e-9) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` [n, d] and ``b`` [m, d]."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise InputError(f"need two sets of >= 2 feature rows of one width, got {a.shape} and {b.shape}")
    eye = ridge * np.eye(a.shape[1])
    sa, sb = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    root_a = _sqrtm_psd(sa)
    cross = _sqrtm_psd(root_a @ sb @ root_a)
    d = float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(cross))
    return max(d, 0.0)
