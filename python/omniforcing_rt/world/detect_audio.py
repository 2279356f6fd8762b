"""Ground-truth-free audio detectors: onsets and the palette colour of each onset's pitch.

They work on any stereo or mono waveform (rendered, decoded, generated):

1. **Energy envelope.** The channels are summed to mono; the energy of a 2 ms window is taken
   every 1 ms (``hop_s``) and converted to dB. Each envelope value is stamped with its window's
   *end* time, so a rise is never reported before the sound that causes it.
2. **Onsets.** An onset is an envelope value at least ``rise_db`` above the *maximum* of the
   preceding ``rise_window_s`` and above ``peak - range_db`` (peak = the loudest envelope value
   of the clip); rising frames closer than ``refractory_s`` belong to one onset. Comparing with
   the past maximum (not minimum) ignores the beating of overlapping tones, whose envelope dips
   and recovers without ever exceeding its earlier maxima. The onset time is where the envelope
   crosses the middle (in dB) between the median level before the rise and the peak within
   15 ms after it (walking back from the detection, linear interpolation between envelope
   frames): for the world's 1 ms attacks that is within about a millisecond of the true start.
3. **Pitch -> colour.** The power spectrum of ``pitch_window_s`` after the onset minus the one
   of the same length before it (clipped at 0) is the *new* sound. Each palette colour scores
   the new power within +-6 % of its fundamental; every colour whose score is at least
   ``min_pitch_share`` of the new power between 100 Hz and 4 kHz is reported as one onset at
   that time (loudest first: two balls hitting within a few ms make one rise but two notes);
   when none is, a single onset of colour None ("unrecognised pitch") is reported. The fundamentals of the palette are chosen so that no
   harmonic of one colour falls into another's band (scene.DEFAULT_PALETTE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omniforcing_rt.errors import InputError
from omniforcing_rt.world.scene import WorldConfig

__all__ = ["AudioOnset", "detect_onsets", "energy_envelope"]


@dataclass(frozen=True)
class AudioOnset:
    """A sound onset heard in the audio."""

    time_s: float
    """Estimated onset time."""
    colour: str | None
    """Palette colour whose pitch the new sound has (None: not recognised)."""
    pitch_hz: float
    """Frequency of the strongest new spectral peak in the winning band (0 when unrecognised)."""
    level_db: float
    """Envelope peak after the onset, dB re full scale."""


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim == 1:
        return a
    if a.ndim != 2 or a.shape[0] not in (1, 2):
        raise InputError(f"audio must be [N], [1, N] or [2, N], got {tuple(a.shape)}")
    return a.sum(axis=0)


def energy_envelope(audio: np.ndarray, sample_rate: int, hop_s: float = 0.001, window_s: float = 0.002) -> tuple:
    """(times_s, level_db): windowed energy of the mono mix, stamped at each window's end."""
    x = _mono(audio)
    hop, win = max(1, round(hop_s * sample_rate)), max(1, round(window_s * sample_rate))
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    ends = np.arange(win, len(x) + 1, hop)
    energy = (c[ends] - c[ends - win]) / win
    return ends / sample_rate, 10.0 * np.log10(energy + 1e-12)


def _onset_time(times: np.ndarray, level: np.ndarray, first: int, back: int, target: float) -> float:
    """Time the rise detected at frame ``first`` crossed ``target`` (walking back, linear interpolation)."""
    k = first
    while k < len(level) - 1 and level[k] < target:
        k += 1
    while k > max(1, first - back) and level[k - 1] >= target:
        k -= 1
    lo, hi = level[k - 1], level[k]
    frac = 1.0 if hi <= lo else min(1.0, max(0.0, (target - lo) / (hi - lo)))
    return float(times[k - 1] + frac * (times[k] - times[k - 1]))


