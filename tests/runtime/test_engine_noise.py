"""C++ keyed noise (csrc/runtime/noise.cc) == pipeline/noise.py, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from omniforcing_rt import _C
from omniforcing_rt.pipeline import noise

T = _C._testing
MASK = (1 << 64) - 1


@pytest.mark.parametrize("seed", [0, 1, -1, -12345, 2**63 + 7, 2**64 - 1, 98765432109876543])
def test_keys_are_identical(seed):
    for block, step, stream in ((0, 0, 0), (1, 3, 1), (10**9, 4, 0), (-2, 0, 1)):
        assert T.noise_key(seed & MASK, block, step, stream) == noise.noise_key(seed, block, step, stream)
    assert T.splitmix64(0) == int(noise._splitmix(np.array([0], dtype=np.uint64))[0])


@pytest.mark.parametrize("key", [0, 1, 2**63, MASK - 3, 0x0123456789ABCDEF])
def test_values_are_bit_identical(key):
    n = 300_001
    a = noise.keyed_normal(key, n)
    b = T.keyed_normal(key, n)
    assert b.dtype == np.float32 and b.shape == (n,)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_empty_and_block_noise():
    assert T.keyed_normal(5, 0).shape == (0,)
    key = noise.noise_key(3, 2, 1, noise.STREAM_AUDIO)
    ref = noise.block_noise(3, 2, 1, noise.STREAM_AUDIO, (1, 25, 8)).numpy().ravel()
    assert np.array_equal(T.keyed_normal(key, ref.size), ref)
