"""Teacher-side forwards: the bidirectional clip forward, perturbed passes, and the multimodal guider.

Perturbations (spec A.6, A.11) multiply one attention branch's output by 0 for chosen batch rows:

* STG: the video and audio *self*-attention branches of the blocks in ``stg_blocks``;
* modality guidance: both A<->V attention branches in every block.

They are implemented with forward hooks on the ``to_out`` projection of those attention modules
(:func:`perturbed`), installed on the given model instance for the duration of a ``with`` block and
removed afterwards: no model code changes and nothing global is patched. Multiplying ``to_out``'s
output by 0 makes the gated residual add ``x + 0 * gate`` an exact skip of the branch. A per-row
keep mask lets the unperturbed, unconditional and perturbed passes share one batched forward.

The guider combines the passes on x0 predictions (linear guidance is the same on x0 or velocity; the
rescale uses the std of the x0 predictions, per sample and modality):
pred = c + (cfg-1)(c-u) + stg (c-p) + (mod-1)(c-m), then pred <- pred (r std(c)/std(pred) + 1 - r).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from omniforcing_rt.distill.config import GuiderConfig
from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.patchify import patchify_video, unpatchify_video
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import AVTransformer, Modality, TextContext

__all__ = ["cat_text", "cfg_x0", "clip_forward", "clip_velocity", "guided_x0", "perturbed"]


def cat_text(*texts: TextContext) -> TextContext:
    """Concatenate text contexts along the batch (per layer K/V, and the padding mask)."""
    if len(texts) == 1:
        return texts[0]
    layers = len(texts[0].video_kv)

    def cat_kv(kvs: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.cat([t[i][0] for t in kvs]), torch.cat([t[i][1] for t in kvs])) for i in range(layers)]

    masks = [t.mask for t in texts]
    if all(m is None for m in masks):
        mask = None
    else:
        ref = next(m for m in masks if m is not None)
        shapes = [(t.video_kv[0][0].shape[0], 1, 1, t.video_kv[0][0].shape[1]) for t in texts]
        mask = torch.cat([torch.zeros(s, dtype=ref.dtype, device=ref.device) if m is None else m
                          for m, s in zip(masks, shapes)])  # fmt: skip
    return TextContext(cat_kv([t.video_kv for t in texts]), cat_kv([t.audio_kv for t in texts]), mask)


@contextmanager
def perturbed(
    model: AVTransformer,
    stg_blocks: tuple[int, ...] = (),
    self_keep: torch.Tensor | None = None,
    cross_keep: torch.Tensor | None = None,
) -> Iterator[None]:
    """Skip attention branches for some batch rows while the block is active.

    Args:
        model: the transformer (hooks go on this instance only).
        stg_blocks: blocks whose video and audio self-attention ``self_keep`` applies to.
        self_keep: [B] 1 = keep, 0 = skip the self-attention branch (STG rows).
        cross_keep: [B] 1 = keep, 0 = skip both A<->V branches in every block (modality rows).
    """
    n = len(model.transformer_blocks)
    bad = [b for b in stg_blocks if not 0 <= b < n] if self_keep is not None else []
    if bad:
        raise ConfigError(problems=[f"stg_blocks {bad} out of range for a {n}-block model"])
    handles = []

    def scaler(keep: torch.Tensor):  # noqa: ANN202 (hook signature)
        def hook(_mod: torch.nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
            return out * keep.to(out.device, out.dtype).view(-1, *([1] * (out.ndim - 1)))

        return hook

    try:
        for i, blk in enumerate(model.transformer_blocks):
            if self_keep is not None and i in stg_blocks:
                for attn in (blk.attn1, blk.audio_attn1):
                    handles.append(attn.to_out.register_forward_hook(scaler(self_keep)))
            if cross_keep is not None:
                for attn in (blk.audio_to_video_attn, blk.video_to_audio_attn):
                    handles.append(attn.to_out.register_forward_hook(scaler(cross_keep)))
        yield
    finally:
        for h in handles:
            h.remove()


def clip_velocity(
    model: AVTransformer,
    convention: Convention,
    text: TextContext,
    video: torch.Tensor,
    audio: torch.Tensor,
    video_sigma: torch.Tensor,
    audio_sigma: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bidirectional (unmasked) velocities of a whole clip (flow-matching training, samplers).

    Args:
        video: [B, F, C, H, W]; audio: [B, T, C]; video_sigma: [B, F]; audio_sigma: [B, T].

    Returns:
        (video velocity [B, F, C, H, W], audio velocity [B, T, C]).
    """
    b, f, _, h, w = video.shape
    if video_sigma.shape != (b, f) or audio_sigma.shape != audio.shape[:2]:
        raise InputError(f"sigmas {tuple(video_sigma.shape)}/{tuple(audio_sigma.shape)} do not match the clip")
    tokens = patchify_video(video)
    v_sigma = video_sigma.repeat_interleave(h * w, dim=1)
    style, pdtype = convention.position_style, convention.position_dtype
    vm = Modality(tokens, v_sigma, video_positions(0, f, h, w, b, style, pdtype).to(video.device))
    am = Modality(audio, audio_sigma, audio_positions(0, audio.shape[1], b, style, pdtype).to(audio.device))
    vv, av = model(vm, am, text, convention)
    return unpatchify_video(vv, f, h, w), av


