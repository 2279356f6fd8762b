"""Triton ``x0_renoise``: x0 = x - sigma*v and x_next = (1 - sigma_next)*x0 + sigma_next*noise, fused.

One pass over x, v and noise writes both outputs; x0 stays in fp32 registers between the two
formulas, so x_next is computed from the unrounded clean estimate. sigma and sigma_next are read
from device memory (1 or B values), so a CUDA graph captured once replays for every step of the
schedule. Rejected alternative: two torch expressions, which read x0 back from memory rounded to
bf16 and bake the sigmas into the graph as host scalars.
"""

from __future__ import annotations

import torch
import triton.language as tl

import triton

from .._common import check_triton_device, is_interpreting
from .._elementwise_args import validate_renoise


@triton.jit
def _x0_renoise_kernel(
    X, V, N, S, SN, X0, XN, n_per_batch, stride_s, stride_sn, BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    b = tl.program_id(1)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_per_batch
    base = b.to(tl.int64) * n_per_batch
    sigma = tl.load(S + b * stride_s).to(tl.float32)
    sigma_next = tl.load(SN + b * stride_sn).to(tl.float32)
    x = tl.load(X + base + offs, mask=mask, other=0.0).to(tl.float32)
    v = tl.load(V + base + offs, mask=mask, other=0.0).to(tl.float32)
    noise = tl.load(N + base + offs, mask=mask, other=0.0).to(tl.float32)
    x0 = x - sigma * v
    x_next = (1.0 - sigma_next) * x0 + sigma_next * noise
    tl.store(X0 + base + offs, x0.to(X0.dtype.element_ty), mask=mask)
    tl.store(XN + base + offs, x_next.to(XN.dtype.element_ty), mask=mask)


def x0_renoise(
    x: torch.Tensor, v: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton fused x0 + re-noise; same contract as ``kernels/reference/x0_renoise.py``."""
    batch = validate_renoise(x, v, noise, sigma, sigma_next)
    check_triton_device(x)
    x, v, noise = x.contiguous(), v.contiguous(), noise.contiguous()
    sigma, sigma_next = sigma.reshape(-1).contiguous(), sigma_next.reshape(-1).contiguous()
    x0, x_next = torch.empty_like(x), torch.empty_like(x)
    n_per_batch = x.numel() // max(batch, 1)
    if x.numel() == 0:
        return x0, x_next
    block = 16384 if is_interpreting() else 2048
    _x0_renoise_kernel[(triton.cdiv(n_per_batch, block), batch)](
        x, v, noise, sigma, sigma_next, x0, x_next, n_per_batch,
        0 if sigma.numel() == 1 else 1, 0 if sigma_next.numel() == 1 else 1, BLOCK=block, num_warps=4,
    )  # fmt: skip
    return x0, x_next
