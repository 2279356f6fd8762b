"""Streaming with the KV cache == the offline block-causal masked forward, block by block."""

import pytest
import torch
from tests.helpers.tiny_model import tiny_model

from omniforcing_rt.pipeline.noise import STREAM_AUDIO, STREAM_VIDEO, block_noise
from omniforcing_rt.pipeline.offline import masked_forward
from omniforcing_rt.pipeline.schedule import renoise
from omniforcing_rt.pipeline.stream import StreamConfig, StreamingGenerator

SEED = 1234
HW = (2, 3)


def _text(model):
    g = torch.Generator().manual_seed(9)
    ctx_v, ctx_a = torch.randn(1, 5, 12, generator=g), torch.randn(1, 5, 12, generator=g)
    return model.encode_text(ctx_v, ctx_a, torch.tensor([[0, 1, 1, 1, 1]]))


def _replay(model, scfg, text, num_blocks):
    """The streaming loop written out, recording each block's first denoise pass."""
    gen = StreamingGenerator(model, scfg)
    layout = scfg.layout(num_blocks, model.config.audio_sink_tokens)
    cache = gen.new_cache(text)
    sigmas = scfg.pass_sigmas()
    h, w = scfg.latent_grid_hw
    recs = []
    for k in range(num_blocks):
        spec = layout.block(k)
        vs = (1, spec.video_frames, model.config.in_channels, h, w)
        as_ = (1, spec.audio_frames, model.config.audio_in_channels)
        xv, xa = block_noise(SEED, k, 0, STREAM_VIDEO, vs), block_noise(SEED, k, 0, STREAM_AUDIO, as_)
        first = None
        for i, s in enumerate(sigmas):
            vx0, ax0 = gen.run_pass(cache, spec, xv, xa, s, commit=False)
            if i == 0:
                first = (xv, xa, s, vx0, ax0)
            if i + 1 < len(sigmas):
                xv = renoise(vx0, block_noise(SEED, k, i + 1, STREAM_VIDEO, vs), sigmas[i + 1])
                xa = renoise(ax0, block_noise(SEED, k, i + 1, STREAM_AUDIO, as_), sigmas[i + 1])
        gen.run_pass(cache, spec, vx0, ax0, 0.0, commit=True)
        recs.append({"spec": spec, "first": first, "clean": (vx0, ax0)})
    return layout, recs


def _check(model, scfg, num_blocks, video_window=None, audio_window=None):
    text = _text(model)
    layout, recs = _replay(model, scfg, text, num_blocks)
    # the replica is the real loop: same clean blocks as StreamingGenerator.stream
    for rec, res in zip(recs, StreamingGenerator(model, scfg).stream(text, SEED, num_blocks)):
        assert torch.equal(res.video_latents, rec["clean"][0][0])
        assert torch.equal(res.audio_latents, rec["clean"][1][0])
    g = torch.Generator().manual_seed(77)
    worst = 0.0
    for k, rec in enumerate(recs):
        vids, auds, vsig, asig = [], [], [], []
        for j, r in enumerate(recs):
            spec = r["spec"]
            if j < k:
                v, a, s = r["clean"][0], r["clean"][1], 0.0
            elif j == k:
                v, a, s = r["first"][0], r["first"][1], r["first"][2]
            else:  # later blocks: arbitrary content and sigma (must not leak into block k)
                v, a, s = torch.randn(r["clean"][0].shape, generator=g), torch.randn(r["clean"][1].shape, generator=g), 0.5
            vids.append(v)
            auds.append(a)
            vsig.append(torch.full((1, spec.video_frames), s))
            asig.append(torch.full((1, spec.audio_frames), s))
        vx0, ax0 = masked_forward(
            model, text, layout, torch.cat(vids, 1), torch.cat(auds, 1), torch.cat(vsig, 1), torch.cat(asig, 1),
            scfg.convention, video_window=video_window, audio_window=audio_window,
        )  # fmt: skip
        spec = rec["spec"]
        off_v = vx0[:, spec.video_start:spec.video_start + spec.video_frames]
        off_a = ax0[:, spec.audio_start:spec.audio_start + spec.audio_frames]
        dv = (off_v - rec["first"][3]).abs().max().item()
        da = (off_a - rec["first"][4]).abs().max().item()
        assert dv <= 1e-5 and da <= 1e-5, f"block {k}: video {dv:.2e} audio {da:.2e}"
        worst = max(worst, dv, da)
    return recs


@pytest.mark.parametrize(
    ("kind", "sinks"), [("release", 0), ("paper", 0), ("paper", 4), ("release", 4)]
)
def test_stream_equals_masked_forward(kind, sinks):
    model = tiny_model(seed=11, audio_sink_tokens=sinks)
    scfg = StreamConfig(latent_grid_hw=HW, layout_kind=kind)
    recs = _check(model, scfg, 3)
    # sanity: history matters (block 2 is not computed in isolation)
    assert recs[2]["first"][3].abs().max() > 0


def test_stream_equals_masked_forward_with_rolling_windows():
    model = tiny_model(seed=12)
    scfg = StreamConfig(latent_grid_hw=HW, video_window_s=1.0, audio_window_s=2.0)
    assert scfg.cache_policy().video_window_blocks == 1 and scfg.cache_policy().audio_window_blocks == 2
    _check(model, scfg, 5, video_window=1, audio_window=2)


def test_rolling_window_differs_from_full_history():
    # guards the windowed comparison against being vacuous: eviction changes block 4
    model = tiny_model(seed=12)
    text = _text(model)
    full = list(StreamingGenerator(model, StreamConfig(latent_grid_hw=HW)).stream(text, SEED, 5))
    win = list(StreamingGenerator(model, StreamConfig(latent_grid_hw=HW, video_window_s=1.0, audio_window_s=2.0)).stream(text, SEED, 5))
    assert torch.equal(full[1].video_latents, win[1].video_latents)
    assert (full[4].video_latents - win[4].video_latents).abs().max() > 1e-6


@pytest.mark.parametrize(("kind", "sinks"), [("release", 0), ("paper", 4)])
def test_stream_equals_masked_forward_with_kernel_attention(kind, sinks):
    """The ofrt kernel op swapped into the reference model (streaming and offline) keeps the identity."""
    model = tiny_model(seed=13, audio_sink_tokens=sinks)
    model.attention_backend = "ofrt"
    _check(model, StreamConfig(latent_grid_hw=HW, layout_kind=kind), 3)
