"""Triton block-causal attention: paged streaming prefill and the dense (training) forward.

Algorithm: FlashAttention-2 style tiling with an online softmax in base 2 (``exp2`` with
``sm_scale * log2(e)`` folded into one multiply). One program owns a ``BLOCK_M`` tile of query
rows of one head and streams key tiles through it; the [Sq, Sk] score matrix never exists.

* Paged form: keys come from two sources, visited in order - the stream's history, gathered
  token by token through the page table (``page = PT[b, t // PAGE_SIZE]``), then the block's own
  K/V, read densely. No mask is needed (spec B.2 with a KV cache: a block sees all of its
  history and itself), only the tail bound of each source. Rejected alternative: one page index
  per key tile with ``PAGE_SIZE`` a multiple of ``BLOCK_N``: it saves a few integer loads but
  forbids 16-token pages and the 25/26-token audio pages of the small caches.
* Dense form: per-token block ids, key j visible iff ``kb[j] <= qb[i]``. A key tile whose
  smallest block id exceeds the largest query id of the tile is skipped entirely (for the
  sorted ids of the real layouts that is the block-sparse upper triangle); rejected
  alternative: a precomputed FlexAttention-style block mask, which costs a host-side build and
  another input for no gain when ids are sorted.

Under the CPU interpreter ``tl.dot`` on bf16 operands is silently wrong (toolchain pitfall 1),
so ``DOT_FP32`` upcasts both operands there; on a GPU, 16-bit operands feed the tensor cores
directly with fp32 accumulation, and fp32 inputs use IEEE dots (never TF32) to keep the 1e-5
tolerance.
"""

from __future__ import annotations

import math

import torch
import triton.language as tl

import triton

from .._attention_args import default_scale, normalize_block_ids, validate_dense, validate_paged
from .._common import check_head_dim, check_triton_device, is_interpreting, next_pow2

LOG2E = 1.4426950408889634
SUPPORTED_HEAD_DIMS: tuple[int, ...] = (16, 32, 64, 128, 256)


