"""Python entry points for the CUDA kernels in this folder, through ctypes.

The kernels are framework-agnostic (raw pointers + ``cudaStream_t``, ``extern "C"`` launchers
returning ``cudaError_t``), so Python reaches them without a torch extension: this module fills
the C parameter structs from tensors and calls ``libofrt_kernels.so``. The library is found, in
order, at ``$OFRT_KERNELS_LIB``, next to this file (installed by ``kernels/cuda/CMakeLists.txt``),
or built once with nvcc into ``$OFRT_KERNEL_CACHE`` (default ``~/.cache/omniforcing_rt``), keyed
by a hash of the sources. Rejected alternative: ``torch.utils.cpp_extension.load`` - it drags
the torch headers into the ``.cu`` files (47 s per file, toolchain pitfall 9) and ties the kernels
to one framework.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from omniforcing_rt.errors import BackendError, UnsupportedError

from .._attention_args import default_scale, validate_paged
from .._common import check_head_dim
from .._paged_kv_args import validate_append

SOURCES: tuple[str, ...] = ("common.cu", "paged_kv.cu", "block_causal_attention.cu")
HEADERS: tuple[str, ...] = ("common.cuh", "paged_kv.cuh", "block_causal_attention.cuh")
DEFAULT_ARCHS: tuple[str, ...] = ("sm_80", "sm_90a")
HEAD_DIMS: tuple[int, ...] = (64, 128)
_DTYPE_CODE = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2}
_HERE = Path(__file__).resolve().parent
_VP, _I64, _I32, _F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float


class PagedKvAppendParams(ctypes.Structure):
    """Mirror of ``OfrtPagedKvAppendParams`` (paged_kv.cuh); keep the field order identical."""

    _fields_ = [
        *[(n, _VP) for n in ("k_new", "v_new", "k_cache", "v_cache", "page_table", "cu_seqlens", "start_pos")],
        *[
            (n, _I64)
            for n in (
                "k_new_stride_token",
                "v_new_stride_token",
                "k_cache_stride_page",
                "k_cache_stride_slot",
                "v_cache_stride_page",
                "v_cache_stride_slot",
                "page_table_stride",
            )
        ],  # fmt: skip
        *[(n, _I32) for n in ("batch", "max_seqlen", "page_size", "max_pages", "num_pages", "row_bytes")],
    ]


class PagedAttentionParams(ctypes.Structure):
    """Mirror of ``OfrtPagedAttentionParams`` (block_causal_attention.cuh)."""

    _fields_ = [
        *[
            (n, _VP)
            for n in (
                "q",
                "k_new",
                "v_new",
                "k_cache",
                "v_cache",
                "page_table",
                "cu_seqlens_q",
                "cu_seqlens_kv",
                "cache_lens",
                "out",
            )
        ],  # fmt: skip
        *[
            (n, _I64)
            for n in (
                "q_stride_token",
                "q_stride_head",
                "k_new_stride_token",
                "k_new_stride_head",
                "v_new_stride_token",
                "v_new_stride_head",
                "k_cache_stride_page",
                "k_cache_stride_slot",
                "k_cache_stride_head",
                "v_cache_stride_page",
                "v_cache_stride_slot",
                "v_cache_stride_head",
                "page_table_stride",
                "out_stride_token",
                "out_stride_head",
            )
        ],  # fmt: skip
        *[(n, _I32) for n in ("batch", "q_heads", "kv_heads", "head_dim", "page_size", "max_seqlen_q")],
        ("sm_scale", _F32),
        ("dtype", _I32),
    ]


def nvcc_command(output: Path, archs: tuple[str, ...] = DEFAULT_ARCHS, nvcc: str = "nvcc") -> list[str]:
    """The nvcc command line that builds ``libofrt_kernels.so`` (cudart linked statically)."""
    gencode = [f"-gencode=arch=compute_{a[3:]},code={a}" for a in archs]
    return [nvcc, "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-cudart", "static", *gencode,
            "-o", str(output), *[str(_HERE / s) for s in SOURCES]]  # fmt: skip


def build_library(output: Path, archs: tuple[str, ...] = DEFAULT_ARCHS) -> Path:
    """Compile the kernels into a shared library at ``output``. Raises BackendError on failure."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise UnsupportedError("building the CUDA kernels needs nvcc on PATH")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(f".tmp{os.getpid()}.so")
    proc = subprocess.run(nvcc_command(tmp, archs, nvcc), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BackendError(f"nvcc failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    tmp.replace(output)  # atomic: concurrent builders never load a half-written library
    return output


def _source_hash() -> str:
    h = hashlib.sha256()
    for name in (*SOURCES, *HEADERS):
        h.update((_HERE / name).read_bytes())
    return h.hexdigest()[:16]


def library_path() -> Path:
    """Where the shared library is, or would be built (see the module docstring)."""
    if env := os.environ.get("OFRT_KERNELS_LIB"):
        return Path(env)
    installed = _HERE / "libofrt_kernels.so"
    if installed.exists():
        return installed
    cache = Path(os.environ.get("OFRT_KERNEL_CACHE", Path.home() / ".cache" / "omniforcing_rt"))
    return cache / f"libofrt_kernels-{_source_hash()}.so"


@lru_cache(maxsize=1)
def load_library() -> ctypes.CDLL:
    """Load (building first if needed) the kernel library and declare its C signatures."""
    path = library_path()
    if not path.exists():
        build_library(path)
    lib = ctypes.CDLL(str(path))
    lib.ofrt_paged_kv_append.argtypes = [ctypes.POINTER(PagedKvAppendParams), _VP]
    lib.ofrt_paged_kv_append.restype = ctypes.c_int
    lib.ofrt_block_causal_attention_paged.argtypes = [ctypes.POINTER(PagedAttentionParams), _VP]
    lib.ofrt_block_causal_attention_paged.restype = ctypes.c_int
    lib.ofrt_block_causal_attention_paged_smem_bytes.argtypes = [_I32]
    lib.ofrt_block_causal_attention_paged_smem_bytes.restype = ctypes.c_size_t
    lib.ofrt_error_string.argtypes = [ctypes.c_int]
    lib.ofrt_error_string.restype = ctypes.c_char_p
    for fn, mirror in (("ofrt_paged_attention_params_size", PagedAttentionParams),
                       ("ofrt_paged_kv_append_params_size", PagedKvAppendParams)):  # fmt: skip
        getattr(lib, fn).restype = ctypes.c_size_t
        if getattr(lib, fn)() != ctypes.sizeof(mirror):
            raise BackendError(f"{path}: {mirror.__name__} does not match the C struct (stale library?)")
    return lib


def _check(lib: ctypes.CDLL, code: int, what: str) -> None:
    if code != 0:
        raise BackendError(f"{what} failed: cudaError {code} ({lib.ofrt_error_string(code).decode()})")


def _require_cuda(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.device.type != "cuda":
            raise UnsupportedError(f"the CUDA kernels need CUDA tensors, got a {t.device} tensor")
    major, _ = torch.cuda.get_device_capability(tensors[0].device)
    if major < 8:
        raise UnsupportedError("the CUDA kernels need compute capability 8.0 or newer (WMMA bf16)")


def _stream(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(torch.cuda.current_stream(t.device).cuda_stream)


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
    """CUDA append; same contract as ``kernels/reference/paged_kv.py``."""
    dims = validate_append(k_new, v_new, cu_seqlens, k_cache, v_cache, page_table, start_pos)
    _require_cuda(k_new)
    if max_seqlen is None:
        max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max().item())
    es = k_new.element_size()
    p = PagedKvAppendParams(
        k_new.data_ptr(), v_new.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), page_table.data_ptr(),
        cu_seqlens.data_ptr(), start_pos.data_ptr(),
        k_new.stride(0) * es, v_new.stride(0) * es, k_cache.stride(0) * es, k_cache.stride(1) * es,
        v_cache.stride(0) * es, v_cache.stride(1) * es, page_table.stride(0),
        dims.batch, max_seqlen, dims.page_size, dims.max_pages, dims.num_pages, dims.kv_heads * dims.head_dim * es,
    )  # fmt: skip
    lib = load_library()
    _check(lib, lib.ofrt_paged_kv_append(ctypes.byref(p), _stream(k_new)), "ofrt_paged_kv_append")


def block_causal_attention(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_kv: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    page_table: torch.Tensor,
    cache_lens: torch.Tensor,
    *,
    max_seqlen_q: int | None = None,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """CUDA (WMMA) paged attention; same contract as ``kernels/reference/block_causal_attention.py``."""
    dims = validate_paged(q, k_new, v_new, cu_seqlens_q, cu_seqlens_kv, k_cache, v_cache, page_table, cache_lens)
    check_head_dim(dims.head_dim, HEAD_DIMS)
    if q.dtype not in (torch.float16, torch.bfloat16):
        raise UnsupportedError(f"the CUDA attention kernel supports fp16/bf16, got {q.dtype}")
    _require_cuda(q)
    if max_seqlen_q is None:
        max_seqlen_q = int((cu_seqlens_q[1:] - cu_seqlens_q[:-1]).max().item())
    # 16-byte vector loads need 8-element-aligned rows; contiguous tensors always qualify.
    q, k_new, v_new = q.contiguous(), k_new.contiguous(), v_new.contiguous()
    out = torch.empty_like(q)
    p = PagedAttentionParams(
        q.data_ptr(), k_new.data_ptr(), v_new.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(),
        page_table.data_ptr(), cu_seqlens_q.data_ptr(), cu_seqlens_kv.data_ptr(), cache_lens.data_ptr(),
        out.data_ptr(), q.stride(0), q.stride(1), k_new.stride(0), k_new.stride(1), v_new.stride(0),
        v_new.stride(1), *k_cache.stride()[:3], *v_cache.stride()[:3], page_table.stride(0),
        out.stride(0), out.stride(1), dims.batch, dims.q_heads, dims.kv_heads, dims.head_dim,
        dims.page_size, max_seqlen_q, default_scale(dims.head_dim, sm_scale), _DTYPE_CODE[q.dtype],
    )  # fmt: skip
    lib = load_library()
    _check(lib, lib.ofrt_block_causal_attention_paged(ctypes.byref(p), _stream(q)), "block_causal_attention")
    return out
