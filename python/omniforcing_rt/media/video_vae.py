"""LTX-2 video VAE decoder: normalised latents [B, C, F', H', W'] -> RGB video [B, 3, F, H, W].

Architecture (spec-media.md section 2), read from the checkpoint ``config`` section ``vae``
(:class:`VideoDecoderConfig`), never from a fixed size list:

1. de-normalise the latent per channel, ``x * std-of-means + mean-of-means``;
2. ``conv_in`` (latent channels -> initial width = latent channels x product of the up-block
   channel multipliers);
3. ``up_blocks``: the header's ``decoder_blocks`` applied in *reverse* order; ``res_x`` stacks of
   :class:`ResnetBlock3D` and :class:`DepthToSpaceUpsample` (``compress_all`` / ``compress_time`` /
   ``compress_space``) plus the width-changing ``res_x_y`` block;
4. PixelNorm (eps 1e-8), SiLU, ``conv_out`` (-> 3 x patch^2 channels);
5. unpatchify with the ``(c, w, h)`` channel order (width sub-index before height; section 2.6).

Every 3-D convolution is a :class:`CausalConv3d`: spatial padding by ``nn.Conv3d`` in the
header's padding mode (``reflect`` for LTX-2), temporal padding by replicating edge frames
(symmetric for the non-causal LTX-2 decoder). Every temporal x2 upsampler drops its first output
frame, so F' latents give 8(F'-1)+1 frames with the LTX-2 block list.

Optional weights follow from the architecture: a ``res_x_y`` block changes width and therefore
owns ``norm3`` (GroupNorm with one group) and ``conv_shortcut`` (1x1x1 conv); width-preserving
blocks own neither. Variants this port does not implement (timestep conditioning, noise
injection, attention blocks, group norm) raise :class:`UnsupportedError` at config time instead of
building a different network.
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
from omniforcing_rt.media.normalization import VIDEO_PIXEL_NORM_EPS, pixel_norm

__all__ = [
    "VIDEO_STATISTICS_BUFFERS",
    "CausalConv3d",
    "DepthToSpaceUpsample",
    "ResBlockStack",
    "ResnetBlock3D",
    "VideoDecoder",
    "VideoDecoderBlock",
    "VideoDecoderConfig",
    "VideoLatentStatistics",
    "VideoStage",
    "depth_to_space",
    "video_tokens_to_latent",
    "video_to_uint8",
    "unpatchify",
]

VIDEO_STATISTICS_BUFFERS = (
    "std-of-means",
    "mean-of-means",
    "mean-of-stds",
    "mean-of-stds_over_std-of-means",
    "channel",
)
"""Buffer names of ``vae.per_channel_statistics`` (hyphens are part of the real key names). Only
the first two are read; the other three exist in the checkpoint and are loaded for strictness."""

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_STRIDES = {"compress_all": (2, 2, 2), "compress_time": (2, 1, 1), "compress_space": (1, 2, 2)}


# ----------------------------------------------------------------------------------- configuration
@dataclass(frozen=True, kw_only=True)
class VideoDecoderBlock:
    """One entry of the header's ``decoder_blocks`` list, with ltx-core's defaults filled in."""

    name: str
    """``res_x``, ``res_x_y``, ``compress_all``, ``compress_time`` or ``compress_space``."""
    num_layers: int = 1
    """Res blocks in a ``res_x`` stack."""
    multiplier: int = 1
    """Width divisor (``res_x_y``: default 2; ``compress_all``: default 1)."""
    residual: bool = False
    """Whether a depth-to-space upsampler adds the tiled, rearranged input."""


@dataclass(frozen=True, kw_only=True)
class VideoStage:
    """One built up-block in execution order, with its channel widths resolved."""

    kind: str
    """Block name (see :class:`VideoDecoderBlock`)."""
    in_channels: int
    """Input width."""
    out_channels: int
    """Output width."""
    num_layers: int = 0
    """Res blocks (``res_x`` only)."""
    stride: tuple[int, int, int] = (1, 1, 1)
    """(time, height, width) upsampling factors (upsamplers only)."""
    residual: bool = False
    """Residual depth-to-space branch (upsamplers only)."""


@dataclass(frozen=True, kw_only=True)
class VideoDecoderConfig:
    """Architecture of the video VAE decoder (checkpoint ``config`` section ``vae``)."""

    latent_channels: int = 128
    """Channels of the latent entering the decoder (``latent_channels``)."""
    out_channels: int = 3
    """Colour channels of the output video (``out_channels``)."""
    patch_size: int = 4
    """Spatial unpatchify factor of the final layer (``patch_size``)."""
    causal: bool = False
    """``causal_decoder``: causal (2 copies of frame 0) instead of symmetric temporal padding."""
    spatial_padding_mode: str = "reflect"
    """``decoder_spatial_padding_mode``: nn.Conv3d padding mode of H and W."""
    blocks: tuple[VideoDecoderBlock, ...] = ()
    """``decoder_blocks`` in header order (executed reversed)."""

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError("invalid video decoder config", problems)

    def _problems(self) -> list[str]:
        p: list[str] = []
        for name in ("latent_channels", "out_channels", "patch_size"):
            if getattr(self, name) < 1:
                p.append(f"vae.{name} must be >= 1, got {getattr(self, name)}")
        if self.spatial_padding_mode not in _PADDING_MODES:
            p.append(f"vae.decoder_spatial_padding_mode must be one of {list(_PADDING_MODES)}")
        if p:
            return p
        width = self.initial_channels
        for block in reversed(self.blocks):
            if block.name == "res_x_y" and width % block.multiplier:
                p.append(f"res_x_y: width {width} is not divisible by multiplier {block.multiplier}")
            if block.name in _STRIDES:
                factor = math.prod(_STRIDES[block.name])
                if (width * factor) % block.multiplier:
                    p.append(f"{block.name}: {factor} x width {width} not divisible by multiplier {block.multiplier}")
                if block.residual and (width % factor or factor % block.multiplier):
                    p.append(
                        f"{block.name} (residual): width {width} must be divisible by {factor} and "
                        f"{factor} by multiplier {block.multiplier}"
                    )
            width = _block_out_channels(block, width)
        return p

    @classmethod
    def from_checkpoint_metadata(cls, metadata: Mapping[str, Any] | str) -> VideoDecoderConfig:
        """Read section ``vae`` exactly as ltx-core's ``VideoDecoderConfigurator`` does.

        Raises:
            ConfigError: the section is missing or malformed (every problem listed).
            UnsupportedError: a valid variant this port does not implement (for example a header
                that omits ``timestep_conditioning``, which ltx-core then defaults to true).
        """
        meta = parse_metadata(metadata)
        if "vae" not in meta:
            raise ConfigError("invalid video decoder config", ["checkpoint config has no 'vae' section"])
        r = SectionReader(meta["vae"], "vae")
        unsupported = []
        if r.get_int("dims", 3) != 3:
            unsupported.append("vae.dims != 3 (2-D / dual convolutions)")
        if r.get_str("norm_layer", "pixel_norm") != "pixel_norm":
            unsupported.append(f"vae.norm_layer={r.raw('norm_layer')!r} (only pixel_norm)")
        if r.get_bool("timestep_conditioning", True):
            unsupported.append(
                "vae.timestep_conditioning is true or absent (ltx-core defaults it to true and then adds "
                "timestep embedders and noise mixing, which LTX-2 checkpoints do not contain)"
            )
        blocks = _parse_blocks(r, unsupported)
        kw = dict(
            latent_channels=r.get_int("latent_channels", 128, minimum=1),
            out_channels=r.get_int("out_channels", 3, minimum=1),
            patch_size=r.get_int("patch_size", 4, minimum=1),
            causal=r.get_bool("causal_decoder", False),
            spatial_padding_mode=r.get_str("decoder_spatial_padding_mode", "reflect", _PADDING_MODES),
        )
        r.raise_if_problems("invalid video decoder config in checkpoint metadata")
        if unsupported:
            raise UnsupportedError("unsupported video decoder variant", unsupported)
        return cls(**kw, blocks=blocks)

    # ----------------------------------------------------------------------- derived sizes
    @property
    def initial_channels(self) -> int:
        """Width after ``conv_in``: latent channels x every up-block width multiplier."""
        width = self.latent_channels
        for block in self.blocks:
            if block.name in ("res_x_y", "compress_all"):
                width *= block.multiplier
        return width

    def stages(self) -> list[VideoStage]:
        """The up-blocks in execution order with resolved widths."""
        out, width = [], self.initial_channels
        for block in reversed(self.blocks):
            new_width = _block_out_channels(block, width)
            out.append(
                VideoStage(
                    kind=block.name,
                    in_channels=width,
                    out_channels=new_width,
                    num_layers=block.num_layers if block.name == "res_x" else 0,
                    stride=_STRIDES.get(block.name, (1, 1, 1)),
                    residual=block.residual,
                )
            )
            width = new_width
        return out

    @property
    def final_channels(self) -> int:
        """Width entering ``conv_out``."""
        stages = self.stages()
        return stages[-1].out_channels if stages else self.initial_channels

    @property
    def temporal_factor(self) -> int:
        """Frames per latent after the first one (8 for LTX-2)."""
        return math.prod(s.stride[0] for s in self.stages())

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell along H and W (32 for LTX-2)."""
        return self.patch_size * math.prod(s.stride[1] for s in self.stages())

    def num_frames(self, num_latents: int) -> int:
        """Decoded frames for ``num_latents`` latent frames: ``factor * (F' - 1) + 1``."""
        return self.temporal_factor * (num_latents - 1) + 1


