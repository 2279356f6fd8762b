"""Kernel registry: op name -> implementations, capabilities and per-dtype tolerances.

The xformers pattern (``xformers/ops/fmha/common.py``): each op carries what it supports and
how close its fast implementations must be to the reference, next to the op itself. Tests
and benchmarks iterate over this table instead of hard-coding backends.

Implementations are named lazily (``"module:function"`` under ``omniforcing_rt.kernels``), so
importing the registry imports neither Triton nor the CUDA library: a machine without Triton
still gets the reference path and a clear ``UnsupportedError`` for the rest.

Tolerances: ``assert_close(fast, reference, atol, rtol)`` where the reference is computed in
fp64 and rounded to the same dtype. They started from the table in design.md section 5 and were
set from the max differences measured on CPU (Triton interpreter) over the test grid, with
headroom; bf16 elementwise ops need rtol 2**-7 because the reference and the kernel may round
to neighbouring bf16 values (one ulp). The measured numbers are in ``kernels/README.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from omniforcing_rt.errors import InputError, UnsupportedError

IMPLS: tuple[str, ...] = ("reference", "triton", "cuda")
F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16


@dataclass(frozen=True)
class Tolerance:
    """Allowed difference to the fp64 reference: ``|fast - ref| <= atol + rtol * |ref|``."""

    atol: float
    rtol: float


EXACT = Tolerance(0.0, 0.0)


@dataclass(frozen=True)
class OpSpec:
    """One op: where its implementations live and what they support."""

    name: str
    """Op name, identical across reference / Triton / CUDA and in the ``ofrt`` torch namespace."""
    summary: str
    """One line: what the op computes."""
    impls: Mapping[str, str]
    """Implementation name -> ``"module:function"`` relative to ``omniforcing_rt.kernels``."""
    dtypes: Mapping[str, tuple[torch.dtype, ...]]
    """Per implementation, the activation dtypes it accepts."""
    tolerances: Mapping[torch.dtype, Tolerance]
    """Forward tolerance per dtype (EXACT for data movement)."""
    head_dims: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Per implementation, supported head dims (absent: any)."""
    min_capability: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Per GPU implementation, the lowest CUDA compute capability it runs on."""
    grad_tolerances: Mapping[torch.dtype, Tolerance] = field(default_factory=dict)
    """Backward tolerance per dtype, for ops with a backward."""

    def impl(self, name: str) -> Callable[..., Any]:
        """The callable of implementation ``name`` (imports its module on first use)."""
        if name not in self.impls:
            raise UnsupportedError(f"op {self.name} has no {name!r} implementation", [f"have: {sorted(self.impls)}"])
        module, attr = self.impls[name].split(":")
        try:
            mod = importlib.import_module(f"omniforcing_rt.kernels.{module}")
        except ImportError as e:
            raise UnsupportedError(f"op {self.name}: implementation {name!r} cannot be imported", [str(e)]) from e
        return getattr(mod, attr)

    def tolerance(self, dtype: torch.dtype, grad: bool = False) -> Tolerance:
        """Forward (or backward) tolerance for ``dtype``."""
        table = self.grad_tolerances if grad else self.tolerances
        if dtype not in table:
            raise InputError(f"op {self.name} has no {'grad ' if grad else ''}tolerance for {dtype}")
        return table[dtype]

    def unsupported_reasons(
        self, impl: str, dtype: torch.dtype, head_dim: int | None = None, capability: tuple[int, int] | None = None
    ) -> list[str]:
        """Why ``impl`` cannot run this configuration; empty when it can (vLLM style)."""
        reasons = []
        if impl not in self.impls:
            reasons.append(f"no {impl} implementation")
            return reasons
        if dtype not in self.dtypes.get(impl, ()):
            reasons.append(f"{impl} does not support {dtype}")
        dims = self.head_dims.get(impl)
        if head_dim is not None and dims is not None and head_dim not in dims:
            reasons.append(f"{impl} does not support head dim {head_dim} (supported: {dims})")
        need = self.min_capability.get(impl)
        if need is not None and capability is not None and capability < need:
            reasons.append(f"{impl} needs compute capability >= {need}, device has {capability}")
        return reasons


_FLOATS = (F32, F16, BF16)
_ATTN_TRITON_DIMS = (16, 32, 64, 128, 256)

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec(
            name="block_causal_attention",
            summary="paged streaming attention: block queries over history pages + the block's own K/V",
            impls={
                "reference": "reference.block_causal_attention:block_causal_attention",
                "triton": "triton.block_causal_attention:block_causal_attention",
                "cuda": "cuda.launch:block_causal_attention",
            },
            dtypes={"reference": _FLOATS, "triton": _FLOATS, "cuda": (F16, BF16)},
            head_dims={"triton": _ATTN_TRITON_DIMS, "cuda": (64, 128)},
            min_capability={"triton": (8, 0), "cuda": (8, 0)},
            tolerances={F32: Tolerance(1e-5, 1e-5), F16: Tolerance(1e-3, 1e-3), BF16: Tolerance(1e-2, 5e-3)},
        ),
        OpSpec(
            name="block_causal_attention_dense",
            summary="dense training attention with per-token block ids (key visible iff kb <= qb), + backward",
            impls={
                "reference": "reference.block_causal_attention:block_causal_attention_dense",
                "triton": "triton.block_causal_attention_bwd:block_causal_attention_dense",
            },
            dtypes={"reference": _FLOATS, "triton": _FLOATS},
            head_dims={"triton": _ATTN_TRITON_DIMS},
            min_capability={"triton": (8, 0)},
            tolerances={F32: Tolerance(1e-5, 1e-5), F16: Tolerance(1e-3, 1e-3), BF16: Tolerance(1e-2, 5e-3)},
            grad_tolerances={F32: Tolerance(2e-5, 1e-5), F16: Tolerance(5e-3, 5e-3), BF16: Tolerance(4e-2, 2e-2)},
        ),
        OpSpec(
            name="paged_kv_append",
            summary="write a block's K/V rows into their cache pages (exact)",
            impls={
                "reference": "reference.paged_kv:paged_kv_append",
                "triton": "triton.paged_kv:paged_kv_append",
                "cuda": "cuda.launch:paged_kv_append",
            },
            dtypes={"reference": _FLOATS, "triton": _FLOATS, "cuda": _FLOATS},
            min_capability={"triton": (8, 0), "cuda": (8, 0)},
            tolerances={F32: EXACT, F16: EXACT, BF16: EXACT},
        ),
        OpSpec(
            name="rope_av",
            summary="rotary embedding, interleaved or split pairs, cos/sin or fp32/fp64 angles, identity rows",
            impls={"reference": "reference.rope_av:rope_av", "triton": "triton.rope_av:rope_av"},
            dtypes={"reference": _FLOATS, "triton": _FLOATS},
            min_capability={"triton": (8, 0)},
            tolerances={F32: Tolerance(2e-6, 1e-5), F16: Tolerance(1e-3, 1e-3), BF16: Tolerance(1e-2, 2**-7)},
        ),
        OpSpec(
            name="adaln_modulate",
            summary="rms(x) * (1 + scale) + shift, RMSNorm without weight, eps 1e-6",
            impls={
                "reference": "reference.adaln_modulate:adaln_modulate",
                "triton": "triton.adaln_modulate:adaln_modulate",
            },
            dtypes={"reference": _FLOATS, "triton": _FLOATS},
            min_capability={"triton": (8, 0)},
            tolerances={F32: Tolerance(1e-5, 1e-5), F16: Tolerance(1e-3, 1e-3), BF16: Tolerance(1e-2, 2**-7)},
        ),
        OpSpec(
            name="gated_residual",
            summary="x + y * gate",
            impls={
                "reference": "reference.adaln_modulate:gated_residual",
                "triton": "triton.adaln_modulate:gated_residual",
            },
            dtypes={"reference": _FLOATS, "triton": _FLOATS},
            min_capability={"triton": (8, 0)},
            tolerances={F32: Tolerance(1e-5, 1e-5), F16: Tolerance(1e-3, 1e-3), BF16: Tolerance(1e-2, 2**-7)},
        ),
        OpSpec(
            name="x0_renoise",
            summary="x0 = x - sigma*v (fp32); x_next = (1 - sigma_next)*x0 + sigma_next*noise",
            impls={"reference": "reference.x0_renoise:x0_renoise", "triton": "triton.x0_renoise:x0_renoise"},
            dtypes={"reference": _FLOATS, "triton": _FLOATS},
            min_capability={"triton": (8, 0)},
            tolerances={F32: Tolerance(1e-5, 1e-5), F16: Tolerance(1e-3, 1e-3), BF16: Tolerance(1e-2, 2**-7)},
        ),
    )
}


def get_op(name: str) -> OpSpec:
    """The registry entry of ``name``; raises InputError for an unknown op."""
    if name not in OPS:
        raise InputError(f"unknown kernel op {name!r}; known: {sorted(OPS)}")
    return OPS[name]


def get_impl(name: str, impl: str) -> Callable[..., Any]:
    """Shortcut for ``get_op(name).impl(impl)``."""
    return get_op(name).impl(impl)
