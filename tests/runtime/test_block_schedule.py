"""The C++ block schedule (omniforcing_rt._C) against its Python source of truth.

Python owns the definitions (pipeline/layout.py, pipeline/schedule.py, model/positions.py); the
runtime's csrc/runtime/block_schedule.cc must reproduce every value and every ConfigError problem
list. Layout integers are compared exactly, time bounds to 1e-12 (and bit for bit), sigmas to
1e-6 (and bit for bit where torch runs its x86 AVX kernels).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import struct

import numpy as np
import pytest
import torch

from omniforcing_rt import _C
from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.model import positions
from omniforcing_rt.pipeline import layout, schedule

SPEC_FIELDS = [f.name for f in dataclasses.fields(layout.BlockSpec)]
LAYOUT_FIELDS = [f.name for f in dataclasses.fields(layout.BlockLayout) if f.name != "kind"]
SIZES = ["video_latent_frames", "audio_latent_frames", "pixel_frames", "duration_s", "audio_samples"]
FAST_STEP_LIST = (1000, 750, 500, 0)  # spec A.11, maintainer's fast option
# torch's x86 CPU kernels (AVX2 / AVX512 builds) fuse linspace's multiply-add; the C++ mirrors that.
TORCH_X86_KERNELS = torch.backends.cpu.get_cpu_capability().startswith("AVX")


# ----------------------------------------------------------------------------------- helpers
def assert_same_layout(c: _C.BlockLayout, p: layout.BlockLayout, *, check_bounds: bool = True) -> None:
    assert _C.layout_kind_name(c.kind) == p.kind.value
    assert c.kind.name == p.kind.name
    for name in LAYOUT_FIELDS + SIZES:
        assert getattr(c, name) == getattr(p, name), name
    c_blocks, p_blocks = c.blocks, p.blocks
    assert len(c_blocks) == len(p_blocks) == p.num_blocks
    for cb, pb in zip(c_blocks, p_blocks, strict=True):
        for name in SPEC_FIELDS:
            assert getattr(cb, name) == getattr(pb, name), (pb.index, name)
        assert cb.video_pts_s == pb.video_pts_s
        assert cb.audio_pts_s == pb.audio_pts_s
        assert cb == c.block(pb.index)
        if check_bounds:
            assert_same_bounds(pb.video_start, pb.video_frames, pb.audio_start, pb.audio_frames)


def assert_same_bounds(v_start: int, v_count: int, a_start: int, a_count: int) -> None:
    for c_fn, p_fn, start, count in (
        (_C.video_latent_bounds_s, positions.video_latent_bounds_s, v_start, v_count),
        (_C.audio_latent_bounds_s, positions.audio_latent_bounds_s, a_start, a_count),
    ):
        got, want = c_fn(start, count), p_fn(start, count).numpy()
        assert got.dtype == np.float64 and got.shape == want.shape == (count, 2)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        assert np.array_equal(got, want)  # same float64 ops, so in fact bit-identical


def outcome(fn, *args, **kwargs):
    """("ok", value) or ("error", type, message, problems) of fn(*args, **kwargs)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except ConfigError as e:
        return ("error", ConfigError, str(e), e.problems)


def assert_same_error(c_call, p_call, error=ConfigError) -> None:
    with pytest.raises(error) as p_info:
        p_call()
    with pytest.raises(error) as c_info:
        c_call()
    assert type(c_info.value) is type(p_info.value)
    assert str(c_info.value) == str(p_info.value)
    if error is ConfigError:
        assert c_info.value.problems == p_info.value.problems
        assert c_info.value.problems  # every ConfigError here names its problems


def assert_sigmas_match(got: np.ndarray, want_tensor: torch.Tensor) -> None:
    want = want_tensor.numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, equal_nan=True)
    if TORCH_X86_KERNELS:
        assert np.array_equal(got, want, equal_nan=True)


