"""Triton backward of the dense block-causal attention (training mode), and its autograd wrapper.

FlashAttention-2 backward without atomics: one kernel owns a key tile and accumulates dK/dV
over every query tile (and every query head of its group, for grouped-query attention); a
second kernel owns a query tile and accumulates dQ over every key tile. P is recomputed from
the forward's log-sum-exp, never stored. Rejected alternative: a single kernel adding dQ with
``tl.atomic_add`` - fewer recomputed dots, but fp32 atomics make the result depend on
scheduling order, which we do not want in a training oracle comparison.

P and dS are rounded to the input dtype before their dots, as the tensor cores need; the
interpreter path (operands upcast for the bf16 dot bug) rounds the same way, so CPU tests see
GPU-like numerics. Both kernels skip tiles that the block-causal rule hides entirely (min key id > max query id),
exactly as the forward does. ``delta = rowsum(dO * O)`` is computed with one torch reduction:
it is memory-bound and O(S*D), negligible next to the O(S^2*D) kernels, so a dedicated
preprocessing kernel would buy nothing.
"""

from __future__ import annotations

import torch
import triton.language as tl

import triton

from .._attention_args import default_scale, normalize_block_ids, validate_dense
from .._common import check_head_dim, check_triton_device, is_interpreting
from .block_causal_attention import LOG2E, SUPPORTED_HEAD_DIMS, dense_forward


