"""Shared argument checks and small helpers for every kernel implementation.

Each public kernel entry point (reference, Triton, CUDA) validates its arguments with these
helpers before launching anything, so a bad call fails the same way on every backend:
``InputError`` for a wrong shape, dtype, device or value, ``UnsupportedError`` for a dtype,
head dim, device or architecture the backend does not implement.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from omniforcing_rt.errors import InputError, UnsupportedError

FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)
INDEX_DTYPES: tuple[torch.dtype, ...] = (torch.int32,)


def is_interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def check_dim(name: str, t: torch.Tensor, ndim: int) -> None:
    """Raise InputError unless ``t`` has exactly ``ndim`` dimensions."""
    if t.dim() != ndim:
        raise InputError(f"{name} must have {ndim} dims, got shape {tuple(t.shape)}")


def check_dtype(name: str, t: torch.Tensor, allowed: Iterable[torch.dtype]) -> None:
    """Raise UnsupportedError unless ``t.dtype`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if t.dtype not in allowed:
        raise UnsupportedError(f"{name} has unsupported dtype {t.dtype}", [f"supported: {allowed}"])


def check_same_dtype(names: str, *tensors: torch.Tensor) -> None:
    """Raise InputError if the tensors do not all share one dtype."""
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1:
        raise InputError(f"{names} must share one dtype, got {sorted(str(d) for d in dtypes)}")


def check_same_device(names: str, *tensors: torch.Tensor) -> None:
    """Raise InputError if the tensors are not all on one device."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise InputError(f"{names} must be on one device, got {sorted(str(d) for d in devices)}")


def check_last_contiguous(name: str, t: torch.Tensor) -> None:
    """Raise InputError unless the last dimension is unit-stride (kernels vectorise along it)."""
    if t.numel() > 0 and t.dim() > 0 and t.shape[-1] > 1 and t.stride(-1) != 1:
        raise InputError(f"{name} must be contiguous in its last dimension, strides {t.stride()}")


def check_triton_device(*tensors: torch.Tensor) -> None:
    """Triton runs on CUDA tensors, or on CPU tensors under the interpreter only."""
    for t in tensors:
        if t.device.type == "cuda":
            continue
        if t.device.type == "cpu" and is_interpreting():
            continue
        raise UnsupportedError(
            f"Triton kernels need CUDA tensors, got a {t.device} tensor",
            ["set TRITON_INTERPRET=1 before importing the kernels to run them on CPU (slow, for tests)"],
        )


def check_head_dim(head_dim: int, allowed: Iterable[int]) -> None:
    """Raise UnsupportedError unless the head dim is one the kernel was built for."""
    allowed = tuple(allowed)
    if head_dim not in allowed:
        raise UnsupportedError(f"head dim {head_dim} is not supported", [f"supported: {allowed}"])


def check_cu_seqlens(name: str, cu: torch.Tensor, batch: int | None = None) -> int:
    """Validate a ``[B + 1]`` int32 offsets tensor and return B. Values are not read (no host sync)."""
    check_dim(name, cu, 1)
    check_dtype(name, cu, INDEX_DTYPES)
    if cu.shape[0] < 2:
        raise InputError(f"{name} must have at least 2 entries ([B + 1]), got {cu.shape[0]}")
    b = cu.shape[0] - 1
    if batch is not None and b != batch:
        raise InputError(f"{name} describes {b} streams, expected {batch}")
    return b
