import json

import pytest
import torch
from safetensors.torch import load_file
from tests.helpers.tiny_model import TINY_REF, need, tiny_model

from omniforcing_rt.errors import InputError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import AVTransformer, Modality
from omniforcing_rt.model.weights import load_transformer


def _inputs(seed=0, frames=2, h=2, w=2, audio=9, b=1):
    g = torch.Generator().manual_seed(seed)
    tv = frames * h * w
    video = Modality(torch.randn(b, tv, 8, generator=g), torch.full((b, tv), 0.6), video_positions(0, frames, h, w, b))
    aud = Modality(torch.randn(b, audio, 8, generator=g), torch.full((b, audio), 0.6), audio_positions(0, audio, b))
    return video, aud


def _fwd(model, video, audio, text, conv=None):
    with torch.no_grad():
        return model(video, audio, text, conv or Convention.student())


def test_text_attention_honours_mask():
    model = tiny_model(seed=1)
    video, audio = _inputs()
    g = torch.Generator().manual_seed(3)
    vctx, actx = torch.randn(1, 6, 12, generator=g), torch.randn(1, 6, 12, generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])  # left padding
    base = _fwd(model, video, audio, model.encode_text(vctx, actx, mask))
    pv, pa = vctx.clone(), actx.clone()
    pv[:, :2] += 5.0
    pa[:, :2] -= 5.0
    padded = _fwd(model, video, audio, model.encode_text(pv, pa, mask))
    for a, b in zip(base, padded):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    vv = vctx.clone()
    vv[:, 3] += 1.0
    valid = _fwd(model, video, audio, model.encode_text(vv, actx, mask))
    assert (valid[0] - base[0]).abs().max() > 1e-4
    # without the mask, the padded features do matter
    nomask = _fwd(model, video, audio, model.encode_text(vctx, actx))
    assert (nomask[0] - base[0]).abs().max() > 1e-4
    # an all-ones mask equals no mask
    ones = _fwd(model, video, audio, model.encode_text(vctx, actx, torch.ones(1, 6, dtype=torch.bool)))
    torch.testing.assert_close(ones[0], nomask[0], atol=1e-6, rtol=0)


def test_v2a_reads_video_normalisation_from_before_a2v_update():
    # Spec A.6: V->A uses nv computed before the A->V residual update. With one layer, the audio
    # output therefore cannot depend on the A->V attention at all.
    model = tiny_model(seed=4, num_layers=1)
    video, audio = _inputs(seed=2)
    text = model.encode_text(torch.randn(1, 3, 12), torch.randn(1, 3, 12))
    bv, ba = _fwd(model, video, audio, text)
    with torch.no_grad():
        model.transformer_blocks[0].audio_to_video_attn.to_out[0].weight.mul_(3.0)
        model.transformer_blocks[0].audio_to_video_attn.to_out[0].bias.add_(0.5)
    nv, na = _fwd(model, video, audio, text)
    assert (nv - bv).abs().max() > 1e-4  # the A->V branch matters for video
    assert torch.equal(na, ba)  # ... but not for audio in the same block
    # symmetric: V->A output does not feed video in the same block
    with torch.no_grad():
        model.transformer_blocks[0].video_to_audio_attn.to_out[0].bias.add_(0.5)
    nv2, na2 = _fwd(model, video, audio, text)
    assert torch.equal(nv2, nv) and (na2 - na).abs().max() > 1e-4


def test_bad_inputs_raise_input_error():
    model = tiny_model(seed=0)
    video, audio = _inputs()
    text = model.encode_text(torch.randn(1, 3, 12), torch.randn(1, 3, 12))
    bad = [
        (Modality(torch.randn(1, 8, 7), video.sigma, video.positions), audio),  # wrong latent width
        (video, Modality(torch.randn(1, 9, 9), audio.sigma, audio.positions)),
        (Modality(video.latent, torch.full((1, 7), 0.5), video.positions), audio),  # sigma shape
        (Modality(video.latent, video.sigma[0], video.positions), audio),
        (Modality(video.latent, video.sigma, video.positions[:, :1]), audio),  # positions axes
        (video, Modality(audio.latent, audio.sigma, audio_positions(0, 8))),  # positions length
        (Modality(video.latent.expand(2, -1, -1), video.sigma.expand(2, -1), video.positions.expand(2, -1, -1, -1)), audio),
        (Modality(video.latent.long(), video.sigma, video.positions), audio),
    ]
    for v, a in bad:
        with pytest.raises(InputError):
            _fwd(model, v, a, text)


def test_encode_text_validation():
    model = tiny_model(seed=0)
    ctx = torch.randn(1, 4, 12)
    with pytest.raises(InputError):
        model.encode_text(ctx, ctx, torch.ones(1, 4))  # float mask
    with pytest.raises(InputError):
        model.encode_text(torch.randn(1, 4, 11), ctx)
    with pytest.raises(InputError):
        model.encode_text(ctx, torch.randn(1, 4, 13))
    with pytest.raises(InputError):
        model.encode_text(ctx, torch.randn(1, 5, 12))
    with pytest.raises(InputError):
        model.encode_text(ctx, ctx, torch.ones(1, 3, dtype=torch.int64))


@pytest.mark.parametrize("who", ["student", "teacher"])
def test_fixture_bidir_velocity_parity(who):
    root = need(TINY_REF)
    cfg_json = json.loads((root / "config.json").read_text())
    io = load_file(str(root / "io.safetensors"))
    model, header_conv, _ = load_transformer(root / "weights.safetensors")
    assert header_conv == Convention.student()  # the fixture header has no teacher keys
    conv = Convention.student() if who == "student" else Convention(**cfg_json["teacher_overrides"])
    text = model.encode_text(io["context.video"], io["context.audio"], io["context.attention_mask"])
    video = Modality(io["bidir.video_tokens"], io["bidir.video_timesteps"][..., 0], io["bidir.video_positions"])
    audio = Modality(io["bidir.audio_tokens"], io["bidir.audio_timesteps"][..., 0], io["bidir.audio_positions"])
    vv, av = _fwd(model, video, audio, text, conv)
    ev = (vv - io[f"bidir.{who}.video_velocity"]).abs().max().item()
    ea = (av - io[f"bidir.{who}.audio_velocity"]).abs().max().item()
    assert ev <= 1e-5 and ea <= 1e-5, (ev, ea)
    x0 = AVTransformer.to_x0(video.latent, vv, video.sigma)
    assert (x0 - io[f"bidir.{who}.video_x0"]).abs().max() <= 1e-5
    # the conventions are not interchangeable on these weights
    other = Convention.teacher() if who == "student" else Convention.student()
    ov, _ = _fwd(model, video, audio, text, other)
    assert (ov - vv).abs().max() > 1e-4
