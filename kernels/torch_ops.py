"""The kernels as torch custom ops in the ``ofrt`` namespace (``torch.ops.ofrt.<op>``).

Each op has a written schema (inferred from the type hints below), a fake implementation so
``torch.compile`` / ``torch.export`` / AOTInductor can trace it without running it, a CPU
kernel (the fp64 reference) and a CUDA kernel (Triton). The dense attention op also has an
autograd formula: CUDA runs the Triton backward kernels; CPU runs the explicit fp64 reference
backward, recomputing P from q, k, v (the documented fallback - correct and slow, and the only
CPU training path since FlexAttention has no CPU backward, toolchain pitfall 11).

This module deliberately avoids ``from __future__ import annotations``: ``custom_op`` reads
the annotations at decoration time to build the schema.

Deployment note: ops defined here exist only in a Python process. An AOTInductor package that
contains them needs the same schemas registered from C++ (``csrc/torch_ops``) to load in the
C++ runtime.
"""

from typing import Any

import torch
from torch import Tensor
from torch.library import custom_op

from .reference import adaln_modulate as _ref_adaln
from .reference import block_causal_attention as _ref_attn
from .reference import paged_kv as _ref_paged
from .reference import rope_av as _ref_rope
from .reference import x0_renoise as _ref_x0


def _triton(module: str) -> Any:
    """Import a Triton module on first CUDA use, so the CPU path never needs Triton."""
    import importlib

    return importlib.import_module(f"omniforcing_rt.kernels.triton.{module}")


# ---------------------------------------------------------------------------------------------
# Paged block attention, the streaming inference form.


@custom_op("ofrt::block_causal_attention", mutates_args=())
def block_causal_attention(
    q: Tensor,
    k_new: Tensor,
    v_new: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_kv: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    page_table: Tensor,
    cache_lens: Tensor,
    max_seqlen_q: int,
    sm_scale: float | None = None,
) -> Tensor:
    """Paged block attention (see kernels/README.md). CPU: fp64 reference."""
    return _ref_attn.block_causal_attention(
        q, k_new, v_new, cu_seqlens_q, cu_seqlens_kv, k_cache, v_cache, page_table, cache_lens,
        max_seqlen_q=max_seqlen_q, sm_scale=sm_scale,
    )  # fmt: skip


@block_causal_attention.register_kernel("cuda")
def _(
    q, k_new, v_new, cu_seqlens_q, cu_seqlens_kv, k_cache, v_cache, page_table, cache_lens, max_seqlen_q, sm_scale=None
):  # type: ignore[no-untyped-def]
    return _triton("block_causal_attention").block_causal_attention(
        q, k_new, v_new, cu_seqlens_q, cu_seqlens_kv, k_cache, v_cache, page_table, cache_lens,
        max_seqlen_q=max_seqlen_q, sm_scale=sm_scale,
    )  # fmt: skip


@block_causal_attention.register_fake
def _(q, *_args, **_kwargs):  # type: ignore[no-untyped-def]
    return torch.empty_like(q)


# ---------------------------------------------------------------------------------------------
# Dense block-causal attention, the training form, with its backward.


@custom_op("ofrt::block_causal_attention_dense", mutates_args=())
def block_causal_attention_dense(
    q: Tensor, k: Tensor, v: Tensor, q_block_ids: Tensor, k_block_ids: Tensor, sm_scale: float | None = None
) -> tuple[Tensor, Tensor]:
    """Dense block-causal attention; returns (out, lse). CPU: fp64 reference."""
    with torch.no_grad():
        return _ref_attn.block_causal_attention_dense(q, k, v, q_block_ids, k_block_ids, sm_scale=sm_scale)


@block_causal_attention_dense.register_kernel("cuda")
def _(q, k, v, q_block_ids, k_block_ids, sm_scale=None):  # type: ignore[no-untyped-def]
    return _triton("block_causal_attention").dense_forward(q, k, v, q_block_ids, k_block_ids, sm_scale)


@block_causal_attention_dense.register_fake
def _(q, k, v, q_block_ids, k_block_ids, sm_scale=None):  # type: ignore[no-untyped-def]
    b, s, h, _ = q.shape
    return torch.empty_like(q), q.new_empty((b, h, s), dtype=torch.float32)