# --------------------------------------------------------------------------------- constants
def test_constants_match_python():
    for name in (
        "VIDEO_FPS",
        "VIDEO_TEMPORAL_STRIDE",
        "VIDEO_SPATIAL_STRIDE",
        "AUDIO_MEL_FRAMES_PER_S",
        "AUDIO_LATENT_MEL_STRIDE",
        "AUDIO_SAMPLE_RATE",
        "AUDIO_SAMPLES_PER_MEL",
    ):
        assert getattr(_C, name) == getattr(positions, name), name
    for name in ("DEFAULT_MAX_SHIFT", "DEFAULT_TERMINAL", "RELEASE_STEP_LIST", "PAPER_STEP_LIST"):
        assert getattr(_C, name) == getattr(schedule, name), name
    assert _C.DEFAULT_GRID_STEPS == 40


# ----------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("sinks", [0, 16])
@pytest.mark.parametrize("tokens_per_frame", [1, 16, 384])
@pytest.mark.parametrize("block_frames", [3, 6])
@pytest.mark.parametrize("first_block_frames", [None, 1, 4, 7])
@pytest.mark.parametrize("kind", ["release", "paper"])
def test_layout_matches_python(kind, first_block_frames, block_frames, tokens_per_frame, sinks):
    kw = dict(block_frames=block_frames, first_block_frames=first_block_frames, audio_sink_tokens=sinks)
    for num_blocks in range(1, 41):
        c = _C.BlockLayout.create(kind, num_blocks, tokens_per_frame, **kw)
        p = layout.BlockLayout.create(kind, num_blocks, tokens_per_frame, **kw)
        # Bounds are checked per block on a subset (they are pure functions of the ranges).
        assert_same_layout(c, p, check_bounds=num_blocks in (1, 2, 7, 40))


def test_release_and_paper_geometry():
    """Spot values from spec B.1 / B.3, so a shared mistake in both twins is still caught."""
    rel = _C.BlockLayout.create("release", 5, 1152)
    b0, b1 = rel.block(0), rel.block(1)
    assert (b0.video_frames, b0.audio_frames, b0.pixel_frames, b0.audio_samples) == (4, 26, 25, 24240)
    assert (b1.video_frames, b1.audio_frames, b1.pixel_frames, b1.audio_samples) == (3, 25, 24, 24000)
    assert (b1.video_tokens, b1.video_token_start) == (3 * 1152, 4 * 1152)
    paper = _C.BlockLayout.create("paper", 3, 1152, audio_sink_tokens=16)
    p0, p1 = paper.block(0), paper.block(1)
    assert (p0.video_frames, p0.audio_frames, p0.audio_tokens, p0.sink_tokens) == (1, 1, 17, 16)
    assert (p1.audio_start, p1.audio_token_start, p1.audio_tokens) == (1, 17, 25)


def test_constructor_and_kind_spellings():
    p = layout.BlockLayout(
        kind=layout.LayoutKind.PAPER, first_block_frames=1, block_frames=3, num_blocks=4, tokens_per_frame=8
    )
    for kind in ("paper", _C.LayoutKind.PAPER, layout.LayoutKind.PAPER, _C.LayoutKind("paper")):
        c = _C.BlockLayout(kind=kind, first_block_frames=1, block_frames=3, num_blocks=4, tokens_per_frame=8)
        assert_same_layout(c, p)
    assert _C.BlockLayout.create("paper", 4, 8) == _C.BlockLayout.create(_C.LayoutKind.PAPER, 4, 8)
    assert hash(_C.BlockLayout.create("paper", 4, 8)) == hash(_C.BlockLayout.create("paper", 4, 8))
    assert _C.BlockLayout.create("paper", 4, 8) != _C.BlockLayout.create("release", 4, 8)
    with pytest.raises(TypeError):  # keyword-only, like the dataclass
        _C.BlockLayout("paper", 1, 3, 4, 8)  # type: ignore[misc]
    for kind in ("release", "paper", layout.LayoutKind.RELEASE):
        assert _C.BlockLayout.default_first_block_frames(kind) == layout.BlockLayout.default_first_block_frames(kind)


