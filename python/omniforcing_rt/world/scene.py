"""The synthetic audio-visual world: balls bouncing in a box, simulated exactly.

Why a synthetic world: a model that runs on a laptop cannot be trained on real footage, and a
model we train ourselves needs a ground truth to be scored against. Here every clip is a pure
function of ``(WorldConfig, seed)``: a few coloured balls fly under gravity inside the frame (the
frame border is the box) and bounce elastically off its four walls. Each wall contact is an
:class:`Impact`, and every impact makes a sound whose pitch belongs to the ball's colour
(:mod:`omniforcing_rt.world.render`), so audio and video are tightly coupled and the coupling is
known to the sample.

The physics is event-driven and exact: between contacts a ball moves on a parabola
(``x = x0 + vx t``, ``y = y0 + vy t + g t^2 / 2``, pixel coordinates, y down), and the time of the
next contact is solved in closed form, so impact times are sub-frame exact (not quantised to the
24 fps frame grid). Balls do not collide with each other (think of them as rolling in separate
depth planes); each ball has its own palette colour, so "the red ball" is one ball.

Clip lengths are ``1 + 8k`` frames with a whole number of audio latents (the release layout:
25 + 24 k frames), so a clip maps onto whole latent frames of the default model; its audio has
exactly the layout's sample count (e.g. 49 frames -> 48,240 samples at 24 kHz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from omniforcing_rt.errors import ConfigError, InputError

__all__ = [
    "DEFAULT_PALETTE",
    "SPEED_BANDS",
    "Ball",
    "Impact",
    "PaletteColour",
    "Scene",
    "WorldConfig",
    "audio_samples_for_frames",
    "sample_scene",
]

_MEL_PER_LATENT = 4
_SAMPLES_PER_MEL = 240
_AUDIO_LATENTS_PER_VIDEO_STRIDE = (25, 3)  # 8 frames at 24 fps = 1/3 s = 25/3 audio latents


@dataclass(frozen=True)
class PaletteColour:
    """One ball colour and the note every impact of that ball plays."""

    name: str
    """Colour word used in captions ("red")."""
    rgb: tuple[int, int, int]
    """Rendered colour, 0..255 per channel."""
    pitch_hz: float
    """Fundamental frequency of the impact sound."""
    pitch_word: str
    """How captions describe the note ("low", "high", ...)."""


DEFAULT_PALETTE: tuple[PaletteColour, ...] = (
    PaletteColour("red", (220, 40, 40), 262.0, "low"),
    PaletteColour("green", (40, 190, 70), 392.0, "middle"),
    PaletteColour("blue", (50, 100, 235), 587.0, "high"),
    PaletteColour("yellow", (235, 215, 40), 880.0, "very high"),
)
"""Four colours far apart in RGB; pitches C4, G4, D5, A5. No fundamental lies within 10 % of
another colour's 2nd or 3rd harmonic, so a note is recognised from its fundamental alone."""

