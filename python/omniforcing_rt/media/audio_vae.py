"""LTX-2 audio VAE decoder: latents [B, z, T, f] -> stereo log-mel [B, 2, 4T - 3, mel_bins].

The audio VAE treats a stereo log-mel spectrogram as a 2-channel image [B, 2, time, mel]; time
is the "height" axis and every convolution is causal along it (spec-media.md section 3):

1. de-normalise: flatten each time step to the transformer token layout ``c * f_lat + f``, apply
   ``x * std-of-means + mean-of-means`` (vectors of length ``ch``), reshape back;
2. ``conv_in`` (z -> ch * ch_mult[-1]), ``mid.block_1``, ``mid.block_2``;
3. levels L-1 ... 0, each with ``num_res_blocks + 1`` :class:`ResnetBlock` (the first changes
   width and owns a 1x1 ``nin_shortcut``), and an :class:`Upsample` on every level but 0
   (nearest x2 on time *and* frequency, causal conv, drop the first time row);
4. PixelNorm (eps 1e-6), SiLU, ``conv_out``; crop / zero-pad to ``[out_ch, max(4T - 3, 1), mel_bins]``.

:class:`CausalConv2d` pads 2 past rows of zeros in time and 1 zero column on each side of
frequency. Because nothing looks ahead in time, the decoder streams exactly: :meth:`AudioDecoder.decode_chunk`
keeps, per causal convolution, the last ``k - 1`` rows of its input (at that convolution's own
rate) in an explicit :class:`AudioDecoderStreamState` and uses them instead of the zero rows; the
upsamplers drop their first row only at the very start of the stream. Chunk by chunk equals the
whole-clip decode up to float summation order (spec section 6.3).

Architecture is read from the ``audio_vae`` config section (:class:`AudioDecoderConfig`).
Variants this port does not implement (attention blocks, non-height causality) raise
:class:`UnsupportedError`; ltx-core's defaults *add* attention when the header omits
``mid_block_add_attention`` / ``attn_resolutions``, so such headers are refused rather than
silently built differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from omniforcing_rt.errors import ConfigError, InputError, UnsupportedError
from omniforcing_rt.media.config_reader import SectionReader, parse_metadata
from omniforcing_rt.media.normalization import AUDIO_PIXEL_NORM_EPS, pixel_norm

__all__ = [
    "LATENT_DOWNSAMPLE_FACTOR",
    "AudioDecoder",
    "AudioDecoderConfig",
    "AudioDecoderStreamState",
    "AudioLatentStatistics",
    "CausalConv2d",
    "ResnetBlock",
    "Upsample",
    "audio_latent_to_tokens",
    "audio_tokens_to_latent",
]

LATENT_DOWNSAMPLE_FACTOR = 4
"""Mel frames per audio latent (ltx-core literal): T latents -> 4T - 3 mel frames."""


@dataclass(frozen=True, kw_only=True)
class AudioDecoderConfig:
    """Architecture of the audio VAE decoder (``audio_vae.model.params.ddconfig`` and friends)."""

    ch: int = 128
    """Base width; also the length of the latent statistics vectors (= z_channels x latent bins)."""
    out_ch: int = 2
    """Output channels (stereo)."""
    ch_mult: tuple[int, ...] = (1, 2, 4)
    """Width multiplier per resolution level (level 0 finest)."""
    num_res_blocks: int = 2
    """Each level has ``num_res_blocks + 1`` res blocks in the decoder."""
    z_channels: int = 8
    """Latent channels."""
    mel_bins: int | None = 64
    """Output mel bins (``ddconfig.mel_bins``, else ``preprocessing.mel.n_mel_channels``, else
    ``variables.mel_bins``); None reproduces ltx-core's fallback to the latent bin count."""

    def __post_init__(self) -> None:
        p = []
        for name in ("ch", "out_ch", "z_channels"):
            if getattr(self, name) < 1:
                p.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.ch_mult or min(self.ch_mult) < 1:
            p.append(f"ch_mult must be a non-empty list of positive integers, got {list(self.ch_mult)}")
        if self.num_res_blocks < 0:
            p.append(f"num_res_blocks must be >= 0, got {self.num_res_blocks}")
        if self.z_channels >= 1 and self.ch % self.z_channels:
            p.append(
                f"ch ({self.ch}) must be z_channels ({self.z_channels}) x latent mel bins: the latent "
                "statistics have length ch and are applied to the (c f)-flattened latent"
            )
        if p:
            raise ConfigError("invalid audio decoder config", p)

    @classmethod
    def from_checkpoint_metadata(cls, metadata: Mapping[str, Any] | str) -> AudioDecoderConfig:
        """Read section ``audio_vae`` as ltx-core's ``AudioDecoderConfigurator`` does.

        Raises:
            ConfigError: missing section or malformed values (all listed).
            UnsupportedError: attention blocks, non-height causality, or group norm.
        """
        meta = parse_metadata(metadata)
        if "audio_vae" not in meta:
            raise ConfigError("invalid audio decoder config", ["checkpoint config has no 'audio_vae' section"])
        top = SectionReader(meta["audio_vae"], "audio_vae")
        dd = top.child("model").child("params").child("ddconfig")
        mel_bins = _read_mel_bins(top, dd)
        kw = dict(
            ch=dd.get_int("ch", 128, minimum=1),
            out_ch=dd.get_int("out_ch", 2, minimum=1),
            ch_mult=dd.get_int_list("ch_mult", (1, 2, 4), minimum=1),
            num_res_blocks=dd.get_int("num_res_blocks", 2, minimum=0),
            z_channels=dd.get_int("z_channels", 8, minimum=1),
            mel_bins=mel_bins,
        )
        unsupported = _unsupported_audio_variants(dd, kw["ch_mult"])
        top.raise_if_problems("invalid audio decoder config in checkpoint metadata")
        if unsupported:
            raise UnsupportedError("unsupported audio decoder variant", unsupported)
        return cls(**kw)

    @property
    def latent_mel_bins(self) -> int:
        """Frequency bins of the latent (16 for LTX-2)."""
        return self.ch // self.z_channels

    @property
    def time_factor(self) -> int:
        """Mel rows per latent the network itself produces (2 per upsampler)."""
        return 2 ** (len(self.ch_mult) - 1)

    def num_mel_frames(self, num_latents: int) -> int:
        """Output mel frames for ``num_latents`` latents: ``max(4T - 3, 1)``."""
        return max(num_latents * LATENT_DOWNSAMPLE_FACTOR - (LATENT_DOWNSAMPLE_FACTOR - 1), 1)

    def num_latents(self, num_mel_frames: int) -> int:
        """Latents whose decode yields ``num_mel_frames`` frames (inverse of :meth:`num_mel_frames`)."""
        return (num_mel_frames + LATENT_DOWNSAMPLE_FACTOR - 1) // LATENT_DOWNSAMPLE_FACTOR


