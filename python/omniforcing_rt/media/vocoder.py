"""LTX-2 stereo HiFi-GAN vocoder: log-mel [B, 2, M, 64] -> waveform [B, 2, hop * M] in (-1, 1).

Structure (spec-media.md section 4), read from the ``vocoder`` config section:

1. merge the two channels' mel bins into ``[B, 2 * 64, M]`` with channel index ``s * 64 + mel``;
2. ``conv_pre`` (k 7, pad 3);
3. per stage i: LeakyReLU(0.1), ``ups.i`` (ConvTranspose1d, stride s_i, padding (k_i - s_i)/2,
   so length L -> s_i L), then the mean of the stage's resblocks, all applied to the same input;
4. LeakyReLU with PyTorch's default slope 0.01 (the only 0.01 in the network), ``conv_post``, tanh.

The network is non-causal but has a short support. :func:`vocoder_receptive_field` computes it
exactly from the config by interval propagation (for LTX-2: mel frame k influences samples
``240k - 4278 ... 240k + 239 + 4278``, i.e. 18 mel frames of context on each side), which is what
the chunked vocoder of :mod:`omniforcing_rt.media.audio_streaming` uses. The stereo input width is
``2 x 64`` in ltx-core regardless of the audio VAE's mel bins (``MEL_BINS`` below).

Precision: ltx-core runs the vocoder in the pipeline dtype and only casts the output; this module
runs in the dtype of its weights (load it in fp32, the stored dtype) and returns fp32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from omniforcing_rt.errors import ConfigError, InputError, UnsupportedError
from omniforcing_rt.media.config_reader import SectionReader, parse_metadata

__all__ = ["MEL_BINS", "ResBlock1", "ResBlock2", "Vocoder", "VocoderConfig", "vocoder_receptive_field"]

MEL_BINS = 64
"""Mel bins per channel the vocoder expects: ltx-core hard-codes its input width (128 stereo)."""
LRELU_SLOPE = 0.1
"""Slope of every LeakyReLU except the final one (0.01, PyTorch's default)."""


@dataclass(frozen=True, kw_only=True)
class VocoderConfig:
    """Vocoder hyper-parameters (checkpoint ``config`` section ``vocoder``); defaults are LTX-2's."""

    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    """Kernel size of each resblock of a stage."""
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    """Dilations of each resblock of a stage."""
    upsample_rates: tuple[int, ...] = (6, 5, 2, 2, 2)
    """Stride of each transposed convolution (their product is the hop: 240)."""
    upsample_kernel_sizes: tuple[int, ...] = (16, 15, 8, 4, 4)
    """Kernel of each transposed convolution."""
    upsample_initial_channel: int = 1024
    """Width after ``conv_pre``; halves at every stage."""
    resblock: str = "1"
    """ResBlock type: "1" (two convs per dilation) or "2" (one conv per dilation)."""
    output_sample_rate: int = 24000
    """Waveform sample rate (metadata only)."""

    def __post_init__(self) -> None:
        p = []
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes) or not self.upsample_rates:
            p.append("upsample_rates and upsample_kernel_sizes must be non-empty and of equal length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes) or not self.resblock_kernel_sizes:
            p.append("resblock_kernel_sizes and resblock_dilation_sizes must be non-empty and of equal length")
        if self.resblock not in ("1", "2"):
            p.append(f"resblock must be '1' or '2', got {self.resblock!r}")
        if self.resblock == "1" and any(len(d) != 3 for d in self.resblock_dilation_sizes):
            p.append("resblock '1' needs 3 dilations per resblock")
        if self.resblock == "2" and any(len(d) < 2 for d in self.resblock_dilation_sizes):
            p.append("resblock '2' needs 2 dilations per resblock")
        if any(k % 2 == 0 for k in self.resblock_kernel_sizes):
            p.append("resblock kernel sizes must be odd ('same' padding)")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            p.append(f"upsample_initial_channel must be divisible by 2^{len(self.upsample_rates)}")
        for s, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if k < s or (k - s) % 2:
                p.append(f"upsample kernel {k} / stride {s}: k - s must be even and >= 0 (length L -> s L)")
        if p:
            raise ConfigError("invalid vocoder config", p)

    @classmethod
    def from_checkpoint_metadata(cls, metadata: Mapping[str, Any] | str) -> VocoderConfig:
        """Read section ``vocoder`` with ltx-core's ``VocoderConfigurator`` defaults.

        Raises:
            ConfigError: missing section or malformed values.
            UnsupportedError: ``stereo`` false (ltx-core's mono path cannot run: its forward
                transposes axes 2 and 3 of a 3-D input).
        """
        meta = parse_metadata(metadata)
        if "vocoder" not in meta:
            raise ConfigError("invalid vocoder config", ["checkpoint config has no 'vocoder' section"])
        d = cls()
        r = SectionReader(meta["vocoder"], "vocoder")
        kw = dict(
            resblock_kernel_sizes=r.get_int_list("resblock_kernel_sizes", d.resblock_kernel_sizes, minimum=1),
            resblock_dilation_sizes=r.get_int_list_list("resblock_dilation_sizes", d.resblock_dilation_sizes),
            upsample_rates=r.get_int_list("upsample_rates", d.upsample_rates, minimum=1),
            upsample_kernel_sizes=r.get_int_list("upsample_kernel_sizes", d.upsample_kernel_sizes, minimum=1),
            upsample_initial_channel=r.get_int("upsample_initial_channel", d.upsample_initial_channel, minimum=1),
            resblock=r.get_str("resblock", "1", ("1", "2")),
            output_sample_rate=r.get_int("output_sample_rate", 24000, minimum=1),
        )
        stereo = r.get_bool("stereo", True)
        r.raise_if_problems("invalid vocoder config in checkpoint metadata")
        if not stereo:
            raise UnsupportedError("unsupported vocoder variant", ["stereo=false (mono)"])
        return cls(**kw)

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame (240 for LTX-2)."""
        return math.prod(self.upsample_rates)


class ResBlock1(nn.Module):
    """HiFi-GAN ResBlock1: ``x += conv2_j(lrelu(conv1_j(lrelu(x))))`` for each dilation d_j."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding="same") for d in dilations
        )
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, padding="same") for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, L] -> [B, C, L]."""
        for conv1, conv2 in zip(self.convs1, self.convs2):
            x = x + conv2(F.leaky_relu(conv1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """HiFi-GAN ResBlock2: ``x += conv_j(lrelu(x))`` for the first two dilations."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding="same") for d in dilations[:2]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, L] -> [B, C, L]."""
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