@custom_op("ofrt::block_causal_attention_dense_backward", mutates_args=())
def block_causal_attention_dense_backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_block_ids: Tensor,
    k_block_ids: Tensor,
    out: Tensor,
    lse: Tensor,
    sm_scale: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(dq, dk, dv). CPU: explicit fp64 reference gradients (recomputed from q, k, v)."""
    return _ref_attn.block_causal_attention_dense_backward(
        dout, q, k, v, q_block_ids, k_block_ids, out, lse, sm_scale=sm_scale
    )


@block_causal_attention_dense_backward.register_kernel("cuda")
def _(dout, q, k, v, q_block_ids, k_block_ids, out, lse, sm_scale=None):  # type: ignore[no-untyped-def]
    bwd = _triton("block_causal_attention_bwd")
    return bwd.dense_backward(dout, q, k, v, q_block_ids, k_block_ids, out, lse, sm_scale)


@block_causal_attention_dense_backward.register_fake
def _(dout, q, k, v, *_args, **_kwargs):  # type: ignore[no-untyped-def]
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _dense_setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
    q, k, v, q_block_ids, k_block_ids, sm_scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, q_block_ids, k_block_ids, out, lse)
    ctx.sm_scale = sm_scale
    ctx.mark_non_differentiable(lse)


def _dense_backward(ctx, dout, _dlse):  # type: ignore[no-untyped-def]
    q, k, v, qb, kb, out, lse = ctx.saved_tensors
    dq, dk, dv = block_causal_attention_dense_backward(dout.contiguous(), q, k, v, qb, kb, out, lse, ctx.sm_scale)
    return dq, dk, dv, None, None, None


block_causal_attention_dense.register_autograd(_dense_backward, setup_context=_dense_setup_context)


# ---------------------------------------------------------------------------------------------
# Paged K/V append.


@custom_op("ofrt::paged_kv_append", mutates_args=("k_cache", "v_cache"))
def paged_kv_append(
    k_new: Tensor,
    v_new: Tensor,
    cu_seqlens: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    page_table: Tensor,
    start_pos: Tensor,
    max_seqlen: int,
) -> None:
    """Write a block's K/V into its cache pages, in place. CPU: reference."""
    _ref_paged.paged_kv_append(k_new, v_new, cu_seqlens, k_cache, v_cache, page_table, start_pos, max_seqlen=max_seqlen)


@paged_kv_append.register_kernel("cuda")
def _(k_new, v_new, cu_seqlens, k_cache, v_cache, page_table, start_pos, max_seqlen):  # type: ignore[no-untyped-def]
    _triton("paged_kv").paged_kv_append(
        k_new, v_new, cu_seqlens, k_cache, v_cache, page_table, start_pos, max_seqlen=max_seqlen
    )


@paged_kv_append.register_fake
def _(*_args, **_kwargs):  # type: ignore[no-untyped-def]
    return None


# ---------------------------------------------------------------------------------------------
# The memory-bound elementwise ops.


@custom_op("ofrt::rope_av", mutates_args=())
def rope_av(
    x: Tensor,
    cos: Tensor | None,
    sin: Tensor | None,
    angles: Tensor | None,
    interleaved: bool,
    identity_rows: Tensor | None,
) -> Tensor:
    """Rotary embedding (see kernels/reference/rope_av.py). CPU: fp64 reference."""
    return _ref_rope.rope_av(x, cos, sin, angles=angles, interleaved=interleaved, identity_rows=identity_rows)


@rope_av.register_kernel("cuda")
def _(x, cos, sin, angles, interleaved, identity_rows):  # type: ignore[no-untyped-def]
    return _triton("rope_av").rope_av(x, cos, sin, angles=angles, interleaved=interleaved, identity_rows=identity_rows)


@rope_av.register_fake
def _(x, *_args, **_kwargs):  # type: ignore[no-untyped-def]
    return torch.empty_like(x)


@custom_op("ofrt::adaln_modulate", mutates_args=())
def adaln_modulate(x: Tensor, shift: Tensor, scale: Tensor, eps: float = 1e-6) -> Tensor:
    """rms(x) * (1 + scale) + shift. CPU: fp64 reference."""
    return _ref_adaln.adaln_modulate(x, shift, scale, eps=eps)


@adaln_modulate.register_kernel("cuda")
def _(x, shift, scale, eps=1e-6):  # type: ignore[no-untyped-def]
    return _triton("adaln_modulate").adaln_modulate(x, shift, scale, eps=eps)


@adaln_modulate.register_fake
def _(x, *_args, **_kwargs):  # type: ignore[no-untyped-def]
    return torch.empty_like(x)


@custom_op("ofrt::gated_residual", mutates_args=())
def gated_residual(x: Tensor, y: Tensor, gate: Tensor) -> Tensor:
    """x + y * gate. CPU: fp64 reference."""
    return _ref_adaln.gated_residual(x, y, gate)


@gated_residual.register_kernel("cuda")
def _(x, y, gate):  # type: ignore[no-untyped-def]
    return _triton("adaln_modulate").gated_residual(x, y, gate)


@gated_residual.register_fake
def _(x, *_args, **_kwargs):  # type: ignore[no-untyped-def]
    return torch.empty_like(x)


@custom_op("ofrt::x0_renoise", mutates_args=())
def x0_renoise(x: Tensor, v: Tensor, noise: Tensor, sigma: Tensor, sigma_next: Tensor) -> tuple[Tensor, Tensor]:
    """(x0, x_next). CPU: fp64 reference."""
    return _ref_x0.x0_renoise(x, v, noise, sigma, sigma_next)


@x0_renoise.register_kernel("cuda")
def _(x, v, noise, sigma, sigma_next):  # type: ignore[no-untyped-def]
    return _triton("x0_renoise").x0_renoise(x, v, noise, sigma, sigma_next)


@x0_renoise.register_fake
def _(x, *_args, **_kwargs):  # type: ignore[no-untyped-def]
    return torch.empty_like(x), torch.empty_like(x)