def _block_out_channels(block: VideoDecoderBlock, width: int) -> int:
    if block.name == "res_x_y" or block.name == "compress_all":
        return width // block.multiplier
    return width


def _parse_blocks(r: SectionReader, unsupported: list[str]) -> tuple[VideoDecoderBlock, ...]:
    """``decoder_blocks`` entries ``[name, int | {params}]`` with ltx-core's per-block defaults."""
    raw = r.raw("decoder_blocks", [])
    if not isinstance(raw, list):
        r.problems.append(f"vae.decoder_blocks must be a list, got {raw!r}")
        return ()
    blocks = []
    for i, entry in enumerate(raw):
        where = f"vae.decoder_blocks[{i}]"
        if not (isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str)):
            r.problems.append(f"{where} must be [name, params], got {entry!r}")
            continue
        name, params = entry
        params = {"num_layers": params} if isinstance(params, int) else params
        p = SectionReader(params, where, r.problems)
        if p.get_bool("inject_noise", False):
            unsupported.append(f"{where}: inject_noise")
        if name == "attn_res_x":
            unsupported.append(f"{where}: attn_res_x (attention res blocks)")
        elif name == "res_x":
            blocks.append(VideoDecoderBlock(name=name, num_layers=p.get_int("num_layers", 1, minimum=1)))
        elif name == "res_x_y":
            blocks.append(VideoDecoderBlock(name=name, multiplier=p.get_int("multiplier", 2, minimum=1)))
        elif name == "compress_all":
            blocks.append(
                VideoDecoderBlock(
                    name=name,
                    multiplier=p.get_int("multiplier", 1, minimum=1),
                    residual=p.get_bool("residual", False),
                )
            )
        elif name in ("compress_time", "compress_space"):
            # ltx-core builds these without residual and without channel reduction.
            blocks.append(VideoDecoderBlock(name=name))
        else:
            r.problems.append(f"{where}: unknown block {name!r}")
    return tuple(blocks)


