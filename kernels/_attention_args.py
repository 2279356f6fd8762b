"""Argument validation shared by every ``block_causal_attention`` implementation.

Two call forms exist (see ``kernels/README.md``):

* **paged** (streaming inference): queries of the current block, packed varlen
  ``q [Tq, Hq, D]`` with ``cu_seqlens_q [B + 1]``; the block's own keys/values packed the same
  way (``k_new/v_new [Tkv, Hk, D]``, ``cu_seqlens_kv``); history read through
  ``page_table [B, max_pages]`` from ``k_cache/v_cache [num_pages, page_size, Hk, D]``, of which
  the first ``cache_lens[b]`` logical tokens are valid. Every query sees all its history and its
  whole block (spec B.2 with a KV cache: no mask).
* **dense** (offline / training): ``q [B, Sq, Hq, D]``, ``k/v [B, Sk, Hk, D]``, per-token block
  ids ``q_block_ids [B, Sq]`` (or ``[Sq]``) and ``k_block_ids [B, Sk]`` (or ``[Sk]``); key j is
  visible to query i iff ``k_block_ids[j] <= q_block_ids[i]``. Query and key ids may come from
  different modalities (A->V, V->A). Sink keys carry block id 0 (or any id <= every query id).

The checks read shapes only, never tensor values, so they cost no host/device sync.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from omniforcing_rt.errors import InputError

from ._common import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    check_cu_seqlens,
    check_dim,
    check_dtype,
    check_last_contiguous,
    check_same_device,
    check_same_dtype,
)


@dataclass(frozen=True)
class PagedAttentionDims:
    """Sizes of one paged call, read from the argument shapes."""

    batch: int
    """Number of streams B."""
    q_heads: int
    """Query heads Hq."""
    kv_heads: int
    """Key/value heads Hk (Hq is a multiple of Hk)."""
    head_dim: int
    """Head dim D, shared by q, k and v."""
    page_size: int
    """Tokens per cache page."""
    max_pages: int
    """Columns of the page table."""


@dataclass(frozen=True)
class DenseAttentionDims:
    """Sizes of one dense (training) call."""

    batch: int
    q_len: int
    k_len: int
    q_heads: int
    kv_heads: int
    head_dim: int


def default_scale(head_dim: int, sm_scale: float | None) -> float:
    """The softmax scale: 1/sqrt(D) unless given (spec A.7)."""
    return 1.0 / math.sqrt(head_dim) if sm_scale is None else float(sm_scale)


def _check_heads(q_heads: int, kv_heads: int) -> None:
    if kv_heads < 1 or q_heads % kv_heads != 0:
        raise InputError(f"query heads ({q_heads}) must be a multiple of key/value heads ({kv_heads})")


def validate_paged(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_kv: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    page_table: torch.Tensor,
    cache_lens: torch.Tensor,
) -> PagedAttentionDims:
    """Check the paged call form and return its sizes. Raises InputError / UnsupportedError."""
    check_dim("q", q, 3)
    check_dim("k_new", k_new, 3)
    check_dim("v_new", v_new, 3)
    check_dim("k_cache", k_cache, 4)
    check_dim("v_cache", v_cache, 4)
    check_dim("page_table", page_table, 2)
    check_dim("cache_lens", cache_lens, 1)
    check_dtype("q", q, FLOAT_DTYPES)
    check_same_dtype("q, k_new, v_new, k_cache, v_cache", q, k_new, v_new, k_cache, v_cache)
    check_dtype("page_table", page_table, INDEX_DTYPES)
    check_dtype("cache_lens", cache_lens, INDEX_DTYPES)
    check_same_device(
        "all tensors", q, k_new, v_new, k_cache, v_cache, page_table, cache_lens, cu_seqlens_q, cu_seqlens_kv
    )
    batch = check_cu_seqlens("cu_seqlens_q", cu_seqlens_q)
    check_cu_seqlens("cu_seqlens_kv", cu_seqlens_kv, batch)
    if page_table.shape[0] != batch or cache_lens.shape[0] != batch:
        raise InputError(
            f"page_table {tuple(page_table.shape)} and cache_lens {tuple(cache_lens.shape)} need {batch} rows"
        )
    t_q, q_heads, head_dim = q.shape
    kv_heads = k_new.shape[1]
    _check_heads(q_heads, kv_heads)
    if k_new.shape != v_new.shape or k_new.shape[1:] != (kv_heads, head_dim):
        raise InputError(f"k_new {tuple(k_new.shape)} / v_new {tuple(v_new.shape)} must be [Tkv, Hk, {head_dim}]")
    if k_cache.shape != v_cache.shape or k_cache.shape[2:] != (kv_heads, head_dim):
        raise InputError(
            f"k_cache {tuple(k_cache.shape)} / v_cache {tuple(v_cache.shape)} must be [P, page_size, Hk, D]"
        )
    for name, t in (("q", q), ("k_new", k_new), ("v_new", v_new), ("k_cache", k_cache), ("v_cache", v_cache)):
        check_last_contiguous(name, t)
    if k_cache.shape[1] < 1:
        raise InputError("page_size must be >= 1")
    return PagedAttentionDims(batch, q_heads, kv_heads, head_dim, k_cache.shape[1], page_table.shape[1])


def normalize_block_ids(name: str, ids: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """Return block ids as a contiguous int32 ``[B, S]`` tensor (a ``[S]`` input is broadcast)."""
    check_dtype(name, ids, INDEX_DTYPES)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0).expand(batch, -1)
    if ids.dim() != 2 or tuple(ids.shape) != (batch, length):
        raise InputError(f"{name} must be [{length}] or [{batch}, {length}], got {tuple(ids.shape)}")
    return ids.contiguous()


def validate_dense(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_block_ids: torch.Tensor,
    k_block_ids: torch.Tensor,
) -> DenseAttentionDims:
    """Check the dense (training) call form and return its sizes."""
    check_dim("q", q, 4)
    check_dim("k", k, 4)
    check_dim("v", v, 4)
    check_dtype("q", q, FLOAT_DTYPES)
    check_same_dtype("q, k, v", q, k, v)
    check_same_device("q, k, v, block ids", q, k, v, q_block_ids, k_block_ids)
    batch, q_len, q_heads, head_dim = q.shape
    if k.shape != v.shape or k.shape[0] != batch or k.shape[3] != head_dim:
        raise InputError(f"k {tuple(k.shape)} / v {tuple(v.shape)} must be [{batch}, Sk, Hk, {head_dim}]")
    _check_heads(q_heads, k.shape[2])
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_last_contiguous(name, t)
    normalize_block_ids("q_block_ids", q_block_ids, batch, q_len)
    normalize_block_ids("k_block_ids", k_block_ids, batch, k.shape[1])
    return DenseAttentionDims(batch, q_len, k.shape[1], q_heads, k.shape[2], head_dim)
