"""Generator rollouts for DMD: the Self-Forcing causal rollout with the KV cache, and the bidirectional one.

Causal rollout (spec D.2 Stage 3, mirroring the inference loop of spec C.1 pass for pass): for every
block k, from noise, one pass per student sigma over only the block's tokens, attending to the
cached history plus the block (:class:`KvCacheSet` and the model's KV hook); each x0 is re-noised to
the next sigma with fresh noise. The rollout stops at the *exit* index (shared by all blocks; the
trainer draws it once per step from a step-keyed generator, so every process gets the same one):

* passes before the exit run without gradient;
* the exit pass runs with gradient and, optionally, under activation checkpointing. Its hook reads a
  snapshot of the committed history taken before the pass (a pure function of its arguments), so the
  recomputation in backward, which happens after later blocks were committed, sees exactly the
  history the forward saw: the equivalent of the release's restoring the cache ``end`` pointers;
* the exit x0 is the block's output (even when not fully denoised);
* the context-refresh pass (input re-noised to ``context_noise`` if > 0) runs without gradient and
  commits the block's K/V, so later blocks read clean, detached history as at inference.

With ``exit_index`` = last and no gradient, the outputs equal :class:`StreamingGenerator`'s for the same
keyed noise (tested). The bidirectional rollout is the paper's Stage-I few-step sampler with backward
simulation: the same exit rule over whole-clip passes without any mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from omniforcing_rt.distill.guidance import clip_forward
from omniforcing_rt.errors import InputError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.patchify import patchify_video, unpatchify_video
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import TEMPORAL_CACHES, AVTransformer, KvHook, Modality, TextContext
from omniforcing_rt.pipeline.kv_cache import CachePolicy, KvCacheSet
from omniforcing_rt.pipeline.layout import BlockLayout, BlockSpec
from omniforcing_rt.pipeline.noise import STREAM_AUDIO, STREAM_VIDEO, block_noise
from omniforcing_rt.pipeline.schedule import renoise

__all__ = ["BlockNoise", "RolloutSpec", "bidirectional_rollout", "causal_rollout", "keyed_block_noise"]

BlockNoise = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]
"""(block, step) -> (video noise [B, F_b, C, H, W], audio noise [B, N_b, C])."""


@dataclass(frozen=True)
class RolloutSpec:
    """Geometry and sampling of a rollout."""

    layout: BlockLayout
    """Block layout (with the generator's sink count)."""
    grid_hw: tuple[int, int]
    """Video latent rows x columns."""
    sigmas: tuple[float, ...]
    """Sigma of every denoising pass (the trailing 0 excluded)."""
    context_sigma: float
    """Sigma of the context-refresh pass."""
    convention: Convention
    """Runtime convention of the generator."""
    cache_policy: CachePolicy | None = None
    """Rolling windows (None = keep all history, as the release)."""


def keyed_block_noise(seeds: list[int], layout: BlockLayout, grid_hw: tuple[int, int], video_c: int, audio_c: int,
                      device: torch.device, dtype: torch.dtype = torch.float32) -> BlockNoise:  # fmt: skip
    """Per-sample keyed noise (the streaming pipeline's ``block_noise`` with each sample's seed)."""
    h, w = grid_hw

    def noise(block: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        spec = layout.block(block)
        vs, as_ = (1, spec.video_frames, video_c, h, w), (1, spec.audio_frames, audio_c)
        v = torch.cat([block_noise(s, block, step, STREAM_VIDEO, vs) for s in seeds])
        a = torch.cat([block_noise(s, block, step, STREAM_AUDIO, as_) for s in seeds])
        return v.to(device, dtype), a.to(device, dtype)

    return noise


def block_pass(
    model: AVTransformer,
    rs: RolloutSpec,
    text: TextContext,
    spec: BlockSpec,
    video_in: torch.Tensor,
    audio_in: torch.Tensor,
    sigma: float,
    hook: KvHook,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over block ``spec`` (as :meth:`StreamingGenerator.run_pass`, grad mode left to the caller)."""
    h, w = rs.grid_hw
    b, f = video_in.shape[:2]
    if f != spec.video_frames or audio_in.shape[1] != spec.audio_frames:
        raise InputError(
            f"block {spec.index} needs {spec.video_frames}/{spec.audio_frames} latents, got {f}/{audio_in.shape[1]}"
        )
    tokens = patchify_video(video_in)
    v_sigma = torch.full(tokens.shape[:2], sigma, dtype=torch.float32, device=tokens.device)
    a_sigma = torch.full(audio_in.shape[:2], sigma, dtype=torch.float32, device=audio_in.device)
    conv = rs.convention
    vpos = video_positions(spec.video_start, f, h, w, b, conv.position_style, conv.position_dtype)
    apos = audio_positions(spec.audio_start, spec.audio_frames, b, conv.position_style, conv.position_dtype)
    video = Modality(tokens, v_sigma, vpos.to(tokens.device))
    audio = Modality(audio_in, a_sigma, apos.to(audio_in.device))
    vv, av = model(video, audio, text, conv, kv=hook, with_sinks=spec.index == 0)
    video_x0 = unpatchify_video(AVTransformer.to_x0(tokens, vv, v_sigma), f, h, w)
    return video_x0, AVTransformer.to_x0(audio_in, av, a_sigma)


def _snapshot_hook(cache: KvCacheSet) -> KvHook:
    """A hook over the history committed so far, frozen (safe to replay in backward)."""
    snap = {(layer, name): cache.entries(layer, name) for layer in range(cache.num_layers) for name in TEMPORAL_CACHES}

    def hook(layer: int, name: str, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hist = snap[(layer, name)]
        if hist is None:
            return k, v
        return torch.cat([hist[0], k], dim=1), torch.cat([hist[1], v], dim=1)

    return hook


def _exit_pass(fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]], use_ckpt: bool,
               video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    if use_ckpt:
        return checkpoint(fn, video, audio, use_reentrant=False)
    return fn(video, audio)


def causal_rollout(
    model: AVTransformer,
    rs: RolloutSpec,
    text: TextContext,
    noise: BlockNoise,
    exit_index: int,
    *,
    grad: bool,
    use_checkpoint: bool = True,
    grad_last_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll out every block of ``rs.layout`` (see module docstring).

    ``grad_last_only``: only the last block's exit pass carries gradient (paper v1 Stage III, where
    the loss covers the last block only; earlier blocks need no graph).

    Returns:
        (video [B, F, C, H, W], audio [B, N, C]): each block's exit x0 (with grad when ``grad``).
    """
    if not 0 <= exit_index < len(rs.sigmas):
        raise InputError(f"exit_index {exit_index} out of range for {len(rs.sigmas)} denoising passes")
    cache = KvCacheSet(model.config.num_layers, rs.cache_policy)
    cache.text = text
    videos, audios = [], []
    last = rs.layout.blocks[-1].index
    for spec in rs.layout.blocks:
        xv, xa = noise(spec.index, 0)
        block_grad = grad and (spec.index == last or not grad_last_only)
        for i, s in enumerate(rs.sigmas):
            if i == exit_index and block_grad:
                hook = _snapshot_hook(cache)
                with torch.enable_grad():
                    vx0, ax0 = _exit_pass(
                        lambda v, a, s=s, spec=spec, hook=hook: block_pass(model, rs, text, spec, v, a, s, hook),
                        use_checkpoint, xv, xa,
                    )  # fmt: skip
                break
            cache.begin_pass(spec.index)
            with torch.no_grad():
                vx0, ax0 = block_pass(model, rs, text, spec, xv, xa, s, cache.hook)
            if i == exit_index:
                break
            nv, na = noise(spec.index, i + 1)
            xv, xa = renoise(vx0, nv, rs.sigmas[i + 1]), renoise(ax0, na, rs.sigmas[i + 1])
        videos.append(vx0)
        audios.append(ax0)
        rv, ra = vx0.detach(), ax0.detach()
        if rs.context_sigma > 0:
            nv, na = noise(spec.index, len(rs.sigmas))
            rv, ra = renoise(rv, nv, rs.context_sigma), renoise(ra, na, rs.context_sigma)
        cache.begin_pass(spec.index)
        with torch.no_grad():
            block_pass(model, rs, text, spec, rv, ra, rs.context_sigma, cache.hook)
        cache.commit()
    return torch.cat(videos, dim=1), torch.cat(audios, dim=1)


def bidirectional_rollout(
    model: AVTransformer,
    convention: Convention,
    text: TextContext,
    noise: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    sigmas: tuple[float, ...],
    exit_index: int,
    *,
    grad: bool,
    use_checkpoint: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Few-step whole-clip sampling with backward simulation; ``noise(step)`` gives full-clip noise."""
    if not 0 <= exit_index < len(sigmas):
        raise InputError(f"exit_index {exit_index} out of range for {len(sigmas)} denoising passes")
    xv, xa = noise(0)

    def run(v: torch.Tensor, a: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor]:
        vs = torch.full(v.shape[:2], s, dtype=torch.float32, device=v.device)
        as_ = torch.full(a.shape[:2], s, dtype=torch.float32, device=a.device)
        return clip_forward(model, convention, text, v, a, vs, as_)

    for i, s in enumerate(sigmas):
        if i == exit_index and grad:
            with torch.enable_grad():
                return _exit_pass(lambda v, a, s=s: run(v, a, s), use_checkpoint, xv, xa)
        with torch.no_grad():
            vx0, ax0 = run(xv, xa, s)
        if i == exit_index:
            return vx0, ax0
        nv, na = noise(i + 1)
        xv, xa = renoise(vx0, nv, sigmas[i + 1]), renoise(ax0, na, sigmas[i + 1])
    raise AssertionError("unreachable")
