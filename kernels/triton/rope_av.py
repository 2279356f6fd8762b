"""Triton ``rope_av``: rotary embedding, interleaved or split pairs, with identity rows for sinks.

One program rotates ``BLOCK_T`` tokens of one head: it loads the two halves of every pair as two
[BLOCK_T, D/2] tiles (stride-2 gathers for the interleaved layout, two contiguous halves for the
split layout), rotates in fp32 and stores in x's dtype. Rejected alternative for the interleaved
layout: one contiguous [BLOCK_T, D] load followed by ``tl.reshape`` + ``tl.split`` - the same
bytes move either way (both halves of a pair share a cache line), and the gather keeps a single
code path for both layouts.

With ``angles`` given, cos/sin are computed in the kernel. fp64 angles (the checkpoint's
``frequencies_precision: float64``; they reach 5000*pi) are first reduced modulo 2*pi in fp64 by
plain arithmetic, then cos/sin run in fp32 on an argument in (-2pi, 2pi): about 1e-7 absolute
error. Rejected alternative: fp64 ``cos``/``sin`` on the GPU, which go through slow libdevice
calls, and are not available in the interpreter's ``tl.math`` path either.
"""

from __future__ import annotations

import torch
import triton.language as tl

import triton
from omniforcing_rt.errors import UnsupportedError

from .._common import check_triton_device, is_interpreting
from .._elementwise_args import validate_rope

TWO_PI = 6.283185307179586


@triton.jit
def _rope_kernel(
    X, C, S, ID, Out, n_tokens,
    stride_xt, stride_xh, stride_ct, stride_ch, stride_st, stride_sh, stride_ot, stride_oh,
    HALF: tl.constexpr, INTERLEAVED: tl.constexpr, FROM_ANGLES: tl.constexpr, ANGLES_FP64: tl.constexpr,
    HAS_ID: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    pid_t = tl.program_id(0)
    h = tl.program_id(1)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = offs_t < n_tokens
    rows = offs_t.to(tl.int64)
    j = tl.arange(0, HALF)
    if INTERLEAVED:
        ia = 2 * j
        ib = 2 * j + 1
    else:
        ia = j
        ib = j + HALF
    mask = t_mask[:, None]
    x_row = X + (rows * stride_xt + h * stride_xh)[:, None]
    xa = tl.load(x_row + ia[None, :], mask=mask, other=0.0).to(tl.float32)
    xb = tl.load(x_row + ib[None, :], mask=mask, other=0.0).to(tl.float32)
    tab = (rows * stride_ct + h * stride_ch)[:, None] + j[None, :]
    if FROM_ANGLES:
        ang = tl.load(C + tab, mask=mask, other=0.0)
        if ANGLES_FP64:
            ang = ang - 6.283185307179586 * (ang * 0.15915494309189535).to(tl.int64).to(tl.float64)
        ang = ang.to(tl.float32)
        c = tl.cos(ang)
        s = tl.sin(ang)
    else:
        c = tl.load(C + tab, mask=mask, other=0.0).to(tl.float32)
        s = tl.load(S + (rows * stride_st + h * stride_sh)[:, None] + j[None, :], mask=mask, other=0.0).to(tl.float32)
    oa = xa * c - xb * s
    ob = xb * c + xa * s
    if HAS_ID:
        skip = tl.load(ID + offs_t, mask=t_mask, other=0) != 0
        oa = tl.where(skip[:, None], xa, oa)
        ob = tl.where(skip[:, None], xb, ob)
    o_row = Out + (rows * stride_ot + h * stride_oh)[:, None]
    tl.store(o_row + ia[None, :], oa.to(Out.dtype.element_ty), mask=mask)
    tl.store(o_row + ib[None, :], ob.to(Out.dtype.element_ty), mask=mask)


def _head_stride(tab: torch.Tensor) -> int:
    """Stride 0 for a table shared by all heads ([T, 1, D/2]), whatever torch reports for it."""
    return 0 if tab.shape[1] == 1 else tab.stride(1)


def rope_av(
    x: torch.Tensor,
    cos: torch.Tensor | None = None,
    sin: torch.Tensor | None = None,
    *,
    angles: torch.Tensor | None = None,
    interleaved: bool,
    identity_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Triton rotary embedding; same contract as ``kernels/reference/rope_av.py``."""
    validate_rope(x, cos, sin, angles, identity_rows)
    check_triton_device(x)
    n_tokens, heads, head_dim = x.shape
    half = head_dim // 2
    if half & (half - 1):
        raise UnsupportedError(f"Triton rope_av needs D/2 to be a power of two, got D={head_dim}")
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    c_tab = angles if angles is not None else cos
    s_tab = angles if angles is not None else sin
    assert c_tab is not None and s_tab is not None
    ids = identity_rows.view(torch.uint8) if identity_rows is not None else x
    block_t = 256 if is_interpreting() else 16
    _rope_kernel[(triton.cdiv(n_tokens, block_t), heads)](
        x, c_tab, s_tab, ids, out, n_tokens,
        x.stride(0), x.stride(1), c_tab.stride(0), _head_stride(c_tab), s_tab.stride(0), _head_stride(s_tab),
        out.stride(0), out.stride(1),
        HALF=half, INTERLEAVED=interleaved, FROM_ANGLES=angles is not None,
        ANGLES_FP64=angles is not None and angles.dtype == torch.float64,
        HAS_ID=identity_rows is not None, BLOCK_T=block_t, num_warps=4,
    )  # fmt: skip
    return out
