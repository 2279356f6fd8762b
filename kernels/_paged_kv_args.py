"""Argument validation shared by every ``paged_kv_append`` implementation.

Layout: the block's new keys/values are packed varlen ``k_new/v_new [T, Hk, D]`` with
``cu_seqlens [B + 1]``; stream b's token i goes to logical position ``start_pos[b] + i``, i.e.
page ``page_table[b, pos // page_size]``, slot ``pos % page_size`` of
``k_cache/v_cache [num_pages, page_size, Hk, D]``. The copy is exact (no dtype conversion).
A token whose logical position falls outside the page-table row, or whose page id is negative
or >= num_pages, is skipped on every backend (a GPU kernel cannot raise without a host sync);
``kernels/reference/paged_kv.py::append_positions_in_range`` checks a call on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omniforcing_rt.errors import InputError

from ._common import (
    INDEX_DTYPES,
    check_cu_seqlens,
    check_dim,
    check_dtype,
    check_same_device,
    check_same_dtype,
)

CACHE_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class PagedAppendDims:
    """Sizes of one append call."""

    batch: int
    kv_heads: int
    head_dim: int
    page_size: int
    max_pages: int
    num_pages: int


def _check_rows(name: str, t: torch.Tensor) -> None:
    """The [Hk, D] part of every token must be one contiguous row (the kernels copy rows)."""
    if t.numel() > 0 and (t.stride(-1) != 1 or t.stride(-2) != t.shape[-1]):
        raise InputError(f"{name} must have contiguous [Hk, D] rows, strides {t.stride()}")


def validate_append(
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    cu_seqlens: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    page_table: torch.Tensor,
    start_pos: torch.Tensor,
) -> PagedAppendDims:
    """Check an append call and return its sizes. Raises InputError / UnsupportedError."""
    check_dim("k_new", k_new, 3)
    check_dim("v_new", v_new, 3)
    check_dim("k_cache", k_cache, 4)
    check_dim("v_cache", v_cache, 4)
    check_dim("page_table", page_table, 2)
    check_dim("start_pos", start_pos, 1)
    check_dtype("k_cache", k_cache, CACHE_DTYPES)
    check_same_dtype("k_new, v_new, k_cache, v_cache", k_new, v_new, k_cache, v_cache)
    check_dtype("page_table", page_table, INDEX_DTYPES)
    check_dtype("start_pos", start_pos, INDEX_DTYPES)
    check_same_device("all tensors", k_new, v_new, k_cache, v_cache, page_table, start_pos, cu_seqlens)
    batch = check_cu_seqlens("cu_seqlens", cu_seqlens)
    if page_table.shape[0] != batch or start_pos.shape[0] != batch:
        raise InputError(
            f"page_table {tuple(page_table.shape)} and start_pos {tuple(start_pos.shape)} need {batch} rows"
        )
    if k_new.shape != v_new.shape:
        raise InputError(f"k_new {tuple(k_new.shape)} and v_new {tuple(v_new.shape)} differ")
    if k_cache.shape != v_cache.shape or k_cache.shape[2:] != k_new.shape[1:]:
        raise InputError(f"caches {tuple(k_cache.shape)} must be [P, page_size, {k_new.shape[1]}, {k_new.shape[2]}]")
    for name, t in (("k_new", k_new), ("v_new", v_new), ("k_cache", k_cache), ("v_cache", v_cache)):
        _check_rows(name, t)
    return PagedAppendDims(
        batch, k_new.shape[1], k_new.shape[2], k_cache.shape[1], page_table.shape[1], k_cache.shape[0]
    )