# ------------------------------------------------------------------------------------- layers
class CausalConv3d(nn.Module):
    """3x3x3 convolution with edge-frame replication in time (ltx-core ``CausalConv3d``).

    Spatial padding (1 on each side of H and W) is done by ``nn.Conv3d`` in the configured mode;
    temporal padding replicates frame 0 (and, when non-causal, the last frame) by concatenation,
    never zeros. The weight lives in the child ``conv`` to match the checkpoint key layout.
    """

    def __init__(self, in_channels: int, out_channels: int, *, causal: bool, spatial_padding_mode: str) -> None:
        super().__init__()
        self.causal = causal
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=(0, 1, 1), padding_mode=spatial_padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, T, H, W] -> [B, C_out, T, H, W]."""
        if self.causal:
            x = torch.cat([x[:, :, :1].expand(-1, -1, 2, -1, -1), x], dim=2)
        else:
            x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
        return self.conv(x)


class ResnetBlock3D(nn.Module):
    """``out = shortcut(x) + conv2(SiLU(PixelNorm(conv1(SiLU(PixelNorm(x))))))``.

    When the width changes the shortcut is ``conv_shortcut(norm3(x))`` with ``norm3`` a one-group
    GroupNorm (eps 1e-6, affine) and a 1x1x1 convolution, exactly as ltx-core builds it.
    """

    def __init__(self, in_channels: int, out_channels: int, *, causal: bool, spatial_padding_mode: str) -> None:
        super().__init__()
        conv = dict(causal=causal, spatial_padding_mode=spatial_padding_mode)
        self.conv1 = CausalConv3d(in_channels, out_channels, **conv)
        self.conv2 = CausalConv3d(out_channels, out_channels, **conv)
        self.has_shortcut = in_channels != out_channels
        if self.has_shortcut:
            self.norm3 = nn.GroupNorm(1, in_channels, eps=1e-6, affine=True)
            self.conv_shortcut = nn.Conv3d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, T, H, W] -> [B, C_out, T, H, W]."""
        h = self.conv1(F.silu(pixel_norm(x, VIDEO_PIXEL_NORM_EPS)))
        h = self.conv2(F.silu(pixel_norm(h, VIDEO_PIXEL_NORM_EPS)))
        if self.has_shortcut:
            x = self.conv_shortcut(self.norm3(x))
        return x + h