@triton.jit
def _attend_tile(acc, m_i, l_i, q, k, v, valid, scale_log2, DOT_FP32: tl.constexpr, IEEE: tl.constexpr):
    """One online-softmax step over a key tile. ``valid`` is a [BLOCK_M, BLOCK_N] bool mask."""
    # The dots are written out rather than factored into a helper: every nested jit call costs
    # the interpreter a full re-patch of tl.* (about 1.5 ms), which dominates CPU test time.
    if DOT_FP32:
        s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)), input_precision="ieee")
    elif IEEE:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k))
    s = s * scale_log2
    s = tl.where(valid, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    # A row that has seen no visible key yet keeps m = -inf; shift by 0 there so that
    # exp2(-inf - -inf) never produces NaN.
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    if DOT_FP32:  # round P to v's dtype first, exactly as the tensor-core path does
        acc = tl.dot(p.to(v.dtype).to(tl.float32), v.to(tl.float32), acc, input_precision="ieee")
    elif IEEE:
        acc = tl.dot(p, v, acc, input_precision="ieee")
    else:
        acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, m_new, l_i


@triton.jit
def _paged_fwd_kernel(
    Q, KN, VN, KC, VC, PT, CU_Q, CU_KV, CACHE_LENS, Out,
    scale_log2,
    stride_qt, stride_qh, stride_knt, stride_knh, stride_vnt, stride_vnh,
    stride_kcp, stride_kcs, stride_kch, stride_vcp, stride_vcs, stride_vch,
    stride_ptb, stride_ot, stride_oh,
    H_Q: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, PAGE_SIZE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_FP32: tl.constexpr, IEEE: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H_Q
    h = pid_bh % H_Q
    hk = h // GROUP
    q_start = tl.load(CU_Q + b)
    q_len = tl.load(CU_Q + b + 1) - q_start
    if pid_m * BLOCK_M >= q_len:
        return
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)
    m_mask = offs_m < q_len
    q_rows = (q_start + offs_m).to(tl.int64)
    q = tl.load(Q + q_rows[:, None] * stride_qt + h * stride_qh + offs_d[None, :], mask=m_mask[:, None], other=0.0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    always = m_mask[:, None] | True

    # 1) history through the page table
    cache_len = tl.load(CACHE_LENS + b)
    pt_row = PT + b.to(tl.int64) * stride_ptb
    for start in range(0, cache_len, BLOCK_N):
        tok = start + offs_n
        n_mask = tok < cache_len
        page = tl.load(pt_row + tok // PAGE_SIZE, mask=n_mask, other=0).to(tl.int64)
        slot = tok % PAGE_SIZE
        k = tl.load(KC + (page * stride_kcp + slot * stride_kcs + hk * stride_kch)[:, None] + offs_d[None, :],
                    mask=n_mask[:, None], other=0.0)  # fmt: skip
        v = tl.load(VC + (page * stride_vcp + slot * stride_vcs + hk * stride_vch)[:, None] + offs_d[None, :],
                    mask=n_mask[:, None], other=0.0)  # fmt: skip
        acc, m_i, l_i = _attend_tile(acc, m_i, l_i, q, k, v, always & n_mask[None, :], scale_log2, DOT_FP32, IEEE)

    # 2) the block's own keys/values
    kv_start = tl.load(CU_KV + b)
    kv_len = tl.load(CU_KV + b + 1) - kv_start
    for start in range(0, kv_len, BLOCK_N):
        tok = start + offs_n
        n_mask = tok < kv_len
        rows = (kv_start + tok).to(tl.int64)
        k = tl.load(KN + (rows * stride_knt + hk * stride_knh)[:, None] + offs_d[None, :], mask=n_mask[:, None],
                    other=0.0)  # fmt: skip
        v = tl.load(VN + (rows * stride_vnt + hk * stride_vnh)[:, None] + offs_d[None, :], mask=n_mask[:, None],
                    other=0.0)  # fmt: skip
        acc, m_i, l_i = _attend_tile(acc, m_i, l_i, q, k, v, always & n_mask[None, :], scale_log2, DOT_FP32, IEEE)

    # A stream with no keys at all (empty history and empty block) has l = 0 and acc = 0: output 0.
    out = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    o_ptrs = Out + q_rows[:, None] * stride_ot + h * stride_oh + offs_d[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=m_mask[:, None])


@triton.jit
def _dense_fwd_kernel(
    Q, K, V, QB, KB, Out, LSE,
    scale_log2, q_len, k_len,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh,
    stride_vb, stride_vs, stride_vh, stride_ob, stride_os, stride_oh,
    H_Q: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_FP32: tl.constexpr, IEEE: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H_Q).to(tl.int64)
    h = pid_bh % H_Q
    hk = h // GROUP
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)
    m_mask = offs_m < q_len
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qs + offs_d[None, :],
                mask=m_mask[:, None], other=0.0)  # fmt: skip
    # Padding query rows get the smallest id so they never widen the tile's visible range.
    qb = tl.load(QB + b * q_len + offs_m, mask=m_mask, other=-(2**30))
    qb_max = tl.max(qb, 0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    for start in range(0, k_len, BLOCK_N):
        tok = start + offs_n
        n_mask = tok < k_len
        kb = tl.load(KB + b * k_len + tok, mask=n_mask, other=2**30)
        if tl.min(kb, 0) <= qb_max:  # block-sparse skip: no query of this tile sees this key tile
            k = tl.load(k_base + tok[:, None] * stride_ks + offs_d[None, :], mask=n_mask[:, None], other=0.0)
            v = tl.load(v_base + tok[:, None] * stride_vs + offs_d[None, :], mask=n_mask[:, None], other=0.0)
            visible = (kb[None, :] <= qb[:, None]) & n_mask[None, :]
            acc, m_i, l_i = _attend_tile(acc, m_i, l_i, q, k, v, visible, scale_log2, DOT_FP32, IEEE)

    nonempty = l_i > 0.0
    out = acc / tl.where(nonempty, l_i, 1.0)[:, None]
    o_ptrs = Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_os + offs_d[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=m_mask[:, None])
    # Natural-log LSE for the backward pass and for callers; -inf marks a row that sees nothing.
    lse = tl.where(nonempty, (m_i + tl.log2(tl.where(nonempty, l_i, 1.0))) / 1.4426950408889634, float("-inf"))
    tl.store(LSE + (b * H_Q + h) * q_len + offs_m, lse, mask=m_mask)


def tile_config(head_dim: int, max_q: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages) for the H100; see ``interpreter_tile_config``.

    128-row query tiles for the 1152/1536-token video blocks; 64-row tiles when the whole
    block is short (25/26 audio queries) so fewer masked rows are computed. 64-key tiles for
    D=128 keep Q + 3 stages of K/V inside shared memory with gathered (non-TMA) loads.
    """
    if is_interpreting():
        return interpreter_tile_config(max_q)
    return gpu_tile_config(head_dim, max_q)


def gpu_tile_config(head_dim: int, max_q: int) -> tuple[int, int, int, int]:
    """The compiled-kernel tiles (also what the AOT compile check builds)."""
    block_m = 64 if max_q <= 64 else 128
    block_n = 64 if head_dim >= 128 else 128
    num_warps = 8 if block_m == 128 else 4
    return block_m, block_n, num_warps, 3


def interpreter_tile_config(max_q: int) -> tuple[int, int, int, int]:
    """Large tiles for the CPU interpreter, whose cost is ~10 ms of Python per tile step
    whatever the tile size: 256x512 tiles make a real-geometry head 7x faster than 128x64.
    Tests also force ``gpu_tile_config`` on the awkward sizes so the GPU tail masking is run.
    """
    return min(256, max(16, next_pow2(max_q))), 512, 4, 1


def _dot_flags(dtype: torch.dtype) -> tuple[bool, bool]:
    return is_interpreting(), dtype == torch.float32


def block_causal_attention(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_kv: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    page_table: torch.Tensor,
    cache_lens: torch.Tensor,
    *,
    max_seqlen_q: int | None = None,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """Paged block attention (Triton). Same contract as the reference in ``kernels/reference``.

    ``max_seqlen_q`` sizes the grid; pass it to stay free of host syncs (CUDA graphs). It must
    be >= the longest query block (rows past it are not computed). When it is None it is read
    from ``cu_seqlens_q`` (one device->host copy).
    """
    dims = validate_paged(q, k_new, v_new, cu_seqlens_q, cu_seqlens_kv, k_cache, v_cache, page_table, cache_lens)
    check_head_dim(dims.head_dim, SUPPORTED_HEAD_DIMS)
    check_triton_device(q)
    if max_seqlen_q is None:
        max_seqlen_q = int((cu_seqlens_q[1:] - cu_seqlens_q[:-1]).max().item())
    out = torch.empty_like(q)
    if q.shape[0] == 0 or max_seqlen_q == 0:
        return out.zero_()
    block_m, block_n, num_warps, num_stages = tile_config(dims.head_dim, max_seqlen_q)
    dot_fp32, ieee = _dot_flags(q.dtype)
    grid = (triton.cdiv(max_seqlen_q, block_m), dims.batch * dims.q_heads)
    _paged_fwd_kernel[grid](
        q, k_new, v_new, k_cache, v_cache, page_table, cu_seqlens_q, cu_seqlens_kv, cache_lens, out,
        default_scale(dims.head_dim, sm_scale) * LOG2E,
        q.stride(0), q.stride(1), k_new.stride(0), k_new.stride(1), v_new.stride(0), v_new.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        page_table.stride(0), out.stride(0), out.stride(1),
        H_Q=dims.q_heads, GROUP=dims.q_heads // dims.kv_heads, HEAD_DIM=dims.head_dim, PAGE_SIZE=dims.page_size,
        BLOCK_M=block_m, BLOCK_N=block_n, DOT_FP32=dot_fp32, IEEE=ieee,
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    return out


def dense_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_block_ids: torch.Tensor,
    k_block_ids: torch.Tensor,
    sm_scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense block-causal forward without autograd: returns (out, lse [B, Hq, Sq] fp32)."""
    dims = validate_dense(q, k, v, q_block_ids, k_block_ids)
    check_head_dim(dims.head_dim, SUPPORTED_HEAD_DIMS)
    check_triton_device(q)
    qb = normalize_block_ids("q_block_ids", q_block_ids, dims.batch, dims.q_len)
    kb = normalize_block_ids("k_block_ids", k_block_ids, dims.batch, dims.k_len)
    out = torch.empty_like(q)
    lse = torch.empty((dims.batch, dims.q_heads, dims.q_len), dtype=torch.float32, device=q.device)
    if q.numel() == 0:
        return out.zero_(), lse.fill_(-math.inf)
    block_m, block_n, num_warps, num_stages = tile_config(dims.head_dim, dims.q_len)
    dot_fp32, ieee = _dot_flags(q.dtype)
    grid = (triton.cdiv(dims.q_len, block_m), dims.batch * dims.q_heads)
    _dense_fwd_kernel[grid](
        q, k, v, qb, kb, out, lse,
        default_scale(dims.head_dim, sm_scale) * LOG2E, dims.q_len, dims.k_len,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        H_Q=dims.q_heads, GROUP=dims.q_heads // dims.kv_heads, HEAD_DIM=dims.head_dim,
        BLOCK_M=block_m, BLOCK_N=block_n, DOT_FP32=dot_fp32, IEEE=ieee,
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    return out, lse
