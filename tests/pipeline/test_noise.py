import pytest
import torch

from omniforcing_rt.pipeline.noise import STREAM_AUDIO, STREAM_VIDEO, block_noise, noise_key


def test_deterministic_and_shape():
    a = block_noise(42, 3, 1, STREAM_VIDEO, (2, 3, 8, 4, 4))
    b = block_noise(42, 3, 1, STREAM_VIDEO, (2, 3, 8, 4, 4))
    assert a.shape == (2, 3, 8, 4, 4) and a.dtype == torch.float32
    assert torch.equal(a, b)
    # a prefix of a longer draw is the same values (counter based)
    c = block_noise(42, 3, 1, STREAM_VIDEO, (1000,))
    assert torch.equal(a.flatten(), c[: a.numel()])


def test_keys_differ_per_field():
    base = (7, 2, 1, STREAM_VIDEO)
    variants = [(8, 2, 1, 0), (7, 3, 1, 0), (7, 2, 2, 0), (7, 2, 1, STREAM_AUDIO), (7, 1, 2, 0), (7, 2, 0, 1)]
    keys = {noise_key(*base)} | {noise_key(*v) for v in variants}
    assert len(keys) == 1 + len(variants)
    ref = block_noise(*base, (256,))
    for v in variants:
        assert not torch.allclose(block_noise(*v, (256,)), ref)
    assert 0 <= noise_key(-1, 0, 0, 0) < 2**64


def test_statistics():
    z = block_noise(1, 0, 0, 0, (200_000,)).double()
    assert abs(z.mean().item()) < 0.01
    assert abs(z.std().item() - 1) < 0.01
    assert torch.isfinite(z).all()
    assert abs(((z.abs() < 1).double().mean() - 0.6827).item()) < 0.01


def test_seed_must_be_int():
    with pytest.raises(TypeError):
        noise_key("x", 0, 0, 0)