@pytest.mark.parametrize(
    "fields",
    [
        dict(first_block_frames=0, block_frames=3, num_blocks=1, tokens_per_frame=1),
        dict(first_block_frames=-4, block_frames=3, num_blocks=1, tokens_per_frame=1),
        dict(first_block_frames=2, block_frames=3, num_blocks=1, tokens_per_frame=1),
        dict(first_block_frames=5, block_frames=3, num_blocks=1, tokens_per_frame=1),
        dict(first_block_frames=4, block_frames=0, num_blocks=1, tokens_per_frame=1),
        dict(first_block_frames=4, block_frames=-3, num_blocks=1, tokens_per_frame=1),
        dict(first_block_frames=4, block_frames=4, num_blocks=1, tokens_per_frame=1),
        dict(first_block_frames=4, block_frames=3, num_blocks=0, tokens_per_frame=1),
        dict(first_block_frames=4, block_frames=3, num_blocks=1, tokens_per_frame=0),
        dict(first_block_frames=4, block_frames=3, num_blocks=1, tokens_per_frame=1, audio_sink_tokens=-1),
        dict(first_block_frames=2, block_frames=5, num_blocks=-1, tokens_per_frame=-7, audio_sink_tokens=-2),
        dict(first_block_frames=0, block_frames=0, num_blocks=0, tokens_per_frame=0, audio_sink_tokens=-1),
    ],
)
@pytest.mark.parametrize("kind", ["release", "paper"])
def test_invalid_layout_same_problems(kind, fields):
    assert_same_error(
        lambda: _C.BlockLayout(kind=kind, **fields), lambda: layout.BlockLayout(kind=layout.LayoutKind(kind), **fields)
    )
    kw = dict(block_frames=fields["block_frames"], first_block_frames=fields["first_block_frames"])
    kw["audio_sink_tokens"] = fields.get("audio_sink_tokens", 0)
    args = (kind, fields["num_blocks"], fields["tokens_per_frame"])
    assert_same_error(lambda: _C.BlockLayout.create(*args, **kw), lambda: layout.BlockLayout.create(*args, **kw))


@pytest.mark.parametrize("kind", ["foo", "Release", "", "rel'ease", "a\"b'c", "tab\there", 5, None, 1.5])
def test_invalid_kind_same_problems(kind):
    assert_same_error(lambda: _C.BlockLayout.create(kind, 1, 1), lambda: layout.BlockLayout.create(kind, 1, 1))
    assert_same_error(
        lambda: _C.BlockLayout.for_seconds(kind, 2.0, 1), lambda: layout.BlockLayout.for_seconds(kind, 2.0, 1)
    )


def test_block_index_out_of_range():
    c, p = _C.BlockLayout.create("release", 3, 16), layout.BlockLayout.create("release", 3, 16)
    for k in (-1, -100, 3, 4, 1000):
        assert_same_error(lambda k=k: c.block(k), lambda k=k: p.block(k))


def test_audio_latents_for_video():
    for v in range(-12, 80):
        assert outcome(_C.audio_latents_for_video, v) == outcome(layout.audio_latents_for_video, v), v


# ------------------------------------------------------------------ for_video_latents / seconds
@pytest.mark.parametrize(
    "kw",
    [
        {},
        dict(block_frames=6),
        dict(first_block_frames=7, audio_sink_tokens=16),
        dict(first_block_frames=1, block_frames=6),
    ],
)
@pytest.mark.parametrize("kind", ["release", "paper"])
def test_for_video_latents(kind, kw):
    for video_latents in range(-3, 70):
        c = outcome(_C.BlockLayout.for_video_latents, kind, video_latents, 16, **kw)
        p = outcome(layout.BlockLayout.for_video_latents, kind, video_latents, 16, **kw)
        assert c[0] == p[0], video_latents
        if c[0] == "ok":
            assert_same_layout(c[1], p[1], check_bounds=False)
            assert c[1].video_latent_frames == video_latents
        else:
            assert c[1:] == p[1:], video_latents