class ResBlockStack(nn.Module):
    """``res_x``: ``num_layers`` width-preserving :class:`ResnetBlock3D` (ltx-core ``UNetMidBlock3D``)."""

    def __init__(self, channels: int, num_layers: int, *, causal: bool, spatial_padding_mode: str) -> None:
        super().__init__()
        self.res_blocks = nn.ModuleList(
            ResnetBlock3D(channels, channels, causal=causal, spatial_padding_mode=spatial_padding_mode)
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T, H, W] -> same shape."""
        for block in self.res_blocks:
            x = block(x)
        return x


def depth_to_space(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """``b (c p1 p2 p3) d h w -> b c (d p1) (h p2) (w p3)`` (time, height, width sub-positions).

    Args:
        x: [B, C * p1 * p2 * p3, D, H, W].
        stride: (p1, p2, p3).

    Returns:
        [B, C, D * p1, H * p2, W * p3].
    """
    b, c, d, h, w = x.shape
    p1, p2, p3 = stride
    x = x.view(b, c // (p1 * p2 * p3), p1, p2, p3, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c // (p1 * p2 * p3), d * p1, h * p2, w * p3)


class DepthToSpaceUpsample(nn.Module):
    """Conv to ``prod(stride) * C / reduction`` channels, depth-to-space, drop the first frame.

    With ``residual`` the block input is rearranged the same way and *tiled* along channels
    (``Tensor.repeat``, channel j <- j mod C/prod(stride)) before the add (spec section 2.5).
    """

    def __init__(
        self,
        in_channels: int,
        stride: tuple[int, int, int],
        *,
        residual: bool,
        reduction: int,
        causal: bool,
        spatial_padding_mode: str,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.residual = residual
        self.num_repeat = math.prod(stride) // reduction
        out = math.prod(stride) * in_channels // reduction
        self.conv = CausalConv3d(in_channels, out, causal=causal, spatial_padding_mode=spatial_padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T, H, W] -> [B, C / reduction, s_t T - (s_t - 1), s_h H, s_w W]."""
        drop_first = self.stride[0] == 2
        skip = None
        if self.residual:
            skip = depth_to_space(x, self.stride).repeat(1, self.num_repeat, 1, 1, 1)
            skip = skip[:, :, 1:] if drop_first else skip
        y = depth_to_space(self.conv(x), self.stride)
        y = y[:, :, 1:] if drop_first else y
        return y if skip is None else y + skip


