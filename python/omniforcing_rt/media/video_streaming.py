"""Per-block video decode for streaming, with explicit left context and look-ahead (spec-media.md 6.2).

The video decoder is non-causal with a long temporal support: latent k influences output frames
``f k + lo ... f k + hi`` (f = frames per latent; for the 19B structure lo = -180, hi = 173,
about +-22 latents). :func:`video_temporal_support` computes (lo, hi) from the decoder config by
propagating an index interval through every layer (3-tap convs widen it by 1 on each side, or by
2 towards the future when causal; each temporal depth-to-space maps [a, b] -> [2a - 1, 2b]).

Scheme ("windowed recompute"): to emit the frames of latents ``[a, b)`` decode the latent window
``[max(0, a - L), b + R)`` (clipped to what exists) as an independent clip and keep the frames
that belong to ``[a, b)``. A window starting at latent w > 0 decodes latent w as a "first
latent" (one frame, landing on global frame f w), so window frame j is global frame ``f w + j``;
that is why L >= 1. At the true start and, once the stream is finalised, at the true end the
window edge coincides with the clip edge and the replicate padding is exact.

- ``L, R >= the structural reach`` (:meth:`VideoStreamConfig.exact`): per-block output equals the
  offline decode up to float summation order. For LTX-2 that is L = R = 22 latents.
- smaller L, R: an approximation whose error depends on the trained weights' decay and must be
  measured on the real decoder (spec 6.2).
- a decoder with a ``res_x_y`` block (not LTX-2) has no finite support: its GroupNorm normalises
  over all frames, so only an approximation is possible and :meth:`VideoStreamConfig.exact` refuses.

Added latency: frames of latent j are emitted once latent ``j + R`` exists, i.e. ``R`` latents
= ``8 R`` frames = ``R / 3`` s at 24 fps (22 latents = 7.3 s for exactness; with the release's
3-latent blocks, R = 3 gives one block = 1 s). Extra compute per emitted block: L + R latents.

State (:class:`VideoStreamState`, immutable): the retained latents ``[latent_start, latent_start + K)``
(at most L before the first unemitted latent, plus the unemitted ones) and ``latents_done``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omniforcing_rt.errors import ConfigError, InputError, UnsupportedError
from omniforcing_rt.media.video_vae import VideoDecoder, VideoDecoderConfig

__all__ = ["VideoStreamConfig", "VideoStreamState", "decode_video_block", "video_temporal_support"]


def video_temporal_support(config: VideoDecoderConfig) -> tuple[int, int]:
    """Exact structural temporal support of one latent: (lo, hi) output-frame offsets from f k.

    Valid for latents away from the clip start (latent 0 owns a single frame). For the 19B
    structure this returns (-180, 173) (spec 6.2).

    Raises:
        UnsupportedError: the decoder has a ``res_x_y`` block, whose one-group GroupNorm
            normalises over the whole clip (all frames), so every output depends on every latent.
    """
    if any(stage.kind == "res_x_y" for stage in config.stages()):
        raise UnsupportedError(
            "finite temporal support",
            ["res_x_y blocks normalise their shortcut with GroupNorm over the whole clip (all frames)"],
        )

    def conv(iv: tuple[int, int]) -> tuple[int, int]:
        return (iv[0], iv[1] + 2) if config.causal else (iv[0] - 1, iv[1] + 1)

    iv = conv((0, 0))  # conv_in
    for stage in config.stages():
        if stage.kind == "res_x":
            for _ in range(2 * stage.num_layers):
                iv = conv(iv)
        elif stage.kind == "res_x_y":
            iv = conv(conv(iv))
        else:
            iv = conv(iv)
            if stage.stride[0] == 2:
                iv = (2 * iv[0] - 1, 2 * iv[1])
    return conv(iv)  # conv_out


@dataclass(frozen=True, kw_only=True)
class VideoStreamConfig:
    """Context of the per-block video decode, in latents."""

    left_context_latents: int
    """Latents before the first emitted one that are decoded with it (>= 1)."""
    lookahead_latents: int
    """Latents after the last emitted one that must exist before emitting (the added latency)."""

    def __post_init__(self) -> None:
        p = []
        if self.left_context_latents < 1:
            p.append("left_context_latents must be >= 1 (a window's first latent decodes to one frame)")
        if self.lookahead_latents < 0:
            p.append("lookahead_latents must be >= 0")
        if p:
            raise ConfigError("invalid video stream config", p)

    @classmethod
    def exact(cls, config: VideoDecoderConfig) -> VideoStreamConfig:
        """The smallest context for which per-block decode equals the offline decode."""
        lo, hi = video_temporal_support(config)
        f = config.temporal_factor
        return cls(left_context_latents=max(1, (hi + f - 1) // f), lookahead_latents=max(0, -lo // f))


@dataclass(frozen=True)
class VideoStreamState:
    """Retained latents of a streamed video decode (see the module docstring)."""

    latents: torch.Tensor | None = None
    """[B, C, K, H, W] latents with global indices [latent_start, latent_start + K)."""
    latent_start: int = 0
    """Global index of ``latents[:, :, 0]``."""
    latents_done: int = 0
    """Latents whose frames have been emitted."""


def _frame_start(latent: int, factor: int) -> int:
    """First global frame of a latent (latent 0 owns frame 0 only)."""
    return 0 if latent == 0 else factor * (latent - 1) + 1


def decode_video_block(
    decoder: VideoDecoder,
    latents: torch.Tensor | None,
    state: VideoStreamState,
    stream: VideoStreamConfig,
    *,
    final: bool = False,
) -> tuple[torch.Tensor, VideoStreamState]:
    """Push the next latents (normalised) of a stream; return the frames that can be emitted.

    Args:
        decoder: the video decoder.
        latents: [B, C, n, H, W] new latents (n >= 0), or None to only flush.
        state: previous state (``VideoStreamState()`` to start).
        stream: left context and look-ahead.
        final: no more latents follow; emit everything.

    Returns:
        (frames [B, 3, m, H_px, W_px], new state). Over a whole stream the frames concatenate to
        ``factor (N - 1) + 1`` frames, equal to the offline decode when ``stream`` is exact.
    """
    lat = (
        state.latents
        if latents is None
        else (latents if state.latents is None else torch.cat([state.latents, latents], 2))
    )
    if lat is None:
        raise InputError("decode_video_block needs at least one latent in the stream")
    f = decoder.config.temporal_factor
    done, start = state.latents_done, state.latent_start
    total = start + lat.shape[2]
    emit_end = total if final else total - stream.lookahead_latents
    if emit_end <= done:
        b, _, _, h, w = lat.shape
        s = decoder.config.spatial_factor
        empty = lat.new_zeros(b, decoder.config.out_channels, 0, h * s, w * s)
        return empty, VideoStreamState(lat, start, done)
    win = max(start, done - stream.left_context_latents)
    video = decoder(lat[:, :, win - start :])
    first, last = _frame_start(done, f), _frame_start(emit_end, f)
    frames = video[:, :, first - f * win : last - f * win]
    keep = max(start, emit_end - stream.left_context_latents)
    return frames, VideoStreamState(lat[:, :, keep - start :], keep, emit_end)