SPEED_BANDS: dict[str, tuple[float, float]] = {"slowly": (25.0, 55.0), "quickly": (100.0, 160.0)}
"""Caption speed word -> range of horizontal speed |vx| in px/s. The gap between bands lets the
scorer tell them apart from tracked motion with a threshold at the gap's middle."""


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines the world; validated at construction (every problem listed)."""

    height: int = 128
    """Frame height in pixels (the default model decodes a 4 x 6 latent grid to 128 x 192)."""
    width: int = 192
    """Frame width in pixels."""
    frames: int = 49
    """Frames per clip: 25 + 24 k (whole latent frames, whole audio latents): 49 = 2.04 s."""
    fps: int = 24
    """Video frame rate."""
    sample_rate: int = 24_000
    """Audio sample rate (stereo)."""
    ball_count: tuple[int, int] = (1, 3)
    """Inclusive range of the number of balls; at most the palette size (one colour per ball)."""
    radius: tuple[float, float] = (9.0, 14.0)
    """Range of ball radii in pixels."""
    gravity: tuple[float, float] = (900.0, 1400.0)
    """Range of the downward acceleration in px/s^2 (one value per scene)."""
    vertical_speed: tuple[float, float] = (-260.0, 120.0)
    """Range of the initial vertical velocity in px/s (negative = upwards)."""
    speed_bands: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(SPEED_BANDS))
    """Caption speed word -> |vx| range in px/s; one word per scene, shared by its balls."""
    palette: tuple[PaletteColour, ...] = DEFAULT_PALETTE
    """Ball colours with their notes."""
    background: tuple[int, int, int] = (28, 28, 36)
    """Plain background colour."""

    def __post_init__(self) -> None:
        problems = self._size_problems() + self._range_problems() + self._palette_problems()
        if problems:
            raise ConfigError("invalid WorldConfig", problems)

    def _size_problems(self) -> list[str]:
        out = []
        if self.height < 32 or self.width < 32:
            out.append(f"frame must be at least 32 x 32, got {self.height} x {self.width}")
        if self.height % 2 or self.width % 2:
            out.append(f"frame sides must be even (H.264), got {self.height} x {self.width}")
        if self.frames < 25 or (self.frames - 25) % 24:
            out.append(f"frames must be 25 + 24 k (whole video and audio latents), got {self.frames}")
        if self.fps != 24:
            out.append(f"fps must be 24 (the model's rate), got {self.fps}")
        if self.sample_rate != 24_000:
            out.append(f"sample_rate must be 24000 (the vocoder's rate), got {self.sample_rate}")
        return out

    def _range_problems(self) -> list[str]:
        out = []
        lo, hi = self.ball_count
        if not 1 <= lo <= hi <= len(self.palette):
            out.append(f"ball_count must satisfy 1 <= lo <= hi <= palette size {len(self.palette)}, got {lo, hi}")
        for name in ("radius", "gravity", "vertical_speed"):
            a, b = getattr(self, name)
            if not (math.isfinite(a) and math.isfinite(b) and a <= b):
                out.append(f"{name} must be a finite (lo, hi) with lo <= hi, got {(a, b)}")
        if self.radius[0] < 3 or 4 * self.radius[1] > min(self.height, self.width):
            out.append(f"radius {self.radius} must be >= 3 px and <= a quarter of the shorter side")
        if self.gravity[0] <= 0:
            out.append(f"gravity must be positive, got {self.gravity}")
        bands = sorted(self.speed_bands.values())
        if not bands:
            out.append("speed_bands must not be empty")
        if any(not 0 < a <= b for a, b in bands):
            out.append(f"speed bands must be positive ranges, got {self.speed_bands}")
        if any(bands[i][1] >= bands[i + 1][0] for i in range(len(bands) - 1)):
            out.append(f"speed bands must be disjoint with gaps between them, got {self.speed_bands}")
        return out

    def _palette_problems(self) -> list[str]:
        out = []
        names = [c.name for c in self.palette]
        if len(set(names)) != len(names):
            out.append(f"palette colour names must be unique, got {names}")
        pitches = sorted(c.pitch_hz for c in self.palette)
        if any(b < a * 1.2 for a, b in zip(pitches, pitches[1:])):
            out.append(f"palette pitches must be at least 20 % apart, got {pitches}")
        rgbs = [np.asarray(c.rgb, float) for c in self.palette] + [np.asarray(self.background, float)]
        close = [(i, j) for i in range(len(rgbs)) for j in range(i) if np.linalg.norm(rgbs[i] - rgbs[j]) < 80]
        if close:
            out.append(f"palette / background colours closer than 80 RGB units: index pairs {close}")
        return out

    @property
    def seconds(self) -> float:
        """Clip duration (frames / fps)."""
        return self.frames / self.fps

    @property
    def audio_samples(self) -> int:
        """Samples per channel: the layout's count for ``frames`` (see module docstring)."""
        return audio_samples_for_frames(self.frames)

    def colour(self, name: str) -> PaletteColour:
        """The palette entry called ``name`` (InputError if none)."""
        for c in self.palette:
            if c.name == name:
                return c
        raise InputError(f"{name!r} is not a palette colour: {[c.name for c in self.palette]}")


