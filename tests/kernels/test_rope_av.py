"""rope_av: interleaved vs split layouts, cos/sin vs fp32/fp64 angles, identity rows for sinks."""

from __future__ import annotations

import math

import pytest
import torch
from kernels_testlib import assert_matches
from omniforcing_rt.kernels.reference import rope_av as ref
from omniforcing_rt.kernels.triton import rope_av as tri

from omniforcing_rt.errors import InputError

OP = "rope_av"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TABLES = ["cos_sin_per_head", "cos_sin_shared_heads", "angles_fp32", "angles_fp64"]


def _ltx_interleaved(x: torch.Tensor, cos_full: torch.Tensor, sin_full: torch.Tensor) -> torch.Tensor:
    """Transcription of ltx-core ``apply_interleaved_rotary_emb`` (tables repeated per pair)."""
    t1, t2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    rot = torch.stack((-t2, t1), dim=-1).flatten(-2)
    return x * cos_full + rot * sin_full


def _ltx_split(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Transcription of ltx-core ``apply_split_rotary_emb`` (tables per half)."""
    split = x.unflatten(-1, (2, -1))
    out = split * cos.unsqueeze(-2)
    out[..., :1, :] -= sin.unsqueeze(-2) * split[..., 1:, :]
    out[..., 1:, :] += sin.unsqueeze(-2) * split[..., :1, :]
    return out.flatten(-2)


def _angles(t: int, h: int, half: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """LTX-like angles: theta_i in [pi/2, 5000 pi] times a fraction in [-1, 1] (spec A.9)."""
    theta = (math.pi / 2) * 10000.0 ** (torch.arange(h * half, dtype=torch.float64) / (h * half - 1))
    frac = torch.rand(t, 1, dtype=torch.float64) * 2 - 1
    return (frac * theta).reshape(t, h, half).to(dtype)


def _tables(kind: str, t: int, h: int, half: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    if kind.startswith("angles"):
        return {"angles": _angles(t, h, half, torch.float64 if kind.endswith("fp64") else torch.float32)}
    ang = _angles(t, 1 if kind == "cos_sin_shared_heads" else h, half)
    # The checkpoint casts cos/sin to the activation dtype before use (spec A.9).
    return {"cos": torch.cos(ang).to(dtype), "sin": torch.sin(ang).to(dtype)}


def test_reference_matches_ltx_core_formulas() -> None:
    x = torch.randn(9, 3, 16, dtype=torch.float64).float()
    ang = _angles(9, 3, 8)
    c, s = torch.cos(ang), torch.sin(ang)
    inter = ref.rope_av(x, c.float(), s.float(), interleaved=True).double()
    split = ref.rope_av(x, c.float(), s.float(), interleaved=False).double()
    rep = lambda t: t.repeat_interleave(2, dim=-1)  # noqa: E731
    torch.testing.assert_close(inter, _ltx_interleaved(x.double(), rep(c.float().double()), rep(s.float().double())))
    torch.testing.assert_close(split, _ltx_split(x.double(), c.float().double(), s.float().double()))
    assert (inter - split).abs().max() > 0.1  # different functions, not two layouts of one rotation


@pytest.mark.parametrize("interleaved", [True, False], ids=["interleaved", "split"])
@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_triton_matches_reference(dtype: torch.dtype, table: str, interleaved: bool, device: str) -> None:
    x = torch.randn(127, 4, 64).to(dtype)
    tabs = _tables(table, 127, 4, 32, dtype)
    expected = ref.rope_av(x, interleaved=interleaved, **tabs)
    got = tri.rope_av(x.to(device), interleaved=interleaved, **{k: v.to(device) for k, v in tabs.items()})
    assert_matches(OP, "triton", got, expected)


@pytest.mark.parametrize("tokens", [1, 7, 385])
def test_triton_awkward_token_counts(tokens: int, device: str) -> None:
    x = torch.randn(tokens, 2, 32).to(torch.bfloat16)
    tabs = _tables("angles_fp64", tokens, 2, 16, torch.bfloat16)
    ids = torch.rand(tokens) < 0.3
    expected = ref.rope_av(x, interleaved=False, identity_rows=ids, **tabs)
    got = tri.rope_av(
        x.to(device), interleaved=False, identity_rows=ids.to(device), **{k: v.to(device) for k, v in tabs.items()}
    )
    assert_matches(OP, "triton", got, expected)


def test_real_geometry_video_split_fp64_angles(device: str) -> None:
    """Video attn1 queries: 1152 tokens x 32 heads x 128, split layout, fp64 angles up to 5000*pi."""
    x = torch.randn(1152, 32, 128).to(torch.bfloat16)
    ang = _angles(1152, 32, 64)
    expected = ref.rope_av(x, angles=ang, interleaved=False)
    assert_matches(OP, "triton", tri.rope_av(x.to(device), angles=ang.to(device), interleaved=False), expected)


def test_audio_sinks_identity_rows(device: str) -> None:
    """Spec B.4: 16 audio sinks + 25 audio tokens, 32 x 64; sinks are copied bit-exactly
    (skip rotation), every other row is rotated."""
    x = torch.randn(41, 32, 64).to(torch.bfloat16)
    ang = _angles(41, 32, 32)
    ids = torch.zeros(41, dtype=torch.bool)
    ids[:16] = True
    got = tri.rope_av(x.to(device), angles=ang.to(device), interleaved=True, identity_rows=ids.to(device)).cpu()
    assert torch.equal(got[:16], x[:16])
    assert ((got[16:].float() - x[16:].float()).abs().amax(dim=(1, 2)) > 0.1).all()
    # "skip rotation" is not "position 0": angle 0 maps to t = M/2, and it still equals identity
    # only because cos 0 = 1; a nonzero angle table with identity rows must not rotate them.
    assert_matches(OP, "triton", got, ref.rope_av(x, angles=ang, interleaved=True, identity_rows=ids))


def test_fp64_angle_reduction_accuracy(device: str) -> None:
    """fp32 activations with |angle| up to 1.6e4 rad: the in-kernel fp64 mod-2pi reduction keeps
    the result within 1e-5 of the fp64 reference (a naive fp32 cos would be ~1e-3 off)."""
    x = torch.randn(64, 2, 32)
    ang = (torch.rand(64, 2, 16, dtype=torch.float64) * 2 - 1) * 5000 * math.pi
    got = tri.rope_av(x.to(device), angles=ang.to(device), interleaved=True).cpu()
    torch.testing.assert_close(got, ref.rope_av(x, angles=ang, interleaved=True), atol=2e-6, rtol=1e-5)


def test_rope_argument_errors() -> None:
    x = torch.randn(5, 2, 8)
    c = torch.randn(5, 2, 4)
    with pytest.raises(InputError):
        ref.rope_av(x, c, None, interleaved=True)
    with pytest.raises(InputError):
        ref.rope_av(x, c, c, angles=c.double(), interleaved=True)
    with pytest.raises(InputError):
        ref.rope_av(x, c[:, :, :3], c[:, :, :3], interleaved=True)
    with pytest.raises(InputError):
        ref.rope_av(x, c, c, interleaved=True, identity_rows=torch.zeros(4, dtype=torch.bool))
