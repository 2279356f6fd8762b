"""The world's scenes: config validation, determinism, exact physics."""

from __future__ import annotations

import numpy as np
import pytest

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.world.render import render_audio, render_video
from omniforcing_rt.world.scene import WorldConfig, audio_samples_for_frames, sample_scene

CFG = WorldConfig()


def test_config_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as e:
        WorldConfig(
            height=31, frames=50, ball_count=(0, 9), gravity=(-1.0, 5.0), speed_bands={"a": (1, 5), "b": (4, 9)}
        )
    text = "\n".join(e.value.problems)
    for needle in ("at least 32", "even", "25 + 24 k", "ball_count", "gravity", "disjoint"):
        assert needle in text, (needle, text)
    assert len(e.value.problems) >= 6


def test_geometry_matches_the_default_model() -> None:
    assert (CFG.height, CFG.width, CFG.frames) == (128, 192, 49)
    assert CFG.audio_samples == 48_240  # 2 blocks of the release layout: 25 + 24 frames, 24,240 + 24,000 samples
    assert audio_samples_for_frames(25) == 24_240 and audio_samples_for_frames(121) == 120_240
    with pytest.raises(InputError):
        audio_samples_for_frames(33)


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a, b, c = sample_scene(CFG, 7), sample_scene(CFG, 7), sample_scene(CFG, 8)
    assert a.balls == b.balls and a.events == b.events
    assert render_video(a).tobytes() == render_video(b).tobytes()
    assert render_audio(a).tobytes() == render_audio(b).tobytes()
    assert render_video(a).tobytes() != render_video(c).tobytes()


def test_media_shapes_and_ranges() -> None:
    s = sample_scene(CFG, 3)
    v, a = render_video(s), render_audio(s)
    assert v.shape == (49, 128, 192, 3) and v.dtype == np.uint8
    assert a.shape == (2, 48_240) and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    assert np.abs(a).max() > 0.05  # impacts are audible


@pytest.mark.parametrize("seed", range(12))
def test_impacts_are_exact_wall_contacts(seed: int) -> None:
    s = sample_scene(CFG, seed)
    assert s.events, "every scene has impacts (gravity brings every ball to the floor within the clip)"
    assert [e.time_s for e in s.events] == sorted(e.time_s for e in s.events)
    for e in s.events:
        r = s.balls[e.ball].radius
        x, y = s.positions(np.array([e.time_s]))[0, e.ball]
        want = {"left": (0, r), "right": (0, CFG.width - r), "ceiling": (1, r), "floor": (1, CFG.height - r)}[e.wall]
        assert abs((x, y)[want[0]] - want[1]) < 1e-6
        assert abs(x - e.x) < 1e-6 and abs(y - e.y) < 1e-6
        # the normal velocity reverses: just before and after, the ball is inside and equally far from the wall
        before, after = s.positions(np.array([e.time_s - 1e-4, e.time_s + 1e-4]))[:, e.ball, want[0]]
        assert abs(abs(before - want[1]) - abs(after - want[1])) < 1e-3
    t = np.linspace(0, CFG.seconds, 4001)
    pos = s.positions(t)
    for b, ball in enumerate(s.balls):
        assert pos[:, b, 0].min() >= ball.radius - 1e-6 and pos[:, b, 0].max() <= CFG.width - ball.radius + 1e-6
        assert pos[:, b, 1].min() >= ball.radius - 1e-6 and pos[:, b, 1].max() <= CFG.height - ball.radius + 1e-6


def test_energy_is_conserved_between_contacts() -> None:
    s = sample_scene(CFG, 5)
    t = np.linspace(0.0, CFG.seconds, 2001)
    pos = s.positions(t)
    dt = 1e-5
    vel = (s.positions(t + dt) - s.positions(t - dt)) / (2 * dt)
    for b in range(len(s.balls)):
        near = np.array([min((abs(tt - e.time_s) for e in s.events if e.ball == b), default=1) < 2e-5 for tt in t])
        energy = 0.5 * vel[~near, b, 1] ** 2 - s.gravity * pos[~near, b, 1]
        assert np.ptp(energy) < 1e-3 * np.abs(energy).max() + 1e-3
        assert np.ptp(np.abs(vel[~near, b, 0])) < 1e-4
