"""paged_kv_append: exact data movement into cache pages, and append-then-attend equivalence."""

from __future__ import annotations

import pytest
import torch
from kernels_testlib import assert_matches, cu, make_paged_case
from omniforcing_rt.kernels.reference import block_causal_attention as ref_attn
from omniforcing_rt.kernels.reference import paged_kv as ref
from omniforcing_rt.kernels.registry import get_op

from omniforcing_rt.errors import InputError

OP = "paged_kv_append"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
IMPLS = ["triton", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU"))]


def _append_case(lens: list[int], starts: list[int], page_size: int, heads: int, head_dim: int, dtype: torch.dtype):
    """Random new rows, a pool with spare pages, and page-table rows long enough for every write."""
    max_pages = max(-(-(s + n) // page_size) for s, n in zip(starts, lens))
    num_pages = len(lens) * max_pages + 2
    pt = torch.randperm(num_pages)[: len(lens) * max_pages].reshape(len(lens), max_pages).to(torch.int32)
    k_cache = torch.randn(num_pages, page_size, heads, head_dim).to(dtype)
    v_cache = torch.randn(num_pages, page_size, heads, head_dim).to(dtype)
    k_new = torch.randn(sum(lens), heads, head_dim).to(dtype)
    v_new = torch.randn(sum(lens), heads, head_dim).to(dtype)
    return k_new, v_new, cu(lens), k_cache, v_cache, pt, torch.tensor(starts, dtype=torch.int32)


def _run(impl: str, args: tuple, device: str) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[type-arg]
    moved = [a.to(device) for a in args]
    get_op(OP).impl(impl)(*moved)
    return moved[3].cpu(), moved[4].cpu()


# (lens, starts, page_size, heads, head_dim): 1/7/127/385 tokens, writes starting mid-page.
SHAPES = {
    "1_tok_ps16": ([1], [5], 16, 2, 16),
    "7_and_127_ps64": ([7, 127], [60, 3], 64, 4, 32),
    "385_ps128_midpage": ([385], [100], 128, 2, 64),
    "three_streams_ps16": ([7, 0, 127], [0, 9, 31], 16, 1, 8),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", list(SHAPES), ids=str)
def test_append_bit_exact(shape: str, dtype: torch.dtype, impl: str, device: str) -> None:
    args = _append_case(*SHAPES[shape], dtype=dtype)
    expected_k, expected_v = args[3].clone(), args[4].clone()
    ref.paged_kv_append(*args[:3], expected_k, expected_v, *args[5:])
    assert not torch.equal(expected_k, args[3]) or sum(SHAPES[shape][0]) == 0  # the reference wrote something
    got_k, got_v = _run(impl, tuple(a.clone() for a in args), "cuda" if impl == "cuda" else device)
    assert_matches(OP, impl, got_k, expected_k)  # whole pool: untouched pages must stay untouched
    assert_matches(OP, impl, got_v, expected_v)


def test_append_real_geometry_video_block(device: str) -> None:
    """One video block (1152 tokens x 32 heads x 128, bf16) appended after 4992 history tokens."""
    args = _append_case([1152], [4992], 64, 32, 128, torch.bfloat16)
    expected_k, expected_v = args[3].clone(), args[4].clone()
    ref.paged_kv_append(*args[:3], expected_k, expected_v, *args[5:])
    got_k, got_v = _run("triton", args, device)
    assert_matches(OP, "triton", got_k, expected_k)
    assert_matches(OP, "triton", got_v, expected_v)


def test_append_skips_out_of_range_tokens(device: str) -> None:
    """Tokens past the page-table row or on page id -1 are skipped by every backend alike."""
    args = list(_append_case([20, 20], [0, 0], 8, 1, 8, torch.float32))
    args[5] = args[5][:, :2].contiguous()  # rows hold 16 tokens: 4 tokens of each stream overflow
    args[5][1, 1] = -1  # unallocated page: tokens 8..15 of stream 1 are dropped too
    expected_k, expected_v = args[3].clone(), args[4].clone()
    ref.paged_kv_append(*args[:3], expected_k, expected_v, *args[5:])
    got_k, _ = _run("triton", tuple(args), device)
    assert torch.equal(got_k, expected_k)
    problems = ref.append_positions_in_range(args[2], args[5], args[6], 8, args[3].shape[0])
    assert problems == [
        "stream 0: 4 of 20 tokens fall outside its pages",
        "stream 1: 12 of 20 tokens fall outside its pages",
    ]


def test_append_then_attend_equals_attend_with_own_block(device: str) -> None:
    """Design step 4: append the block into its in-flight pages, then attend with the block
    counted as history and no own K/V - identical to attending with the block passed separately."""
    case = make_paged_case(
        [33, 7], [33, 7], [64, 21], heads=2, head_dim=32, page_size=16, dtype=torch.float32, spare_pages=0
    )
    pages_needed = [-(-(c + n) // 16) for c, n in ((64, 33), (21, 7))]
    extra = max(pages_needed) - case.page_table.shape[1]
    n_pool = case.k_cache.shape[0]
    pool_pages = torch.arange(n_pool, n_pool + 2 * extra, dtype=torch.int32).reshape(2, extra)
    page_table = torch.cat([case.page_table, pool_pages], dim=1)
    k_cache = torch.cat([case.k_cache, torch.zeros(2 * extra, *case.k_cache.shape[1:])])
    v_cache = torch.cat([case.v_cache, torch.zeros(2 * extra, *case.v_cache.shape[1:])])
    expected = ref_attn.block_causal_attention(
        case.q, case.k_new, case.v_new, case.cu_q, case.cu_kv, k_cache, v_cache, page_table, case.cache_lens
    )
    triton_append = get_op(OP).impl("triton")
    k_cache, v_cache, page_table = k_cache.to(device), v_cache.to(device), page_table.to(device)
    triton_append(case.k_new.to(device), case.v_new.to(device), case.cu_kv.to(device), k_cache, v_cache, page_table,
                  case.cache_lens.to(device))  # fmt: skip
    empty = torch.zeros(0, 2, 32, device=device)
    got = get_op("block_causal_attention").impl("triton")(
        case.q.to(device), empty, empty, case.cu_q.to(device), cu([0, 0]).to(device), k_cache, v_cache, page_table,
        (case.cache_lens + torch.tensor([33, 7], dtype=torch.int32)).to(device), max_seqlen_q=33,
    )  # fmt: skip
    torch.testing.assert_close(got.cpu(), expected, atol=1e-5, rtol=1e-5)


def test_append_argument_errors() -> None:
    args = list(_append_case([4], [0], 4, 2, 8, torch.float32))
    with pytest.raises(InputError):
        ref.paged_kv_append(args[0].half(), *args[1:])  # dtype differs from the cache
    with pytest.raises(InputError):
        ref.paged_kv_append(*args[:5], args[5], torch.tensor([0, 0], dtype=torch.int32))  # 2 starts, 1 stream
    with pytest.raises(InputError):
        ref.paged_kv_append(args[0].transpose(1, 2).contiguous().transpose(1, 2), *args[1:])  # rows not contiguous
