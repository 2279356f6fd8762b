"""Input builders and comparison helpers shared by the kernel tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omniforcing_rt.kernels.registry import get_op

#: (op, impl, dtype) -> largest max-abs difference seen, printed at the end of the session.
MAX_DIFFS: dict[tuple[str, str, str], float] = {}


def assert_matches(op: str, impl: str, actual: torch.Tensor, expected: torch.Tensor, grad: bool = False) -> float:
    """assert_close with the registry tolerance of ``op``; records and returns the max diff."""
    tol = get_op(op).tolerance(expected.dtype, grad=grad)
    actual, expected = actual.cpu(), expected.cpu()
    diff = (actual.double() - expected.double()).abs().nan_to_num(nan=float("inf"))
    max_diff = float(diff.max()) if diff.numel() else 0.0
    key = (op + ("(grad)" if grad else ""), impl, str(expected.dtype).replace("torch.", ""))
    MAX_DIFFS[key] = max(MAX_DIFFS.get(key, 0.0), max_diff)
    if tol.atol == 0 and tol.rtol == 0:
        assert torch.equal(actual, expected), f"{op}/{impl}: not bit-exact (max diff {max_diff})"
    else:
        torch.testing.assert_close(actual, expected, atol=tol.atol, rtol=tol.rtol)
    return max_diff


@dataclass
class PagedCase:
    """Inputs of one paged attention / append call (CPU tensors)."""

    q: torch.Tensor
    k_new: torch.Tensor
    v_new: torch.Tensor
    cu_q: torch.Tensor
    cu_kv: torch.Tensor
    k_cache: torch.Tensor
    v_cache: torch.Tensor
    page_table: torch.Tensor
    cache_lens: torch.Tensor
    max_q: int

    def args(self, device: str = "cpu") -> tuple[torch.Tensor, ...]:
        return tuple(
            t.to(device)
            for t in (self.q, self.k_new, self.v_new, self.cu_q, self.cu_kv, self.k_cache, self.v_cache,
                      self.page_table, self.cache_lens)
        )  # fmt: skip


def cu(lens: list[int]) -> torch.Tensor:
    """[B + 1] int32 offsets from lengths."""
    out = [0]
    for n in lens:
        out.append(out[-1] + n)
    return torch.tensor(out, dtype=torch.int32)


def make_paged_case(
    q_lens: list[int],
    kv_lens: list[int],
    cache_lens: list[int],
    *,
    heads: int,
    kv_heads: int | None = None,
    head_dim: int,
    page_size: int,
    dtype: torch.dtype,
    spare_pages: int = 3,
) -> PagedCase:
    """Random paged inputs; each stream's pages are a random, non-contiguous subset of the pool."""
    kv_heads = kv_heads or heads
    max_pages = max(1, max(-(-c // page_size) for c in cache_lens))
    num_pages = len(q_lens) * max_pages + spare_pages
    perm = torch.randperm(num_pages)[: len(q_lens) * max_pages].reshape(len(q_lens), max_pages)
    k_cache = torch.randn(num_pages, page_size, kv_heads, head_dim).to(dtype)
    return PagedCase(
        q=torch.randn(sum(q_lens), heads, head_dim).to(dtype),
        k_new=torch.randn(sum(kv_lens), kv_heads, head_dim).to(dtype),
        v_new=torch.randn(sum(kv_lens), kv_heads, head_dim).to(dtype),
        cu_q=cu(q_lens),
        cu_kv=cu(kv_lens),
        k_cache=k_cache,
        v_cache=torch.randn_like(k_cache, dtype=torch.float32).to(dtype),
        page_table=perm.to(torch.int32),
        cache_lens=torch.tensor(cache_lens, dtype=torch.int32),
        max_q=max(q_lens),
    )


def block_ids(lens: list[int]) -> torch.Tensor:
    """Per-token block ids for consecutive blocks of the given lengths: [0]*l0 + [1]*l1 + ..."""
    return torch.cat([torch.full((n,), i, dtype=torch.int32) for i, n in enumerate(lens)])
