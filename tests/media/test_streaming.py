"""Streaming decode: chunked == whole for audio (exact), vocoder (exact support), video (exact context)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from omniforcing_rt.errors import ConfigError, UnsupportedError
from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.audio_streaming import (
    CHUNK_TOLERANCE,
    AudioStreamState,
    VocoderStreamState,
    stream_audio,
    vocode_chunk,
    vocoder_context_frames,
)
from omniforcing_rt.media.audio_vae import AudioDecoder, AudioDecoderConfig, AudioDecoderStreamState
from omniforcing_rt.media.video_streaming import (
    VideoStreamConfig,
    VideoStreamState,
    decode_video_block,
    video_temporal_support,
)
from omniforcing_rt.media.video_vae import VideoDecoder, VideoDecoderConfig
from omniforcing_rt.media.vocoder import VocoderConfig, vocoder_receptive_field

from .helpers import ALT_METADATA, randomize_

# The alt config without its res_x_y block (whose clip-wide GroupNorm has no finite support).
STREAM_META = copy.deepcopy(ALT_METADATA)
STREAM_META["vae"]["decoder_blocks"] = [b for b in STREAM_META["vae"]["decoder_blocks"] if b[0] != "res_x_y"]

LTX2_VAE = {
    "timestep_conditioning": False,
    "decoder_blocks": [["res_x", {"num_layers": 5}], ["compress_all", {"residual": True, "multiplier": 2}]] * 3
    + [["res_x", {"num_layers": 5}]],
}


def _chunks(x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    assert sum(sizes) == x.shape[2]
    return list(torch.split(x, sizes, dim=2))


# ------------------------------------------------------------------------------------------- audio
@pytest.mark.parametrize("sizes", [[26, 25], [1, 1, 3, 2, 20, 24]])
@torch.no_grad()
def test_chunked_audio_decode_equals_whole(fixture_weights: Path, sizes: list[int]) -> None:
    dec = mw.load_audio_decoder(fixture_weights)
    lat = torch.randn(1, 1, sum(sizes), 16, generator=torch.Generator().manual_seed(0))
    whole = dec(lat)
    state, outs = AudioDecoderStreamState(), []
    for chunk in _chunks(lat, sizes):
        mel, state = dec.decode_chunk(chunk, state)
        outs.append(mel)
    assert [m.shape[2] for m in outs] == [4 * sizes[0] - 3] + [4 * s for s in sizes[1:]]
    assert (torch.cat(outs, 2) - whole).abs().max() <= CHUNK_TOLERANCE


@torch.no_grad()
def test_chunked_audio_decode_alt_config(alt_checkpoint: Path) -> None:
    dec = mw.load_audio_decoder(alt_checkpoint)
    lat = torch.randn(2, 2, 13, 16, generator=torch.Generator().manual_seed(1))
    state, outs = AudioDecoderStreamState(), []
    for chunk in _chunks(lat, [4, 1, 8]):
        mel, state = dec.decode_chunk(chunk, state)
        outs.append(mel)
    assert state.latents_done == 13
    assert (torch.cat(outs, 2) - dec(lat)).abs().max() <= CHUNK_TOLERANCE


@torch.no_grad()
def test_audio_decoder_is_causal(alt_checkpoint: Path) -> None:
    dec = mw.load_audio_decoder(alt_checkpoint)
    lat = torch.randn(1, 2, 12, 16, generator=torch.Generator().manual_seed(2))
    bumped = lat.clone()
    bumped[:, :, 7] += 1.0
    changed = (dec(bumped) - dec(lat)).abs().amax(dim=(0, 1, 3)) > 0
    assert not changed[: 4 * 7 - 3].any() and changed[4 * 7 - 3]


# ----------------------------------------------------------------------------------------- vocoder
def test_vocoder_support_matches_the_spec() -> None:
    """LTX-2 vocoder: frame k reaches samples 240k - 4278 ... 240k + 239 + 4278 (spec 4.4); 18 frames each side."""
    assert vocoder_receptive_field(VocoderConfig()) == (-4278, 4517)
    assert vocoder_context_frames(VocoderConfig()) == (18, 18)


@pytest.mark.parametrize("sizes", [[41, 40], [5, 1, 30, 2, 23]])
@torch.no_grad()
def test_chunked_vocoder_equals_whole(fixture_weights: Path, sizes: list[int]) -> None:
    voc = mw.load_vocoder(fixture_weights)
    mel = torch.randn(1, 2, sum(sizes), 64, generator=torch.Generator().manual_seed(3))
    whole = voc(mel)
    state, outs = VocoderStreamState(), []
    for i, chunk in enumerate(_chunks(mel, sizes)):
        wave, state = vocode_chunk(voc, chunk, state, final=i == len(sizes) - 1)
        outs.append(wave)
    assert sum(w.shape[2] for w in outs) == whole.shape[2]
    assert (torch.cat(outs, 2) - whole).abs().max() <= CHUNK_TOLERANCE
    # Only the right context is held back while the stream is open.
    assert outs[0].shape[2] == 240 * max(0, sizes[0] - 18)


@torch.no_grad()
def test_chunked_vocoder_with_too_little_context_differs(
    fixture_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The context is necessary: with 2 frames instead of 18 the chunked output is wrong."""
    import omniforcing_rt.media.audio_streaming as streaming

    voc = mw.load_vocoder(fixture_weights)
    mel = torch.randn(1, 2, 60, 64, generator=torch.Generator().manual_seed(4))
    monkeypatch.setattr(streaming, "vocoder_context_frames", lambda cfg: (2, 2))
    state, outs = VocoderStreamState(), []
    for i, chunk in enumerate(_chunks(mel, [30, 30])):
        wave, state = streaming.vocode_chunk(voc, chunk, state, final=i == 1)
        outs.append(wave)
    assert (torch.cat(outs, 2) - voc(mel)).abs().max() > 1e-6  # exact context gives <= 1e-7


