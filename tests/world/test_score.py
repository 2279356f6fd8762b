"""The scorer against the ground truth: rendered clips score ~1 ms / 1.0, corrupted clips are caught.

These tests are what make ``omniforcing-rt evaluate`` trustworthy: the detectors never see the
ground truth, and here they are held to it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from omniforcing_rt.world.caption import prompt_spec
from omniforcing_rt.world.detect_audio import detect_onsets
from omniforcing_rt.world.detect_video import detect_visual_impacts
from omniforcing_rt.world.render import render_audio, render_video
from omniforcing_rt.world.scene import Scene, WorldConfig, sample_scene
from omniforcing_rt.world.score import SYNC_CAP_MS, score_clip

CFG = WorldConfig()
ONE_BALL = WorldConfig(ball_count=(1, 1))
TWO_BALLS = WorldConfig(ball_count=(2, 2))
SEEDS = range(1_000_000, 1_000_006)


def _shift(audio: np.ndarray, seconds: float, rate: int) -> np.ndarray:
    n = round(seconds * rate)
    return np.concatenate([np.zeros((2, n), np.float32), audio[:, :-n]], axis=1)


def _without_last_ball(s: Scene) -> Scene:
    return dataclasses.replace(s, balls=s.balls[:-1], segments=s.segments[:-1])


def test_detectors_find_the_ground_truth_impacts() -> None:
    vis_err, aud_err, n_gt, n_vis, n_aud = [], [], 0, 0, 0
    for seed in range(12):
        s = sample_scene(CFG, seed)
        vis = detect_visual_impacts(render_video(s), CFG)
        aud = detect_onsets(render_audio(s), CFG)
        for e in s.events:
            if not 3 / CFG.fps < e.time_s < CFG.seconds - 3 / CFG.fps:
                continue  # the visual detector needs 2 frames on each side
            n_gt += 1
            colour = s.balls[e.ball].colour
            dv = min((abs(v.time_s - e.time_s) for v in vis if v.colour == colour), default=1.0)
            da = min((abs(o.time_s - e.time_s) for o in aud if o.colour == colour), default=1.0)
            n_vis, n_aud = n_vis + (dv < 0.015), n_aud + (da < 0.015)
            vis_err += [dv * 1000] if dv < 0.015 else []
            aud_err += [da * 1000] if da < 0.015 else []
    # recall: occlusions hide some bounces, masking by a louder ringing tone hides some onsets
    assert n_vis / n_gt > 0.9 and n_aud / n_gt > 0.85, (n_vis / n_gt, n_aud / n_gt)
    assert np.median(vis_err) < 1.0 and np.median(aud_err) < 1.5, (np.median(vis_err), np.median(aud_err))


def test_ground_truth_clips_score_perfectly() -> None:
    syncs, accs, onsets = [], [], []
    for seed in SEEDS:
        s = sample_scene(CFG, seed)
        score = score_clip(render_video(s), render_audio(s), prompt_spec(s), CFG)
        syncs.append(score.sync_error_ms)
        accs.append(score.prompt_accuracy)
        onsets += score.onset_errors_ms
    assert max(syncs) < 5.0 and np.median(syncs) < 2.0, syncs
    assert np.percentile(onsets, 75) < 5.0, np.percentile(onsets, 75)  # the tail: occluded bounces
    assert min(accs) == 1.0, accs


def test_audio_shifted_by_200_ms_is_caught() -> None:
    for seed in SEEDS[:4]:
        s = sample_scene(ONE_BALL, seed)
        video, audio = render_video(s), render_audio(s)
        score = score_clip(video, _shift(audio, 0.2, ONE_BALL.sample_rate), prompt_spec(s), ONE_BALL)
        assert abs(score.sync_error_ms - 200.0) < 5.0, score.sync_error_ms
        assert score.prompt_accuracy < 1.0 and not score.attributes[f"note:{s.balls[0].colour}"]


def test_swapped_pitches_are_caught() -> None:
    syncs, accs = [], []
    for seed in SEEDS:
        s = sample_scene(TWO_BALLS, seed)
        a, b = (x.colour for x in s.balls)
        pitches = {c.name: c.pitch_hz for c in TWO_BALLS.palette}
        pitches[a], pitches[b] = pitches[b], pitches[a]
        score = score_clip(render_video(s), render_audio(s, pitches), prompt_spec(s), TWO_BALLS)
        syncs.append(score.sync_error_ms)
        accs.append(score.prompt_accuracy)
    assert np.median(syncs) > 100.0, syncs
    assert np.mean(accs) < 0.8, accs


def test_removed_ball_is_caught() -> None:
    for seed in SEEDS[:4]:
        s = sample_scene(TWO_BALLS, seed)
        gone = s.balls[-1].colour
        score = score_clip(render_video(_without_last_ball(s)), render_audio(s), prompt_spec(s), TWO_BALLS)
        assert not score.attributes["count"] and not score.attributes[f"seen:{gone}"]
        assert score.prompt_accuracy <= 4 / 6 + 1e-9


def test_degenerate_clips_get_the_cap() -> None:
    s = sample_scene(CFG, 1)
    video, audio = render_video(s), render_audio(s)
    blank = np.full_like(video, 30)
    silent = np.zeros_like(audio)
    score = score_clip(video, silent, prompt_spec(s), CFG)  # no onsets
    assert score.sync_error_ms == SYNC_CAP_MS and score.onset_errors_ms == ()
    score = score_clip(blank, audio, prompt_spec(s), CFG)  # onsets but nothing to see
    assert score.sync_error_ms == SYNC_CAP_MS and math.isnan(score.onset_recall)
    assert score.prompt_accuracy < 0.5


@pytest.mark.parametrize("seconds", [0.05, -0.05])
def test_sync_error_follows_small_offsets(seconds: float) -> None:
    s = sample_scene(ONE_BALL, 1_000_001)
    audio = render_audio(s)
    if seconds > 0:
        audio = _shift(audio, seconds, ONE_BALL.sample_rate)
    else:
        n = round(-seconds * ONE_BALL.sample_rate)
        audio = np.concatenate([audio[:, n:], np.zeros((2, n), np.float32)], axis=1)
    score = score_clip(render_video(s), audio, prompt_spec(s), ONE_BALL)
    assert abs(score.sync_error_ms - abs(seconds) * 1000) < 3.0, score.sync_error_ms
