"""Triton AdaLN ops: ``adaln_modulate`` (RMSNorm without weight + scale/shift) and ``gated_residual``.

Both are one-pass, memory-bound row kernels over [B*T, C]: a program owns ``BLOCK_R`` whole rows
(C = 4096 video / 2048 audio fits one tile), so the RMS statistic needs no second read of x.
All math is fp32 and the result is rounded once to x's dtype. Modulation rows are read through
their broadcast strides (stride 0 along a broadcast dim), so per-batch [B, 1, C] and per-token
[B, T, C] tables need no materialised copy. Rejected alternative: torch eager
(``F.rms_norm`` then ``mul``/``add``): four passes over x and three intermediate tensors.
"""

from __future__ import annotations

import torch
import triton.language as tl

import triton
from omniforcing_rt.errors import InputError

from .._common import check_triton_device, is_interpreting, next_pow2
from .._elementwise_args import as_btc, broadcast_mod

RMS_EPS = 1e-6


@triton.jit
def _row_offsets(rows, n_t, stride_b, stride_t):
    return (rows // n_t).to(tl.int64) * stride_b + (rows % n_t).to(tl.int64) * stride_t


@triton.jit
def _adaln_kernel(
    X, SH, SC, Out, n_rows, n_t, n_c, eps,
    sxb, sxt, sshb, ssht, sscb, ssct, sob, sot,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    mask = (rows < n_rows)[:, None] & (cols < n_c)[None, :]
    x = tl.load(X + _row_offsets(rows, n_t, sxb, sxt)[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    inv_rms = tl.rsqrt(tl.sum(x * x, 1) / n_c + eps)
    sh = tl.load(SH + _row_offsets(rows, n_t, sshb, ssht)[:, None] + cols[None, :], mask=mask, other=0.0)
    sc = tl.load(SC + _row_offsets(rows, n_t, sscb, ssct)[:, None] + cols[None, :], mask=mask, other=0.0)
    out = x * inv_rms[:, None] * (1.0 + sc.to(tl.float32)) + sh.to(tl.float32)
    tl.store(Out + _row_offsets(rows, n_t, sob, sot)[:, None] + cols[None, :], out.to(Out.dtype.element_ty), mask=mask)


@triton.jit
def _gated_residual_kernel(
    X, Y, G, Out, n_rows, n_t, n_c,
    sxb, sxt, syb, syt, sgb, sgt, sob, sot,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (rows < n_rows)[:, None] & (cols < n_c)[None, :]
    x = tl.load(X + _row_offsets(rows, n_t, sxb, sxt)[:, None] + cols[None, :], mask=mask, other=0.0)
    y = tl.load(Y + _row_offsets(rows, n_t, syb, syt)[:, None] + cols[None, :], mask=mask, other=0.0)
    g = tl.load(G + _row_offsets(rows, n_t, sgb, sgt)[:, None] + cols[None, :], mask=mask, other=0.0)
    out = x.to(tl.float32) + y.to(tl.float32) * g.to(tl.float32)
    tl.store(Out + _row_offsets(rows, n_t, sob, sot)[:, None] + cols[None, :], out.to(Out.dtype.element_ty), mask=mask)


def _rows_per_program(n_c: int) -> int:
    """Rows per program: 1 on a GPU for C >= 2048 (a 4096-wide fp32 row already fills 8 warps);
    many in the interpreter, whose cost is per program."""
    if is_interpreting():
        return max(1, min(256, 262144 // next_pow2(n_c)))
    return max(1, 2048 // next_pow2(n_c))


def _warps(block_c: int) -> int:
    return 8 if block_c >= 2048 else 4


def adaln_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, *, eps: float = RMS_EPS) -> torch.Tensor:
    """Triton rms(x) * (1 + scale) + shift; same contract as ``kernels/reference/adaln_modulate.py``."""
    x3 = as_btc("x", x)
    sh, sc = broadcast_mod("shift", shift, x3), broadcast_mod("scale", scale, x3)
    check_triton_device(x3)
    out = torch.empty_like(x3)
    n_b, n_t, n_c = x3.shape
    if out.numel() == 0:
        return out.reshape(x.shape)
    block_c, block_r = next_pow2(n_c), _rows_per_program(n_c)
    _adaln_kernel[(triton.cdiv(n_b * n_t, block_r),)](
        x3, sh, sc, out, n_b * n_t, n_t, n_c, eps,
        x3.stride(0), x3.stride(1), sh.stride(0), sh.stride(1), sc.stride(0), sc.stride(1),
        out.stride(0), out.stride(1), BLOCK_R=block_r, BLOCK_C=block_c, num_warps=_warps(block_c),
    )  # fmt: skip
    return out.reshape(x.shape)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Triton x + y * gate; same contract as ``kernels/reference/adaln_modulate.py``."""
    x3, y3 = as_btc("x", x), as_btc("y", y)
    if y3.shape != x3.shape:
        raise InputError(f"y {tuple(y.shape)} must match x {tuple(x.shape)}")
    g = broadcast_mod("gate", gate, x3)
    check_triton_device(x3)
    out = torch.empty_like(x3)
    n_b, n_t, n_c = x3.shape
    if out.numel() == 0:
        return out.reshape(x.shape)
    block_c = min(1024, next_pow2(n_c))
    block_r = _rows_per_program(block_c)
    grid = (triton.cdiv(n_b * n_t, block_r), triton.cdiv(n_c, block_c))
    _gated_residual_kernel[grid](
        x3, y3, g, out, n_b * n_t, n_t, n_c,
        x3.stride(0), x3.stride(1), y3.stride(0), y3.stride(1), g.stride(0), g.stride(1),
        out.stride(0), out.stride(1), BLOCK_R=block_r, BLOCK_C=block_c, num_warps=4,
    )  # fmt: skip
    return out.reshape(x.shape)
