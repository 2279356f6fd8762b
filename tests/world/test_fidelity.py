"""Fidelity features and the Fréchet distance."""

from __future__ import annotations

import numpy as np
import pytest

from omniforcing_rt.errors import InputError
from omniforcing_rt.world.dataset import iter_clips
from omniforcing_rt.world.fidelity import audio_features, frechet_distance, video_features
from omniforcing_rt.world.scene import WorldConfig

CFG = WorldConfig()


def test_frechet_basics() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([3.0, 0, 0, 0, 0])
    assert frechet_distance(a, shifted) == pytest.approx(9.0, rel=1e-6)  # equal covariances: |mu_a - mu_b|^2
    assert frechet_distance(a, 2 * a) == pytest.approx(5 * 1.0 * np.var(a, axis=0, ddof=1).mean(), rel=0.05)
    with pytest.raises(InputError):
        frechet_distance(a[:1], a)


def test_real_clips_are_closer_to_real_clips_than_corrupted_ones() -> None:
    heldout = list(iter_clips(CFG, "heldout", 6))
    reference = list(iter_clips(CFG, "reference", 6))
    rng = np.random.default_rng(0)
    v_ref = np.stack([video_features(c.frames) for c in reference])
    a_ref = np.stack([audio_features(c.audio, CFG.sample_rate) for c in reference])
    v_real = np.stack([video_features(c.frames) for c in heldout])
    a_real = np.stack([audio_features(c.audio, CFG.sample_rate) for c in heldout])
    noisy = [np.clip(c.frames + rng.normal(0, 25, c.frames.shape), 0, 255).astype(np.uint8) for c in heldout]
    v_noisy = np.stack([video_features(f) for f in noisy])
    a_noisy = np.stack([audio_features(c.audio + 0.05 * rng.standard_normal(c.audio.shape), CFG.sample_rate)
                        for c in heldout])  # fmt: skip
    assert v_real.shape == (6, 67) and a_real.shape == (6, 64)
    assert frechet_distance(v_noisy, v_ref) > 10 * frechet_distance(v_real, v_ref)
    assert frechet_distance(a_noisy, a_ref) > 10 * frechet_distance(a_real, a_ref)