def _onset_frames(level: np.ndarray, hop_s: float, opts: dict) -> list[int]:
    """First frame of every onset: the level tops the maximum of the past ``rise_window_s`` by ``rise_db``."""
    back = max(1, round(opts["rise_window_s"] / hop_s))
    refractory = max(1, round(opts["refractory_s"] / hop_s))
    floor_db = level.max() - opts["range_db"]
    past = np.lib.stride_tricks.sliding_window_view(level[:-1], back).max(axis=1)
    rising = np.flatnonzero((level[back:] - past >= opts["rise_db"]) & (level[back:] >= floor_db)) + back
    out: list[int] = []
    last = -(10**9)
    for n in rising:
        if n - last > refractory:
            out.append(int(n))
        last = n
    return out


def _spectrum(x: np.ndarray, start: int, length: int) -> np.ndarray:
    seg = np.zeros(length)
    lo, hi = max(0, start), min(len(x), start + length)
    if hi > lo:
        seg[lo - start : hi - start] = x[lo:hi]
    return np.abs(np.fft.rfft(seg * np.hanning(length))) ** 2


def _peak_hz(new: np.ndarray, band: np.ndarray, sr: int, n: int) -> float:
    """Frequency of the strongest bin of ``band`` (parabolic interpolation in log power)."""
    k = int(band[np.argmax(new[band])])
    if not 0 < k < len(new) - 1:
        return float(k * sr / n)
    a, b, c = np.log(new[k - 1 : k + 2] + 1e-30)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) < 0 else 0.0
    return float((k + shift) * sr / n)


def _classify(x: np.ndarray, sample: int, sr: int, config: WorldConfig, opts: dict) -> list[tuple[str | None, float]]:
    """(colour, pitch_hz) of every palette note in the new sound starting at ``sample``, loudest first."""
    n = 1 << max(8, math.ceil(math.log2(opts["pitch_window_s"] * sr)))
    new = np.clip(_spectrum(x, sample, n) - _spectrum(x, sample - n, n), 0.0, None)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    total = new[(freqs >= 100) & (freqs <= 4000)].sum()
    bands = [np.flatnonzero(np.abs(freqs - c.pitch_hz) <= 0.06 * c.pitch_hz) for c in config.palette]
    scores = np.array([new[band].sum() for band in bands])
    found = [i for i in np.argsort(-scores) if total > 0 and scores[i] >= opts["min_pitch_share"] * total]
    if not found:
        return [(None, 0.0)]
    return [(config.palette[i].name, _peak_hz(new, bands[i], sr, n)) for i in found]


def detect_onsets(
    audio: np.ndarray,
    config: WorldConfig,
    sample_rate: int | None = None,
    *,
    rise_db: float = 2.0,
    rise_window_s: float = 0.012,
    range_db: float = 45.0,
    refractory_s: float = 0.01,
    pitch_window_s: float = 0.04,
    min_pitch_share: float = 0.2,
) -> list[AudioOnset]:
    """Every onset of ``audio`` with its time and colour (see the module docstring)."""
    sr = int(sample_rate or config.sample_rate)
    x = _mono(audio)
    if x.size < sr // 100 or not np.all(np.isfinite(x)):
        raise InputError(f"audio must hold at least 10 ms of finite samples, got {x.size} samples")
    times, level = energy_envelope(x, sr)
    hop_s = float(times[1] - times[0]) if len(times) > 1 else 0.001
    opts = {"rise_db": rise_db, "rise_window_s": rise_window_s, "range_db": range_db, "refractory_s": refractory_s,
            "pitch_window_s": pitch_window_s, "min_pitch_share": min_pitch_share}  # fmt: skip
    back = max(1, round(rise_window_s / hop_s))
    out = []
    for first in _onset_frames(level, hop_s, opts):
        base = float(np.median(level[max(0, first - back) : first]))
        peak = float(level[first : first + round(0.015 / hop_s) + 1].max())
        t = _onset_time(times, level, first, back, 0.5 * (base + peak))
        for colour, pitch in _classify(x, round(t * sr), sr, config, opts):
            out.append(AudioOnset(t, colour, pitch, peak))
    return out
