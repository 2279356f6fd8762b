"""Reference block-causal attention in fp64: the oracle for the Triton and CUDA kernels.

Same signatures as ``kernels/triton/block_causal_attention.py``. The math is done in float64
and cast back to the query dtype at the end, FlashInfer ``ref_single_prefill`` style. A query
row that sees no key at all (possible only in the dense form, or a paged stream with no history
and an empty block) is defined as output 0 with log-sum-exp -inf.

The dense form is differentiable through plain autograd; that is the backward oracle for the
Triton backward kernels, and also the CPU training fallback of the registered torch op.
"""

from __future__ import annotations

import torch

from .._attention_args import default_scale, normalize_block_ids, validate_dense, validate_paged

# Heads are processed in groups so that the fp64 score matrix of a real-geometry call
# (1152 queries x 7296 keys x 32 heads = 2.2 GB) never exists at once.
_HEAD_CHUNK = 4


def _masked_softmax_attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64 attention for [H, Sq, D] x [H, Sk, D]; returns (out [H, Sq, D], lse [H, Sq]).

    ``visible`` is a bool [Sq, Sk] mask or None (all visible). Rows with no visible key give
    out 0 and lse -inf; ``torch.where`` keeps their gradient finite (0) instead of NaN.
    """
    if k.shape[-2] == 0:
        return q * 0.0, torch.full(q.shape[:-1], float("-inf"), dtype=q.dtype, device=q.device)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if visible is not None:
        s = s.masked_fill(~visible, float("-inf"))
    # The row max only shifts the exponent; detaching it keeps the gradient exact (softmax is
    # shift invariant) and avoids amax's tie-splitting backward.
    m = s.detach().amax(dim=-1, keepdim=True)
    finite = torch.isfinite(m)
    m_safe = torch.where(finite, m, torch.zeros_like(m))
    p = torch.exp(s - m_safe)
    denom = p.sum(dim=-1, keepdim=True)
    nonempty = denom > 0
    safe = torch.where(nonempty, denom, torch.ones_like(denom))
    out = torch.matmul(p / safe, v)
    lse = torch.where(nonempty, m_safe + torch.log(safe), -torch.inf)
    return out, lse.squeeze(-1)


def _attend_heads(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """[Sq, Hq, D] x [Sk, Hk, D] -> ([Sq, Hq, D], lse [Hq, Sq]), fp64, grouped-query aware."""
    q_heads, kv_heads = q.shape[1], k.shape[1]
    group = q_heads // kv_heads
    outs, lses = [], []
    for h0 in range(0, q_heads, _HEAD_CHUNK):
        hs = range(h0, min(h0 + _HEAD_CHUNK, q_heads))
        qh = q[:, hs.start : hs.stop].transpose(0, 1).double()
        kv_idx = torch.tensor([h // group for h in hs], device=q.device)
        kh = k.index_select(1, kv_idx).transpose(0, 1).double()
        vh = v.index_select(1, kv_idx).transpose(0, 1).double()
        o, lse = _masked_softmax_attend(qh, kh, vh, visible, scale)
        outs.append(o.transpose(0, 1))
        lses.append(lse)
    return torch.cat(outs, dim=1), torch.cat(lses, dim=0)


def gather_pages(cache: torch.Tensor, page_row: torch.Tensor, length: int) -> torch.Tensor:
    """The first ``length`` logical tokens of one stream: [length, Hk, D] from [P, page, Hk, D]."""
    page_size = cache.shape[1]
    n_pages = -(-length // page_size)
    pages = page_row[:n_pages].long()
    return cache.index_select(0, pages).reshape(-1, *cache.shape[2:])[:length]


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
    """Paged block attention: each query attends to its stream's history pages plus its own block.

    Args:
        q: [Tq, Hq, D] queries of the current block, streams packed back to back.
        k_new, v_new: [Tkv, Hk, D] the block's own keys/values, packed the same way.
        cu_seqlens_q, cu_seqlens_kv: [B + 1] int32 offsets into q and k_new/v_new.
        k_cache, v_cache: [num_pages, page_size, Hk, D] paged history.
        page_table: [B, max_pages] int32, pages of each stream in logical order.
        cache_lens: [B] int32 valid history tokens per stream.
        max_seqlen_q: unused here (the fast kernels need it to size their grid).
        sm_scale: softmax scale, default 1/sqrt(D).

    Returns:
        [Tq, Hq, D] in q's dtype.
    """
    dims = validate_paged(q, k_new, v_new, cu_seqlens_q, cu_seqlens_kv, k_cache, v_cache, page_table, cache_lens)
    scale = default_scale(dims.head_dim, sm_scale)
    out = torch.zeros_like(q)
    cq, ckv, lens = cu_seqlens_q.tolist(), cu_seqlens_kv.tolist(), cache_lens.tolist()
    for b in range(dims.batch):
        if cq[b + 1] == cq[b]:
            continue
        k_hist = gather_pages(k_cache, page_table[b], lens[b])
        v_hist = gather_pages(v_cache, page_table[b], lens[b])
        k_all = torch.cat([k_hist, k_new[ckv[b] : ckv[b + 1]]], dim=0)
        v_all = torch.cat([v_hist, v_new[ckv[b] : ckv[b + 1]]], dim=0)
        o, _ = _attend_heads(q[cq[b] : cq[b + 1]], k_all, v_all, None, scale)
        out[cq[b] : cq[b + 1]] = o.to(q.dtype)
    return out


def block_causal_attention_dense(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_block_ids: torch.Tensor,
    k_block_ids: torch.Tensor,
    *,
    sm_scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense block-causal attention (training / offline): key j visible iff kb[j] <= qb[i].

    Args:
        q: [B, Sq, Hq, D]; k, v: [B, Sk, Hk, D].
        q_block_ids: [B, Sq] or [Sq] int32; k_block_ids: [B, Sk] or [Sk] int32.
        sm_scale: softmax scale, default 1/sqrt(D).

    Returns:
        (out [B, Sq, Hq, D] in q's dtype, lse [B, Hq, Sq] float32, natural log, -inf where a
        query sees no key).
    """
    dims = validate_dense(q, k, v, q_block_ids, k_block_ids)
    scale = default_scale(dims.head_dim, sm_scale)
    qb = normalize_block_ids("q_block_ids", q_block_ids, dims.batch, dims.q_len)
    kb = normalize_block_ids("k_block_ids", k_block_ids, dims.batch, dims.k_len)
    outs, lses = [], []
    for b in range(dims.batch):
        visible = kb[b][None, :] <= qb[b][:, None]
        o, lse = _attend_heads(q[b], k[b], v[b], visible, scale)
        outs.append(o.to(q.dtype))
        lses.append(lse.float())
    return torch.stack(outs), torch.stack(lses)