def _read_mel_bins(top: SectionReader, dd: SectionReader) -> int | None:
    # ltx-core: ddconfig.mel_bins or preprocessing.mel.n_mel_channels or variables.mel_bins ("or"
    # chain: a 0 / null falls through to the next source).
    for reader, key in (
        (dd, "mel_bins"),
        (top.child("preprocessing").child("mel"), "n_mel_channels"),
        (top.child("variables"), "mel_bins"),
    ):
        if reader.raw(key):
            return reader.get_int(key, 64, minimum=1)
    return None


def _unsupported_audio_variants(dd: SectionReader, ch_mult: tuple[int, ...]) -> list[str]:
    reasons = []
    if dd.get_str("norm_type", "pixel") != "pixel":
        reasons.append("norm_type must be 'pixel' (ltx-core rejects GroupNorm in a causal decoder)")
    axis = dd.get_str("causality_axis", "height")
    if axis != "height":
        reasons.append(f"causality_axis={axis!r} (only 'height', causal along time, is implemented)")
    if dd.get_bool("mid_block_add_attention", True):
        reasons.append(
            "mid_block_add_attention is true or absent (ltx-core defaults it to true and then builds "
            "mid.attn_1, which LTX-2 checkpoints do not contain)"
        )
    attn = dd.raw("attn_resolutions", [8, 16, 32])
    if not isinstance(attn, list | tuple | set) or not all(isinstance(a, int) for a in attn):
        dd.problems.append(f"{dd.path}.attn_resolutions must be a list of integers, got {attn!r}")
        return reasons
    res = dd.get_int("resolution", 256, minimum=1) // 2 ** (len(ch_mult) - 1)
    for level in reversed(range(len(ch_mult))):
        if res in attn:
            reasons.append(f"attention at resolution {res} (attn_resolutions={list(attn)}) in level {level}")
        res *= 2 if level else 1
    return reasons


# ------------------------------------------------------------------------------- streaming state
@dataclass(frozen=True)
class AudioDecoderStreamState:
    """Carried state of a streamed audio decode (immutable; each step returns a new one).

    ``past_rows`` maps the module name of every causal 3x3 convolution to the last 2 rows of its
    (frequency-padded) input [B, C, 2, F + 2], at that convolution's own time rate.
    ``latents_done`` counts latents decoded so far; 0 means the stream has not started, which is
    when the upsamplers drop their first row.
    """

    past_rows: Mapping[str, torch.Tensor] = field(default_factory=dict)
    latents_done: int = 0