@pytest.mark.parametrize("kw", [{}, dict(block_frames=6), dict(first_block_frames=7, audio_sink_tokens=16)])
@pytest.mark.parametrize("kind", ["release", "paper"])
def test_for_seconds(kind, kw):
    grid = [round(0.01 + 0.0137 * i, 6) for i in range(3300)]  # 0.01 .. ~45 s, both valid and invalid
    exact = [layout.BlockLayout.create(kind, k, 1, **kw).duration_s for k in range(1, 12)]
    edges = [d + s * (1 / 24 + e) for d in exact for s in (-1, 1) for e in (-1e-9, 0.0, 2e-9, 1e-6)]
    special = [1e-300, 5e-324, 0.5, 1.0, 1e-5, 123.456, 1e4, 3600.0, 86400.0 * 365]
    ok = 0
    for seconds in grid + exact + edges + special:
        c = outcome(_C.BlockLayout.for_seconds, kind, seconds, 16, **kw)
        p = outcome(layout.BlockLayout.for_seconds, kind, seconds, 16, **kw)
        assert c[0] == p[0], seconds
        if c[0] == "ok":
            ok += 1
            assert_same_layout(c[1], p[1], check_bounds=False)
        else:
            assert c[1:] == p[1:], seconds
    assert 0 < ok < len(grid + exact + edges + special)  # both branches exercised


