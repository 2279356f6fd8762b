"""Scoring one clip against its caption: audio-visual sync and prompt adherence.

Both scores use only the clip and the caption (never the scene's ground truth), so the same code
scores the ground-truth renderer, a teacher and a student. The tests hold the scorer to the
ground truth: on rendered clips the sync error is about 1 ms and the accuracy 1.0, and shifted,
re-pitched or ball-less clips are caught.

**Sync error** (an analogue of DeSync): for every audio onset with a recognised colour, the
distance in ms to the nearest visual impact *of the same colour* (an onset of unrecognised
pitch is matched against impacts of any colour), capped at ``cap_ms`` (500 ms). Onsets in the
first or last 2 frame intervals are not scored: a bounce there cannot be seen (the visual
detector needs two frames on each side). The clip's ``sync_error_ms`` is the median over its
scored onsets. Degenerate clips get the cap, the worst value:
no scored onsets at all, or onsets but no visual impact to match (a silent or static clip is not
"in sync"). ``onset_recall`` (the fraction of visual impacts with a same-colour onset within
``match_ms``) is reported beside it, because a clip with one lucky onset has a small median.

**Prompt accuracy**: the fraction of the caption's verifiable attributes recovered:

* count: the number of palette colours visible in at least half the frames equals the count;
* every caption colour is visible in at least half the frames (one attribute per colour);
* every caption colour rings its note (one attribute per colour, "note:red"): at least half of
  the visual impacts of that colour have an onset of that colour's pitch within ``bind_ms``
  (80 ms), i.e. the red ball's bounces sound like red's note (when no impact of the colour is
  seen, any onset of its pitch counts). Swapped pitches fail this; so does audio shifted by
  far more than ``bind_ms``, which the sync error reports as well;
* speed: the median horizontal speed of the tracked balls (|dx/dt| between frames, per colour,
  then the median over colours) lies closer to the caption word's band than to any other band.

Attributes the caption does not state are not counted; a caption that states none scores NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omniforcing_rt.world.caption import PromptSpec
from omniforcing_rt.world.detect_audio import AudioOnset, detect_onsets
from omniforcing_rt.world.detect_video import ColourTracks, VisualImpact, detect_visual_impacts, track_colours
from omniforcing_rt.world.scene import WorldConfig

__all__ = ["SYNC_CAP_MS", "ClipScore", "prompt_accuracy", "score_clip", "speed_word", "sync_errors_ms"]

SYNC_CAP_MS = 500.0
"""Largest sync error of one onset, and the sync error of a clip that cannot be matched."""
_EDGE_FRAMES = 2  # the visual detector needs 2 frames on each side of a bounce


@dataclass(frozen=True)
class ClipScore:
    """Scores and detections of one clip."""

    sync_error_ms: float
    """Median |onset - nearest same-colour visual impact| in ms (``SYNC_CAP_MS`` when degenerate)."""
    onset_errors_ms: tuple[float, ...]
    """Per-onset errors (capped) behind the median; empty when degenerate."""
    onset_recall: float
    """Fraction of visual impacts with a same-colour onset within ``match_ms`` (NaN: no impacts)."""
    prompt_accuracy: float
    """Fraction of the caption's attributes recovered (NaN: the caption states none)."""
    attributes: dict[str, bool]
    """Each checked attribute ("count", "seen:red", "note:red", "speed") and whether it held."""
    visual_impacts: tuple[VisualImpact, ...]
    """Impacts detected in the frames."""
    onsets: tuple[AudioOnset, ...]
    """Onsets detected in the audio."""


def sync_errors_ms(onsets: list[AudioOnset], impacts: list[VisualImpact], cap_ms: float = SYNC_CAP_MS) -> list[float]:
    """Per-onset distance to the nearest visual impact of the same colour, in ms, capped."""
    out = []
    for onset in onsets:
        pool = [v.time_s for v in impacts if onset.colour is None or v.colour == onset.colour]
        best = min((abs(onset.time_s - t) * 1000.0 for t in pool), default=cap_ms)
        out.append(min(best, cap_ms))
    return out