def _dense_backward_heads(
    dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fp64 gradients for one sequence: [Sq, Hq, D] / [Sk, Hk, D] in, (dq, dk, dv) out in fp64."""
    group = q.shape[1] // k.shape[1]
    kv_idx = torch.arange(q.shape[1], device=q.device) // group
    qh, doh = q.transpose(0, 1).double(), dout.transpose(0, 1).double()
    kh = k.index_select(1, kv_idx).transpose(0, 1).double()
    vh = v.index_select(1, kv_idx).transpose(0, 1).double()
    out, lse = _masked_softmax_attend(qh, kh, vh, visible, scale)
    p = torch.where(
        visible & torch.isfinite(lse)[..., None],
        torch.exp(torch.matmul(qh, kh.transpose(-1, -2)) * scale - lse[..., None]),
        0.0,
    )
    dv_h = torch.matmul(p.transpose(-1, -2), doh)
    dp = torch.matmul(doh, vh.transpose(-1, -2))
    ds = p * (dp - (doh * out).sum(-1, keepdim=True))
    dq = torch.matmul(ds, kh) * scale
    dk_h = torch.matmul(ds.transpose(-1, -2), qh) * scale
    dk = torch.zeros(k.shape[1], *dk_h.shape[1:], dtype=torch.float64, device=q.device).index_add_(0, kv_idx, dk_h)
    dv = torch.zeros_like(dk).index_add_(0, kv_idx, dv_h)
    return dq.transpose(0, 1), dk.transpose(0, 1), dv.transpose(0, 1)


def block_causal_attention_dense_backward(
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
    """Explicit fp64 gradients (dq, dk, dv) of the dense form, in the input dtypes.

    Same signature as the Triton ``dense_backward``; ``out`` and ``lse`` are accepted for that
    reason but recomputed in fp64 (the reference never trusts a low-precision forward). This is
    the CPU backward of the ``ofrt`` torch op: written out rather than taken from autograd
    because a custom-op kernel runs below the autograd dispatch key, where a nested autograd
    graph is not recorded under AOT tracing.
    """
    dims = validate_dense(q, k, v, q_block_ids, k_block_ids)
    scale = default_scale(dims.head_dim, sm_scale)
    qb = normalize_block_ids("q_block_ids", q_block_ids, dims.batch, dims.q_len)
    kb = normalize_block_ids("k_block_ids", k_block_ids, dims.batch, dims.k_len)
    grads: list[list[torch.Tensor]] = [[], [], []]
    for b in range(dims.batch):
        visible = kb[b][None, :] <= qb[b][:, None]
        for acc, g, like in zip(grads, _dense_backward_heads(dout[b], q[b], k[b], v[b], visible, scale), (q, k, v)):
            acc.append(g.to(like.dtype))
    return torch.stack(grads[0]), torch.stack(grads[1]), torch.stack(grads[2])
