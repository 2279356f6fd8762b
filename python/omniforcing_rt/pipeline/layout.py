"""Block layouts: how a clip's latents are cut into the student's causal blocks.

Both shipped layouts follow one rule. Block 0 holds ``first_block_frames`` video latents and the
audio latents of the same span; every later block holds ``block_frames`` video latents (1 s at the
default 3) and ``block_frames * 25 / 3`` audio latents (25). Because the causal VAEs give the first
latent of each modality a single frame, the audio count of block 0 is ``1 + 25 * (F0 - 1) / 3``:

* release ("4-3-3-3-3", spec B.1): F0 = 4 -> block 0 = 4 video + 26 audio latents;
* paper ("Global Prefix", spec B.3): F0 = 1 -> block 0 = 1 video + 1 audio latent (plus the
  optional audio sink tokens), then 1 s blocks.

Every latent is used ("zero truncation"): N_v = F0 + F * (K - 1) and N_a = 1 + 25 * (N_v - 1) / 3.
A duration that does not fit is a ConfigError that lists the valid ones. The layout also gives each
block's token ranges, media spans (pixel frames, audio samples) and presentation timestamps, which
the C++ runtime reproduces in ``csrc/runtime/block_schedule.cc`` (tested against this file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

import torch

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.model.positions import (
    AUDIO_LATENT_MEL_STRIDE,
    AUDIO_MEL_FRAMES_PER_S,
    AUDIO_SAMPLES_PER_MEL,
    VIDEO_FPS,
    VIDEO_TEMPORAL_STRIDE,
)

__all__ = ["BlockLayout", "BlockSpec", "BlockTimestamps", "LayoutKind", "audio_latents_for_video"]

# Audio latents per video latent stride: (8 frames / 24 fps) * (100 mel/s / 4 mel) = 25/3.
_AUDIO_PER_VIDEO = Fraction(VIDEO_TEMPORAL_STRIDE * AUDIO_MEL_FRAMES_PER_S, VIDEO_FPS * AUDIO_LATENT_MEL_STRIDE)


class LayoutKind(str, Enum):
    """Which block-0 convention a layout follows."""

    RELEASE = "release"
    """Release (v2) code: block 0 = 4 video + 26 audio latents, no prefix special case."""
    PAPER = "paper"
    """Paper (v1): Global Prefix block 0 = 1 video + 1 audio latent (+ sinks)."""


def audio_latents_for_video(video_latents: int) -> int:
    """Audio latents spanning the same time as ``video_latents`` video latents from t = 0."""
    n = 1 + _AUDIO_PER_VIDEO * (video_latents - 1)
    if n.denominator != 1:
        raise ConfigError(problems=[f"{video_latents} video latents do not span a whole number of audio latents"])
    return int(n)


@dataclass(frozen=True, kw_only=True)
class BlockSpec:
    """One causal block: latent ranges, token ranges and the media it decodes to."""

    index: int
    """Block index k (0 = first block)."""
    video_start: int
    """Absolute index of the block's first video latent frame."""
    video_frames: int
    """Number of video latent frames in the block."""
    audio_start: int
    """Absolute index of the block's first audio latent (sinks excluded)."""
    audio_frames: int
    """Number of audio latents in the block (sinks excluded)."""
    video_token_start: int
    """First video token (video_start * tokens_per_frame)."""
    video_tokens: int
    """Video tokens in the block."""
    audio_token_start: int
    """First audio token in the audio sequence that includes the sinks (sinks come first)."""
    audio_tokens: int
    """Audio tokens in the block, sinks included for block 0."""
    sink_tokens: int
    """Audio sink tokens carried by this block (only block 0 has any)."""
    pixel_frame_start: int
    """First decoded video frame of the block."""
    pixel_frames: int
    """Decoded video frames (25 for release block 0, 24 for a 3-latent block)."""
    audio_sample_start: int
    """First decoded audio sample (24 kHz) of the block."""
    audio_samples: int
    """Decoded audio samples per channel (24,240 for release block 0, 24,000 after)."""

    @property
    def video_pts_s(self) -> float:
        """Presentation time of the block's first video frame, in seconds."""
        return self.pixel_frame_start / VIDEO_FPS

    @property
    def audio_pts_s(self) -> float:
        """Presentation time of the block's first audio sample, in seconds."""
        return self.audio_sample_start / (AUDIO_SAMPLES_PER_MEL * AUDIO_MEL_FRAMES_PER_S)


