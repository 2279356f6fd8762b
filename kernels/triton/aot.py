"""Ahead-of-time compilation of the Triton kernels for a GPU target, without a GPU.

``AOT_SPECS`` lists the production configurations (real LTX-2 geometry, bf16, the tile sizes
``gpu_tile_config`` picks); ``compile_spec`` turns one into PTX + cubin with
``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`` (toolchain check 2d). The
runtime loads such cubins directly (design.md section 4: no JIT in the runtime); CI uses the
same path as a compile check. It must run in a process where ``TRITON_INTERPRET`` is unset,
otherwise the kernels are interpreter objects and cannot be compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AotSpec:
    """One kernel configuration to compile."""

    name: str
    """Label for reports, e.g. ``paged_fwd_d128_bf16``."""
    kernel: Callable[[], Any]
    """Returns the ``@triton.jit`` function (deferred so importing this module stays cheap)."""
    pointers: dict[str, str]
    """Pointer arguments -> Triton type (``*bf16``, ``*i32``, ``*fp32``...)."""
    constexprs: dict[str, Any]
    """Constexpr arguments -> value."""
    floats: tuple[str, ...] = ()
    """Scalar fp32 arguments; every other scalar is i32."""
    options: dict[str, int] = field(default_factory=dict)
    """num_warps / num_stages."""
    expect_mma: bool = False
    """The PTX must contain tensor-core instructions (wgmma or mma)."""


def _k(module: str, name: str) -> Callable[[], Any]:
    def load() -> Any:
        import importlib

        return getattr(importlib.import_module(f"omniforcing_rt.kernels.triton.{module}"), name)

    return load


_ATTN_PAGED_PTRS = {n: "*bf16" for n in ("Q", "KN", "VN", "KC", "VC", "Out")} | {
    n: "*i32" for n in ("PT", "CU_Q", "CU_KV", "CACHE_LENS")
}
_IDS = {"QB": "*i32", "KB": "*i32", "LSE": "*fp32"}
_DENSE_FWD_PTRS = {n: "*bf16" for n in ("Q", "K", "V", "Out")} | _IDS
_DKDV_PTRS = {n: "*bf16" for n in ("Q", "K", "V", "DO", "DK", "DV")} | _IDS | {"DELTA": "*fp32"}
_DQ_PTRS = {n: "*bf16" for n in ("Q", "K", "V", "DO", "DQ")} | _IDS | {"DELTA": "*fp32"}
_DOT = {"DOT_FP32": False, "IEEE": False}


def _paged(name: str, d: int, bm: int, bn: int, warps: int) -> AotSpec:
    return AotSpec(
        name, _k("block_causal_attention", "_paged_fwd_kernel"), _ATTN_PAGED_PTRS,
        {"H_Q": 32, "GROUP": 1, "HEAD_DIM": d, "PAGE_SIZE": 64, "BLOCK_M": bm, "BLOCK_N": bn, **_DOT},
        floats=("scale_log2",), options={"num_warps": warps, "num_stages": 3}, expect_mma=True,
    )  # fmt: skip


AOT_SPECS: tuple[AotSpec, ...] = (
    _paged("paged_fwd_video_self_d128_bf16", 128, 128, 64, 8),  # 1152/1536 queries x 32 heads x 128
    _paged("paged_fwd_audio_q_d64_bf16", 64, 64, 128, 4),  # audio self / V->A: 25/26 queries x 32 x 64
    _paged("paged_fwd_video_q_d64_bf16", 64, 128, 128, 8),  # A->V: video queries over audio keys
    AotSpec(
        "dense_fwd_d128_bf16",
        _k("block_causal_attention", "_dense_fwd_kernel"),
        _DENSE_FWD_PTRS,
        {"H_Q": 32, "GROUP": 1, "HEAD_DIM": 128, "BLOCK_M": 128, "BLOCK_N": 64, **_DOT},
        floats=("scale_log2",),
        options={"num_warps": 8, "num_stages": 3},
        expect_mma=True,
    ),  # fmt: skip
    AotSpec(
        "dense_bwd_dkdv_d128_bf16",
        _k("block_causal_attention_bwd", "_bwd_dkdv_kernel"),
        _DKDV_PTRS,
        {"H_Q": 32, "H_K": 32, "HEAD_DIM": 128, "BLOCK_M": 64, "BLOCK_N": 64, **_DOT},
        floats=("scale_log2", "sm_scale"),
        options={"num_warps": 8, "num_stages": 2},
        expect_mma=True,
    ),  # fmt: skip
    AotSpec(
        "dense_bwd_dq_d128_bf16",
        _k("block_causal_attention_bwd", "_bwd_dq_kernel"),
        _DQ_PTRS,
        {"H_Q": 32, "H_K": 32, "HEAD_DIM": 128, "BLOCK_M": 64, "BLOCK_N": 64, **_DOT},
        floats=("scale_log2", "sm_scale"),
        options={"num_warps": 8, "num_stages": 2},
        expect_mma=True,
    ),  # fmt: skip
    AotSpec(
        "paged_kv_append_row4096_bf16",
        _k("paged_kv", "_append_kernel"),
        {"KN": "*bf16", "VN": "*bf16", "KC": "*bf16", "VC": "*bf16", "PT": "*i32", "CU": "*i32", "START": "*i32"},
        {"ROW": 4096, "PAGE_SIZE": 64, "BLOCK_T": 8, "BLOCK_C": 1024},
        options={"num_warps": 4},
    ),  # fmt: skip
    AotSpec(
        "rope_split_fp64_angles_d128_bf16",
        _k("rope_av", "_rope_kernel"),
        {"X": "*bf16", "C": "*fp64", "S": "*fp64", "ID": "*u8", "Out": "*bf16"},
        {"HALF": 64, "INTERLEAVED": False, "FROM_ANGLES": True, "ANGLES_FP64": True, "HAS_ID": True, "BLOCK_T": 16},
        options={"num_warps": 4},
    ),  # fmt: skip
    AotSpec(
        "rope_interleaved_cos_sin_d64_bf16",
        _k("rope_av", "_rope_kernel"),
        {"X": "*bf16", "C": "*bf16", "S": "*bf16", "ID": "*u8", "Out": "*bf16"},
        {"HALF": 32, "INTERLEAVED": True, "FROM_ANGLES": False, "ANGLES_FP64": False, "HAS_ID": False, "BLOCK_T": 16},
        options={"num_warps": 4},
    ),  # fmt: skip
    AotSpec(
        "adaln_modulate_c4096_bf16",
        _k("adaln_modulate", "_adaln_kernel"),
        {"X": "*bf16", "SH": "*bf16", "SC": "*bf16", "Out": "*bf16"},
        {"BLOCK_R": 1, "BLOCK_C": 4096},
        floats=("eps",),
        options={"num_warps": 8},
    ),  # fmt: skip
    AotSpec(
        "gated_residual_c4096_bf16",
        _k("adaln_modulate", "_gated_residual_kernel"),
        {"X": "*bf16", "Y": "*bf16", "G": "*bf16", "Out": "*bf16"},
        {"BLOCK_R": 2, "BLOCK_C": 1024},
        options={"num_warps": 4},
    ),  # fmt: skip
    AotSpec(
        "x0_renoise_bf16",
        _k("x0_renoise", "_x0_renoise_kernel"),
        {"X": "*bf16", "V": "*bf16", "N": "*bf16", "S": "*fp32", "SN": "*fp32", "X0": "*bf16", "XN": "*bf16"},
        {"BLOCK": 2048},
        options={"num_warps": 4},
    ),  # fmt: skip
)


def signature(spec: AotSpec, arg_names: list[str]) -> dict[str, str]:
    """Full Triton signature for ``arg_names``: pointers as given, constexprs, fp32 / i32 scalars.

    Pointer and constexpr names not in ``arg_names`` are an error: a renamed kernel argument
    would otherwise silently compile as an i32 scalar.
    """
    stale = (set(spec.pointers) | set(spec.constexprs) | set(spec.floats)) - set(arg_names)
    if stale:
        raise ValueError(f"{spec.name}: {sorted(stale)} are not arguments of the kernel")
    # Kernels name pointers in upper case; one left out would compile as an i32 scalar.
    untyped = [n for n in arg_names if n[0].isupper() and n not in spec.pointers and n not in spec.constexprs]
    if untyped:
        raise ValueError(f"{spec.name}: no pointer type given for {untyped}")
    sig = {}
    for name in arg_names:
        if name in spec.constexprs:
            sig[name] = "constexpr"
        elif name in spec.pointers:
            sig[name] = spec.pointers[name]
        else:
            sig[name] = "fp32" if name in spec.floats else "i32"
    return sig


def compile_spec(spec: AotSpec, capability: int = 90) -> Any:
    """Compile one spec for ``sm_<capability>`` (90 gives sm_90a); returns Triton's CompiledKernel."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import triton

    fn = spec.kernel()
    src = ASTSource(fn=fn, signature=signature(spec, list(fn.arg_names)), constexprs=spec.constexprs)
    return triton.compile(src, target=GPUTarget("cuda", capability, 32), options=spec.options)
