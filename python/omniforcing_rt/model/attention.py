"""Attention module of LTX-2 with the projections split out for KV caching.

Q/K are RMS-normalised across the whole inner dimension (all heads at once, learned weight), then
rotated; V is neither (spec A.7). The forward is split into :meth:`Attention.project_q`,
:meth:`Attention.project_kv` and :meth:`Attention.attend` so the streaming pipeline can store the
rotated K and V of a block and read history back without recomputing it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from omniforcing_rt.model.config import RopeType
from omniforcing_rt.model.rope import apply_rope

__all__ = ["ATTENTION_BACKENDS", "Attention", "Rope", "kernel_attention", "sdpa"]

ATTENTION_BACKENDS = ("sdpa", "ofrt")
"""'sdpa': torch SDPA with dense masks (the readable oracle). 'ofrt': the project's block-causal
kernel op (``torch.ops.ofrt.block_causal_attention_dense``: fp64 reference on CPU, Triton on CUDA),
fed per-token block ids instead of a dense mask."""

Rope = tuple[torch.Tensor, torch.Tensor]


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    """Multi-head attention over [B, T, H*d] tensors; ``mask`` is bool (True = may attend) or additive.

    A query row whose bool mask is all False returns 0 (torch SDPA's CPU behaviour, which we make
    explicit so every backend agrees).
    """
    b, tq, _ = q.shape
    qh, kh, vh = (x.unflatten(-1, (heads, -1)).transpose(1, 2) for x in (q, k, v))
    if mask is not None and mask.ndim == 2:
        mask = mask[None, None]
    elif mask is not None and mask.ndim == 3:
        mask = mask[:, None]
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    if mask is not None and mask.dtype == torch.bool:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return out.transpose(1, 2).reshape(b, tq, -1)


def kernel_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, block_ids: tuple[torch.Tensor, torch.Tensor] | None
) -> torch.Tensor:
    """Attention through the ofrt kernel op; ``block_ids`` = (query ids [Tq], key ids [Tk]) or None (full)."""
    import omniforcing_rt.kernels.torch_ops  # noqa: F401  (registers torch.ops.ofrt)

    b, tq, _ = q.shape
    qh, kh, vh = (x.unflatten(-1, (heads, -1)) for x in (q, k, v))
    if block_ids is None:  # unmasked: every key in block 0 and every query too
        qb = torch.zeros(tq, dtype=torch.int32, device=q.device)
        kb = torch.zeros(k.shape[1], dtype=torch.int32, device=q.device)
    else:
        qb, kb = (t.to(device=q.device, dtype=torch.int32) for t in block_ids)
    out, _ = torch.ops.ofrt.block_causal_attention_dense(qh.contiguous(), kh.contiguous(), vh.contiguous(), qb, kb)
    return out.to(q.dtype).reshape(b, tq, -1)


class Attention(nn.Module):
    """Attention with q/k RMSNorm across heads and optional RoPE; parameter names as LTX-2."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, head_dim: int, eps: float) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.head_dim = head_dim
        self.q_norm = nn.RMSNorm(inner, eps=eps)
        self.k_norm = nn.RMSNorm(inner, eps=eps)
        self.to_q = nn.Linear(query_dim, inner)
        self.to_k = nn.Linear(context_dim, inner)
        self.to_v = nn.Linear(context_dim, inner)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))

    def project_q(self, x: torch.Tensor, pe: Rope | None, rope_type: RopeType) -> torch.Tensor:
        """[B, T, query_dim] -> normalised (and rotated) queries [B, T, H*d]."""
        q = self.q_norm(self.to_q(x))
        return q if pe is None else apply_rope(q, *pe, rope_type)

    def project_kv(self, ctx: torch.Tensor, pe: Rope | None, rope_type: RopeType) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S, context_dim] -> (normalised, rotated keys, values), each [B, S, H*d]."""
        k = self.k_norm(self.to_k(ctx))
        if pe is not None:
            k = apply_rope(k, *pe, rope_type)
        return k, self.to_v(ctx)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: object | None, backend: str = "sdpa"
    ) -> torch.Tensor:
        """Attention of prepared q over k/v, then the output projection.

        ``mask``: None, a dense bool/additive tensor, or an object with ``query_blocks`` /
        ``key_blocks`` / ``dense()`` (pipeline.masks.BlockCausalMask). The 'ofrt' backend consumes
        block ids directly; a windowed rule or an additive mask falls back to SDPA.
        """
        if backend == "ofrt" and (mask is None or getattr(mask, "window", 1) is None):
            ids = None if mask is None else (mask.query_blocks, mask.key_blocks)  # type: ignore[attr-defined]
            return self.to_out(kernel_attention(q, k, v, self.heads, ids))
        if mask is not None and hasattr(mask, "dense"):
            mask = mask.dense().to(q.device)
        return self.to_out(sdpa(q, k, v, self.heads, mask))  # type: ignore[arg-type]