class BlockTimestamps:
    """Index and presentation timestamps of anything that carries a ``spec: BlockSpec``.

    Shared by the reference stream's ``BlockResult`` and the engine's ``StreamChunk``, so both
    report timestamps from the same layout arithmetic.
    """

    spec: BlockSpec

    @property
    def index(self) -> int:
        """Block index."""
        return self.spec.index

    @property
    def video_pts_s(self) -> float:
        """Presentation time of the first video frame, in seconds."""
        return self.spec.video_pts_s

    @property
    def audio_pts_s(self) -> float:
        """Presentation time of the first audio sample, in seconds."""
        return self.spec.audio_pts_s

    @property
    def video_pts_frames(self) -> int:
        """Presentation time of the first video frame, in frames."""
        return self.spec.pixel_frame_start

    @property
    def audio_pts_samples(self) -> int:
        """Presentation time of the first audio sample, in samples at 24 kHz."""
        return self.spec.audio_sample_start


@dataclass(frozen=True, kw_only=True)
class BlockLayout:
    """A clip cut into causal blocks. Build it with :meth:`create`, :meth:`for_seconds` or
    :meth:`for_video_latents`; all validate and raise ConfigError listing every problem."""

    kind: LayoutKind
    """Block-0 convention."""
    first_block_frames: int
    """Video latents in block 0 (4 release, 1 paper)."""
    block_frames: int
    """Video latents per later block (3 = one second)."""
    num_blocks: int
    """Number of blocks K."""
    tokens_per_frame: int
    """Video tokens per latent frame (latent H x W)."""
    audio_sink_tokens: int = 0
    """Learnable audio sink tokens prepended to block 0 (paper models use 16)."""

    def __post_init__(self) -> None:
        problems = []
        if self.first_block_frames < 1:
            problems.append(f"first_block_frames must be >= 1, got {self.first_block_frames}")
        elif (_AUDIO_PER_VIDEO * (self.first_block_frames - 1)).denominator != 1:
            problems.append(f"first_block_frames - 1 must be a multiple of 3, got {self.first_block_frames}")
        if self.block_frames < 1 or (_AUDIO_PER_VIDEO * self.block_frames).denominator != 1:
            problems.append(f"block_frames must be a positive multiple of 3, got {self.block_frames}")
        if self.num_blocks < 1:
            problems.append(f"num_blocks must be >= 1, got {self.num_blocks}")
        if self.tokens_per_frame < 1:
            problems.append(f"tokens_per_frame must be >= 1, got {self.tokens_per_frame}")
        if self.audio_sink_tokens < 0:
            problems.append(f"audio_sink_tokens must be >= 0, got {self.audio_sink_tokens}")
        if problems:
            raise ConfigError("invalid block layout", problems)

    @staticmethod
    def default_first_block_frames(kind: LayoutKind | str) -> int:
        """Block-0 video latents of a layout kind: 4 (release) or 1 (paper)."""
        return 4 if LayoutKind(kind) is LayoutKind.RELEASE else 1

    @classmethod
    def create(
        cls,
        kind: LayoutKind | str,
        num_blocks: int,
        tokens_per_frame: int,
        *,
        block_frames: int = 3,
        first_block_frames: int | None = None,
        audio_sink_tokens: int = 0,
    ) -> BlockLayout:
        """A layout of ``num_blocks`` blocks of the given kind."""
        try:
            kind = LayoutKind(kind)
        except ValueError:
            raise ConfigError(problems=[f"layout kind must be 'release' or 'paper', got {kind!r}"]) from None
        f0 = cls.default_first_block_frames(kind) if first_block_frames is None else first_block_frames
        return cls(
            kind=kind,
            first_block_frames=f0,
            block_frames=block_frames,
            num_blocks=num_blocks,
            tokens_per_frame=tokens_per_frame,
            audio_sink_tokens=audio_sink_tokens,
        )

    @classmethod
    def for_video_latents(
        cls, kind: LayoutKind | str, video_latents: int, tokens_per_frame: int, **kw: int
    ) -> BlockLayout:
        """The layout whose blocks use exactly ``video_latents`` latents (error if none does)."""
        probe = cls.create(kind, 1, tokens_per_frame, **kw)
        rest = video_latents - probe.first_block_frames
        if rest < 0 or rest % probe.block_frames:
            valid = [probe.first_block_frames + probe.block_frames * k for k in range(6)]
            raise ConfigError(
                f"{video_latents} video latents do not fit the {probe.kind.value} layout",
                [f"valid counts are {probe.first_block_frames} + {probe.block_frames}k: {valid} ..."],
            )
        return cls.create(kind, 1 + rest // probe.block_frames, tokens_per_frame, **kw)

    @classmethod
    def for_seconds(cls, kind: LayoutKind | str, seconds: float, tokens_per_frame: int, **kw: int) -> BlockLayout:
        """The layout whose duration is within one video frame of ``seconds`` (error if none is)."""
        probe = cls.create(kind, 1, tokens_per_frame, **kw)
        if not math.isfinite(seconds) or seconds <= 0:
            raise ConfigError(problems=[f"seconds must be a positive number, got {seconds}"])
        block_s = probe.block_frames * VIDEO_TEMPORAL_STRIDE / VIDEO_FPS
        k = max(0, round((seconds - probe.duration_s) / block_s))
        layout = cls.create(kind, k + 1, tokens_per_frame, **kw)
        if abs(layout.duration_s - seconds) > 1.0 / VIDEO_FPS + 1e-9:
            valid = ", ".join(f"{probe.duration_s + i * block_s:.3f}" for i in range(5))
            raise ConfigError(
                f"{seconds} s is not a valid duration for the {probe.kind.value} layout",
                [f"valid durations are {probe.duration_s:.3f} s + k x {block_s:.3f} s ({valid}, ...)"],
            )
        return layout

    # ----------------------------------------------------------------------------------- sizes
    @property
    def video_latent_frames(self) -> int:
        """Total video latent frames N_v."""
        return self.first_block_frames + self.block_frames * (self.num_blocks - 1)

    @property
    def audio_latent_frames(self) -> int:
        """Total audio latents N_a (sinks excluded)."""
        return audio_latents_for_video(self.video_latent_frames)

    @property
    def pixel_frames(self) -> int:
        """Decoded video frames: 1 + 8 (N_v - 1)."""
        return 1 + VIDEO_TEMPORAL_STRIDE * (self.video_latent_frames - 1)

    @property
    def duration_s(self) -> float:
        """Clip duration in seconds (pixel frames / fps)."""
        return self.pixel_frames / VIDEO_FPS

    @property
    def audio_samples(self) -> int:
        """Decoded audio samples per channel: (4 N_a - 3) mel frames x 240."""
        return (
            AUDIO_LATENT_MEL_STRIDE * self.audio_latent_frames - (AUDIO_LATENT_MEL_STRIDE - 1)
        ) * AUDIO_SAMPLES_PER_MEL

    def block(self, k: int) -> BlockSpec:
        """The spec of block ``k``."""
        if not 0 <= k < self.num_blocks:
            raise ConfigError(problems=[f"block index {k} out of range [0, {self.num_blocks})"])
        f0, f = self.first_block_frames, self.block_frames
        v_start = 0 if k == 0 else f0 + f * (k - 1)
        v_n = f0 if k == 0 else f
        a_start = 0 if k == 0 else audio_latents_for_video(v_start)
        a_n = audio_latents_for_video(v_start + v_n) - a_start
        sinks = self.audio_sink_tokens if k == 0 else 0
        px_start = 0 if k == 0 else 1 + VIDEO_TEMPORAL_STRIDE * (v_start - 1)
        px_n = 1 + VIDEO_TEMPORAL_STRIDE * (v_n - 1) if k == 0 else VIDEO_TEMPORAL_STRIDE * v_n
        mel_start = 0 if k == 0 else AUDIO_LATENT_MEL_STRIDE * a_start - (AUDIO_LATENT_MEL_STRIDE - 1)
        mel_n = AUDIO_LATENT_MEL_STRIDE * a_n - (AUDIO_LATENT_MEL_STRIDE - 1 if k == 0 else 0)
        return BlockSpec(
            index=k,
            video_start=v_start,
            video_frames=v_n,
            audio_start=a_start,
            audio_frames=a_n,
            video_token_start=v_start * self.tokens_per_frame,
            video_tokens=v_n * self.tokens_per_frame,
            audio_token_start=0 if k == 0 else self.audio_sink_tokens + a_start,
            audio_tokens=a_n + sinks,
            sink_tokens=sinks,
            pixel_frame_start=px_start,
            pixel_frames=px_n,
            audio_sample_start=mel_start * AUDIO_SAMPLES_PER_MEL,
            audio_samples=mel_n * AUDIO_SAMPLES_PER_MEL,
        )

    @property
    def blocks(self) -> list[BlockSpec]:
        """All block specs in order."""
        return [self.block(k) for k in range(self.num_blocks)]

    # ----------------------------------------------------------------------------- block ids
    def video_frame_block_ids(self) -> torch.Tensor:
        """[N_v] int64 block id of every video latent frame."""
        return torch.cat([torch.full((b.video_frames,), b.index) for b in self.blocks])

    def audio_frame_block_ids(self) -> torch.Tensor:
        """[N_a] int64 block id of every audio latent (sinks excluded)."""
        return torch.cat([torch.full((b.audio_frames,), b.index) for b in self.blocks])

    def video_token_block_ids(self) -> torch.Tensor:
        """[N_v * tokens_per_frame] int64 block id of every video token."""
        return self.video_frame_block_ids().repeat_interleave(self.tokens_per_frame)

    def audio_token_block_ids(self) -> torch.Tensor:
        """[S + N_a] int64 block id of every audio token; the S sinks come first, in block 0."""
        sinks = torch.zeros(self.audio_sink_tokens, dtype=torch.int64)
        return torch.cat([sinks, self.audio_frame_block_ids()])
