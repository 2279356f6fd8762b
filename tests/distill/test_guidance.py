"""Teacher guidance: perturbation hooks are exact branch skips, and the guider combines the passes."""

import copy

import pytest
import torch

from omniforcing_rt.distill.config import GuiderConfig
from omniforcing_rt.distill.guidance import cat_text, cfg_x0, clip_forward, guided_x0, perturbed
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import init_random_weights

from ._helpers import TEST_MODEL

CONV = Convention.teacher()


@pytest.fixture(scope="module")
def setup():
    model = AVTransformer(ModelConfig(**TEST_MODEL))
    init_random_weights(model, 3)
    model.eval()
    g = torch.Generator().manual_seed(4)
    text = model.encode_text(torch.randn(2, 4, 12, generator=g), torch.randn(2, 4, 12, generator=g))
    neg = model.encode_text(torch.randn(2, 4, 12, generator=g), torch.randn(2, 4, 12, generator=g))
    video, audio = torch.randn(2, 7, 8, 2, 3, generator=g), torch.randn(2, 51, 8, generator=g)
    vs, as_ = torch.full((2, 7), 0.6), torch.full((2, 51), 0.6)
    return model, text, neg, (video, audio, vs, as_)


def _zeroed(model, names, blocks):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for i in blocks:
            for n in names:
                lin = getattr(m.transformer_blocks[i], n).to_out[0]
                lin.weight.zero_()
                lin.bias.zero_()
    return m


@torch.no_grad()
def test_keep_all_equals_the_plain_forward(setup):
    model, text, _, x = setup
    ref = clip_forward(model, CONV, text, *x)
    with perturbed(model, (1,), torch.ones(2), torch.ones(2)):
        out = clip_forward(model, CONV, text, *x)
    assert torch.equal(ref[0], out[0]) and torch.equal(ref[1], out[1])
    assert not any(m._forward_hooks for m in model.modules())  # hooks are gone


@torch.no_grad()
def test_stg_and_modality_rows_equal_zeroed_branches(setup):
    model, text, _, x = setup
    with perturbed(model, (1,), torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])):
        out = clip_forward(model, CONV, text, *x)
    stg_ref = clip_forward(_zeroed(model, ("attn1", "audio_attn1"), [1]), CONV, text, *x)
    mod_ref = clip_forward(_zeroed(model, ("audio_to_video_attn", "video_to_audio_attn"), [0, 1]), CONV, text, *x)
    plain = clip_forward(model, CONV, text, *x)
    for k in (0, 1):
        assert torch.allclose(out[k][1], stg_ref[k][1], atol=1e-6)  # row 1: STG
        assert torch.allclose(out[k][0], mod_ref[k][0], atol=1e-6)  # row 0: modality
        assert not torch.allclose(out[k][1], plain[k][1], atol=1e-4)


@torch.no_grad()
def test_guider_combines_separate_passes(setup):
    model, text, neg, x = setup
    g = GuiderConfig(video_cfg=3.0, audio_cfg=5.0, video_stg=1.0, audio_stg=0.5, video_modality=3.0,
                     audio_modality=2.0, video_rescale=0.7, audio_rescale=0.0, stg_blocks=(1,))  # fmt: skip
    got = guided_x0(model, CONV, text, neg, *x, g)
    c = clip_forward(model, CONV, text, *x)
    u = clip_forward(model, CONV, neg, *x)
    with perturbed(model, (1,), self_keep=torch.zeros(2)):
        p = clip_forward(model, CONV, text, *x)
    with perturbed(model, (), cross_keep=torch.zeros(2)):
        m = clip_forward(model, CONV, text, *x)
    for k, (cfg, stg, mod, r) in enumerate(((3.0, 1.0, 3.0, 0.7), (5.0, 0.5, 2.0, 0.0))):
        pred = c[k] + (cfg - 1) * (c[k] - u[k]) + stg * (c[k] - p[k]) + (mod - 1) * (c[k] - m[k])
        if r:
            dims = tuple(range(1, pred.ndim))
            pred = pred * (r * c[k].std(dim=dims, keepdim=True) / pred.std(dim=dims, keepdim=True) + 1 - r)
        assert torch.allclose(got[k], pred, atol=1e-5)
    neutral = GuiderConfig(video_cfg=1, audio_cfg=1, video_stg=0, audio_stg=0, video_modality=1, audio_modality=1,
                           video_rescale=0, audio_rescale=0)  # fmt: skip
    n = guided_x0(model, CONV, text, neg, *x, neutral)
    assert torch.allclose(n[0], c[0], atol=1e-6) and torch.allclose(n[1], c[1], atol=1e-6)
    real = cfg_x0(model, CONV, text, neg, *x, 3.0, 5.0)
    assert torch.allclose(real[1], c[1] + 4.0 * (c[1] - u[1]), atol=1e-5)


def test_cat_text_and_bad_stg_block(setup):
    model, text, neg, _ = setup
    both = cat_text(text, neg)
    assert both.video_kv[0][0].shape[0] == 4 and both.mask is None
    with pytest.raises(Exception, match="out of range"), perturbed(model, (5,), torch.ones(2)):
        pass
