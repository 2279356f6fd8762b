"""Reference ``paged_kv_append``: write a block's K/V into its cache pages (exact data movement).

Same signature as ``kernels/triton/paged_kv.py``. Pure indexing, no arithmetic, so every
backend must match it bit for bit.
"""

from __future__ import annotations

import torch

from .._paged_kv_args import validate_append


def _stream_slots(
    page_table_row: torch.Tensor, start: int, n: int, page_size: int, num_pages: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(token index, page, slot) of the tokens of one stream that land on a valid page."""
    tok = torch.arange(n, device=page_table_row.device)
    pos = start + tok
    pidx = torch.div(pos, page_size, rounding_mode="floor")
    in_row = (pos >= 0) & (pidx < page_table_row.shape[0])
    tok, pos, pidx = tok[in_row], pos[in_row], pidx[in_row]
    page = page_table_row.long()[pidx]
    ok = (page >= 0) & (page < num_pages)
    return tok[ok], page[ok], (pos % page_size)[ok]


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
    """Copy token i of stream b to logical position ``start_pos[b] + i`` of its pages, in place.

    Args:
        k_new, v_new: [T, Hk, D] new keys/values, streams packed back to back.
        cu_seqlens: [B + 1] int32 offsets into k_new/v_new.
        k_cache, v_cache: [num_pages, page_size, Hk, D], written in place.
        page_table: [B, max_pages] int32, pages of each stream in logical order.
        start_pos: [B] int32 logical position of each stream's first new token.
        max_seqlen: unused here (the fast kernels size their grid with it).
    """
    dims = validate_append(k_new, v_new, cu_seqlens, k_cache, v_cache, page_table, start_pos)
    cu, starts = cu_seqlens.tolist(), start_pos.tolist()
    for b in range(dims.batch):
        tok, page, slot = _stream_slots(page_table[b], starts[b], cu[b + 1] - cu[b], dims.page_size, dims.num_pages)
        rows = cu[b] + tok
        k_cache[page, slot] = k_new[rows]
        v_cache[page, slot] = v_new[rows]


def append_positions_in_range(
    cu_seqlens: torch.Tensor, page_table: torch.Tensor, start_pos: torch.Tensor, page_size: int, num_pages: int
) -> list[str]:
    """Host-side debug check: the problems that would make an append skip tokens (empty = fine)."""
    problems = []
    cu, starts = cu_seqlens.tolist(), start_pos.tolist()
    for b in range(page_table.shape[0]):
        n = cu[b + 1] - cu[b]
        tok, _, _ = _stream_slots(page_table[b], starts[b], n, page_size, num_pages)
        if tok.numel() != n:
            problems.append(f"stream {b}: {n - tok.numel()} of {n} tokens fall outside its pages")
    return problems
