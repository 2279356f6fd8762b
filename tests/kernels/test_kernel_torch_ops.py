"""The ``ofrt`` torch custom ops: opcheck, CPU dispatch to the reference, autograd, torch.export."""

from __future__ import annotations

import inspect

import pytest
import torch
from kernels_testlib import block_ids, cu, make_paged_case
from omniforcing_rt.kernels import torch_ops  # noqa: F401  (registers torch.ops.ofrt.*)
from omniforcing_rt.kernels.reference import block_causal_attention as ref_attn
from omniforcing_rt.kernels.registry import OPS
from torch.library import opcheck

OFRT = torch.ops.ofrt


def _paged_args() -> tuple:  # type: ignore[type-arg]
    case = make_paged_case([5, 3], [5, 2], [9, 0], heads=2, head_dim=16, page_size=4, dtype=torch.float32)
    return (*case.args(), case.max_q, None)


def _dense_args(requires_grad: bool) -> tuple:  # type: ignore[type-arg]
    qb, kb = block_ids([4, 5, 4]), torch.cat([torch.zeros(2, dtype=torch.int32), block_ids([3, 3, 3])])
    q = torch.randn(2, 13, 2, 16, requires_grad=requires_grad)
    k = torch.randn(2, 11, 1, 16, requires_grad=requires_grad)
    v = torch.randn(2, 11, 1, 16, requires_grad=requires_grad)
    return q, k, v, qb, kb, None


def _append_args() -> tuple:  # type: ignore[type-arg]
    kc, vc = torch.zeros(4, 4, 2, 8), torch.zeros(4, 4, 2, 8)
    return (torch.randn(5, 2, 8), torch.randn(5, 2, 8), cu([2, 3]), kc, vc,
            torch.tensor([[0, 1], [2, 3]], dtype=torch.int32), torch.tensor([1, 3], dtype=torch.int32), 3)  # fmt: skip


OPCHECK_CASES = {
    "block_causal_attention": lambda: _paged_args(),
    "block_causal_attention_dense": lambda: _dense_args(requires_grad=True),
    "paged_kv_append": _append_args,
    "rope_av": lambda: (
        torch.randn(5, 2, 8),
        torch.randn(5, 1, 4),
        torch.randn(5, 1, 4),
        None,
        False,
        torch.tensor([1, 0, 0, 0, 0], dtype=torch.bool),
    ),  # fmt: skip
    "adaln_modulate": lambda: (torch.randn(2, 3, 16), torch.randn(2, 1, 16), torch.randn(16), 1e-6),
    "gated_residual": lambda: (torch.randn(2, 3, 16), torch.randn(2, 3, 16), torch.randn(2, 1, 16)),
    "x0_renoise": lambda: (*(torch.randn(2, 3, 4) for _ in range(3)), torch.tensor([0.5, 0.9]), torch.tensor([0.2])),
}


@pytest.mark.parametrize("name", list(OPCHECK_CASES))
def test_opcheck(name: str) -> None:
    opcheck(getattr(OFRT, name).default, OPCHECK_CASES[name]())


def test_every_registry_op_is_a_torch_op() -> None:
    assert set(OPS) == set(OPCHECK_CASES)
    for name in OPS:
        assert hasattr(OFRT, name)


def test_cpu_dispatch_runs_the_reference() -> None:
    args = _paged_args()
    expected = ref_attn.block_causal_attention(*args[:9])
    assert torch.equal(OFRT.block_causal_attention(*args), expected)
    kn, vn, cu_, kc, vc, pt, sp, n = _append_args()
    OFRT.paged_kv_append(kn, vn, cu_, kc, vc, pt, sp, n)
    # stream 0: rows 0-1 at positions 1-2 (page 0); stream 1: rows 2-4 at positions 3-5 (pages 2, 3)
    assert torch.equal(kc[0, 1:3], kn[:2]) and torch.equal(kc[2, 3], kn[2]) and torch.equal(vc[3, :2], vn[3:5])


def test_dense_op_autograd_matches_reference_autograd() -> None:
    q, k, v, qb, kb, _ = _dense_args(requires_grad=True)
    out, lse = OFRT.block_causal_attention_dense(q, k, v, qb, kb, None)
    assert not lse.requires_grad
    dout = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), dout)
    ref_out, _ = ref_attn.block_causal_attention_dense(q, k, v, qb, kb)
    ref_grads = torch.autograd.grad(ref_out, (q, k, v), dout)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


class _TinyBlock(torch.nn.Module):
    """AdaLN -> RoPE -> paged attention -> gated residual, all through ofrt ops."""

    def forward(self, x, shift, scale, gate, cos, sin, k_cache, v_cache, page_table, cache_lens):  # type: ignore[no-untyped-def]
        h = OFRT.adaln_modulate(x, shift, scale, 1e-6)  # [1, T, 32]
        qkv = h[0].reshape(h.shape[1], 2, 16)
        q = OFRT.rope_av(qkv, cos, sin, None, False, None)
        cu_ = torch.tensor([0, qkv.shape[0]], dtype=torch.int32)
        attn = OFRT.block_causal_attention(q, q, qkv, cu_, cu_, k_cache, v_cache, page_table, cache_lens, qkv.shape[0])
        return OFRT.gated_residual(x, attn.reshape(1, -1, 32), gate)


def test_torch_export_traces_the_ops() -> None:
    t = 6
    args = (torch.randn(1, t, 32), torch.randn(32), torch.randn(32), torch.randn(32), torch.randn(t, 1, 8),
            torch.randn(t, 1, 8), torch.randn(3, 4, 2, 16), torch.randn(3, 4, 2, 16),
            torch.tensor([[2, 0]], dtype=torch.int32), torch.tensor([7], dtype=torch.int32))  # fmt: skip
    module = _TinyBlock()
    ep = torch.export.export(module, args)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {"ofrt.adaln_modulate.default", "ofrt.rope_av.default", "ofrt.block_causal_attention.default",
            "ofrt.gated_residual.default"} <= targets  # fmt: skip
    torch.testing.assert_close(ep.module()(*args), module(*args))


def test_registry_implementations_share_the_reference_signature() -> None:
    for spec in OPS.values():
        ref_params = list(inspect.signature(spec.impl("reference")).parameters)
        for impl in spec.impls:  # the CUDA wrappers import without a GPU; only calling them needs one
            assert list(inspect.signature(spec.impl(impl)).parameters) == ref_params, (spec.name, impl)