class _RowCache:
    """Read-old / write-new view of the past rows used inside one :meth:`AudioDecoder.decode_chunk`."""

    def __init__(self, state: AudioDecoderStreamState) -> None:
        self.old = state.past_rows
        self.new: dict[str, torch.Tensor] = {}
        self.at_start = state.latents_done == 0


# ------------------------------------------------------------------------------------- layers
class CausalConv2d(nn.Module):
    """k x k convolution, zero-padded with k-1 past rows in time and (k-1)/2 columns each side.

    The weight lives in the child ``conv`` (checkpoint layout ``<name>.conv.weight``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.pad_rows = kernel_size - 1
        self.pad_cols = ((kernel_size - 1) // 2, kernel_size - 1 - (kernel_size - 1) // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.state_key = ""  # set by AudioDecoder to the module path, used as the streaming key

    def forward(self, x: torch.Tensor, cache: _RowCache | None = None) -> torch.Tensor:
        """[B, C_in, T, F] -> [B, C_out, T, F]; past rows from ``cache`` when streaming."""
        x = F.pad(x, self.pad_cols)
        if self.pad_rows:
            past = None if cache is None else cache.old.get(self.state_key)
            if past is None:
                past = x.new_zeros(x.shape[0], x.shape[1], self.pad_rows, x.shape[3])
            x = torch.cat([past, x], dim=2)
            if cache is not None:
                cache.new[self.state_key] = x[:, :, -self.pad_rows :].clone()
        return self.conv(x)


class ResnetBlock(nn.Module):
    """``shortcut(x) + conv2(SiLU(PixelNorm(conv1(SiLU(PixelNorm(x))))))``, PixelNorm eps 1e-6."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = CausalConv2d(in_channels, out_channels, 3)
        self.conv2 = CausalConv2d(out_channels, out_channels, 3)
        self.has_shortcut = in_channels != out_channels
        if self.has_shortcut:
            self.nin_shortcut = CausalConv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, cache: _RowCache | None = None) -> torch.Tensor:
        """[B, C_in, T, F] -> [B, C_out, T, F]."""
        h = self.conv1(F.silu(pixel_norm(x, AUDIO_PIXEL_NORM_EPS)), cache)
        h = self.conv2(F.silu(pixel_norm(h, AUDIO_PIXEL_NORM_EPS)), cache)
        if self.has_shortcut:
            x = self.nin_shortcut(x, cache)
        return x + h


class Upsample(nn.Module):
    """Nearest x2 on time and frequency, causal 3x3 conv, drop the first time row (stream start only)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = CausalConv2d(channels, channels, 3)

    def forward(self, x: torch.Tensor, cache: _RowCache | None = None) -> torch.Tensor:
        """[B, C, T, F] -> [B, C, 2T - 1, 2F] (whole clip / first chunk) or [B, C, 2T, 2F]."""
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"), cache)
        # The first two rows both depend on input row 0 only; dropping row 0 keeps length 1 + 2n.
        # Mid-stream that row belongs to the previous chunk's last input row and is real output.
        return x[:, :, 1:] if cache is None or cache.at_start else x


class _MidBlock(nn.Module):
    """``mid``: two res blocks (``attn_1`` is an identity without tensors in LTX-2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor, cache: _RowCache | None) -> torch.Tensor:
        return self.block_2(self.block_1(x, cache), cache)


class _Level(nn.Module):
    """``up.<level>``: res blocks, then an upsampler on every level but 0."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, upsample: bool) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels) for i in range(num_blocks)
        )
        if upsample:
            self.upsample = Upsample(out_channels)

    def forward(self, x: torch.Tensor, cache: _RowCache | None) -> torch.Tensor:
        for block in self.block:
            x = block(x, cache)
        return self.upsample(x, cache) if hasattr(self, "upsample") else x


class AudioLatentStatistics(nn.Module):
    """``audio_vae.per_channel_statistics``: two [ch] buffers applied to the token layout."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("std-of-means", torch.empty(channels))
        self.register_buffer("mean-of-means", torch.empty(channels))

    def un_normalize(self, latent: torch.Tensor) -> torch.Tensor:
        """[B, z, T, f] -> same shape, de-normalised on the (c f)-flattened vector per time step."""
        tokens = audio_latent_to_tokens(latent)
        tokens = tokens * self.get_buffer("std-of-means").to(tokens) + self.get_buffer("mean-of-means").to(tokens)
        return audio_tokens_to_latent(tokens, latent.shape[1])


def audio_latent_to_tokens(latent: torch.Tensor) -> torch.Tensor:
    """[B, z, T, f] -> transformer audio tokens [B, T, z * f] (channel outer, bin inner)."""
    b, c, t, f = latent.shape
    return latent.permute(0, 2, 1, 3).reshape(b, t, c * f)