def clip_forward(
    model: AVTransformer,
    convention: Convention,
    text: TextContext,
    video: torch.Tensor,
    audio: torch.Tensor,
    video_sigma: torch.Tensor,
    audio_sigma: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bidirectional (unmasked) x0 of a whole clip: the teacher's and the critic's forward.

    Args:
        video: [B, F, C, H, W]; audio: [B, T, C]; video_sigma: [B, F]; audio_sigma: [B, T].

    Returns:
        (video x0 [B, F, C, H, W], audio x0 [B, T, C]); grad follows the caller's grad mode.
    """
    vv, av = clip_velocity(model, convention, text, video, audio, video_sigma, audio_sigma)
    # x0 = x - sigma * v per frame (AVTransformer.to_x0 in clip layout: the same elementwise ops)
    video_x0 = (video.float() - video_sigma.float()[:, :, None, None, None] * vv.float()).to(video.dtype)
    return video_x0, AVTransformer.to_x0(audio, av, audio_sigma)


def _rep(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.repeat(n, *([1] * (x.ndim - 1)))


def _combine(parts: dict[str, torch.Tensor], cfg: float, stg: float, mod: float, rescale: float) -> torch.Tensor:
    c = parts["c"]
    pred = c.clone()
    if "u" in parts:
        pred = pred + (cfg - 1.0) * (c - parts["u"])
    if "p" in parts:
        pred = pred + stg * (c - parts["p"])
    if "m" in parts:
        pred = pred + (mod - 1.0) * (c - parts["m"])
    if rescale > 0:
        dims = tuple(range(1, c.ndim))
        factor = c.float().std(dim=dims, keepdim=True) / pred.float().std(dim=dims, keepdim=True).clamp_min(1e-12)
        pred = pred * (rescale * factor + (1.0 - rescale)).to(pred.dtype)
    return pred


@torch.no_grad()
def guided_x0(
    model: AVTransformer,
    convention: Convention,
    text_cond: TextContext,
    text_uncond: TextContext,
    video: torch.Tensor,
    audio: torch.Tensor,
    video_sigma: torch.Tensor,
    audio_sigma: torch.Tensor,
    guider: GuiderConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided x0 of the teacher: the needed passes (c, u, p, m) run as one batch of up to 4 B rows."""
    kinds = ["c"]
    if guider.video_cfg != 1.0 or guider.audio_cfg != 1.0:
        kinds.append("u")
    if guider.video_stg != 0.0 or guider.audio_stg != 0.0:
        kinds.append("p")
    if guider.video_modality != 1.0 or guider.audio_modality != 1.0:
        kinds.append("m")
    n, b = len(kinds), video.shape[0]
    text = cat_text(*[text_uncond if k == "u" else text_cond for k in kinds])
    self_keep = torch.tensor([0.0 if k == "p" else 1.0 for k in kinds]).repeat_interleave(b)
    cross_keep = torch.tensor([0.0 if k == "m" else 1.0 for k in kinds]).repeat_interleave(b)
    with perturbed(model, guider.stg_blocks, self_keep if "p" in kinds else None, cross_keep if "m" in kinds else None):
        vx0, ax0 = clip_forward(
            model, convention, text, _rep(video, n), _rep(audio, n), _rep(video_sigma, n), _rep(audio_sigma, n)
        )
    vparts = dict(zip(kinds, vx0.chunk(n)))
    aparts = dict(zip(kinds, ax0.chunk(n)))
    g = guider
    return (
        _combine(vparts, g.video_cfg, g.video_stg, g.video_modality, g.video_rescale),
        _combine(aparts, g.audio_cfg, g.audio_stg, g.audio_modality, g.audio_rescale),
    )


@torch.no_grad()
def cfg_x0(
    model: AVTransformer,
    convention: Convention,
    text_cond: TextContext,
    text_uncond: TextContext,
    video: torch.Tensor,
    audio: torch.Tensor,
    video_sigma: torch.Tensor,
    audio_sigma: torch.Tensor,
    video_cfg: float,
    audio_cfg: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The DMD real score: c + (s - 1)(c - u) per modality (cond and uncond batched)."""
    vx0, ax0 = clip_forward(
        model, convention, cat_text(text_cond, text_uncond), _rep(video, 2), _rep(audio, 2),
        _rep(video_sigma, 2), _rep(audio_sigma, 2),
    )  # fmt: skip
    vc, vu = vx0.chunk(2)
    ac, au = ax0.chunk(2)
    return vc + (video_cfg - 1.0) * (vc - vu), ac + (audio_cfg - 1.0) * (ac - au)
