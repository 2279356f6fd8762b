"""Per-block media decode, overlapped with generation: latents of block k in, 1 s of A/V out.

:class:`BlockDecoder` (single thread) turns each generated block's latents into media and cuts the
decoded streams back into *per-block units* at the layout's boundaries: block 0 = 25 frames +
24,240 stereo samples, block k > 0 = 24 frames + 24,000 samples at 24 fps / 24 kHz (release
layout, spec-media.md 6.5). Every unit carries presentation timestamps taken from counters of
what was emitted (frames at 1/24 s, samples at 1/24000 s) and checked against the layout
(``BlockSpec.pixel_frame_start`` / ``audio_sample_start``), so A/V drift is zero by construction.

:class:`DecodeWorker` runs a :class:`BlockDecoder` on a second thread: the caller submits block k
and goes on generating block k+1 while the worker decodes k and hands finished units to a sink
(the MP4 / WAV / fragment writers). Per-step timings (queue wait, video / audio decode, idle)
show the overlap; torch releases the GIL inside its kernels, so both threads compute at once.

Decode policy (documented choice, see README "Media"):

- **Audio, exact.** The causal audio VAE decoder carries its conv state from block to block
  (:meth:`AudioDecoder.decode_chunk`), and the vocoder is chunked with 18 mel frames of true
  context on each side (:func:`~omniforcing_rt.media.audio_streaming.vocode_chunk`): the streamed
  waveform equals the whole-clip decode up to float summation order.
- **Video, one block of look-ahead.** The video decoder is non-causal; the LTX-2 19B decoder
  reaches +-22 latents (7 s), too far to stream exactly. Windowed recompute
  (:func:`~omniforcing_rt.media.video_streaming.decode_video_block`) with one block (3 latents) of
  left context and one block of look-ahead: the frames of block k are decoded, together with
  blocks k-1 and k+1, once block k+1's latents exist. Added latency: one block (1 s); compute: 3
  latent blocks per emitted block. For the embedded ``default`` decoder (support +-3 latents)
  this is exact; for the 19B layer structure it is an approximation whose error is measured in
  the tests on random weights (it must be re-measured on trained weights).
- Units are emitted when *both* modalities of the block are final, so block k's unit leaves the
  worker after block k+1 has been decoded (or at the end of the stream).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from omniforcing_rt.errors import ConfigError, InputError, StreamAbortedError
from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.audio_streaming import AudioStreamState, stream_audio
from omniforcing_rt.media.audio_vae import LATENT_DOWNSAMPLE_FACTOR, AudioDecoder, audio_tokens_to_latent
from omniforcing_rt.media.video_streaming import VideoStreamConfig, VideoStreamState, decode_video_block
from omniforcing_rt.media.video_vae import VideoDecoder, video_to_uint8
from omniforcing_rt.media.vocoder import Vocoder
from omniforcing_rt.model.positions import AUDIO_SAMPLES_PER_MEL, VIDEO_FPS, VIDEO_TEMPORAL_STRIDE
from omniforcing_rt.pipeline.layout import BlockSpec

__all__ = [
    "BlockDecoder",
    "DecodeTiming",
    "DecodeWorker",
    "MediaBlock",
    "MediaDecoders",
    "default_video_policy",
    "load_media_decoders",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ components
@dataclass(frozen=True)
class MediaDecoders:
    """The three media components of a model, in eval mode."""

    video: VideoDecoder
    """Video VAE decoder: [B, C, F, H, W] latents -> [B, 3, 8(F-1)+1, s H, s W]."""
    audio: AudioDecoder
    """Audio VAE decoder: [B, z, T, f] latents -> [B, 2, 4T-3, 64] log-mel."""
    vocoder: Vocoder
    """Vocoder: [B, 2, M, 64] log-mel -> [B, 2, 240 M] waveform."""

    @property
    def fps(self) -> int:
        """Video frame rate (the layout's, 24)."""
        return VIDEO_FPS

    @property
    def sample_rate(self) -> int:
        """Waveform sample rate (24,000 for LTX-2)."""
        return self.vocoder.config.output_sample_rate

    def frame_size(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """Decoded (height, width) in pixels of a latent grid."""
        s = self.video.config.spatial_factor
        return latent_hw[0] * s, latent_hw[1] * s

    def check_compatible(self, video_channels: int, audio_channels: int) -> None:
        """Raise ConfigError unless these decoders fit the transformer's latents and the layout's rates."""
        v, a, voc = self.video.config, self.audio.config, self.vocoder.config
        problems = []
        if v.latent_channels != video_channels:
            problems.append(
                f"video decoder takes {v.latent_channels} latent channels, the model makes {video_channels}"
            )
        if a.z_channels * a.latent_mel_bins != audio_channels:
            problems.append(
                f"audio decoder latent {a.z_channels} x {a.latent_mel_bins} != the model's {audio_channels} audio features"
            )
        if v.temporal_factor != VIDEO_TEMPORAL_STRIDE:
            problems.append(f"video decoder makes {v.temporal_factor} frames per latent, the layout needs 8")
        if a.time_factor != LATENT_DOWNSAMPLE_FACTOR:
            problems.append(f"audio decoder makes {a.time_factor} mel frames per latent, the layout needs 4")
        if voc.hop_length != AUDIO_SAMPLES_PER_MEL:
            problems.append(f"vocoder hop {voc.hop_length} != {AUDIO_SAMPLES_PER_MEL} samples per mel frame")
        if problems:
            raise ConfigError("media decoders do not match the model", problems)


def load_media_decoders(
    path: str | Path | list[Path], *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> MediaDecoders:
    """Load the video decoder, audio decoder and vocoder (strictly) from an LTX-2-layout checkpoint.

    The vocoder always runs in float32 (its stored dtype; spec-media.md 4.3).
    """
    return MediaDecoders(
        video=mw.load_video_decoder(path, dtype=dtype, device=device),
        audio=mw.load_audio_decoder(path, dtype=dtype, device=device),
        vocoder=mw.load_vocoder(path, dtype=torch.float32, device=device),
    )


def default_video_policy(block_frames: int = 3) -> VideoStreamConfig:
    """One block of left context and one block of look-ahead (see the module docstring)."""
    return VideoStreamConfig(left_context_latents=block_frames, lookahead_latents=block_frames)


# -------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class DecodeTiming:
    """Wall times of one decode step (one submitted block, or the final flush)."""

    block: int
    """Index of the block whose latents were decoded (-1: the end-of-stream flush)."""
    queue_wait_s: float
    """Seconds the latents waited in the queue before the worker took them."""
    decode_video_s: float
    """Video decoder seconds of the step."""
    decode_audio_s: float
    """Audio decoder + vocoder seconds of the step."""
    started_s: float
    """Step start, seconds since the worker's time origin."""
    finished_s: float
    """Step end, seconds since the worker's time origin."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MediaBlock:
    """The decoded media of one generated block, with presentation timestamps."""

    index: int
    """Block index k."""
    frames: torch.Tensor
    """[N, H, W, 3] uint8 RGB frames (ltx-core conversion: ((x + 1) / 2) * 255, truncated)."""
    audio: torch.Tensor
    """[2, S] float32 stereo samples in (-1, 1)."""
    frame_start: int
    """Presentation timestamp of the first frame, in frames (1 / fps)."""
    sample_start: int
    """Presentation timestamp of the first sample, in samples (1 / sample_rate)."""
    fps: int
    """Frame rate."""
    sample_rate: int
    """Sample rate."""
    decode: DecodeTiming
    """The decode step that completed this block."""

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.audio.shape[1])

    @property
    def video_pts(self) -> Fraction:
        """Exact video presentation time in seconds."""
        return Fraction(self.frame_start, self.fps)

    @property
    def audio_pts(self) -> Fraction:
        """Exact audio presentation time in seconds."""
        return Fraction(self.sample_start, self.sample_rate)

    def summary(self) -> dict[str, Any]:
        """JSON-able description (no media)."""
        return {
            "block": self.index, "frame_start": self.frame_start, "frames": self.num_frames,
            "sample_start": self.sample_start, "samples": self.num_samples,
            "video_pts_s": float(self.video_pts), "audio_pts_s": float(self.audio_pts),
        }  # fmt: skip


class _ChunkBuffer:
    """Chunks concatenated along ``dim``, from which exact-length pieces are cut."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.chunks: list[torch.Tensor] = []
        self.available = 0

    def add(self, chunk: torch.Tensor) -> None:
        if chunk.shape[self.dim]:
            self.chunks.append(chunk)
            self.available += chunk.shape[self.dim]

    def take(self, n: int) -> torch.Tensor:
        whole = torch.cat(self.chunks, self.dim)
        head, tail = whole.narrow(self.dim, 0, n), whole.narrow(self.dim, n, whole.shape[self.dim] - n)
        self.chunks, self.available = ([tail] if tail.shape[self.dim] else []), tail.shape[self.dim]
        return head.contiguous()


# -------------------------------------------------------------------------------- block decoder
class BlockDecoder:
    """Streams latents block by block through the media decoders (not thread-safe; one stream).

    Args:
        decoders: the media components.
        video_policy: left context / look-ahead of the video decode (default: one block each).
        clock: time source; ``origin`` is its reading at time 0 of the timings.
    """

    def __init__(
        self,
        decoders: MediaDecoders,
        video_policy: VideoStreamConfig | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        origin: float | None = None,
    ) -> None:
        self.decoders = decoders
        self.video_policy = video_policy or default_video_policy()
        self.clock = clock
        self.origin = clock() if origin is None else origin
        self._video_state = VideoStreamState()
        self._audio_state = AudioStreamState()
        self._frames = _ChunkBuffer(0)
        self._samples = _ChunkBuffer(1)
        self._pending: deque[BlockSpec] = deque()
        self.next_block = 0
        self.frames_emitted = 0
        self.samples_emitted = 0
        self.finished = False
        self.timings: list[DecodeTiming] = []
        """Every decode step so far (one per pushed block, plus the final flush)."""

    def push(
        self, spec: BlockSpec, video_latents: torch.Tensor, audio_latents: torch.Tensor, *, queue_wait_s: float = 0.0
    ) -> list[MediaBlock]:
        """Decode one block's latents; return the blocks whose media became final (in order).

        Args:
            spec: the block's layout entry (blocks must come in order 0, 1, ...).
            video_latents: [F, C, H, W] clean video latents of the block.
            audio_latents: [T, C] clean audio latents of the block (no sink tokens).
            queue_wait_s: recorded in the step's timing.
        """
        self._check_push(spec, video_latents, audio_latents)
        dec = self.decoders
        started = self.clock()
        with torch.inference_mode():
            vid = video_latents.permute(1, 0, 2, 3).unsqueeze(0).to(dec.video.conv_in.conv.weight)
            frames, self._video_state = decode_video_block(dec.video, vid, self._video_state, self.video_policy)
            t_video = self.clock()
            tokens = audio_latents.unsqueeze(0).to(dec.audio.conv_in.conv.weight)
            lat = audio_tokens_to_latent(tokens, dec.audio.config.z_channels)
            wave, self._audio_state = stream_audio(dec.audio, dec.vocoder, lat, self._audio_state)
        self._add_media(frames, wave)
        self._pending.append(spec)
        self.next_block += 1
        return self._cut(self._timing(spec.index, queue_wait_s, started, t_video))

    def finish(self, *, queue_wait_s: float = 0.0) -> list[MediaBlock]:
        """End of stream: flush the held-back video look-ahead and vocoder context."""
        if self.finished:
            raise InputError("this BlockDecoder has already been finished")
        self.finished = True
        if self.next_block == 0:
            return []
        dec = self.decoders
        started = self.clock()
        with torch.inference_mode():
            frames, self._video_state = decode_video_block(
                dec.video, None, self._video_state, self.video_policy, final=True
            )
            t_video = self.clock()
            wave, self._audio_state = stream_audio(dec.audio, dec.vocoder, None, self._audio_state, final=True)
        self._add_media(frames, wave)
        out = self._cut(self._timing(-1, queue_wait_s, started, t_video))
        if self._pending or self._frames.available or self._samples.available:
            raise StreamAbortedError(
                f"decoded media does not match the layout: {len(self._pending)} blocks pending, "
                f"{self._frames.available} frames and {self._samples.available} samples left over"
            )
        return out

    def _timing(self, block: int, queue_wait_s: float, started: float, t_video: float) -> DecodeTiming:
        now = self.clock()
        timing = DecodeTiming(
            block, queue_wait_s, t_video - started, now - t_video, started - self.origin, now - self.origin
        )
        self.timings.append(timing)
        return timing

    def _check_push(self, spec: BlockSpec, video: torch.Tensor, audio: torch.Tensor) -> None:
        if self.finished:
            raise InputError("cannot push after finish()")
        if spec.index != self.next_block:
            raise InputError(f"blocks must be pushed in order: expected block {self.next_block}, got {spec.index}")
        if video.ndim != 4 or video.shape[0] != spec.video_frames:
            raise InputError(f"video latents must be [{spec.video_frames}, C, H, W], got {tuple(video.shape)}")
        if audio.ndim != 2 or audio.shape[0] != spec.audio_frames:
            raise InputError(f"audio latents must be [{spec.audio_frames}, C], got {tuple(audio.shape)}")

    def _add_media(self, frames: torch.Tensor, wave: torch.Tensor) -> None:
        """frames [1, 3, m, H, W] in [-1, 1], wave [1, 2, s] -> the emit buffers (uint8 NHWC, float32)."""
        self._frames.add(video_to_uint8(frames)[0].cpu())
        self._samples.add(wave[0].float().cpu())

    def _cut(self, timing: DecodeTiming) -> list[MediaBlock]:
        out = []
        while self._pending:
            spec = self._pending[0]
            if self._frames.available < spec.pixel_frames or self._samples.available < spec.audio_samples:
                break
            self._pending.popleft()
            if (self.frames_emitted, self.samples_emitted) != (spec.pixel_frame_start, spec.audio_sample_start):
                raise StreamAbortedError(
                    f"block {spec.index}: emitted {self.frames_emitted} frames / {self.samples_emitted} samples, "
                    f"layout says {spec.pixel_frame_start} / {spec.audio_sample_start}"
                )
            block = MediaBlock(
                spec.index, self._frames.take(spec.pixel_frames), self._samples.take(spec.audio_samples),
                self.frames_emitted, self.samples_emitted, self.decoders.fps, self.decoders.sample_rate, timing,
            )  # fmt: skip
            self.frames_emitted += block.num_frames
            self.samples_emitted += block.num_samples
            out.append(block)
        return out


# --------------------------------------------------------------------------------------- worker
_END = object()


class DecodeWorker:
    """Runs a :class:`BlockDecoder` on its own thread, fed through a bounded queue.

    ``submit`` hands over a generated block (anything with ``spec``, ``video_latents``,
    ``audio_latents``, e.g. :class:`~omniforcing_rt.pipeline.stream.BlockResult`) and returns at once
    unless ``max_pending`` blocks already wait (back-pressure). Finished :class:`MediaBlock` go to
    ``sink`` on the worker thread, in order. An exception on the worker (decoder or sink) is
    re-raised by the next ``submit`` / ``close`` in the caller's thread.

    After ``close``: ``decoder.timings`` lists every decode step, ``emitted`` a summary of every
    block with ``emitted_s`` (seconds since the decoder's origin when its media reached the sink),
    and ``idle_s`` the total time the worker waited for input.
    """

    def __init__(
        self,
        decoder: BlockDecoder,
        sink: Callable[[MediaBlock], None] | None = None,
        *,
        max_pending: int = 2,
    ) -> None:
        self.decoder = decoder
        self.sink = sink
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, max_pending))
        self._thread = threading.Thread(target=self._run, name="omniforcing-decode", daemon=True)
        self._error: BaseException | None = None
        self._closed = False
        self._aborted = False
        self.emitted: list[dict[str, Any]] = []
        self.idle_s = 0.0
        self._thread.start()

    def submit(self, block: Any) -> None:
        """Queue one generated block for decoding (blocks while the queue is full)."""
        if self._closed:
            raise InputError("DecodeWorker is closed")
        item = (block.spec, block.video_latents, block.audio_latents, self.decoder.clock())
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Flush the stream (end of clip), wait for the worker and re-raise its error, if any."""
        if self._closed:
            self._raise_if_failed()
            return
        self._closed = True
        while self._thread.is_alive():
            try:
                self._queue.put((_END, self.decoder.clock()), timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without flushing (after an error in the caller); pending blocks are dropped."""
        self._closed = self._aborted = True
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait((_END, 0.0))
            self._thread.join(timeout=0.1)

    def __enter__(self) -> DecodeWorker:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _raise_if_failed(self) -> None:
        if self._error is not None and not self._aborted:
            raise self._error

    def _run(self) -> None:
        try:
            while True:
                t_wait = self.decoder.clock()
                item = self._queue.get()
                self.idle_s += self.decoder.clock() - t_wait
                if item[0] is _END:
                    if not self._aborted:
                        self._deliver(self.decoder.finish(queue_wait_s=self.decoder.clock() - item[1]))
                    return
                spec, video, audio, submitted = item
                self._deliver(self.decoder.push(spec, video, audio, queue_wait_s=self.decoder.clock() - submitted))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            log.debug("decode worker failed", exc_info=True)
            self._error = e

    def _deliver(self, blocks: list[MediaBlock]) -> None:
        for block in blocks:
            if self.sink is not None:
                self.sink(block)
            self.emitted.append({**block.summary(), "emitted_s": self.decoder.clock() - self.decoder.origin})
