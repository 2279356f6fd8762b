"""adaln_modulate, gated_residual and x0_renoise: fused elementwise ops vs fp64 references."""

from __future__ import annotations

import pytest
import torch
from kernels_testlib import assert_matches
from omniforcing_rt.kernels.reference import adaln_modulate as ref
from omniforcing_rt.kernels.reference import x0_renoise as ref_x0
from omniforcing_rt.kernels.triton import adaln_modulate as tri
from omniforcing_rt.kernels.triton import x0_renoise as tri_x0

from omniforcing_rt.errors import InputError

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Modulation broadcast forms for x [B=2, T=7, C=127]: per channel, per batch row, per token.
MOD_SHAPES = {"per_channel": (127,), "per_batch": (2, 1, 127), "per_token": (2, 7, 127)}


def _on(device: str, *ts: torch.Tensor) -> list[torch.Tensor]:
    return [t.to(device) for t in ts]


@pytest.mark.parametrize("mod", list(MOD_SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_adaln_modulate_matches_reference(dtype: torch.dtype, mod: str, device: str) -> None:
    x = (torch.randn(2, 7, 127) * 3).to(dtype)
    shift, scale = torch.randn(MOD_SHAPES[mod]).to(dtype), torch.randn(MOD_SHAPES[mod]).to(dtype)
    expected = ref.adaln_modulate(x, shift, scale)
    assert_matches("adaln_modulate", "triton", tri.adaln_modulate(*_on(device, x, shift, scale)), expected)


@pytest.mark.parametrize("mod", list(MOD_SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gated_residual_matches_reference(dtype: torch.dtype, mod: str, device: str) -> None:
    x, y = torch.randn(2, 7, 127).to(dtype), torch.randn(2, 7, 127).to(dtype)
    gate = torch.randn(MOD_SHAPES[mod]).to(dtype)
    expected = ref.gated_residual(x, y, gate)
    assert_matches("gated_residual", "triton", tri.gated_residual(*_on(device, x, y, gate)), expected)


def test_adaln_real_geometry_video_and_audio(device: str) -> None:
    """Video block [1, 1152, 4096] and audio block [1, 25, 2048], bf16, per-batch modulation."""
    for t, c in ((1152, 4096), (25, 2048)):
        x = torch.randn(1, t, c).to(torch.bfloat16)
        shift, scale, gate = (torch.randn(1, 1, c).to(torch.bfloat16) * 0.1 for _ in range(3))
        expected = ref.adaln_modulate(x, shift, scale)
        assert_matches("adaln_modulate", "triton", tri.adaln_modulate(*_on(device, x, shift, scale)), expected)
        y = torch.randn_like(x)
        expected = ref.gated_residual(x, y, gate)
        assert_matches("gated_residual", "triton", tri.gated_residual(*_on(device, x, y, gate)), expected)


def test_adaln_is_rmsnorm_without_weight() -> None:
    """Zero shift/scale gives plain RMSNorm (eps 1e-6), as torch's rms_norm without weight."""
    x = torch.randn(3, 5, 64)
    zero = torch.zeros(64)
    expected = torch.nn.functional.rms_norm(x.double(), (64,), eps=1e-6).float()
    torch.testing.assert_close(ref.adaln_modulate(x, zero, zero), expected)


@pytest.mark.parametrize("sigmas", ["shared", "per_batch", "endpoints"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_x0_renoise_matches_reference(dtype: torch.dtype, sigmas: str, device: str) -> None:
    x, v, noise = (torch.randn(3, 385, 7).to(dtype) for _ in range(3))
    s, sn = {
        "shared": (torch.tensor([0.9062]), torch.tensor([0.7265])),
        "per_batch": (torch.tensor([1.0, 0.7265, 0.4207]), torch.tensor([0.9062, 0.4207, 0.0])),
        "endpoints": (torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)),
    }[sigmas]
    exp_x0, exp_next = ref_x0.x0_renoise(x, v, noise, s, sn)
    got_x0, got_next = tri_x0.x0_renoise(*_on(device, x, v, noise, s, sn))
    assert_matches("x0_renoise", "triton", got_x0, exp_x0)
    assert_matches("x0_renoise", "triton", got_next, exp_next)


def test_x0_renoise_real_geometry_recovers_clean_latents(device: str) -> None:
    """Spec A.8: with x = (1 - s) x0 + s eps and v = eps - x0, x0 comes back; with sigma_next = 0
    x_next is x0. Video [1, 1152, 128] and audio [1, 25, 128] latents, fp32."""
    for tokens in (1152, 25):
        x0, eps, fresh = (torch.randn(1, tokens, 128) for _ in range(3))
        s = torch.tensor([0.7265])
        x = (1 - s) * x0 + s * eps
        got_x0, got_next = tri_x0.x0_renoise(*_on(device, x, eps - x0, fresh, s, torch.tensor([0.0])))
        torch.testing.assert_close(got_x0.cpu(), x0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_next.cpu(), got_x0.cpu(), atol=0, rtol=0)


def test_elementwise_argument_errors() -> None:
    x = torch.randn(2, 7, 16)
    with pytest.raises(InputError):
        ref.adaln_modulate(x, torch.randn(3, 1, 16), torch.randn(16))  # batch 3 vs 2
    with pytest.raises(InputError):
        ref.gated_residual(x, torch.randn(2, 6, 16), torch.randn(16))
    with pytest.raises(InputError):
        ref_x0.x0_renoise(x, x, x, torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.0]))
