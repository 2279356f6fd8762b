"""Self-Forcing rollout: the same passes as streaming inference, and gradients only through exit passes."""

import pytest
import torch

from omniforcing_rt.distill.rollout import RolloutSpec, bidirectional_rollout, causal_rollout, keyed_block_noise
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import init_random_weights
from omniforcing_rt.pipeline.stream import StreamConfig, StreamingGenerator

from ._helpers import TEST_MODEL

HW = (2, 3)
SEED = 77


def _model(sinks=0):
    m = AVTransformer(ModelConfig(**TEST_MODEL, audio_sink_tokens=sinks))
    init_random_weights(m, 5)
    return m


def _text(model, b=1):
    g = torch.Generator().manual_seed(6)
    return model.encode_text(torch.randn(b, 4, 12, generator=g), torch.randn(b, 4, 12, generator=g))


def _spec(kind, sinks, blocks, context_noise=0):
    scfg = StreamConfig(
        latent_grid_hw=HW, layout_kind=kind, convention=Convention.student(), context_noise=context_noise
    )
    layout = scfg.layout(blocks, sinks)
    rs = RolloutSpec(layout, HW, tuple(scfg.pass_sigmas()), context_noise / 1000, scfg.convention)
    return scfg, rs


@pytest.mark.parametrize(("kind", "sinks", "context_noise"), [("release", 0, 0), ("paper", 2, 0), ("release", 0, 100)])
def test_no_grad_rollout_equals_streaming_inference(kind, sinks, context_noise):
    model = _model(sinks)
    scfg, rs = _spec(kind, sinks, 3, context_noise)
    text = _text(model)
    noise = keyed_block_noise([SEED], rs.layout, HW, 8, 8, torch.device("cpu"))
    with torch.no_grad():
        v, a = causal_rollout(model, rs, text, noise, len(rs.sigmas) - 1, grad=False)
    ref = list(StreamingGenerator(model, scfg).stream(text, SEED, 3))
    assert torch.equal(v[0], torch.cat([r.video_latents for r in ref]))
    assert torch.equal(a[0], torch.cat([r.audio_latents for r in ref]))


def test_exit_pass_carries_gradient_and_checkpointing_changes_nothing():
    model = _model()
    _, rs = _spec("release", 0, 2)
    noise = keyed_block_noise([1, 2], rs.layout, HW, 8, 8, torch.device("cpu"))
    grads, outs = [], []
    for use_ckpt in (False, True):
        model.zero_grad()
        text = _text(model, 2)
        v, a = causal_rollout(model, rs, text, noise, 1, grad=True, use_checkpoint=use_ckpt)
        assert v.requires_grad and a.requires_grad
        (v.square().mean() + a.square().mean()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        outs.append((v.detach(), a.detach()))
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-6), n
    with torch.no_grad():
        v, a = causal_rollout(model, rs, _text(model, 2), noise, 1, grad=False)
    assert torch.allclose(v, outs[0][0], atol=1e-6) and torch.allclose(a, outs[0][1], atol=1e-6)


def test_bidirectional_rollout_backward_simulation():
    model = _model()
    g = torch.Generator().manual_seed(3)
    bank = [(torch.randn(1, 7, 8, 2, 3, generator=g), torch.randn(1, 51, 8, generator=g)) for _ in range(3)]
    sig = (1.0, 0.75, 0.54)
    v, a = bidirectional_rollout(model, Convention.teacher(), _text(model), lambda i: bank[i], sig, 2, grad=True)
    assert v.shape == (1, 7, 8, 2, 3) and a.shape == (1, 51, 8) and v.requires_grad
    (v.sum() + a.sum()).backward()
    assert model.proj_out.weight.grad is not None
    with pytest.raises(Exception, match="exit_index"):
        bidirectional_rollout(model, Convention.teacher(), _text(model), lambda i: bank[i], sig, 3, grad=False)


def test_last_block_only_gradient_matches_the_full_rollout_on_that_block():
    """Paper v1 Stage III: only the last block carries gradient; its gradient is unchanged because the
    history it reads is written by no-grad refresh passes in both modes."""
    model = _model()
    _, rs = _spec("release", 0, 3)
    noise = keyed_block_noise([4], rs.layout, HW, 8, 8, torch.device("cpu"))
    last = rs.layout.blocks[-1]
    grads, outs = [], []
    for last_only in (False, True):
        model.zero_grad()
        v, a = causal_rollout(model, rs, _text(model), noise, 2, grad=True, grad_last_only=last_only)
        first = v[:, : rs.layout.blocks[0].video_frames].sum()
        g = torch.autograd.grad(first, list(model.parameters()), allow_unused=True, retain_graph=True)
        assert any(t is not None and t.abs().sum() > 0 for t in g) != last_only  # block 0 has no graph
        lv = v[:, last.video_start : last.video_start + last.video_frames]
        (lv.square().mean() + a[:, last.audio_start :].square().mean()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        outs.append((v.detach(), a.detach()))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-7), n
