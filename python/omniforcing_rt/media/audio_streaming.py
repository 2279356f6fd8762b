"""Streaming audio: exact chunked vocoding and the latent -> waveform stream (spec-media.md 6.3, 6.4).

Data layout of the carried state (all immutable; every step returns a new state):

- :class:`VocoderStreamState` keeps the mel frames ``[mel_start, mel_start + K)`` still needed as
  left context or not yet synthesised, and ``frames_done``, the number of mel frames whose
  samples were already returned. Samples of mel frame m are ``[hop m, hop (m + 1))``.
- :class:`AudioStreamState` pairs it with the audio decoder's
  :class:`~omniforcing_rt.media.audio_vae.AudioDecoderStreamState` (past rows of every causal conv).

Exact chunked vocoding: the vocoder is non-causal with a finite support; mel frame k influences
samples ``hop k + lo ... hop k + hi`` (:func:`vocoder_receptive_field`). Samples of frames
``[a, b)`` are therefore exact when the vocoder runs on frames ``[a - L, b + R)`` with
``L = floor(hi / hop)`` and ``R = floor((hop - 1 - lo) / hop)`` (18 and 18 for LTX-2), clipped to
the stream: at the true start and the true end the zero "same" padding *is* the correct boundary.
Latency: the last R mel frames (180 ms for LTX-2) of what has been decoded are held back until
more mel arrives or the stream is finalised.

Tolerance: chunked == whole-clip synthesis up to float summation order (measured max |diff|
around 1e-7 in fp32; the tests allow 1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from omniforcing_rt.errors import InputError
from omniforcing_rt.media.audio_vae import AudioDecoder, AudioDecoderStreamState
from omniforcing_rt.media.vocoder import Vocoder, VocoderConfig, vocoder_receptive_field

__all__ = [
    "AudioStreamState",
    "VocoderStreamState",
    "stream_audio",
    "vocode_chunk",
    "vocoder_context_frames",
]

CHUNK_TOLERANCE = 1e-5
"""Max |diff| allowed between chunked and whole-clip synthesis in fp32 (summation order only)."""


def vocoder_context_frames(config: VocoderConfig) -> tuple[int, int]:
    """(left, right) mel frames of context that make chunked vocoding exact (18, 18 for LTX-2)."""
    lo, hi = vocoder_receptive_field(config)
    hop = config.hop_length
    return hi // hop, (hop - 1 - lo) // hop


@dataclass(frozen=True)
class VocoderStreamState:
    """Mel frames retained by a streamed vocoder (see the module docstring)."""

    mel: torch.Tensor | None = None
    """[B, 2, K, 64] retained mel frames, global indices [mel_start, mel_start + K)."""
    mel_start: int = 0
    """Global index of ``mel[:, :, 0]``."""
    frames_done: int = 0
    """Mel frames whose samples have been returned."""

    @property
    def frames_received(self) -> int:
        """Mel frames pushed so far."""
        return self.mel_start + (0 if self.mel is None else self.mel.shape[2])


def vocode_chunk(
    vocoder: Vocoder, mel: torch.Tensor | None, state: VocoderStreamState, *, final: bool = False
) -> tuple[torch.Tensor, VocoderStreamState]:
    """Push new mel frames; return every waveform sample that is now exact.

    Args:
        vocoder: the vocoder.
        mel: [B, 2, n, 64] new mel frames (n >= 0), or None.
        state: the previous state (``VocoderStreamState()`` to start).
        final: the stream ends after these frames: flush everything.

    Returns:
        (samples [B, 2, hop * m], new state), m the number of newly final mel frames. The
        concatenation over all calls equals ``vocoder(all mel)`` within :data:`CHUNK_TOLERANCE`.
    """
    frames = _append(state.mel, mel)
    if frames is None:
        raise InputError("vocode_chunk needs at least one mel frame in the stream")
    left, right = vocoder_context_frames(vocoder.config)
    hop = vocoder.config.hop_length
    total = state.mel_start + frames.shape[2]
    emit_end = total if final else total - right
    if emit_end <= state.frames_done:
        empty = frames.new_zeros(frames.shape[0], 2, 0, dtype=torch.float32)
        return empty, VocoderStreamState(frames, state.mel_start, state.frames_done)
    run_start = max(state.mel_start, state.frames_done - left)
    wave = vocoder(frames[:, :, run_start - state.mel_start :])
    out = wave[:, :, (state.frames_done - run_start) * hop : (emit_end - run_start) * hop]
    keep_from = max(state.mel_start, emit_end - left)
    return out, VocoderStreamState(frames[:, :, keep_from - state.mel_start :], keep_from, emit_end)


def _append(old: torch.Tensor | None, new: torch.Tensor | None) -> torch.Tensor | None:
    if new is not None and (new.ndim != 4 or new.shape[1] != 2):
        raise InputError(f"mel chunk must be [B, 2, n, mel_bins], got {tuple(new.shape)}")
    if old is None:
        return new
    return old if new is None else torch.cat([old, new], dim=2)


@dataclass(frozen=True)
class AudioStreamState:
    """State of the whole latent -> waveform audio stream."""

    decoder: AudioDecoderStreamState = field(default_factory=AudioDecoderStreamState)
    """Past rows of the audio decoder's causal convolutions."""
    vocoder: VocoderStreamState = field(default_factory=VocoderStreamState)
    """Retained mel frames of the vocoder."""


def stream_audio(
    decoder: AudioDecoder,
    vocoder: Vocoder,
    latents: torch.Tensor | None,
    state: AudioStreamState,
    *,
    final: bool = False,
) -> tuple[torch.Tensor, AudioStreamState]:
    """Decode the next audio latents of a stream to waveform samples.

    The mel frames of new latents are final immediately (causal decoder); the vocoder holds back
    its right context until the next call or ``final``.

    Args:
        latents: [B, z, n, f] the next latents (normalised), or None to only flush.
        state: previous state (``AudioStreamState()`` to start).
        final: no more latents follow.

    Returns:
        (waveform [B, 2, samples] fp32, new state).
    """
    dec_state, mel = state.decoder, None
    if latents is not None and latents.shape[2] > 0:
        mel, dec_state = decoder.decode_chunk(latents, dec_state)
    wave, voc_state = vocode_chunk(vocoder, mel, state.vocoder, final=final)
    return wave, AudioStreamState(dec_state, voc_state)
