"""Counter-based Gaussian noise keyed by (seed, block, step, stream).

Both the PyTorch reference and the C++ engine must consume the same noise, so noise is not drawn
from a stateful framework RNG. Every value is a pure function of its key and index:

    key  = mix(seed, block, step, stream)                      (splitmix64 chain, uint64)
    u1,2 = (splitmix64(key + 2i), splitmix64(key + 2i + 1)) >> 11, scaled to (0, 1] and [0, 1)
    z_i  = sqrt(-2 ln u1) * cos(2 pi u2)                         (Box-Muller, float64 -> float32)

This is trivially reproducible in C++ (``csrc/runtime/noise.cc``) and independent of device,
thread count and call order. A Philox stream would be faster on GPU, but it would tie the
reference to one framework's RNG layout; one block of noise is a few hundred thousand values, so
generation cost is irrelevant next to a transformer pass.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["STREAM_AUDIO", "STREAM_VIDEO", "block_noise", "keyed_normal", "noise_key"]

STREAM_VIDEO = 0
STREAM_AUDIO = 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def noise_key(seed: int, block: int, step: int, stream: int) -> int:
    """The uint64 key of one noise tensor (a splitmix64 chain over the four fields)."""
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    key = np.uint64(seed & _MASK)
    for field in (block, step, stream):
        key = _splitmix(np.array([key ^ np.uint64(field & _MASK)], dtype=np.uint64))[0]
    return int(key)


def keyed_normal(key: int, count: int) -> np.ndarray:
    """``count`` standard normal float32 values for ``key`` (see module docstring)."""
    idx = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        base = np.uint64(key) + np.uint64(2) * idx
    a = _splitmix(base) >> np.uint64(11)
    b = _splitmix(base + np.uint64(1)) >> np.uint64(11)
    scale = 1.0 / float(1 << 53)
    u1 = (a.astype(np.float64) + 1.0) * scale  # (0, 1]: log is finite
    u2 = b.astype(np.float64) * scale
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


def block_noise(seed: int, block: int, step: int, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
    """A float32 noise tensor of ``shape`` for one (seed, block, step, stream)."""
    n = int(np.prod(shape)) if shape else 1
    return torch.from_numpy(keyed_normal(noise_key(seed, block, step, stream), n)).reshape(shape)
