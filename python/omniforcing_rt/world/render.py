"""Rendering a :class:`~omniforcing_rt.world.scene.Scene` to frames and stereo audio.

Video: anti-aliased discs (coverage = the pixel's overlap with the disc, approximated by
``clip(r + 0.5 - distance, 0, 1)``) composited over a plain background in ball order. Because
the edge pixels are exact mixtures of ball and background colour, the scorer's soft colour
segmentation recovers the centroid to a small fraction of a pixel.

Audio: nothing but the impacts. Each impact is a short tone starting at the exact (sub-sample)
impact time: fundamental at the ball colour's pitch plus two weaker harmonics, a 1 ms linear
attack and an exponential decay, loudness growing with the impact's normal speed, panned by the
ball's x position (equal-power). A -80 dBFS seeded noise floor keeps the signal from being
exactly silent between impacts (log features stay finite).
"""

from __future__ import annotations

import math

import numpy as np

from omniforcing_rt.world.scene import Impact, Scene

__all__ = ["ATTACK_S", "DECAY_S", "HARMONICS", "TONE_S", "impact_gain", "render_audio", "render_clip", "render_video"]

ATTACK_S = 0.001
"""Linear attack of an impact tone."""
DECAY_S = 0.05
"""Exponential decay time constant of an impact tone."""
TONE_S = 0.25
"""Length of an impact tone (about -43 dB at its end)."""
HARMONICS = (1.0, 0.35, 0.12)
"""Amplitudes of the fundamental and the 2nd and 3rd harmonics."""
_NOISE_FLOOR = 1e-4
_REFERENCE_SPEED = 500.0


def render_video(scene: Scene) -> np.ndarray:
    """The scene's frames: uint8 [frames, height, width, 3]."""
    cfg = scene.config
    pos = scene.frame_positions()
    yy, xx = np.mgrid[0 : cfg.height, 0 : cfg.width].astype(np.float32) + 0.5
    img = np.empty((cfg.frames, cfg.height, cfg.width, 3), np.float32)
    img[:] = np.asarray(cfg.background, np.float32)
    for b, ball in enumerate(scene.balls):
        colour = np.asarray(scene.colour_of(b).rgb, np.float32)
        for f in range(cfg.frames):
            x, y = pos[f, b]
            y0, y1 = max(0, int(y - ball.radius - 2)), min(cfg.height, int(y + ball.radius + 3))
            x0, x1 = max(0, int(x - ball.radius - 2)), min(cfg.width, int(x + ball.radius + 3))
            dist = np.hypot(xx[y0:y1, x0:x1] - x, yy[y0:y1, x0:x1] - y)
            cover = np.clip(ball.radius + 0.5 - dist, 0.0, 1.0)[..., None]
            patch = img[f, y0:y1, x0:x1]
            img[f, y0:y1, x0:x1] = patch + cover * (colour - patch)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def impact_gain(impact: Impact) -> float:
    """Peak amplitude of an impact's tone (0.12 .. 0.3, growing with the normal speed)."""
    return 0.12 + 0.18 * min(1.0, impact.speed / _REFERENCE_SPEED)


def _tone(pitch_hz: float, t: np.ndarray) -> np.ndarray:
    """Unit-gain impact tone at times ``t`` (seconds since the impact, all >= 0)."""
    env = np.minimum(t / ATTACK_S, 1.0) * np.exp(-t / DECAY_S)
    wave = sum(a * np.sin(2 * math.pi * pitch_hz * (k + 1) * t) for k, a in enumerate(HARMONICS))
    return env * wave / sum(HARMONICS)


def render_audio(scene: Scene, pitches: dict[str, float] | None = None) -> np.ndarray:
    """The scene's sound: float32 [2, samples] at the config's rate, one tone per impact.

    Args:
        scene: the scene.
        pitches: colour name -> pitch override (tests use it to build mismatched clips).
    """
    cfg = scene.config
    n, sr = cfg.audio_samples, cfg.sample_rate
    rng = np.random.Generator(np.random.PCG64([scene.seed, 0xA0D10]))
    out = (rng.standard_normal((2, n)) * _NOISE_FLOOR).astype(np.float64)
    tone_len = int(TONE_S * sr)
    for hit in scene.events:
        colour = scene.colour_of(hit.ball)
        pitch = colour.pitch_hz if pitches is None else pitches[colour.name]
        start = math.ceil(hit.time_s * sr)
        if start >= n:
            continue
        idx = np.arange(start, min(n, start + tone_len))
        tone = _tone(pitch, idx / sr - hit.time_s) * impact_gain(hit)
        pan = min(max(hit.x / cfg.width, 0.0), 1.0) * math.pi / 2
        out[0, idx] += math.cos(pan) * tone
        out[1, idx] += math.sin(pan) * tone
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def render_clip(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [F, H, W, 3], audio float32 [2, N]) of the scene."""
    return render_video(scene), render_audio(scene)