@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, DO, QB, KB, LSE, DELTA, DK, DV,
    scale_log2, sm_scale, q_len, k_len,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh,
    stride_vb, stride_vs, stride_vh, stride_dob, stride_dos, stride_doh,
    stride_dkb, stride_dks, stride_dkh, stride_dvb, stride_dvs, stride_dvh,
    H_Q: tl.constexpr, H_K: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_FP32: tl.constexpr, IEEE: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H_K).to(tl.int64)
    hk = pid_bh % H_K
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    n_mask = offs_n < k_len
    k = tl.load(K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_ks + offs_d[None, :],
                mask=n_mask[:, None], other=0.0)  # fmt: skip
    v = tl.load(V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vs + offs_d[None, :],
                mask=n_mask[:, None], other=0.0)  # fmt: skip
    if DOT_FP32:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    kb = tl.load(KB + b * k_len + offs_n, mask=n_mask, other=2**30)
    kb_min = tl.min(kb, 0)
    dk = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    GROUP: tl.constexpr = H_Q // H_K
    for g in range(GROUP):
        h = hk * GROUP + g
        for start in range(0, q_len, BLOCK_M):
            offs_m = start + tl.arange(0, BLOCK_M)
            m_mask = offs_m < q_len
            qb = tl.load(QB + b * q_len + offs_m, mask=m_mask, other=-(2**30))
            if tl.max(qb, 0) >= kb_min:  # block-sparse skip, as in the forward
                q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qs + offs_d[None, :],
                            mask=m_mask[:, None], other=0.0)  # fmt: skip
                do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dos + offs_d[None, :],
                             mask=m_mask[:, None], other=0.0)  # fmt: skip
                if DOT_FP32:
                    q = q.to(tl.float32)
                    do = do.to(tl.float32)
                row = (b * H_Q + h) * q_len + offs_m
                lse2 = tl.load(LSE + row, mask=m_mask, other=float("-inf")) * 1.4426950408889634
                # A row that saw no key (lse = -inf) must get P = 0: move it to +inf.
                lse2 = tl.where(lse2 == float("-inf"), float("inf"), lse2)
                delta = tl.load(DELTA + row, mask=m_mask, other=0.0)
                if IEEE:
                    s_t = tl.dot(k, tl.trans(q), input_precision="ieee")
                else:
                    s_t = tl.dot(k, tl.trans(q))
                visible = (kb[:, None] <= qb[None, :]) & n_mask[:, None] & m_mask[None, :]
                p_t = tl.where(visible, tl.exp2(s_t * scale_log2 - lse2[None, :]), 0.0)
                if IEEE:
                    dv = tl.dot(p_t.to(DK.dtype.element_ty).to(do.dtype), do, dv, input_precision="ieee")
                    dp_t = tl.dot(v, tl.trans(do), input_precision="ieee")
                else:
                    dv = tl.dot(p_t.to(DK.dtype.element_ty).to(do.dtype), do, dv)
                    dp_t = tl.dot(v, tl.trans(do))
                ds_t = p_t * (dp_t - delta[None, :])
                if IEEE:
                    dk = tl.dot(ds_t.to(DK.dtype.element_ty).to(q.dtype), q, dk, input_precision="ieee")
                else:
                    dk = tl.dot(ds_t.to(DK.dtype.element_ty).to(q.dtype), q, dk)
    dk = dk * sm_scale
    tl.store(DK + b * stride_dkb + hk * stride_dkh + offs_n[:, None] * stride_dks + offs_d[None, :],
             dk.to(DK.dtype.element_ty), mask=n_mask[:, None])  # fmt: skip
    tl.store(DV + b * stride_dvb + hk * stride_dvh + offs_n[:, None] * stride_dvs + offs_d[None, :],
             dv.to(DV.dtype.element_ty), mask=n_mask[:, None])  # fmt: skip


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, DO, QB, KB, LSE, DELTA, DQ,
    scale_log2, sm_scale, q_len, k_len,
    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh,
    stride_vb, stride_vs, stride_vh, stride_dob, stride_dos, stride_doh,
    stride_dqb, stride_dqs, stride_dqh,
    H_Q: tl.constexpr, H_K: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_FP32: tl.constexpr, IEEE: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H_Q).to(tl.int64)
    h = pid_bh % H_Q
    hk = h // (H_Q // H_K)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    m_mask = offs_m < q_len
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qs + offs_d[None, :],
                mask=m_mask[:, None], other=0.0)  # fmt: skip
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dos + offs_d[None, :],
                 mask=m_mask[:, None], other=0.0)  # fmt: skip
    if DOT_FP32:
        q = q.to(tl.float32)
        do = do.to(tl.float32)
    qb = tl.load(QB + b * q_len + offs_m, mask=m_mask, other=-(2**30))
    qb_max = tl.max(qb, 0)
    row = (b * H_Q + h) * q_len + offs_m
    lse2 = tl.load(LSE + row, mask=m_mask, other=float("-inf")) * 1.4426950408889634
    lse2 = tl.where(lse2 == float("-inf"), float("inf"), lse2)
    delta = tl.load(DELTA + row, mask=m_mask, other=0.0)
    dq = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    for start in range(0, k_len, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_mask = offs_n < k_len
        kb = tl.load(KB + b * k_len + offs_n, mask=n_mask, other=2**30)
        if tl.min(kb, 0) <= qb_max:
            k = tl.load(K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_ks + offs_d[None, :],
                        mask=n_mask[:, None], other=0.0)  # fmt: skip
            v = tl.load(V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vs + offs_d[None, :],
                        mask=n_mask[:, None], other=0.0)  # fmt: skip
            if DOT_FP32:
                k = k.to(tl.float32)
                v = v.to(tl.float32)
            if IEEE:
                s = tl.dot(q, tl.trans(k), input_precision="ieee")
                dp = tl.dot(do, tl.trans(v), input_precision="ieee")
            else:
                s = tl.dot(q, tl.trans(k))
                dp = tl.dot(do, tl.trans(v))
            visible = (kb[None, :] <= qb[:, None]) & n_mask[None, :] & m_mask[:, None]
            p = tl.where(visible, tl.exp2(s * scale_log2 - lse2[:, None]), 0.0)
            ds = p * (dp - delta[:, None])
            if IEEE:
                dq = tl.dot(ds.to(DQ.dtype.element_ty).to(k.dtype), k, dq, input_precision="ieee")
            else:
                dq = tl.dot(ds.to(DQ.dtype.element_ty).to(k.dtype), k, dq)
    dq = dq * sm_scale
    tl.store(DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqs + offs_d[None, :],
             dq.to(DQ.dtype.element_ty), mask=m_mask[:, None])  # fmt: skip


def bwd_tile_config(head_dim: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages) for both backward kernels.

    64x64 tiles with 8 warps keep dK+dV (2 x 64 x 128 fp32) in registers for D=128 without
    spilling. The interpreter uses large tiles because its cost is per tile step (see the forward).
    """
    if is_interpreting():
        return 128, 256, 4, 1
    return 64, 64, 8 if head_dim >= 128 else 4, 2


def dense_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_block_ids: torch.Tensor,
    k_block_ids: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    sm_scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv) of the dense block-causal attention, given the forward's out and lse."""
    dims = validate_dense(q, k, v, q_block_ids, k_block_ids)
    check_head_dim(dims.head_dim, SUPPORTED_HEAD_DIMS)
    check_triton_device(q)
    scale = default_scale(dims.head_dim, sm_scale)
    qb = normalize_block_ids("q_block_ids", q_block_ids, dims.batch, dims.q_len)
    kb = normalize_block_ids("k_block_ids", k_block_ids, dims.batch, dims.k_len)
    dout = dout.contiguous()
    lse = lse.contiguous()
    delta = (dout.float() * out.float()).sum(-1).transpose(1, 2).contiguous()  # [B, Hq, Sq]
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    if q.numel() == 0 or k.numel() == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    block_m, block_n, num_warps, num_stages = bwd_tile_config(dims.head_dim)
    common = dict(H_Q=dims.q_heads, H_K=dims.kv_heads, HEAD_DIM=dims.head_dim, BLOCK_M=block_m, BLOCK_N=block_n,
                  DOT_FP32=is_interpreting(), IEEE=q.dtype == torch.float32, num_warps=num_warps,
                  num_stages=num_stages)  # fmt: skip
    strides = (*q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *dout.stride()[:3])
    _bwd_dkdv_kernel[(triton.cdiv(dims.k_len, block_n), dims.batch * dims.kv_heads)](
        q, k, v, dout, qb, kb, lse, delta, dk, dv, scale * LOG2E, scale, dims.q_len, dims.k_len,
        *strides, *dk.stride()[:3], *dv.stride()[:3], **common,
    )  # fmt: skip
    _bwd_dq_kernel[(triton.cdiv(dims.q_len, block_m), dims.batch * dims.q_heads)](
        q, k, v, dout, qb, kb, lse, delta, dq, scale * LOG2E, scale, dims.q_len, dims.k_len,
        *strides, *dq.stride()[:3], **common,
    )  # fmt: skip
    return dq, dk, dv


class _DenseBlockCausalAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, q_block_ids, k_block_ids, sm_scale):  # type: ignore[override]
        out, lse = dense_forward(q, k, v, q_block_ids, k_block_ids, sm_scale)
        ctx.save_for_backward(q, k, v, q_block_ids, k_block_ids, out, lse)
        ctx.sm_scale = sm_scale
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):  # type: ignore[override]
        q, k, v, qb, kb, out, lse = ctx.saved_tensors
        dq, dk, dv = dense_backward(dout, q, k, v, qb, kb, out, lse, ctx.sm_scale)
        return dq, dk, dv, None, None, None


def block_causal_attention_dense(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_block_ids: torch.Tensor,
    k_block_ids: torch.Tensor,
    *,
    sm_scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense block-causal attention (Triton forward + Triton backward under autograd).

    Same contract as the reference: (out [B, Sq, Hq, D], lse [B, Hq, Sq] fp32, not differentiable).
    """
    return _DenseBlockCausalAttention.apply(q, k, v, q_block_ids, k_block_ids, sm_scale)