def audio_samples_for_frames(frames: int) -> int:
    """Audio samples spanning ``frames`` video frames in the LTX-2 layout ((4 N_a - 3) x 240)."""
    video_latents = 1 + (frames - 1) // 8
    num, den = _AUDIO_LATENTS_PER_VIDEO_STRIDE
    if (frames - 1) % 8 or (num * (video_latents - 1)) % den:
        raise InputError(f"{frames} frames do not span whole video and audio latents")
    audio_latents = 1 + num * (video_latents - 1) // den
    return (_MEL_PER_LATENT * audio_latents - (_MEL_PER_LATENT - 1)) * _SAMPLES_PER_MEL


@dataclass(frozen=True)
class Ball:
    """One ball's identity and initial state (pixel units, y down)."""

    colour: str
    """Palette colour name."""
    radius: float
    """Radius in pixels."""
    position: tuple[float, float]
    """Centre (x, y) at t = 0."""
    velocity: tuple[float, float]
    """(vx, vy) at t = 0 in px/s."""


@dataclass(frozen=True)
class Impact:
    """One contact of a ball with a wall: the ground truth the scorer is tested against."""

    time_s: float
    """Exact contact time (sub-frame)."""
    ball: int
    """Index into ``Scene.balls``."""
    wall: str
    """"left", "right", "floor" or "ceiling"."""
    x: float
    """Ball centre x at contact (pans the sound)."""
    y: float
    """Ball centre y at contact."""
    speed: float
    """Normal speed at contact in px/s (sets the loudness)."""


@dataclass(frozen=True)
class _Segment:
    """Free flight from ``t0``: x = x0 + vx (t - t0), y = y0 + vy (t - t0) + g (t - t0)^2 / 2."""

    t0: float
    x0: float
    y0: float
    vx: float
    vy: float


@dataclass(frozen=True)
class Scene:
    """A sampled clip: config, seed, balls, and the exactly simulated trajectories and impacts."""

    config: WorldConfig
    """The world it belongs to."""
    seed: int
    """The seed it was sampled from."""
    gravity: float
    """Downward acceleration in px/s^2."""
    speed_word: str
    """The caption speed word (its band holds every ball's |vx|)."""
    balls: tuple[Ball, ...]
    """The balls, in drawing order (later balls are drawn on top)."""
    events: tuple[Impact, ...]
    """Every wall contact in [0, duration), sorted by time."""
    segments: tuple[tuple[_Segment, ...], ...]
    """Per ball, its free-flight segments (internal; use :meth:`positions`)."""

    def positions(self, times: np.ndarray) -> np.ndarray:
        """Ball centres at ``times`` (seconds): float64 [len(times), balls, 2] as (x, y)."""
        t = np.asarray(times, dtype=np.float64)
        out = np.empty((t.size, len(self.balls), 2))
        for b, segs in enumerate(self.segments):
            starts = np.array([s.t0 for s in segs])
            idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(segs) - 1)
            for i in np.unique(idx):
                s, sel = segs[i], idx == i
                dt = t[sel] - s.t0
                out[sel, b, 0] = s.x0 + s.vx * dt
                out[sel, b, 1] = s.y0 + s.vy * dt + 0.5 * self.gravity * dt * dt
        return out

    def frame_positions(self) -> np.ndarray:
        """Ball centres at every frame time i / fps: [frames, balls, 2]."""
        return self.positions(np.arange(self.config.frames) / self.config.fps)

    def colour_of(self, ball: int) -> PaletteColour:
        """Palette entry of ball ``ball``."""
        return self.config.colour(self.balls[ball].colour)


