"""The reference block-causal streaming loop (spec C.1), the Python twin of the C++ engine.

Per block k: draw keyed noise; run one denoise pass per student sigma over only the block's tokens
(attending to cached history plus the block itself), re-noising each x0 estimate to the next sigma
with fresh keyed noise; the last x0 is the block's output. Then one context-refresh pass at
sigma_ctx (``context_noise / 1000``, 0 by default) over that output rewrites the block's K/V in every
temporal cache and commits it; its prediction is discarded. Text K/V are computed once per prompt.

The loop yields :class:`BlockResult` per block, so a caller (decoder, muxer, benchmark) consumes
media as it is produced. Streams can be unlimited (``num_blocks=None``) because the rolling cache
keeps memory constant once its windows fill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.patchify import patchify_video, unpatchify_video
from omniforcing_rt.model.positions import VIDEO_FPS, VIDEO_TEMPORAL_STRIDE, audio_positions, video_positions
from omniforcing_rt.model.transformer import AVTransformer, Modality, TextContext
from omniforcing_rt.pipeline.kv_cache import CachePolicy, KvCacheSet
from omniforcing_rt.pipeline.layout import BlockLayout, BlockSpec, BlockTimestamps, LayoutKind
from omniforcing_rt.pipeline.noise import STREAM_AUDIO, STREAM_VIDEO, block_noise
from omniforcing_rt.pipeline.schedule import RELEASE_STEP_LIST, renoise, student_sigmas

__all__ = ["BlockResult", "PassTiming", "Stream", "StreamConfig", "StreamingGenerator", "window_blocks"]

UNLIMITED_BLOCKS = 1 << 40


@dataclass(frozen=True, kw_only=True)
class StreamConfig:
    """Geometry and sampling of a stream."""

    latent_grid_hw: tuple[int, int]
    """Video latent rows x columns (pixels / 32)."""
    layout_kind: LayoutKind = LayoutKind.RELEASE
    """Block-0 convention ('release' 4+26 latents, or 'paper' Global Prefix 1+1)."""
    first_block_frames: int | None = None
    """Video latents of block 0 (default from the layout kind)."""
    block_frames: int = 3
    """Video latents per later block (3 = 1 s)."""
    denoising_step_list: tuple[int, ...] = RELEASE_STEP_LIST
    """Student steps on the 0..1000 scale (nearest 40-step LTX2 grid point; trailing 0 = clean)."""
    context_noise: int = 0
    """Noise level of the context-refresh pass on the 0..1000 scale (0 in every shipped config)."""
    video_window_s: float | None = None
    """Video history kept in the cache besides block 0, in seconds (None = whole stream)."""
    audio_window_s: float | None = None
    """Audio history kept in the cache besides block 0, in seconds (None = whole stream)."""
    convention: Convention = field(default_factory=Convention.streaming)
    """Runtime convention the weights are evaluated under (default: student with float64 angles,
    so absolute-time RoPE stays exact on long streams; ``Convention.student()`` reproduces the
    official float32 rounding, as check-fixture does)."""

    def __post_init__(self) -> None:
        problems = []
        hw = self.latent_grid_hw
        if len(hw) != 2 or any(not isinstance(x, int) or x < 1 for x in hw):
            problems.append(f"latent_grid_hw must be two positive ints, got {hw}")
        if not 0 <= self.context_noise < 1000:
            problems.append(f"context_noise must be in [0, 1000), got {self.context_noise}")
        block_s = self.block_frames * VIDEO_TEMPORAL_STRIDE / VIDEO_FPS
        for name in ("video_window_s", "audio_window_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= block_s - 1e-9):
                problems.append(f"{name} must be at least one block ({block_s:.3f} s) or None, got {v}")
        try:
            student_sigmas(self.denoising_step_list)
        except ConfigError as e:
            problems.extend(e.problems)
        if problems:
            raise ConfigError("invalid stream config", problems)

    def layout(self, num_blocks: int, audio_sink_tokens: int = 0) -> BlockLayout:
        """The block layout for ``num_blocks`` blocks."""
        return BlockLayout.create(
            self.layout_kind, num_blocks, self.latent_grid_hw[0] * self.latent_grid_hw[1],
            block_frames=self.block_frames, first_block_frames=self.first_block_frames,
            audio_sink_tokens=audio_sink_tokens,
        )  # fmt: skip

    def cache_policy(self) -> CachePolicy:
        """Windows in whole blocks."""
        return CachePolicy(
            video_window_blocks=window_blocks(self.video_window_s, self.block_frames),
            audio_window_blocks=window_blocks(self.audio_window_s, self.block_frames),
        )

    def pass_sigmas(self) -> list[float]:
        """The sigma of every denoise pass (the trailing 0 is not a pass)."""
        return [float(s) for s in student_sigmas(self.denoising_step_list) if float(s) > 0]


def window_blocks(seconds: float | None, block_frames: int) -> int | None:
    """Whole blocks of history that fit in ``seconds`` (None stays None)."""
    if seconds is None:
        return None
    block_s = block_frames * VIDEO_TEMPORAL_STRIDE / VIDEO_FPS
    return max(1, int(math.floor(seconds / block_s + 1e-9)))


@dataclass(frozen=True)
class PassTiming:
    """Wall time of one transformer pass."""

    kind: str
    """'denoise' or 'refresh'."""
    sigma: float
    """Noise level of the pass."""
    seconds: float
    """Wall-clock seconds."""


@dataclass(frozen=True)
class BlockResult(BlockTimestamps):
    """One generated block."""

    spec: BlockSpec
    """Block geometry, media spans and timestamps."""
    video_latents: torch.Tensor
    """[F, C, H, W] clean video latents."""
    audio_latents: torch.Tensor
    """[T, C] clean audio latents (sinks never appear in outputs)."""
    timings: tuple[PassTiming, ...]
    """Per-pass wall times, in order."""
    kv_cache_bytes: int
    """Bytes held by all caches of all layers after the block was committed."""



class StreamingGenerator:
    """Runs the streaming loop of one model under one :class:`StreamConfig`."""

    def __init__(self, model: AVTransformer, config: StreamConfig) -> None:
        self.model = model
        self.config = config
        self.sinks = model.config.audio_sink_tokens
        self.last_refresh_inputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def new_cache(self, text: TextContext) -> KvCacheSet:
        cache = KvCacheSet(self.model.config.num_layers, self.config.cache_policy())
        cache.text = text
        return cache

    def run_pass(
        self,
        cache: KvCacheSet,
        spec: BlockSpec,
        video_in: torch.Tensor,
        audio_in: torch.Tensor,
        sigma: float,
        commit: bool,
        capture: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass over block ``spec``: video [B, F, C, H, W], audio [B, T, C] at ``sigma``.

        Returns the x0 estimates (same shapes). With ``commit`` the pass's K/V become the block's
        committed cache entries (the context-refresh pass). ``capture`` receives hidden states.
        """
        h, w = self.config.latent_grid_hw
        b, f = video_in.shape[:2]
        if tuple(video_in.shape[1:2]) != (spec.video_frames,) or tuple(video_in.shape[3:]) != (h, w):
            raise InputError(f"video_in must be [B, {spec.video_frames}, C, {h}, {w}], got {tuple(video_in.shape)}")
        if audio_in.ndim != 3 or audio_in.shape[1] != spec.audio_frames:
            raise InputError(f"audio_in must be [B, {spec.audio_frames}, C], got {tuple(audio_in.shape)}")
        tokens = patchify_video(video_in)
        v_sigma = torch.full(tokens.shape[:2], sigma, dtype=torch.float32, device=tokens.device)
        a_sigma = torch.full(audio_in.shape[:2], sigma, dtype=torch.float32, device=audio_in.device)
        conv = self.config.convention
        vpos = video_positions(spec.video_start, f, h, w, b, conv.position_style, conv.position_dtype)
        apos = audio_positions(spec.audio_start, spec.audio_frames, b, conv.position_style, conv.position_dtype)
        video = Modality(tokens, v_sigma, vpos.to(tokens.device))
        audio = Modality(audio_in, a_sigma, apos.to(audio_in.device))
        if cache.text is None:
            raise InputError("the cache has no text context; create it with new_cache(text)")
        cache.begin_pass(spec.index)
        with torch.no_grad():
            vv, av = self.model(
                video,
                audio,
                cache.text,
                self.config.convention,
                kv=cache.hook,
                with_sinks=spec.index == 0,
                capture=capture,
            )
        if commit:
            cache.commit()
        video_x0 = unpatchify_video(AVTransformer.to_x0(tokens, vv, v_sigma), f, h, w)
        return video_x0, AVTransformer.to_x0(audio_in, av, a_sigma)

    def generate_block(self, cache: KvCacheSet, spec: BlockSpec, seed: int) -> BlockResult:
        """Denoise one block from keyed noise, refresh and commit its cache entries."""
        cfg, mcfg = self.config, self.model.config
        h, w = cfg.latent_grid_hw
        dtype = self.model.patchify_proj.weight.dtype
        device = self.model.patchify_proj.weight.device
        v_shape = (1, spec.video_frames, mcfg.in_channels, h, w)
        a_shape = (1, spec.audio_frames, mcfg.audio_in_channels)

        def noise(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            v = block_noise(seed, spec.index, step, STREAM_VIDEO, v_shape)
            a = block_noise(seed, spec.index, step, STREAM_AUDIO, a_shape)
            return v.to(device, dtype), a.to(device, dtype)

        sigmas = cfg.pass_sigmas()
        xv, xa = noise(0)
        timings = []
        for i, s in enumerate(sigmas):
            t0 = time.perf_counter()
            vx0, ax0 = self.run_pass(cache, spec, xv, xa, s, commit=False)
            timings.append(PassTiming("denoise", s, time.perf_counter() - t0))
            if i + 1 < len(sigmas):
                nv, na = noise(i + 1)
                xv, xa = renoise(vx0, nv, sigmas[i + 1]), renoise(ax0, na, sigmas[i + 1])
        s_ctx = cfg.context_noise / 1000.0
        rv, ra = vx0, ax0
        if s_ctx > 0:
            nv, na = noise(len(sigmas))
            rv, ra = renoise(vx0, nv, s_ctx), renoise(ax0, na, s_ctx)
        t0 = time.perf_counter()
        self.run_pass(cache, spec, rv, ra, s_ctx, commit=True)
        timings.append(PassTiming("refresh", s_ctx, time.perf_counter() - t0))
        self.last_refresh_inputs = (rv, ra)
        return BlockResult(spec, vx0[0], ax0[0], tuple(timings), cache.nbytes())

    def stream(self, text: TextContext, seed: int, num_blocks: int | None = None) -> Stream:
        """An iterator over blocks 0, 1, ... (``num_blocks=None`` streams until the caller stops)."""
        return Stream(self, text, seed, num_blocks)


class Stream(Iterator[BlockResult]):
    """One running stream: its cache, its position, and the prompt it is conditioned on.

    Iterate it to get :class:`BlockResult` per block; call :meth:`switch_prompt` between blocks.
    """

    def __init__(self, gen: StreamingGenerator, text: TextContext, seed: int, num_blocks: int | None) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"seed must be an int, got {type(seed).__name__}")
        if num_blocks is not None and (
            isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1
        ):
            raise InputError(f"num_blocks must be a positive int or None, got {num_blocks!r}")
        self.gen = gen
        self.seed = seed
        self.num_blocks = num_blocks
        self.layout = gen.config.layout(num_blocks or UNLIMITED_BLOCKS, gen.sinks)
        self.cache = gen.new_cache(text)
        self.next_block = 0
        self._refresh_inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __next__(self) -> BlockResult:
        if self.num_blocks is not None and self.next_block >= self.num_blocks:
            raise StopIteration
        res = self.gen.generate_block(self.cache, self.layout.block(self.next_block), self.seed)
        self._remember(res.index, *self.gen.last_refresh_inputs)
        self.next_block += 1
        return res

    def _remember(self, block: int, video: torch.Tensor, audio: torch.Tensor) -> None:
        """Keep the refresh-pass inputs of blocks still held by a cache (to re-cache a prompt)."""
        self._refresh_inputs[block] = (video, audio)
        live = set(self.cache.blocks("video_self")) | set(self.cache.blocks("audio_self"))
        for b in [b for b in self._refresh_inputs if b not in live]:
            del self._refresh_inputs[b]

    def switch_prompt(self, text: TextContext, recache: bool = True) -> None:
        """Change the prompt at the next block boundary.

        The new text K/V replace the old ones for every later pass. With ``recache`` the retained
        blocks (both modalities, both cross caches) are rebuilt under the new prompt by replaying
        their context-refresh passes in block order, so history no longer carries the old prompt.
        """
        self.cache.text = text
        if not recache:
            return
        s_ctx = self.gen.config.context_noise / 1000.0
        for b in sorted(self._refresh_inputs):  # block order: each rebuilt block sees rebuilt history
            video, audio = self._refresh_inputs[b]
            self.gen.run_pass(self.cache, self.layout.block(b), video, audio, s_ctx, commit=True)
