"""The offline oracle: one full-sequence forward with block-causal masks over a whole clip.

Streaming with a KV cache must equal this forward, block by block (a mathematical identity when
history blocks are given at the refresh sigma). It is also the training forward of causal ODE
regression. Dense masks are fine here: this path exists for correctness, not speed.
"""

from __future__ import annotations

import torch

from omniforcing_rt.errors import InputError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.patchify import patchify_video, unpatchify_video
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import AVTransformer, Modality, TextContext
from omniforcing_rt.pipeline.layout import BlockLayout
from omniforcing_rt.pipeline.masks import BlockCausalMasks

__all__ = ["masked_forward"]


def masked_forward(
    model: AVTransformer,
    text: TextContext,
    layout: BlockLayout,
    video: torch.Tensor,
    audio: torch.Tensor,
    video_sigma: torch.Tensor,
    audio_sigma: torch.Tensor,
    convention: Convention,
    *,
    video_window: int | None = None,
    audio_window: int | None = None,
    grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x0 of a whole clip under the block-causal rule.

    Args:
        video: [B, F, C, H, W] latents of every block (history clean, current noisy, ...).
        audio: [B, T, C] audio latents (sinks are added by the model when it has them).
        video_sigma: [B, F] per-frame sigma.
        audio_sigma: [B, T] per-latent sigma.
        video_window, audio_window: optional rolling windows (blocks of history besides block 0).
        grad: keep the autograd graph (training); otherwise runs under no_grad.

    Returns:
        (video x0 [B, F, C, H, W], audio x0 [B, T, C]).
    """
    b, f, _, h, w = video.shape
    if f != layout.video_latent_frames or audio.shape[1] != layout.audio_latent_frames:
        raise InputError(
            f"clip has {f} video / {audio.shape[1]} audio latents, layout expects "
            f"{layout.video_latent_frames} / {layout.audio_latent_frames}"
        )
    if h * w != layout.tokens_per_frame:
        raise InputError(f"latent grid {h}x{w} does not match layout tokens_per_frame {layout.tokens_per_frame}")
    tokens = patchify_video(video)
    v_sigma = video_sigma.repeat_interleave(h * w, dim=1)
    pstyle, pdtype = convention.position_style, convention.position_dtype
    vm = Modality(tokens, v_sigma, video_positions(0, f, h, w, b, pstyle, pdtype).to(video.device))
    am = Modality(audio, audio_sigma, audio_positions(0, audio.shape[1], b, pstyle, pdtype).to(audio.device))
    rules = BlockCausalMasks.from_layout(layout, video_window, audio_window)
    masks = {name: getattr(rules, name) for name in ("video_self", "audio_self", "a2v", "v2a")}
    with torch.set_grad_enabled(grad):
        vv, av = model(vm, am, text, convention, masks=masks, with_sinks=layout.audio_sink_tokens > 0)
    video_x0 = unpatchify_video(AVTransformer.to_x0(tokens, vv, v_sigma), f, h, w)
    return video_x0, AVTransformer.to_x0(audio, av, audio_sigma)