def sample_scene(config: WorldConfig, seed: int) -> Scene:
    """Sample a scene deterministically from ``seed`` (numpy PCG64) and simulate it exactly."""
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}")
    rng = np.random.Generator(np.random.PCG64(seed))
    count = int(rng.integers(config.ball_count[0], config.ball_count[1] + 1))
    colours = rng.permutation(len(config.palette))[:count]
    gravity = float(rng.uniform(*config.gravity))
    words = sorted(config.speed_bands)
    speed_word = words[int(rng.integers(len(words)))]
    balls = tuple(_sample_ball(config, rng, config.palette[int(c)].name, speed_word) for c in colours)
    segments, events = [], []
    for i, ball in enumerate(balls):
        segs, hits = _simulate(ball, i, gravity, config)
        segments.append(tuple(segs))
        events.extend(hits)
    events.sort(key=lambda e: (e.time_s, e.ball))
    return Scene(config, seed, gravity, speed_word, balls, tuple(events), tuple(segments))


def _sample_ball(config: WorldConfig, rng: np.random.Generator, colour: str, speed_word: str) -> Ball:
    r = float(rng.uniform(*config.radius))
    x = float(rng.uniform(r + 2, config.width - r - 2))
    y = float(rng.uniform(r + 2, 0.6 * config.height))
    vx = float(rng.uniform(*config.speed_bands[speed_word])) * (1.0 if rng.random() < 0.5 else -1.0)
    vy = float(rng.uniform(*config.vertical_speed))
    return Ball(colour, r, (x, y), (vx, vy))


def _next_contact_x(x: float, vx: float, lo: float, hi: float) -> tuple[float, str]:
    if vx > 0:
        return (hi - x) / vx, "right"
    if vx < 0:
        return (x - lo) / -vx, "left"
    return math.inf, ""


def _next_contact_y(y: float, vy: float, g: float, lo: float, hi: float) -> tuple[float, str]:
    """Earliest tau > 0 with y + vy tau + g tau^2 / 2 at the ceiling ``lo`` or the floor ``hi``."""
    floor = (-vy + math.sqrt(max(vy * vy + 2.0 * g * (hi - y), 0.0))) / g
    if vy < 0:
        disc = vy * vy - 2.0 * g * (y - lo)
        if disc >= 0:
            ceiling = (-vy - math.sqrt(disc)) / g
            if 1e-12 < ceiling < floor:
                return ceiling, "ceiling"
    return floor, "floor"


def _simulate(ball: Ball, index: int, g: float, config: WorldConfig) -> tuple[list[_Segment], list[Impact]]:
    """Event-driven elastic flight of one ball over [0, duration)."""
    r, end = ball.radius, config.seconds
    xlo, xhi, ylo, yhi = r, config.width - r, r, config.height - r
    t, (x, y), (vx, vy) = 0.0, ball.position, ball.velocity
    segs, hits = [_Segment(t, x, y, vx, vy)], []
    while True:
        tx, wall_x = _next_contact_x(x, vx, xlo, xhi)
        ty, wall_y = _next_contact_y(y, vy, g, ylo, yhi)
        tau = min(tx, ty)
        if t + tau >= end:
            return segs, hits
        x, y = x + vx * tau, y + vy * tau + 0.5 * g * tau * tau
        vy_hit = vy + g * tau
        t += tau
        if tx <= ty + 1e-12:
            x = xhi if wall_x == "right" else xlo
            hits.append(Impact(t, index, wall_x, x, y, abs(vx)))
            vx = -vx
        if ty <= tx + 1e-12:
            y = yhi if wall_y == "floor" else ylo
            hits.append(Impact(t, index, wall_y, x, y, abs(vy_hit)))
            vy_hit = -vy_hit
        vy = vy_hit
        segs.append(_Segment(t, x, y, vx, vy))
