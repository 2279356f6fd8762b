import pytest
import torch
from tests.helpers.tiny_model import tiny_model

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.pipeline.stream import StreamConfig, StreamingGenerator

HW = (2, 2)
SEED = 5


def _texts(model):
    g = torch.Generator().manual_seed(3)
    a = model.encode_text(torch.randn(1, 4, 12, generator=g), torch.randn(1, 4, 12, generator=g))
    b = model.encode_text(torch.randn(1, 4, 12, generator=g), torch.randn(1, 4, 12, generator=g))
    return a, b


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=21)


def test_cache_bytes_constant_once_window_is_full(model):
    text, _ = _texts(model)
    scfg = StreamConfig(latent_grid_hw=HW, video_window_s=2.0, audio_window_s=2.0)
    stream = StreamingGenerator(model, scfg).stream(text, SEED, 8)
    cache = stream.cache
    sizes, kept = [], []
    for res in stream:
        sizes.append(res.kv_cache_bytes)
        kept.append(cache.blocks("video_self"))
    # pinned block 0 + 2 history blocks: full after block 2
    assert kept[2] == [0, 1, 2] and kept[7] == [0, 6, 7]
    assert all(cache.blocks(n) == [0, 6, 7] for n in ("audio_self", "a2v", "v2a"))
    assert sizes[0] < sizes[1] < sizes[2]
    assert len(set(sizes[2:])) == 1, sizes
    full = [r.kv_cache_bytes for r in StreamingGenerator(model, StreamConfig(latent_grid_hw=HW)).stream(text, SEED, 8)]
    assert all(a < b for a, b in zip(full, full[1:])), full
    assert full[2] == sizes[2] and full[7] > sizes[7]


def test_switch_prompt_recache(model):
    text_a, text_b = _texts(model)
    scfg = StreamConfig(latent_grid_hw=HW, video_window_s=2.0, audio_window_s=2.0)

    def run(switch, recache=True):
        stream = StreamingGenerator(model, scfg).stream(text_a, SEED, 7)
        out, sizes = [], []
        for res in stream:
            out.append(res)
            if res.index == 4 and switch:
                before = stream.cache.nbytes()
                stream.switch_prompt(text_b, recache=recache)
                sizes.append((before, stream.cache.nbytes()))
        return out, sizes

    base, _ = run(False)
    sw, sizes = run(True)
    norc, _ = run(True, recache=False)
    for k in range(5):  # identical before the switch
        assert torch.equal(base[k].video_latents, sw[k].video_latents)
    assert (base[5].video_latents - sw[5].video_latents).abs().max() > 1e-6
    assert (base[6].audio_latents - sw[6].audio_latents).abs().max() > 1e-6
    # re-caching rewrites history: differs from only swapping the text K/V
    assert (norc[5].video_latents - sw[5].video_latents).abs().max() > 1e-6
    assert sizes[0][0] == sizes[0][1]
    assert len({r.kv_cache_bytes for r in sw[2:]}) == 1


def test_bad_inputs(model):
    text, _ = _texts(model)
    gen = StreamingGenerator(model, StreamConfig(latent_grid_hw=HW))
    with pytest.raises(InputError):
        next(iter(gen.stream(text, "x", 2)))
    with pytest.raises(InputError):
        next(iter(gen.stream(text, True, 2)))
    for n in (0, -1, 1.5):
        with pytest.raises(InputError):
            next(iter(gen.stream(text, SEED, n)))
    with pytest.raises(ConfigError):
        StreamConfig(latent_grid_hw=HW, video_window_s=0.5)
    with pytest.raises(ConfigError):
        StreamConfig(latent_grid_hw=HW, audio_window_s=0.9)
    with pytest.raises(ConfigError) as ei:
        StreamConfig(latent_grid_hw=(0, 2), video_window_s=float("inf"), denoising_step_list=(500, 700))
    assert len(ei.value.problems) == 3


def test_kv_cache_bytes_counts_each_tensor_once(model):
    text, _ = _texts(model)
    stream = StreamingGenerator(model, StreamConfig(latent_grid_hw=HW)).stream(text, SEED, 2)
    cache = stream.cache
    txt = sum(k.nbytes + v.nbytes for k, v in (*text.video_kv, *text.audio_kv))
    for res in stream:
        held = sum(
            sum(t.nbytes for t in cache.entries(layer, name))
            for layer in range(model.config.num_layers) for name in ("video_self", "audio_self", "a2v", "v2a")
        )  # fmt: skip
        assert res.kv_cache_bytes == held + txt