def _onset_recall(onsets: list[AudioOnset], impacts: list[VisualImpact], match_ms: float) -> float:
    if not impacts:
        return math.nan
    hit = sum(
        any(o.colour == v.colour and abs(o.time_s - v.time_s) * 1000 <= match_ms for o in onsets) for v in impacts
    )
    return hit / len(impacts)


def speed_word(tracks: ColourTracks, config: WorldConfig, fps: float) -> str | None:
    """The speed band nearest the median tracked horizontal speed (None: no colour moves visibly)."""
    speeds = []
    for i in range(len(tracks.colours)):
        dx = np.abs(np.diff(tracks.centroid[:, i, 0])) * fps
        dx = dx[np.isfinite(dx)]
        if dx.size >= 3:
            speeds.append(float(np.median(dx)))
    if not speeds:
        return None
    v = float(np.median(speeds))

    def gap(band: tuple[float, float]) -> float:
        return max(band[0] - v, v - band[1], 0.0)

    return min(config.speed_bands, key=lambda w: gap(config.speed_bands[w]))


def _rings(colour: str, onsets: list[AudioOnset], impacts: list[VisualImpact], bind_ms: float) -> bool:
    """Whether most of ``colour``'s bounces sound its note (any onset of it, if no bounce is seen)."""
    mine = [o.time_s for o in onsets if o.colour == colour]
    seen = [v.time_s for v in impacts if v.colour == colour]
    if not seen:
        return bool(mine)
    heard = sum(any(abs(o - v) * 1000.0 <= bind_ms for o in mine) for v in seen)
    return heard >= 0.5 * len(seen)


def prompt_accuracy(
    spec: PromptSpec,
    tracks: ColourTracks,
    onsets: list[AudioOnset],
    impacts: list[VisualImpact],
    config: WorldConfig,
    fps: float,
    bind_ms: float = 80.0,
) -> tuple[float, dict[str, bool]]:
    """(fraction recovered, attribute -> held) of the caption's attributes (module docstring)."""
    visible = set(tracks.visible_colours())
    attrs: dict[str, bool] = {}
    if spec.count is not None:
        attrs["count"] = len(visible) == spec.count
    for c in spec.colours:
        attrs[f"seen:{c}"] = c in visible
        attrs[f"note:{c}"] = _rings(c, onsets, impacts, bind_ms)
    if spec.speed is not None:
        attrs["speed"] = speed_word(tracks, config, fps) == spec.speed
    if not attrs:
        return math.nan, attrs
    return sum(attrs.values()) / len(attrs), attrs


def score_clip(
    frames: np.ndarray,
    audio: np.ndarray,
    spec: PromptSpec,
    config: WorldConfig,
    *,
    fps: float | None = None,
    sample_rate: int | None = None,
    match_ms: float = 40.0,
) -> ClipScore:
    """Sync error and prompt accuracy of one clip (uint8 [F, H, W, 3] frames, [2, N] audio)."""
    fps = float(fps or config.fps)
    tracks = track_colours(frames, config)
    impacts = detect_visual_impacts(frames, config, fps, tracks=tracks)
    onsets = detect_onsets(audio, config, sample_rate or config.sample_rate)
    lo, hi = _EDGE_FRAMES / fps, (frames.shape[0] - 1 - _EDGE_FRAMES) / fps
    errors = sync_errors_ms([o for o in onsets if lo <= o.time_s <= hi], impacts) if impacts else []
    sync = float(np.median(errors)) if errors else SYNC_CAP_MS
    acc, attrs = prompt_accuracy(spec, tracks, onsets, impacts, config, fps)
    recall = _onset_recall(onsets, impacts, match_ms)
    return ClipScore(sync, tuple(errors), recall, acc, attrs, tuple(impacts), tuple(onsets))