class VideoLatentStatistics(nn.Module):
    """``vae.per_channel_statistics``: five [C] buffers, of which only two are used."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        for name in VIDEO_STATISTICS_BUFFERS:
            self.register_buffer(name, torch.empty(channels))

    def un_normalize(self, latent: torch.Tensor) -> torch.Tensor:
        """``x * std-of-means[c] + mean-of-means[c]`` on [B, C, F, H, W]."""
        std = self.get_buffer("std-of-means").view(1, -1, 1, 1, 1).to(latent)
        mean = self.get_buffer("mean-of-means").view(1, -1, 1, 1, 1).to(latent)
        return latent * std + mean


def unpatchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``b (c r q) f h w -> b c f (h q) (w r)``: r = width sub-index, q = height sub-index.

    Args:
        x: [B, C * patch^2, F, H, W].
        patch_size: spatial patch size.

    Returns:
        [B, C, F, H * patch, W * patch].
    """
    b, c, f, h, w = x.shape
    p = patch_size
    x = x.view(b, c // (p * p), p, p, f, h, w)  # b c r q f h w
    x = x.permute(0, 1, 4, 5, 3, 6, 2)  # b c f h q w r
    return x.reshape(b, c // (p * p), f, h * p, w * p)


# ------------------------------------------------------------------------------------- decoder
class VideoDecoder(nn.Module):
    """The LTX-2 video VAE decoder (module-relative names as in ``vae.decoder.*``)."""

    def __init__(self, config: VideoDecoderConfig) -> None:
        super().__init__()
        self.config = config
        conv = dict(causal=config.causal, spatial_padding_mode=config.spatial_padding_mode)
        self.per_channel_statistics = VideoLatentStatistics(config.latent_channels)
        self.conv_in = CausalConv3d(config.latent_channels, config.initial_channels, **conv)
        self.up_blocks = nn.ModuleList(_build_stage(stage, conv) for stage in config.stages())
        out = config.out_channels * config.patch_size**2
        self.conv_out = CausalConv3d(config.final_channels, out, **conv)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Decode normalised latents.

        Args:
            latent: [B, C, F', H', W'] in the transformer's normalised latent space.

        Returns:
            [B, 3, factor (F' - 1) + 1, s H', s W'] (s = spatial factor), unclamped, roughly [-1, 1].

        Raises:
            InputError: wrong rank / channel count, or a spatial size the padding mode cannot pad.
        """
        self._check_latent(latent)
        x = self.per_channel_statistics.un_normalize(latent)
        x = self.conv_in(x)
        for block in self.up_blocks:
            x = block(x)
        x = self.conv_out(F.silu(pixel_norm(x, VIDEO_PIXEL_NORM_EPS)))
        return unpatchify(x, self.config.patch_size)

    def _check_latent(self, latent: torch.Tensor) -> None:
        if latent.ndim != 5 or latent.shape[1] != self.config.latent_channels:
            raise InputError(
                f"video latent must be [B, {self.config.latent_channels}, F, H, W], got {tuple(latent.shape)}"
            )
        if latent.shape[2] < 1:
            raise InputError("video latent has no frames")
        if self.config.spatial_padding_mode == "reflect" and min(latent.shape[3:]) < 2:
            raise InputError(f"reflect padding needs latent H, W >= 2, got {tuple(latent.shape[3:])}")


def _build_stage(stage: VideoStage, conv: dict[str, Any]) -> nn.Module:
    if stage.kind == "res_x":
        return ResBlockStack(stage.in_channels, stage.num_layers, **conv)
    if stage.kind == "res_x_y":
        return ResnetBlock3D(stage.in_channels, stage.out_channels, **conv)
    reduction = stage.in_channels // stage.out_channels
    return DepthToSpaceUpsample(stage.in_channels, stage.stride, residual=stage.residual, reduction=reduction, **conv)


# --------------------------------------------------------------------------------- conversions
def video_tokens_to_latent(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """Transformer video tokens [B, F H W, C] (f-major, then h, then w) -> [B, C, F, H, W]."""
    b, n, c = tokens.shape
    if n != frames * height * width:
        raise InputError(f"{n} video tokens do not form a {frames}x{height}x{width} latent grid")
    return tokens.view(b, frames, height, width, c).permute(0, 4, 1, 2, 3)


def video_to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Decoder output [B, 3, F, H, W] -> uint8 frames [B, F, H, W, 3] the way ltx-core does it.

    ``((x + 1) / 2).clamp(0, 1) * 255`` then ``.to(uint8)``, which truncates (spec section 2.7).
    """
    frames = (((video + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return frames.permute(0, 2, 3, 4, 1)