class Vocoder(nn.Module):
    """The LTX-2 vocoder (module-relative names as in ``vocoder.*``)."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = config
        c0 = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(2 * MEL_BINS, c0, 7, 1, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, s, padding=(k - s) // 2)
            for i, (s, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        block = ResBlock1 if config.resblock == "1" else ResBlock2
        self.resblocks = nn.ModuleList(
            block(c0 // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )
        self.conv_post = nn.Conv1d(c0 // 2 ** len(self.ups), 2, 7, 1, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Synthesize a waveform.

        Args:
            mel: [B, 2, M, 64] stereo log-mel.

        Returns:
            [B, 2, hop * M] float32 waveform in (-1, 1).
        """
        if mel.ndim != 4 or mel.shape[1] != 2 or mel.shape[3] != MEL_BINS:
            raise InputError(f"vocoder input must be [B, 2, M, {MEL_BINS}], got {tuple(mel.shape)}")
        x = mel.to(self.conv_pre.weight.dtype).transpose(2, 3).flatten(1, 2)  # [B, 2*64, M], s*64 + mel
        x = self.conv_pre(x)
        n = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            # Resblocks of a stage see the same input and are averaged (ltx-core stacks + mean).
            x = torch.stack([self.resblocks[j](x) for j in range(i * n, (i + 1) * n)], dim=0).mean(dim=0)
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x).float()


def vocoder_receptive_field(config: VocoderConfig) -> tuple[int, int]:
    """Exact support of one mel frame, as output-sample offsets relative to ``hop * k``.

    Propagates the index interval that mel frame k can influence through every layer: a
    centred conv of kernel K and dilation d widens it by ``d (K - 1) / 2`` on each side, a
    transposed conv maps input m to outputs ``[m s - p, m s - p + K - 1]``, and the resblocks of a
    stage (averaged) widen it by the largest of their reaches.

    Returns:
        (lo, hi): frame k influences samples ``hop k + lo ... hop k + hi`` (lo < 0).
        For LTX-2: (-4278, 4517).
    """
    lo = hi = 0
    lo, hi = lo - 3, hi + 3  # conv_pre
    for s, k in zip(config.upsample_rates, config.upsample_kernel_sizes):
        p = (k - s) // 2
        lo, hi = lo * s - p, hi * s - p + k - 1
        reach = max(
            _resblock_reach(config, ks, d)
            for ks, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )
        lo, hi = lo - reach, hi + reach
    return lo - 3, hi + 3  # conv_post


def _resblock_reach(config: VocoderConfig, kernel: int, dilations: tuple[int, ...]) -> int:
    half = (kernel - 1) // 2
    if config.resblock == "1":
        return sum(d * half + half for d in dilations)
    return sum(d * half for d in dilations[:2])
