"""block_causal_attention: paged (streaming) and dense (training) forms, forward and backward."""

from __future__ import annotations

import pytest
import torch
from kernels_testlib import assert_matches, block_ids, cu, make_paged_case
from omniforcing_rt.kernels.reference import block_causal_attention as ref
from omniforcing_rt.kernels.registry import get_op
from omniforcing_rt.kernels.triton import block_causal_attention as tri
from omniforcing_rt.kernels.triton import block_causal_attention_bwd as tri_bwd

from omniforcing_rt.errors import InputError, UnsupportedError

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
OP, DENSE = "block_causal_attention", "block_causal_attention_dense"
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA kernel needs a GPU")

# Each entry: q lens, kv lens, cache lens, heads, kv heads, head dim, page size (awkward on purpose).
AWKWARD = {
    "b3_gqa_ps16": ([7, 1, 127], [7, 0, 5], [100, 0, 33], 4, 2, 64, 16),
    "q385_ps64_d128": ([385], [385], [130], 1, 1, 128, 64),
    "empty_stream_ps128": ([5, 1], [0, 3], [0, 129], 2, 2, 64, 128),
    "audio_25_over_126": ([25], [25], [101], 4, 4, 64, 16),
}


def _run_paged(impl: str, case, device: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    fn = get_op(OP).impl(impl)
    return fn(*case.args(device), max_seqlen_q=case.max_q)


@pytest.mark.usefixtures("gpu_tiles")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", list(AWKWARD), ids=str)
def test_paged_triton_matches_reference(shape: str, dtype: torch.dtype, device: str) -> None:
    q_lens, kv_lens, cache_lens, h, hk, d, ps = AWKWARD[shape]
    case = make_paged_case(q_lens, kv_lens, cache_lens, heads=h, kv_heads=hk, head_dim=d, page_size=ps, dtype=dtype)
    expected = ref.block_causal_attention(*case.args())
    assert_matches(OP, "triton", _run_paged("triton", case, device), expected)


# Real LTX-2 geometry (spec B.1, C.2): token counts and head dims are real; heads are cut to 1-2
# for the 1152-query cases so the CPU interpreter stays within seconds (heads are independent
# programs, so more of them add time, not coverage). The full 32-head case is marked slow.
REAL = {
    "video_self_1152q_6144hist": ([1152], [1152], [6144], 1, 128, 64),
    "video_self_block0_1536q": ([1536], [1536], [0], 1, 128, 64),
    "audio_self_25q_32h": ([25], [25], [101], 32, 64, 16),
    "v2a_25q_over_video_7296k": ([25], [1152], [6144], 2, 64, 128),
    "a2v_1152q_over_audio_126k": ([1152], [25], [101], 2, 64, 16),
}


@pytest.mark.parametrize("shape", list(REAL), ids=str)
def test_paged_triton_real_geometry(shape: str, device: str) -> None:
    q_lens, kv_lens, cache_lens, h, d, ps = REAL[shape]
    case = make_paged_case(q_lens, kv_lens, cache_lens, heads=h, head_dim=d, page_size=ps, dtype=torch.bfloat16)
    expected = ref.block_causal_attention(*case.args())
    assert_matches(OP, "triton", _run_paged("triton", case, device), expected)


@pytest.mark.slow
def test_paged_triton_video_self_full_heads(device: str) -> None:
    case = make_paged_case([1152], [1152], [6144], heads=32, head_dim=128, page_size=64, dtype=torch.bfloat16)
    assert_matches(OP, "triton", _run_paged("triton", case, device), ref.block_causal_attention(*case.args()))


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", ["b3_gqa_ps16", "q385_ps64_d128", "empty_stream_ps128"], ids=str)
def test_paged_cuda_matches_reference(shape: str, dtype: torch.dtype) -> None:
    q_lens, kv_lens, cache_lens, h, hk, d, ps = AWKWARD[shape]
    case = make_paged_case(q_lens, kv_lens, cache_lens, heads=h, kv_heads=hk, head_dim=d, page_size=ps, dtype=dtype)
    assert_matches(OP, "cuda", _run_paged("cuda", case, "cuda"), ref.block_causal_attention(*case.args()))


@needs_gpu
def test_paged_triton_cuda_graph_replay_reads_new_cache_lens() -> None:
    """The paged call is graph-safe (no host sync with max_seqlen_q given): capture once, then
    replay after the plan step rewrites cache_lens in place, as the engine does per block."""
    case = make_paged_case([64], [64], [200], heads=2, head_dim=64, page_size=16, dtype=torch.bfloat16)
    args = [a.cuda() for a in case.args()]
    fn = get_op(OP).impl("triton")
    fn(*args, max_seqlen_q=64)  # compile outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(*args, max_seqlen_q=64)
    for hist in (200, 37, 0):
        args[8].fill_(hist)
        graph.replay()
        expected = ref.block_causal_attention(*case.args()[:8], torch.tensor([hist], dtype=torch.int32))
        assert_matches(OP, "triton", out, expected)


def test_paged_equals_dense_block_causal(device: str) -> None:
    """Streaming identity (spec C.1): the last block attending over paged history plus itself
    equals the dense block-causal forward over the whole sequence, restricted to that block."""
    blocks = [40, 33, 33, 33]  # a 4-3-3-3-like layout in miniature
    total, last = sum(blocks), blocks[-1]
    h, d, ps = 2, 32, 16
    q, k, v = (torch.randn(1, total, h, d) for _ in range(3))
    ids = block_ids(blocks)
    dense, _ = tri.dense_forward(q.to(device), k.to(device), v.to(device), ids.to(device), ids.to(device))
    hist = total - last
    n_pages = -(-hist // ps)
    perm = torch.randperm(n_pages + 2)[:n_pages]  # history scattered over a larger pool
    k_cache = torch.randn(n_pages + 2, ps, h, d)
    v_cache = torch.randn(n_pages + 2, ps, h, d)
    pad = n_pages * ps - hist
    k_cache[perm] = torch.cat([k[0, :hist], torch.zeros(pad, h, d)]).reshape(n_pages, ps, h, d)
    v_cache[perm] = torch.cat([v[0, :hist], torch.zeros(pad, h, d)]).reshape(n_pages, ps, h, d)
    args = (q[0, hist:], k[0, hist:], v[0, hist:], cu([last]), cu([last]), k_cache, v_cache,
            perm[None].to(torch.int32), torch.tensor([hist], dtype=torch.int32))  # fmt: skip
    paged = tri.block_causal_attention(*(a.to(device) for a in args), max_seqlen_q=last)
    torch.testing.assert_close(paged.cpu(), dense[0, hist:].cpu(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref.block_causal_attention(*args), dense[0, hist:].cpu(), atol=1e-5, rtol=1e-5)


def _dense_inputs(q_len: int, k_len: int, h: int, hk: int, d: int, dtype: torch.dtype, batch: int = 1):
    q = torch.randn(batch, q_len, h, d).to(dtype)
    k = torch.randn(batch, k_len, hk, d).to(dtype)
    v = torch.randn(batch, k_len, hk, d).to(dtype)
    return q, k, v


def _asymmetric_ids(q_blocks: list[int], k_blocks: list[int], sinks: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Video-like query ids and audio-like key ids (different block sizes), optional sink keys (id 0)."""
    kb = block_ids(k_blocks)
    if sinks:
        kb = torch.cat([torch.zeros(sinks, dtype=torch.int32), kb])
    return block_ids(q_blocks), kb


# Each entry: query block sizes, key block sizes, sink keys, heads, kv heads, head dim, batch.
DENSE_SHAPES = {
    "video_self_4_3_3": ([64, 48, 48], [64, 48, 48], 0, 2, 2, 64, 2),
    "a2v_video_q_audio_k_sinks": ([64, 48, 48], [26, 25, 25], 16, 2, 2, 64, 1),
    "v2a_audio_q_video_k_gqa": ([26, 25, 25], [64, 48, 48], 0, 4, 2, 32, 1),
    "tails_7_127_385": ([7, 120, 258], [1, 126, 258], 0, 1, 1, 128, 1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", list(DENSE_SHAPES), ids=str)
def test_dense_forward_matches_reference(shape: str, dtype: torch.dtype, device: str) -> None:
    qbl, kbl, sinks, h, hk, d, batch = DENSE_SHAPES[shape]
    qb, kb = _asymmetric_ids(qbl, kbl, sinks)
    q, k, v = _dense_inputs(len(qb), len(kb), h, hk, d, dtype, batch)
    out, lse = tri.dense_forward(q.to(device), k.to(device), v.to(device), qb.to(device), kb.to(device))
    ref_out, ref_lse = ref.block_causal_attention_dense(q, k, v, qb, kb)
    assert_matches(DENSE, "triton", out, ref_out)
    torch.testing.assert_close(lse.cpu(), ref_lse, atol=1e-4, rtol=1e-5)


@pytest.mark.usefixtures("gpu_tiles")
def test_dense_forward_gpu_tiles_fully_masked_rows(device: str) -> None:
    """Queries whose block id is below every key's see nothing: output 0, lse -inf, grads 0."""
    qb = torch.tensor([-1] * 5 + [0] * 60 + [1] * 62, dtype=torch.int32)
    kb = torch.tensor([0] * 70 + [1] * 70, dtype=torch.int32)
    q, k, v = _dense_inputs(len(qb), len(kb), 2, 2, 64, torch.float32)
    out, lse = tri.dense_forward(q.to(device), k.to(device), v.to(device), qb.to(device), kb.to(device))
    assert torch.all(out[:, :5].cpu() == 0) and torch.all(lse[:, :, :5].cpu() == float("-inf"))
    assert torch.all(torch.isfinite(lse[:, :, 5:]))
    ref_out, _ = ref.block_causal_attention_dense(q, k, v, qb, kb)
    assert_matches(DENSE, "triton", out, ref_out)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", ["a2v_video_q_audio_k_sinks", "v2a_audio_q_video_k_gqa"], ids=str)
def test_dense_backward_matches_autograd_through_reference(shape: str, dtype: torch.dtype, device: str) -> None:
    qbl, kbl, sinks, h, hk, d, batch = DENSE_SHAPES[shape]
    qb, kb = _asymmetric_ids(qbl, kbl, sinks)
    qb[:3] = -1  # fully masked rows must get zero gradient, not NaN
    q, k, v = _dense_inputs(len(qb), len(kb), h, hk, d, dtype, batch)
    dout = torch.randn(q.shape).to(dtype)
    leaves = [t.detach().clone().to(device).requires_grad_(True) for t in (q, k, v)]
    out, _ = tri_bwd.block_causal_attention_dense(*leaves, qb.to(device), kb.to(device))
    out.backward(dout.to(device))
    ref_leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    ref_out, _ = ref.block_causal_attention_dense(*ref_leaves, qb, kb)
    ref_out.backward(dout)
    assert_matches(DENSE, "triton", out.detach(), ref_out.detach())
    for got, want in zip(leaves, ref_leaves):
        assert_matches(DENSE, "triton", got.grad, want.grad, grad=True)
    assert torch.all(leaves[0].grad[:, :3].cpu() == 0)


def test_reference_explicit_backward_matches_autograd() -> None:
    qb, kb = _asymmetric_ids([9, 8, 8], [5, 6, 6], sinks=2)
    qb[0] = -1
    q, k, v = _dense_inputs(len(qb), len(kb), 4, 2, 16, torch.float32, batch=2)
    dout = torch.randn(q.shape)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out, lse = ref.block_causal_attention_dense(*leaves, qb, kb)
    out.backward(dout)
    grads = ref.block_causal_attention_dense_backward(dout, q, k, v, qb, kb, out.detach(), lse)
    for got, leaf in zip(grads, leaves):
        torch.testing.assert_close(got, leaf.grad, atol=1e-6, rtol=1e-6)  # both fp64 math, fp32 out


def test_block_causal_rule_no_future_leakage_and_sinks(device: str) -> None:
    """Changing keys of block 2 leaves queries of blocks 0-1 unchanged; changing a sink key
    (block id 0) changes every query's output."""
    qb, kb = _asymmetric_ids([30, 30, 30], [10, 10, 10], sinks=4)
    q, k, v = _dense_inputs(len(qb), len(kb), 2, 2, 32, torch.float32)

    def run(kk: torch.Tensor, vv: torch.Tensor) -> torch.Tensor:
        out, _ = tri.dense_forward(q.to(device), kk.to(device), vv.to(device), qb.to(device), kb.to(device))
        return out.cpu()

    base = run(k, v)
    v_future = v.clone()
    v_future[:, kb == 2] += 1.0
    changed = (run(k, v_future) - base).abs().amax(dim=(0, 2, 3)) > 0
    assert not changed[qb < 2].any() and changed[qb == 2].all()
    v_sink = v.clone()
    v_sink[:, :4] += 1.0
    assert ((run(k, v_sink) - base).abs().amax(dim=(0, 2, 3)) > 0).all()


def test_argument_errors() -> None:
    case = make_paged_case([4], [4], [8], heads=2, head_dim=16, page_size=4, dtype=torch.float32)
    args = list(case.args())
    with pytest.raises(InputError):
        ref.block_causal_attention(args[0][:, :1], *args[1:])  # 1 query head vs 2 kv heads
    with pytest.raises(InputError):
        tri.block_causal_attention(*args[:3], cu([2, 2]), *args[4:])  # 2 streams vs 1 page-table row
    with pytest.raises(UnsupportedError):
        tri.block_causal_attention(*(a.double() if a.is_floating_point() else a for a in args))
    with pytest.raises(UnsupportedError):
        get_op(OP).impl("cuda")(*args)  # CPU tensors (or no GPU at all)
    small = make_paged_case([4], [4], [8], heads=2, head_dim=8, page_size=4, dtype=torch.float32)
    with pytest.raises(UnsupportedError):
        tri.block_causal_attention(*small.args())  # head dim 8 is not compiled


def test_triton_on_cpu_without_interpreter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    case = make_paged_case([4], [4], [8], heads=2, head_dim=16, page_size=4, dtype=torch.float32)
    with pytest.raises(UnsupportedError, match="CUDA tensors"):
        tri.block_causal_attention(*case.args())