def audio_tokens_to_latent(tokens: torch.Tensor, channels: int) -> torch.Tensor:
    """Transformer audio tokens [B, T, z * f] -> [B, z, T, f]."""
    b, t, n = tokens.shape
    if n % channels:
        raise InputError(f"audio token width {n} is not a multiple of {channels} channels")
    return tokens.view(b, t, channels, n // channels).permute(0, 2, 1, 3)


# ------------------------------------------------------------------------------------- decoder
class AudioDecoder(nn.Module):
    """The LTX-2 audio VAE decoder (module-relative names as in ``audio_vae.decoder.*``)."""

    def __init__(self, config: AudioDecoderConfig) -> None:
        super().__init__()
        self.config = config
        base = config.ch * config.ch_mult[-1]
        self.per_channel_statistics = AudioLatentStatistics(config.ch)
        self.conv_in = CausalConv2d(config.z_channels, base, 3)
        self.mid = _MidBlock(base)
        levels: list[nn.Module] = []
        width = base
        for level in reversed(range(len(config.ch_mult))):
            out = config.ch * config.ch_mult[level]
            levels.insert(0, _Level(width, out, config.num_res_blocks + 1, upsample=level != 0))
            width = out
        self.up = nn.ModuleList(levels)
        self.conv_out = CausalConv2d(width, config.out_ch, 3)
        for name, module in self.named_modules():
            if isinstance(module, CausalConv2d):
                module.state_key = name

    def _network(self, latent: torch.Tensor, cache: _RowCache | None) -> torch.Tensor:
        self._check_latent(latent)
        h = self.conv_in(self.per_channel_statistics.un_normalize(latent), cache)
        h = self.mid(h, cache)
        for level in reversed(range(len(self.up))):
            h = self.up[level](h, cache)
        return self.conv_out(F.silu(pixel_norm(h, AUDIO_PIXEL_NORM_EPS)), cache)

    def _check_latent(self, latent: torch.Tensor) -> None:
        cfg = self.config
        if latent.ndim != 4 or latent.shape[1] != cfg.z_channels or latent.shape[3] != cfg.latent_mel_bins:
            raise InputError(
                f"audio latent must be [B, {cfg.z_channels}, T, {cfg.latent_mel_bins}], got {tuple(latent.shape)}"
            )

    def _target_bins(self) -> int:
        return self.config.mel_bins if self.config.mel_bins is not None else self.config.latent_mel_bins

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Decode a whole clip.

        Args:
            latent: [B, z, T, f] normalised latent (T >= 1).

        Returns:
            [B, out_ch, max(4T - 3, 1), mel_bins] natural-log magnitude mel.
        """
        h = self._network(latent, None)
        frames = self.config.num_mel_frames(latent.shape[2])
        return _crop_or_pad(h, self.config.out_ch, frames, self._target_bins())

    def decode_chunk(
        self, latent: torch.Tensor, state: AudioDecoderStreamState
    ) -> tuple[torch.Tensor, AudioDecoderStreamState]:
        """Decode the next latents of a stream, exactly (no look-ahead needed).

        Args:
            latent: [B, z, n, f], the n >= 1 latents following ``state.latents_done``.
            state: the state returned by the previous call (``AudioDecoderStreamState()`` first).

        Returns:
            (mel [B, out_ch, 4n - 3 on the first chunk else 4n, mel_bins], new state). The
            concatenation over chunks equals :meth:`forward` on the concatenated latents.

        Raises:
            UnsupportedError: the network's time factor is not 4 (ltx-core then crops or pads the
                whole clip at its end, which has no chunked equivalent).
            InputError: empty chunk or wrong shape.
        """
        if self.config.time_factor != LATENT_DOWNSAMPLE_FACTOR:
            raise UnsupportedError(
                "chunked audio decode", [f"network time factor {self.config.time_factor} != {LATENT_DOWNSAMPLE_FACTOR}"]
            )
        if latent.ndim != 4 or latent.shape[2] < 1:
            raise InputError(f"audio latent chunk must be [B, z, n >= 1, f], got {tuple(latent.shape)}")
        cache = _RowCache(state)
        h = self._network(latent, cache)
        mel = _crop_or_pad(h, self.config.out_ch, h.shape[2], self._target_bins())
        return mel, AudioDecoderStreamState(cache.new, state.latents_done + latent.shape[2])


def _crop_or_pad(h: torch.Tensor, channels: int, frames: int, bins: int) -> torch.Tensor:
    """ltx-core ``_adjust_output_shape``: crop to the target, then zero-pad the end (bottom/right)."""
    h = h[:, :channels, :frames, :bins]
    pad_t, pad_f = frames - h.shape[2], bins - h.shape[3]
    if pad_t > 0 or pad_f > 0:
        h = F.pad(h, (0, max(pad_f, 0), 0, max(pad_t, 0)))
    return h