@torch.no_grad()
def test_audio_stream_end_to_end(alt_checkpoint: Path) -> None:
    dec, voc = mw.load_audio_decoder(alt_checkpoint), mw.load_vocoder(alt_checkpoint)
    lat = torch.randn(1, 2, 19, 16, generator=torch.Generator().manual_seed(5))
    state, outs = AudioStreamState(), []
    for chunk in _chunks(lat, [6, 5, 1, 7]):
        wave, state = stream_audio(dec, voc, chunk, state)
        outs.append(wave)
    wave, state = stream_audio(dec, voc, None, state, final=True)
    outs.append(wave)
    assert (torch.cat(outs, 2) - voc(dec(lat))).abs().max() <= CHUNK_TOLERANCE


def test_chunked_audio_decode_needs_time_factor_4() -> None:
    dec = randomize_(AudioDecoder(AudioDecoderConfig(ch=16, z_channels=1, ch_mult=(1, 2))), 0)
    with pytest.raises(UnsupportedError):
        dec.decode_chunk(torch.randn(1, 1, 3, 16), AudioDecoderStreamState())


# ------------------------------------------------------------------------------------------- video
def test_video_support_of_the_ltx2_structure() -> None:
    """19B decoder: latent k reaches frames 8k - 180 ... 8k + 173 (spec 6.2) -> 22 latents each side."""
    cfg = VideoDecoderConfig.from_checkpoint_metadata({"vae": LTX2_VAE})
    assert cfg.initial_channels == 1024
    assert video_temporal_support(cfg) == (-180, 173)
    assert VideoStreamConfig.exact(cfg) == VideoStreamConfig(left_context_latents=22, lookahead_latents=22)


@torch.no_grad()
def test_video_support_matches_an_impulse(fixture_weights: Path) -> None:
    dec = mw.load_video_decoder(fixture_weights, dtype=torch.float64)
    lat = torch.randn(1, 4, 16, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    bumped = lat.clone()
    bumped[:, :, 8] += 1.0
    changed = torch.nonzero((dec(bumped) - dec(lat)).abs().amax(dim=(0, 1, 3, 4)) > 0).flatten()
    assert (int(changed.min()) - 64, int(changed.max()) - 64) == video_temporal_support(dec.config)


def _stream_video(
    dec: VideoDecoder, lat: torch.Tensor, sizes: list[int], stream: VideoStreamConfig
) -> list[torch.Tensor]:
    state, outs = VideoStreamState(), []
    for i, chunk in enumerate(_chunks(lat, sizes)):
        frames, state = decode_video_block(dec, chunk, state, stream, final=i == len(sizes) - 1)
        outs.append(frames)
    return outs


@torch.no_grad()
def test_per_block_video_decode_exact_context() -> None:
    dec = randomize_(VideoDecoder(VideoDecoderConfig.from_checkpoint_metadata(STREAM_META)).double(), 11)
    exact = VideoStreamConfig.exact(dec.config)
    assert dec.config.temporal_factor == 4 and exact.left_context_latents >= 2
    lat = torch.randn(1, 8, 24, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    whole = dec(lat)
    sizes = [4] * 6  # the final window starts at latent 12 - L > 0, so the left context is exercised
    outs = _stream_video(dec, lat, sizes, exact)
    assert (torch.cat(outs, 2) - whole).abs().max() <= 1e-9
    # One latent less of context on either side is measurably not exact.
    for fewer in (
        VideoStreamConfig(
            left_context_latents=exact.left_context_latents - 1, lookahead_latents=exact.lookahead_latents
        ),
        VideoStreamConfig(
            left_context_latents=exact.left_context_latents, lookahead_latents=exact.lookahead_latents - 1
        ),
    ):
        assert (torch.cat(_stream_video(dec, lat, sizes, fewer), 2) - whole).abs().max() > 1e-7


@torch.no_grad()
def test_per_block_video_frame_counts_release_layout(fixture_weights: Path) -> None:
    """Blocks of 4-3-3 latents emit 25-24-24 frames with no look-ahead (spec 6.5); frames are final-only approximations."""
    dec = mw.load_video_decoder(fixture_weights)
    lat = torch.randn(1, 4, 10, 2, 2, generator=torch.Generator().manual_seed(8))
    outs = _stream_video(dec, lat, [4, 3, 3], VideoStreamConfig(left_context_latents=1, lookahead_latents=0))
    assert [o.shape[2] for o in outs] == [25, 24, 24]
    assert outs[0].shape[1:] == (3, 25, 64, 64)


@torch.no_grad()
def test_causal_video_decoder_needs_little_lookahead() -> None:
    meta = copy.deepcopy(STREAM_META)
    meta["vae"]["causal_decoder"] = True
    cfg = VideoDecoderConfig.from_checkpoint_metadata(meta)
    exact = VideoStreamConfig.exact(cfg)
    assert exact.lookahead_latents < exact.left_context_latents
    dec = randomize_(VideoDecoder(cfg).double(), 9)
    lat = torch.randn(1, 8, 11, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    outs = _stream_video(dec, lat, [4, 3, 3, 1], exact)
    assert (torch.cat(outs, 2) - dec(lat)).abs().max() <= 1e-9


def test_video_stream_config_validation(alt_checkpoint: Path) -> None:
    with pytest.raises(ConfigError):
        VideoStreamConfig(left_context_latents=0, lookahead_latents=1)
    with pytest.raises(UnsupportedError, match="GroupNorm"):
        VideoStreamConfig.exact(VideoDecoderConfig.from_checkpoint_metadata(ALT_METADATA))
