"""Audio encoder mirroring the LTX-2 audio VAE decoder: log-mel [B, 2, 4T - 3, 64] -> [B, z, T, f].

The audio decoder (:class:`~omniforcing_rt.media.audio_vae.AudioDecoder`) is causal in time and
maps latent k >= 1 to mel frames ``4k - 3 .. 4k`` and latent 0 to frame 0. This encoder keeps
that ownership: three silent (log floor) frames are put in front so that the mel is ``4T``
rows, and every downsampling step looks at its own rows and the past only, so latent k sees
mel frames up to ``4k`` and never beyond. It is a causal mirror of the decoder: the decoder's
:class:`CausalConv2d` / :class:`ResnetBlock` (PixelNorm) blocks, and stride-2 (time and
frequency) convolutions instead of the decoder's nearest-neighbour upsamplers.

Differences from the LTX-2 audio encoder: no mid attention, narrower early levels (``widths``),
and a deterministic latent (no mean / log-variance pair). ``latent_mean`` / ``latent_std`` act
on the (c f)-flattened token layout, like the decoder's ``per_channel_statistics``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.media.audio_vae import CausalConv2d, ResnetBlock, audio_latent_to_tokens, audio_tokens_to_latent
from omniforcing_rt.media.normalization import AUDIO_PIXEL_NORM_EPS, pixel_norm
from omniforcing_rt.world_models.mel import LOG_FLOOR, MEL_BINS

__all__ = ["AudioEncoder", "AudioEncoderConfig"]


@dataclass(frozen=True, kw_only=True)
class AudioEncoderConfig:
    """Size of the world audio encoder (latent geometry fixed: 4 mel frames and 4 bins per latent cell)."""

    z_channels: int = 8
    """Latent channels (z_channels x latent bins = the transformer's 128 audio features)."""
    widths: tuple[int, int, int] = (32, 64, 128)
    """Width at the mel resolution, after the first and after the second stride-2 step."""

    def __post_init__(self) -> None:
        problems = []
        if self.z_channels < 1:
            problems.append(f"z_channels must be >= 1, got {self.z_channels}")
        if len(self.widths) != 3 or min(self.widths) < 1:
            problems.append(f"widths must be three positive integers, got {list(self.widths)}")
        if problems:
            raise ConfigError("invalid audio encoder config", problems)

    @property
    def latent_bins(self) -> int:
        """Latent frequency bins (64 mel bins / 4)."""
        return MEL_BINS // 4

    def to_dict(self) -> dict[str, object]:
        """JSON form (stored in the checkpoint metadata)."""
        return {"z_channels": self.z_channels, "widths": list(self.widths)}


class _CausalDown(nn.Module):
    """Stride-2 3x3 conv on (time, freq); output row j sees input rows 2j - 1 .. 2j + 1 (its own pair)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, 2T, 2F] -> [B, C', T, F]."""
        return self.conv(F.pad(x, (1, 0, 1, 0)))


class AudioEncoder(nn.Module):
    """Stereo log-mel -> normalised latents for :class:`~omniforcing_rt.media.audio_vae.AudioDecoder`."""

    def __init__(self, config: AudioEncoderConfig) -> None:
        super().__init__()
        self.config = config
        w0, w1, w2 = config.widths
        self.conv_in = CausalConv2d(2, w0, 3)
        self.block0 = ResnetBlock(w0, w0)
        self.down1 = _CausalDown(w0, w1)
        self.block1 = ResnetBlock(w1, w1)
        self.down2 = _CausalDown(w1, w2)
        self.block2 = ResnetBlock(w2, w2)
        self.conv_out = CausalConv2d(w2, config.z_channels, 3)
        features = config.z_channels * config.latent_bins
        self.register_buffer("latent_mean", torch.zeros(features))
        self.register_buffer("latent_std", torch.ones(features))

    def raw(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, 2, 4T - 3, 64] log-mel -> un-normalised latent [B, z, T, 16]."""
        if mel.ndim != 4 or mel.shape[1] != 2 or mel.shape[3] != MEL_BINS:
            raise InputError(f"mel must be [B, 2, M, {MEL_BINS}], got {tuple(mel.shape)}")
        tail = (-(mel.shape[2] + 3)) % 4  # 4T - 3 frames need none
        x = F.pad(mel, (0, 0, 3, tail), value=LOG_FLOOR)  # 3 silent rows in front: latent 0 owns frame 0
        x = self.block0(self.conv_in(x))
        x = self.block1(self.down1(x))
        x = self.block2(self.down2(x))
        return self.conv_out(F.silu(pixel_norm(x, AUDIO_PIXEL_NORM_EPS)))

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latent -> normalised latent (statistics on the (c f)-flattened token layout)."""
        tokens = audio_latent_to_tokens(raw)
        tokens = (tokens - self.get_buffer("latent_mean")) / self.get_buffer("latent_std")
        return audio_tokens_to_latent(tokens, raw.shape[1])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, 2, M, 64] log-mel -> normalised latent [B, z, ceil((M + 3) / 4), 16]."""
        return self.normalize(self.raw(mel))
