"""The world's media autoencoders: decoder configs (as checkpoint metadata) and encoder configs.

The decoders are the project's LTX-2 decoder classes built from a checkpoint ``config`` JSON,
exactly as :func:`~omniforcing_rt.media.weights.load_video_decoder` and friends read them, so the
trained weights load through the normal media loaders. The sizes are the embedded ``default``
model's (``scripts/make_default_model.py``): the decoders' widths are fixed by the latent width
(128) and cannot shrink further; the vocoder is the LTX-2 HiFi-GAN at width ``vocoder_width``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.media.audio_vae import AudioDecoder, AudioDecoderConfig
from omniforcing_rt.media.default_metadata import DEFAULT_MEDIA_METADATA
from omniforcing_rt.media.video_vae import VideoDecoder, VideoDecoderConfig
from omniforcing_rt.media.vocoder import Vocoder, VocoderConfig
from omniforcing_rt.world_models.audio_encoder import AudioEncoder, AudioEncoderConfig
from omniforcing_rt.world_models.video_encoder import VideoEncoder, VideoEncoderConfig

__all__ = ["MediaSizes", "build_audio_pair", "build_video_pair", "build_vocoder", "set_identity_statistics"]

_BASE_METADATA = DEFAULT_MEDIA_METADATA
"""The ``default`` model's media sections; the vocoder width and video res layers are set per config."""


@dataclass(frozen=True, kw_only=True)
class MediaSizes:
    """Sizes of the world's media models (decoders in the LTX-2 architecture, encoders mirrors)."""

    vocoder_width: int = 32
    """Vocoder ``upsample_initial_channel`` (halves at each of its 5 stages; multiple of 32)."""
    video_res_layers: int = 0
    """Video decoder ``res_x`` layers at the latent resolution and again after the time upsamplers
    (0: the ``default`` model's decoder, upsamplers only, whose only nonlinearity is the last one)."""
    video_encoder: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    """Video encoder size."""
    audio_encoder: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    """Audio encoder size."""

    def __post_init__(self) -> None:
        if self.vocoder_width < 32 or self.vocoder_width % 32:
            raise ConfigError(
                "invalid media sizes", [f"vocoder_width must be a multiple of 32, got {self.vocoder_width}"]
            )

    def metadata(self) -> dict[str, Any]:
        """The checkpoint ``config`` JSON of the decoders (+ a ``world_encoders`` section)."""
        meta = copy.deepcopy(_BASE_METADATA)
        meta["vocoder"]["upsample_initial_channel"] = self.vocoder_width
        if self.video_res_layers:
            res = ["res_x", {"num_layers": self.video_res_layers}]
            meta["vae"]["decoder_blocks"] = [["compress_space", {}], res, *[["compress_time", {}]] * 3, res]
        meta["world_encoders"] = {
            "video": self.video_encoder.to_dict(),
            "audio": self.audio_encoder.to_dict(),
            "video_res_layers": self.video_res_layers,
        }
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> MediaSizes:
        """Inverse of :meth:`metadata`."""
        enc = meta.get("world_encoders", {})
        audio = dict(enc.get("audio", {}))
        if "widths" in audio:
            audio["widths"] = tuple(audio["widths"])
        return cls(
            vocoder_width=int(meta["vocoder"]["upsample_initial_channel"]),
            video_res_layers=int(enc.get("video_res_layers", 0)),
            video_encoder=VideoEncoderConfig(**enc.get("video", {})),
            audio_encoder=AudioEncoderConfig(**audio),
        )


def set_identity_statistics(decoder: torch.nn.Module) -> None:
    """Decoder ``per_channel_statistics`` = identity (std 1, mean 0): the training-time setting."""
    stats = decoder.per_channel_statistics
    with torch.no_grad():
        for name, buf in stats.named_buffers():
            if name == "channel":
                buf.copy_(torch.arange(buf.numel(), dtype=buf.dtype))
            elif name == "mean-of-means":
                buf.zero_()
            else:
                buf.fill_(1.0)


def build_video_pair(sizes: MediaSizes, seed: int) -> tuple[VideoEncoder, VideoDecoder]:
    """Freshly initialised (PyTorch default init, seeded) video encoder and decoder."""
    torch.manual_seed(seed)
    encoder = VideoEncoder(sizes.video_encoder)
    decoder = VideoDecoder(VideoDecoderConfig.from_checkpoint_metadata(sizes.metadata()))
    set_identity_statistics(decoder)
    return encoder, decoder


def build_audio_pair(sizes: MediaSizes, seed: int) -> tuple[AudioEncoder, AudioDecoder]:
    """Freshly initialised audio encoder and decoder (seeded)."""
    torch.manual_seed(seed)
    encoder = AudioEncoder(sizes.audio_encoder)
    decoder = AudioDecoder(AudioDecoderConfig.from_checkpoint_metadata(sizes.metadata()))
    set_identity_statistics(decoder)
    return encoder, decoder


def build_vocoder(sizes: MediaSizes, seed: int) -> Vocoder:
    """Freshly initialised vocoder (seeded)."""
    torch.manual_seed(seed)
    return Vocoder(VocoderConfig.from_checkpoint_metadata(sizes.metadata()))
