"""Losses and noise assignment: the audio sigma mapping, per-sample means, DMD gradient, critic target."""

import torch

from omniforcing_rt.distill.losses import (
    audio_block_ids,
    critic_flow_loss,
    dmd_loss,
    dmd_sigmas,
    noisy_clip,
    ode_regression_loss,
    release_compat_audio_video_frame,
)
from omniforcing_rt.pipeline.layout import BlockLayout


def test_release_compat_mapping_moves_exactly_the_14_documented_audio_frames():
    layout = BlockLayout.create("release", 5, 1)
    own = audio_block_ids(layout, "own_block")
    assert torch.equal(own, layout.audio_frame_block_ids())
    compat = audio_block_ids(layout, "release_compat")
    moved = torch.nonzero(compat != own).flatten().tolist()
    assert moved == [*range(26, 32), *range(51, 55), *range(76, 79), 101]  # spec D.2
    assert bool((own[moved] - compat[moved] == 1).all())  # the previous block's level
    assert release_compat_audio_video_frame(16, 126).shape == (126,)


def test_noisy_clip_takes_each_block_from_its_own_trajectory_index():
    layout = BlockLayout.create("release", 2, 1)  # video 4+3, audio 26+25
    t = 3
    traj_v = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1, 1, 1).expand(2, t, 7, 1, 1, 1)
    traj_a = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1).expand(2, t, 51, 1)
    sigmas = torch.tensor([1.0, 0.5, 0.0])
    idx = torch.tensor([[0, 2], [1, 0]])
    v, a, sv, sa = noisy_clip(
        traj_v, traj_a, sigmas, idx, layout.video_frame_block_ids(), layout.audio_frame_block_ids()
    )
    assert v[0, :4].eq(0).all() and v[0, 4:].eq(2).all() and a[0, :26].eq(0).all() and a[0, 26:].eq(2).all()
    assert v[1, :4].eq(1).all() and v[1, 4:].eq(0).all()
    assert sv[0].tolist() == [1.0] * 4 + [0.0] * 3 and sa[1, 0] == 0.5 and sa[1, 30] == 1.0


def test_ode_loss_masks_clean_frames_and_is_a_mean_over_samples():
    g = torch.Generator().manual_seed(0)
    pv, tv = torch.randn(3, 5, 2, 1, 1, generator=g), torch.randn(3, 5, 2, 1, 1, generator=g)
    pa, ta = torch.randn(3, 9, 2, generator=g), torch.randn(3, 9, 2, generator=g)
    sv = torch.tensor([[1.0, 1, 0, 0, 0], [0.5] * 5, [0.0] * 5])
    sa = torch.ones(3, 9)
    loss, _ = ode_regression_loss((pv, pa), (tv, ta), (sv, sa), 1.0, 0.5)
    singles = [ode_regression_loss((pv[i:i + 1], pa[i:i + 1]), (tv[i:i + 1], ta[i:i + 1]),
                                   (sv[i:i + 1], sa[i:i + 1]), 1.0, 0.5)[0] for i in range(3)]  # fmt: skip
    assert torch.allclose(loss, torch.stack(singles).mean())
    # clean frames do not count: changing them changes nothing
    pv2 = pv.clone()
    pv2[0, 2:] += 100
    pv2[2] += 100
    assert torch.allclose(ode_regression_loss((pv2, pa), (tv, ta), (sv, sa), 1.0, 0.5)[0], loss)


def test_dmd_loss_gradient_is_the_normalised_score_difference():
    g = torch.Generator().manual_seed(1)
    x = [torch.randn(2, 3, 4, generator=g, requires_grad=True), torch.randn(2, 5, 4, generator=g, requires_grad=True)]
    real = [torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g)]
    fake = [torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g)]
    loss, _ = dmd_loss(tuple(x), tuple(real), tuple(fake), 1.0, 2.0)
    loss.backward()
    for xi, ri, fi, w in zip(x, real, fake, (1.0, 2.0)):
        norm = (xi.detach() - ri).abs().mean(dim=(1, 2), keepdim=True)
        grad = (fi - ri) / norm
        expect = w * grad / (xi[0].numel() * xi.shape[0])
        assert torch.allclose(xi.grad, expect, atol=1e-6)


def test_dmd_sigma_lookup_matches_the_release():
    s = dmd_sigmas(torch.tensor([20, 500, 980]))
    assert torch.allclose(s, torch.tensor([0.2171, 0.8966, 0.9976]), atol=1e-4)


def test_critic_loss_is_zero_for_a_perfect_prediction():
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g))
    eps = (torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g))
    sigma = torch.tensor([0.3, 0.9])
    noisy = tuple((1 - sigma.view(-1, 1, 1)) * xi + sigma.view(-1, 1, 1) * ei for xi, ei in zip(x, eps))
    loss, _ = critic_flow_loss(x, noisy, eps, x, sigma)
    assert float(loss) < 1e-10
    bad, _ = critic_flow_loss(x, noisy, eps, (x[0] + 1, x[1]), sigma)
    assert float(bad) > 0.1