@pytest.mark.parametrize("seconds", [0.0, -0.0, -1.0, -1e-9, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("kind", ["release", "paper"])
def test_for_seconds_invalid(kind, seconds):
    assert_same_error(
        lambda: _C.BlockLayout.for_seconds(kind, seconds, 16), lambda: layout.BlockLayout.for_seconds(kind, seconds, 16)
    )
    # An invalid layout is reported before the duration, as in Python (the probe comes first).
    assert_same_error(
        lambda: _C.BlockLayout.for_seconds(kind, seconds, 0, block_frames=4),
        lambda: layout.BlockLayout.for_seconds(kind, seconds, 0, block_frames=4),
    )


# ------------------------------------------------------------------------------- time bounds
def test_time_bounds_ranges():
    rng = random.Random(0)
    cases = [(0, 0), (0, 1), (0, 2), (1, 1), (-5, 12), (0, 500)]
    cases += [(rng.randrange(-50, 100_000), rng.randrange(0, 64)) for _ in range(200)]
    for start, count in cases:
        assert_same_bounds(start, count, start, count)


def test_time_bounds_negative_count():
    # Python's torch.arange raises RuntimeError here; the C++ side raises InputError (a ValueError).
    for fn in (_C.video_latent_bounds_s, _C.audio_latent_bounds_s):
        with pytest.raises(InputError, match="count must be >= 0, got -1"):
            fn(0, -1)


# ------------------------------------------------------------------------------------ sigmas
@pytest.mark.parametrize("terminal", [0.1, 0.0, 0.05, 0.5, 0.999])
@pytest.mark.parametrize("shift", [2.05, 0.95, 0.0, -1.0, 3.3, 10.0])
def test_ltx2_sigmas(shift, terminal):
    for steps in itertools.chain(range(1, 130), (200, 256, 500, 1000, 4096)):
        assert_sigmas_match(_C.ltx2_sigmas(steps, shift, terminal), schedule.ltx2_sigmas(steps, shift, terminal))


def test_ltx2_sigmas_defaults_and_extremes():
    assert_sigmas_match(_C.ltx2_sigmas(40), schedule.ltx2_sigmas(40))
    # e^s overflows float32 but not float64: both sides produce the same NaNs.
    assert_sigmas_match(_C.ltx2_sigmas(8, 100.0), schedule.ltx2_sigmas(8, 100.0))
    for shift in (math.nan, math.inf, -math.inf):
        assert_sigmas_match(_C.ltx2_sigmas(8, shift), schedule.ltx2_sigmas(8, shift))
    # e^s overflows float64: math.exp raises OverflowError, mirrored by the C++ side.
    with pytest.raises(OverflowError, match="math range error"):
        schedule.ltx2_sigmas(8, 1000.0)
    with pytest.raises(OverflowError, match="math range error"):
        _C.ltx2_sigmas(8, 1000.0)


@pytest.mark.parametrize(
    "args", [(0,), (-3,), (4, 2.05, 1.0), (4, 2.05, -0.1), (4, 2.05, math.nan), (4, 2.05, math.inf), (0, 2.05, 2.0)]
)
def test_ltx2_sigmas_invalid(args):
    assert_same_error(lambda: _C.ltx2_sigmas(*args), lambda: schedule.ltx2_sigmas(*args))


@pytest.mark.parametrize("step_list", [schedule.RELEASE_STEP_LIST, schedule.PAPER_STEP_LIST, FAST_STEP_LIST])
def test_student_sigmas_shipped_lists(step_list):
    got = _C.student_sigmas(step_list)
    assert_sigmas_match(got, schedule.student_sigmas(step_list))
    assert_sigmas_match(_C.student_sigmas(list(step_list), 40), schedule.student_sigmas(list(step_list), 40))
    assert got[-1] == 0.0


def test_student_sigmas_spec_values():
    """spec A.11: the sigmas each shipped list snaps to (6 decimals)."""
    expected = {
        schedule.RELEASE_STEP_LIST: [1.0, 0.906229, 0.726524, 0.420719, 0.0],
        schedule.PAPER_STEP_LIST: [1.0, 0.750697, 0.544771, 0.0],
        FAST_STEP_LIST: [1.0, 0.750697, 0.488430, 0.0],
    }
    for step_list, sigmas in expected.items():
        np.testing.assert_allclose(_C.student_sigmas(step_list), sigmas, rtol=0, atol=1e-6)


def test_student_sigmas_random_lists():
    rng = random.Random(1234)
    for _ in range(300):
        n = rng.randint(1, 9)
        step_list = sorted(rng.sample(range(1, 1001), n), reverse=True)
        if rng.random() < 0.5:
            step_list.append(0)
        grid_steps = rng.choice([40, 40, 1, 2, 7, 10, 100, 1000])
        got = _C.student_sigmas(step_list, grid_steps)
        assert_sigmas_match(got, schedule.student_sigmas(step_list, grid_steps))


@pytest.mark.parametrize(
    ("step_list", "grid_steps"),
    [
        ([], 40),
        ((), 40),
        ([1001], 40),
        ([-1], 40),
        ([1000, 1000], 40),
        ([5, 10], 40),
        ([1001, 1001, -3], 40),
        ([0, 0], 40),
        ([1000, 0], 0),
        ([0], -1),
    ],
)
def test_student_sigmas_invalid(step_list, grid_steps):
    assert_same_error(
        lambda: _C.student_sigmas(step_list, grid_steps), lambda: schedule.student_sigmas(step_list, grid_steps)
    )


# ------------------------------------------------------- Python-compatible message formatting
def test_float_repr_matches_python():
    rng = random.Random(7)
    values = [0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 2.5, 1e16, 1e15, 9999999999999998.0, 1e-4, 1e-5, 0.0001234]
    values += [123456789012345678.0, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan]
    values += [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(5000)]
    values += [rng.uniform(-100, 100) for _ in range(2000)] + [
        float(rng.randint(-(10**18), 10**18)) for _ in range(500)
    ]
    for v in values:
        assert _C._testing.float_repr(v) == repr(v), v


def test_other_formatting_matches_python():
    rng = random.Random(8)
    for v in [rng.uniform(0, 1000) for _ in range(2000)] + [0.0005, 0.0015, 2.0625, 1.0416666666666667]:
        assert _C._testing.fixed(v, 3) == f"{v:.3f}", v
    for text in ["", "release", "it's", 'say "hi"', "both ' and \"", "back\\slash", "a\nb\tc\rd", "\x01\x7f", "été"]:
        assert _C._testing.str_repr(text) == repr(text), text
    for values in ([], [0], [1000, 909, 725, 421, 0], [-1, 5]):
        assert _C._testing.int_list_repr(values) == repr(values)
