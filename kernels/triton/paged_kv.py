"""Triton ``paged_kv_append``: scatter a block's K/V rows into their cache pages.

Each program copies a [BLOCK_T tokens x BLOCK_C channels] tile of the packed ``[Hk * D]`` rows
for both K and V; the destination row is found through the page table per token. It is a pure
load/store (no conversion), so the result is bit-exact. Rejected alternative: a torch
``index_put_`` with host-built (page, slot) indices - it needs the positions on the host (a
sync per pass, which breaks CUDA-graph replay) and two kernel launches.
"""

from __future__ import annotations

import torch
import triton.language as tl

import triton

from .._common import check_triton_device, is_interpreting, next_pow2
from .._paged_kv_args import validate_append


@triton.jit
def _append_kernel(
    KN, VN, KC, VC, PT, CU, START,
    stride_knt, stride_vnt, stride_kcp, stride_kcs, stride_vcp, stride_vcs, stride_ptb,
    max_pages, num_pages,
    ROW: tl.constexpr, PAGE_SIZE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid_t = tl.program_id(0)
    b = tl.program_id(1)
    pid_c = tl.program_id(2)
    t0 = tl.load(CU + b)
    n = tl.load(CU + b + 1) - t0
    if pid_t * BLOCK_T >= n:
        return
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    pos = tl.load(START + b) + offs_t
    pidx = pos // PAGE_SIZE
    ok = (offs_t < n) & (pos >= 0) & (pidx < max_pages)
    page = tl.load(PT + b.to(tl.int64) * stride_ptb + pidx, mask=ok, other=-1)
    ok = ok & (page >= 0) & (page < num_pages)
    page = page.to(tl.int64)
    slot = pos % PAGE_SIZE
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = ok[:, None] & (offs_c < ROW)[None, :]
    src_t = (t0 + offs_t).to(tl.int64)
    k = tl.load(KN + (src_t * stride_knt)[:, None] + offs_c[None, :], mask=mask)
    tl.store(KC + (page * stride_kcp + slot * stride_kcs)[:, None] + offs_c[None, :], k, mask=mask)
    v = tl.load(VN + (src_t * stride_vnt)[:, None] + offs_c[None, :], mask=mask)
    tl.store(VC + (page * stride_vcp + slot * stride_vcs)[:, None] + offs_c[None, :], v, mask=mask)


def append_tile_config(row: int) -> tuple[int, int, int]:
    """(BLOCK_T, BLOCK_C, num_warps): 8 tokens x up to 1024 channels (16 KB of bf16 per tensor)
    per program on a GPU; the interpreter prefers few, large programs."""
    if is_interpreting():
        return 64, next_pow2(row), 1
    return 8, min(1024, next_pow2(row)), 4


def paged_kv_append(
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    cu_seqlens: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    page_table: torch.Tensor,
    start_pos: torch.Tensor,
    *,
    max_seqlen: int | None = None,
) -> None:
    """Triton append; same contract as ``kernels/reference/paged_kv.py``.

    ``max_seqlen`` (the longest stream) sizes the grid; pass it to avoid a host sync.
    """
    dims = validate_append(k_new, v_new, cu_seqlens, k_cache, v_cache, page_table, start_pos)
    check_triton_device(k_new)
    if max_seqlen is None:
        max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max().item())
    row = dims.kv_heads * dims.head_dim
    if max_seqlen <= 0 or row == 0:
        return
    block_t, block_c, num_warps = append_tile_config(row)
    grid = (triton.cdiv(max_seqlen, block_t), dims.batch, triton.cdiv(row, block_c))
    _append_kernel[grid](
        k_new, v_new, k_cache, v_cache, page_table, cu_seqlens, start_pos,
        k_new.stride(0), v_new.stride(0), k_cache.stride(0), k_cache.stride(1), v_cache.stride(0), v_cache.stride(1),
        page_table.stride(0), dims.max_pages, dims.num_pages,
        ROW=row, PAGE_SIZE=dims.page_size, BLOCK_T=block_t, BLOCK_C=block_c, num_warps=num_warps,
    )  # fmt: skip
